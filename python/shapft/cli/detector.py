"""Train an attack detector for a classifier (SHAP-AFT's first stage, docs/shapaft.md).

Every frame of --data's train split is shown clean and attacked against --model (FGSM
or 10-step PGD at a PSR of -30, -25, -20 or -15 dB, drawn per frame, from the frame's
true class); training stops early on the val split, built the same way, and the
false-alarm rate is calibrated on the val split's clean frames. --features picks what
the detector sees:

  statistics      peak-to-average power, mean power and the classifier's softmax
                  statistics into a logistic regression (Kokalj-Filipovic & Miller,
                  arXiv 1902.06044); the default: at 5 % false alarms it flagged twice
                  as many PGD frames as the others (docs/shapaft.md)
  logits          a small MLP on the classifier's log-softmax
  frames          a small 1-D CNN on the frame
  frames+logits   both

The output is a TorchScript detector file (docs/formats.md): frames [N, 2, L] in, one
score per frame out, higher meaning more likely attacked; it embeds the classifier it
protects and names it in its metadata. The attack_detector block and `shapft
detection` read it. Training resumes from OUT.ckpt after an interruption.
"""
from . import common


def add_arguments(parser):
    parser.add_argument("--model", required=True, metavar="MODEL.pt", help="the classifier to protect")
    parser.add_argument("--data", required=True, metavar="DIR", help="dataset directory with train and val splits")
    parser.add_argument("--out", required=True, metavar="DETECTOR.pt", help="detector file to write")
    parser.add_argument("--features", default="statistics",
                        choices=["statistics", "logits", "frames", "frames+logits"],
                        help="what the detector looks at (default statistics)")
    parser.add_argument("--frames", type=int, default=0,
                        help="use at most this many frames of each split, drawn at random (default 0: all)")
    parser.add_argument("--epochs", type=int, default=30, help="at most this many epochs (default 30)")
    parser.add_argument("--patience", type=int, default=5, help="early-stopping patience (default 5)")
    parser.add_argument("--force", action="store_true", help="overwrite --out")
    common.add_model_run_options(parser)


def run(args):
    from ..studies import detection

    common.apply_threads(args)
    if args.frames < 0:
        raise ValueError(f"--frames: must be >= 0, got {args.frames}")
    done = detection.train_detector(
        args.model, args.data, args.out, features=args.features, frames=args.frames, seed=args.seed,
        epochs=args.epochs, patience=args.patience, force=args.force, progress=not args.quiet,
        invalid_frames=args.invalid_frames, precision=args.precision, log=print, device=args.device)
    result, val = done.result, done.validation
    print(f"wrote {done.path}: best epoch {result.best_epoch} of {result.epochs_run}; on the val split "
          f"ROC AUC {val['auc']:.3f}, {100 * val['tpr']:.1f}% of attacked frames detected at "
          f"{100 * val['false_alarm_rate']:.0f}% false alarms")
    common.print_invalid([(check, f"--data {name}") for name, check in done.checks.items()])
