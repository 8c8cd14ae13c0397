"""SHAP-FT fine-tuning: delete the mask's positions from every training frame and
fine-tune the original CNN-LSTM on the shortened frames with the paper's settings
(dense 256 -> 128, batch 20, up to 50 epochs, early stopping on a fifth of the data).

The exported model carries the mask, so `negative_point_mask` and `classifier_sink`
need nothing but the model file. Baselines with the same recipe: --method direct
(no deletion), random (m random positions), at_fgsm (FGSM adversarial training at
--eps).

--adversarial fgsm|pgd adds adversarial fine-tuning at --eps to any deletion: every
batch half clean, half perturbed (FGSM, or --steps of PGD from a random start)
against the network being trained, on the frames after the deletion. With --method
shapft this is SHAP-AFT's fine-tuning (arXiv 2509.15766); --method direct
--adversarial fgsm is --method at_fgsm.

Invalid frames (a NaN or infinite sample, or all samples zero) of --data and
--evaluate are left out and counted, or refused with --invalid-frames error.

`torchrun --standalone --nproc_per_node N shapft finetune ...` fine-tunes with N
processes, each on 1/N of every batch of 20 (N <= 10), as `shapft train` explains.
"""
from . import common

TRAINS_IN_PROCESS_GROUPS = True   # torchrun (learn.distributed)


def add_arguments(parser):
    parser.add_argument("--model", required=True, metavar="ORIGINAL.pt", help="the original cnn_lstm")
    parser.add_argument("--data", required=True, metavar="REC", help="training frames (tiny-train)")
    parser.add_argument("--out", required=True, metavar="MODEL.pt",
                        help="fine-tuned model file to write (carries the mask for shapft and random)")
    parser.add_argument("--method", choices=["shapft", "random", "direct", "at_fgsm"], default="shapft",
                        help="shapft: delete the mask's positions; random: as many random positions; "
                             "direct: no deletion; at_fgsm: FGSM adversarial training at --eps "
                             "(default shapft)")
    parser.add_argument("--mask", metavar="MASK.json", help="shapft: the mask; random: its m is used")
    parser.add_argument("--adversarial", choices=["fgsm", "pgd"],
                        help="adversarial fine-tuning with this attack at --eps, after the deletion")
    parser.add_argument("--steps", type=int, help="--adversarial pgd: steps per example (default 10)")
    parser.add_argument("--eps", type=float, help="at_fgsm and --adversarial: the adversarial-training budget")
    parser.add_argument("--epochs", type=int, default=50, help="at most this many epochs (default 50)")
    parser.add_argument("--patience", type=int, default=5, help="early-stopping patience (default 5)")
    parser.add_argument("--evaluate", metavar="REC", help="then classify this recording (e.g. adv-data), "
                        "after deleting the same positions")
    parser.add_argument("--force", action="store_true",
                        help="accept a mask derived from another model (warns), overwrite --out")
    common.add_model_run_options(parser)


def run(args):
    from ..studies import stages

    common.apply_threads(args)
    done = stages.finetune_model(
        args.model, args.data, args.out, method=args.method, mask=args.mask, eps=args.eps,
        adversarial=args.adversarial, steps=args.steps,
        epochs=args.epochs, patience=args.patience, evaluate=args.evaluate, seed=args.seed,
        force=args.force, progress=not args.quiet, invalid_frames=args.invalid_frames, precision=args.precision,
        device=args.device)
    if not done.main:   # under torchrun, rank 0 speaks for the group
        return
    result = done.result
    print(f"{done.path}: {done.method}, frames of {done.frame_length} samples, best epoch "
          f"{result.best_epoch} of {result.epochs_run}, val accuracy {100 * result.best_val_acc:.1f}%")
    common.print_invalid([(done.checks.get("--data"), "--data"), (done.checks.get("--evaluate"), "--evaluate")])
    if done.evaluation is not None:
        report = done.evaluation
        print(f"{args.evaluate}: accuracy {100 * report['accuracy']:.1f}% over {report['frames']} frames")
