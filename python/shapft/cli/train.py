"""Train a modulation classifier and export it as a TorchScript model file.

DIR holds the splits train and val (and optionally test) as SigMF recordings
(DIR/train.sigmf-meta, ...), e.g. from `shapft generate --preset small`. Training
follows the SHAP-FT paper: Adam (lr 1e-3), batch 200, cross-entropy, up to 200
epochs, early stopping on validation loss; the weights of the best epoch are
exported. Beside MODEL.pt it writes MODEL.training.json (history, summary, test
report), MODEL.training.png (curves) and, with a test split, MODEL.snr.png
(accuracy vs SNR), MODEL.confusion.png (all SNRs) and MODEL.confusion_high_snr.png
(SNR >= 10 dB).

The splits' frames stay in their data files and are read a batch at a time (each epoch
in a new shuffled order), so a dataset of any size trains in bounded memory
(docs/formats.md); only --noise-psr-db holds its noisy validation frames in memory.

A checkpoint (default MODEL.pt.ckpt) is saved after every epoch; after an
interruption, run the same command with --resume to continue. It is deleted once
the model is exported.

--noise-psr-db P trains a base classifier for randomized smoothing (`shapft certify`):
Gaussian noise of PSR P dB is added to every training batch, and once (seeded) to the
validation frames that decide early stopping.

--adversarial pgd_at|trades|fast_at trains adversarially at --adversarial-psr-db
(default -20 dB), every batch's examples crafted against the model being trained:
PGD-AT (Madry et al.; the loss on PGD examples of --adversarial-steps), TRADES (Zhang et
al. 2019; clean cross-entropy plus --trades-beta times the KL divergence to the worst
example in the ball) or fast AT (Wong et al. 2020; one step of 1.25 eps from a random
start). --init starts from a trained model file of the same architecture (fine-tuning)
instead of fresh weights.

Invalid frames (a NaN or infinite sample, or all samples zero) of every split are left
out and counted (MODEL.training.json: frames_invalid, invalid_frame_indices), or refused
with --invalid-frames error.

Several processes train one model when torchrun starts the command:
  torchrun --standalone --nproc_per_node N shapft train ...
Each process takes 1/N of every batch (--batch-size stays the whole batch, at least 2 N),
their gradients are combined, every process validates 1/N of the val split and all take
the same early-stopping decision; rank 0 alone writes the checkpoint and the model file
(training.world_size: N). gloo on the CPU; with --device cuda (or auto on a GPU machine)
each process uses its own GPU, cuda:LOCAL_RANK, with nccl. More nodes: the same command
on each, with --nnodes and a --rdzv-endpoint they all reach. --resume continues a
checkpoint with any number of processes.
"""
import sys

from . import common

TRAINS_IN_PROCESS_GROUPS = True   # torchrun --nproc_per_node N shapft train ... (learn.distributed)


def add_arguments(parser):
    from ..core.model_file import ARCHITECTURES
    parser.add_argument("--arch", required=True, choices=ARCHITECTURES, help="network to train")
    parser.add_argument("--data", required=True, metavar="DIR",
                        help="directory with train/val(/test) .sigmf-meta recordings")
    parser.add_argument("--out", required=True, metavar="MODEL.pt", help="model file to write")
    parser.add_argument("--epochs", type=int, default=200, help="maximum epochs (default 200)")
    parser.add_argument("--batch-size", type=int, default=200, help="frames per batch (default 200)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--patience", type=int, default=10,
                        help="stop after this many epochs without a lower validation loss (default 10)")
    parser.add_argument("--min-delta", type=float, default=0.0,
                        help="smallest validation-loss decrease that counts as better (default 0)")
    parser.add_argument("--noise-psr-db", type=float, metavar="P",
                        help="train under Gaussian noise of this PSR (dB): a base classifier for randomized "
                             "smoothing")
    parser.add_argument("--adversarial", choices=["pgd_at", "trades", "fast_at"],
                        help="adversarial training (see above)")
    parser.add_argument("--adversarial-psr-db", type=float, default=-20.0,
                        help="its L-infinity budget as PSR in dB (default -20)")
    parser.add_argument("--adversarial-steps", type=int, default=10,
                        help="PGD steps of pgd_at and trades (default 10)")
    parser.add_argument("--trades-beta", type=float, default=6.0, help="TRADES's beta (default 6)")
    parser.add_argument("--init", metavar="MODEL.pt", help="start from this model's weights (same architecture)")
    parser.add_argument("--checkpoint", metavar="PATH",
                        help="checkpoint file (default MODEL.pt.ckpt)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the checkpoint of an interrupted run (starts afresh "
                             "if there is none yet)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing model file")
    common.add_model_run_options(parser)


def run(args):
    from ..studies import stages

    common.apply_threads(args)
    trained = stages.train_classifier(
        args.arch, args.data, args.out, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        patience=args.patience, min_delta=args.min_delta, seed=args.seed, checkpoint=args.checkpoint,
        resume=args.resume, force=args.force, progress=not args.quiet,
        log=lambda text: print(text, file=sys.stderr), invalid_frames=args.invalid_frames, precision=args.precision,
        noise_psr_db=args.noise_psr_db, adversarial=args.adversarial,
        adversarial_psr_db=args.adversarial_psr_db, adversarial_steps=args.adversarial_steps,
        trades_beta=args.trades_beta, init=args.init, device=args.device)
    if trained.main:   # under torchrun, rank 0 speaks for the group
        common.print_invalid([(check, f"{split} split") for split, check in trained.checks.items()])
        _print_summary(trained.path, trained.result, trained.test_report)


def _print_summary(out, result, test_report):
    print(f"wrote {out}: best epoch {result.best_epoch} of {result.epochs_run} run"
          f"{' (stopped early)' if result.stopped_early else ''}, val loss {result.best_val_loss:.4f}, "
          f"val accuracy {100 * result.best_val_acc:.1f}%, {result.seconds:.0f} s")
    if test_report:
        high = test_report["high_snr_accuracy"]
        high_text = f", {100 * high:.1f}% at SNR >= 10 dB" if high is not None else ""
        print(f"test accuracy {100 * test_report['accuracy']:.1f}% overall{high_text}")
        print("per SNR: " + "  ".join(f"{snr}:{100 * acc:.0f}" for snr, acc in test_report["per_snr"].items()))
