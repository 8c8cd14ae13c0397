"""Train a modulation classifier and export it as a TorchScript model file.

DIR holds the splits train and val (and optionally test) as SigMF recordings
(DIR/train.sigmf-meta, ...), e.g. from `shapft generate --preset small`. Training
follows the SHAP-FT paper: Adam (lr 1e-3), batch 200, cross-entropy, up to 200
epochs, early stopping on validation loss; the weights of the best epoch are
exported. Beside MODEL.pt it writes MODEL.training.json (history, summary, test
report), MODEL.training.png (curves) and, with a test split, MODEL.snr.png
(accuracy vs SNR), MODEL.confusion.png (all SNRs) and MODEL.confusion_high_snr.png
(SNR >= 10 dB).

A checkpoint (default MODEL.pt.ckpt) is saved after every epoch; after an
interruption, run the same command with --resume to continue. It is deleted once
the model is exported.
"""
import dataclasses
import shlex
import sys
from pathlib import Path

from . import CommandError, common

ARCHITECTURES = ("cnn_lstm", "transformer_compact", "transformer_large")


def add_arguments(parser):
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
    parser.add_argument("--checkpoint", metavar="PATH",
                        help="checkpoint file (default MODEL.pt.ckpt)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the checkpoint of an interrupted run (starts afresh "
                             "if there is none yet)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing model file")
    common.add_seed(parser)
    common.add_threads(parser)
    common.add_quiet(parser)


def run(args):
    import torch
    from ..core import artifacts, model_file
    from .. import models
    from ..studies import figures
    from ..learn import training
    from ..learn.metrics import HIGH_SNR_DB, accuracy_report, predict_logits

    common.apply_threads(args)
    config = _config(args)
    out = Path(args.out)
    if out.exists() and not args.force:
        raise CommandError(f"--out {out} exists; pass --force to overwrite it")
    checkpoint = Path(args.checkpoint) if args.checkpoint else out.with_name(out.name + ".ckpt")
    if checkpoint.exists() and not args.resume:
        raise CommandError(f"checkpoint {checkpoint} exists (an interrupted run?); "
                           "pass --resume to continue it or delete it")
    common.writable_dir(out.parent)
    splits, digests = common.read_splits(args.data, required=("train", "val"), optional=("test",))
    frame_length = splits["train"].frame_length

    torch.manual_seed(args.seed)
    model = models.build(args.arch, frame_length=frame_length)
    print(f"{args.arch}: {models.parameter_count(model):,} parameters; train {len(splits['train'])}, "
          f"val {len(splits['val'])} frames of {frame_length} samples", file=sys.stderr)
    result = training.fit(model, _xy(splits["train"]), _xy(splits["val"]), config,
                          checkpoint_path=checkpoint, progress=not args.quiet)

    summary = {**result.summary(), "config": dataclasses.asdict(config)}
    test_report = None
    if "test" in splits:
        test = splits["test"]
        predictions = predict_logits(model, test.model_input()).argmax(axis=1)
        test_report = accuracy_report(test.labels, predictions, test.snr_db)
        summary["test_accuracy"] = test_report["accuracy"]
        summary["test_high_snr_accuracy"] = test_report["high_snr_accuracy"]
    provenance = {"command": _command_line(args), "seed": args.seed, "data": digests}
    metadata = model_file.build_metadata(model, args.arch, frame_length, provenance, training=summary)
    model_file.save(model, out, metadata)

    stem = out.with_suffix("")
    artifacts.write_json(f"{stem}.training.json",
                         {"summary": summary, "history": result.history, "test": test_report})
    figures.training_curves(result.history, f"{stem}.training.png", title=f"{args.arch} training")
    if test_report:
        figures.accuracy_vs_snr({args.arch: test_report}, f"{stem}.snr.png",
                              title=f"{args.arch}: test accuracy vs SNR")
        figures.confusion_matrix(test_report["confusion"], test_report["classes"], f"{stem}.confusion.png",
                               title=f"{args.arch}: test confusion (all SNRs)")
        high = test.snr_db >= HIGH_SNR_DB
        if high.any():
            high_report = accuracy_report(test.labels[high], predictions[high])
            figures.confusion_matrix(high_report["confusion"], high_report["classes"],
                                   f"{stem}.confusion_high_snr.png",
                                   title=f"{args.arch}: test confusion (SNR >= {HIGH_SNR_DB:g} dB)")
    checkpoint.unlink(missing_ok=True)
    _print_summary(out, result, test_report)


def _config(args):
    from ..learn.training import TrainConfig
    try:
        return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                           patience=args.patience, min_delta=args.min_delta, seed=args.seed)
    except ValueError as err:
        raise CommandError(f"--{str(err).replace('_', '-')}") from None


def _xy(split):
    return split.model_input(), split.labels


def _command_line(args):
    """The command that reproduces this model (every training option spelled out)."""
    words = ["shapft", "train", "--arch", args.arch, "--data", args.data, "--out", args.out,
             "--epochs", args.epochs, "--batch-size", args.batch_size, "--lr", args.lr,
             "--patience", args.patience, "--min-delta", args.min_delta, "--seed", args.seed]
    return shlex.join(str(word) for word in words)


def _print_summary(out, result, test_report):
    print(f"wrote {out}: best epoch {result.best_epoch} of {result.epochs_run} run"
          f"{' (stopped early)' if result.stopped_early else ''}, val loss {result.best_val_loss:.4f}, "
          f"val accuracy {100 * result.best_val_acc:.1f}%, {result.seconds:.0f} s")
    if test_report:
        high = test_report["high_snr_accuracy"]
        high_text = f", {100 * high:.1f}% at SNR >= 10 dB" if high is not None else ""
        print(f"test accuracy {100 * test_report['accuracy']:.1f}% overall{high_text}")
        print("per SNR: " + "  ".join(f"{snr}:{100 * acc:.0f}" for snr, acc in test_report["per_snr"].items()))
