"""Randomized smoothing: certify a model's predictions against L2 perturbations (Cohen,
Rosenfeld & Kolter, arXiv 1902.02918).

The smoothed classifier returns the class the model most often gives a frame under
Gaussian noise of --sigma-psr-db (noise power relative to the unit-power signal). For
each frame it picks a class on --n0 noisy copies, bounds that class's probability below
from --n fresh ones (one-sided Clopper-Pearson at --alpha), and certifies the L2
radius sigma * Phi^-1(bound) when the bound exceeds 1/2, else abstains. A radius R over
a frame of L samples is the PSR 10 log10(R^2 / L): no perturbation below it changes the
smoothed class (with probability 1 - alpha).

A model trained under the same noise (`shapft train --noise-psr-db`) certifies far more
than one trained on clean frames. Writes OUT/certify.json (summary overall and at
SNR >= 10 dB, certified accuracy per radius, per-frame classes and radii) and
OUT/certified_accuracy.png.
"""
from . import common


def add_arguments(parser):
    parser.add_argument("--model", required=True, metavar="MODEL.pt", help="the base classifier")
    parser.add_argument("--data", required=True, metavar="REC", help="recording to certify (.sigmf-meta)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--sigma-psr-db", type=float, required=True,
                        help="noise level as noise-to-signal ratio in dB (e.g. -20)")
    parser.add_argument("--n", type=int, default=1000, help="noisy copies per frame for the bound (default 1000)")
    parser.add_argument("--n0", type=int, default=100, help="noisy copies that choose the class (default 100)")
    parser.add_argument("--alpha", type=float, default=0.001,
                        help="failure probability of each certificate (default 0.001)")
    parser.add_argument("--frames", type=int, default=500, help="frames drawn at random (default 500; 0: all)")
    common.add_model_run_options(parser)


def run(args):
    from ..studies import certification

    common.apply_threads(args)
    for name in ("n", "n0"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name}: must be >= 1, got {getattr(args, name)}")
    if not 0 < args.alpha < 1:
        raise ValueError(f"--alpha: must be between 0 and 1, got {args.alpha}")
    if args.frames < 0:
        raise ValueError(f"--frames: must be >= 0, got {args.frames}")
    results = certification.certify_recording(
        args.model, args.data, args.out, args.sigma_psr_db, n0=args.n0, n=args.n, alpha=args.alpha,
        frames=args.frames, seed=args.seed, precision=args.precision, invalid_frames=args.invalid_frames,
        progress=not args.quiet, device=args.device)
    key = f"certified_accuracy_at_psr{certification.REFERENCE_PSR_DB:g}"
    for name, part in (("all frames", results["all"]), ("SNR >= 10 dB", results["high_snr"])):
        if part:
            print(f"{name} ({part['frames']}): base {100 * part['base_clean_accuracy']:.1f}%, smoothed "
                  f"{100 * part['smoothed_clean_accuracy']:.1f}% ({100 * part['abstained']:.1f}% abstained), "
                  f"certified at PSR {certification.REFERENCE_PSR_DB:g} dB {100 * part[key]:.1f}%")
    print(f"wrote {args.out}/certify.json, certified_accuracy.png")
