"""Measure an attack detector guarding its classifier: ROC AUC and the true-positive
rate at 5 % false alarms, per PSR and attack, over the test frames with SNR >= 0 dB
and per SNR (docs/shapaft.md).

Attacks (--attacks), each at every --psr-db, against --model with the frames' true
classes:

  fgsm       one signed-gradient step
  pgd        --steps steps from a random start
  uap        a universal perturbation computed on the train split (2 epochs)
  adaptive   PGD that knows the detector: it ascends the classifier's cross-entropy
             minus w * softplus(detector score), for w in 1, 10 and 100, and keeps per
             frame, among those and plain PGD's (with pgd in --attacks), the attempt
             that is misclassified with the lowest score

Every attacked frame counts as a positive, whether or not the attack fooled the
classifier; "misclassified and undetected" is the fraction the guarded receiver gets
wrong without an alarm at the detector file's calibrated 5 % threshold.
Writes OUT/detection.json, detection.md and detection_roc.png.
"""
from . import common


def add_arguments(parser):
    parser.add_argument("--detector", required=True, metavar="DETECTOR.pt", help="the detector file")
    parser.add_argument("--model", required=True, metavar="MODEL.pt", help="the classifier it guards")
    parser.add_argument("--data", required=True, metavar="DIR",
                        help="dataset directory: test split (and train, for uap)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--psr-db", type=float, nargs="+", default=[-30.0, -25.0, -20.0, -15.0],
                        help="perturbation-to-signal ratios in dB (default -30 -25 -20 -15)")
    parser.add_argument("--attacks", nargs="+", default=["fgsm", "pgd", "uap", "adaptive"],
                        choices=["fgsm", "pgd", "uap", "adaptive"], help="attacks (default all four)")
    parser.add_argument("--steps", type=int, default=20, help="PGD and adaptive steps (default 20)")
    parser.add_argument("--frames", type=int, default=2200,
                        help="test frames drawn at random (default 2200; 0: all)")
    common.add_model_run_options(parser)


def run(args):
    from ..studies import detection

    common.apply_threads(args)
    if args.frames < 0:
        raise ValueError(f"--frames: must be >= 0, got {args.frames}")
    if args.steps < 1:
        raise ValueError(f"--steps: must be >= 1, got {args.steps}")
    results = detection.evaluate_detector(
        args.detector, args.model, args.data, args.out, psrs=args.psr_db, attack_names=args.attacks,
        frames=args.frames, seed=args.seed, steps=args.steps, precision=args.precision,
        invalid_frames=args.invalid_frames, progress=not args.quiet, log=print, device=args.device)
    print(detection.table(results), end="")
    print(f"wrote {args.out}/detection.json, detection.md, detection_roc.png")
