"""Write a model smoothed with Gaussian noise as a model file of its own.

The file's model adds Gaussian noise of --sigma-psr-db (noise power relative to the
unit-power signal) to --samples copies of each frame, runs MODEL on them and returns the
log of the mean softmax: the soft smoothed classifier (Salman et al., arXiv
1906.04584). Fresh noise on every pass makes it stochastic, so `shapft robustness`
attacks it through the mean of its logits over --eot-samples passes (expectation over
transformation) and scores single passes: an attacker who knows the smoothing. A model
that carries a deletion mask is smoothed behind its deletion (full frames in).

Use a base trained under the same noise (`shapft train --noise-psr-db`). Cohen et al.'s
majority vote with abstention and its certified radii are `shapft certify` and the
classifier_sink block's smoothing option; this file is for attacks, the leaderboard and
any block or command that takes a model file.
"""
from . import CommandError


def add_arguments(parser):
    parser.add_argument("--model", required=True, metavar="MODEL.pt", help="the base classifier")
    parser.add_argument("--sigma-psr-db", type=float, required=True,
                        help="noise level as noise-to-signal ratio in dB (e.g. -6)")
    parser.add_argument("--samples", type=int, default=16,
                        help="noisy copies averaged on every pass (default 16)")
    parser.add_argument("--out", required=True, metavar="OUT.pt", help="the model file to write")
    parser.add_argument("--force", action="store_true", help="overwrite --out")


def run(args):
    from ..core import artifacts
    from ..learn import smoothing
    from ..studies import stages

    try:
        smoothing.sigma_from_psr_db(args.sigma_psr_db)   # refused here, before the model loads
    except ValueError as err:
        raise CommandError(f"--sigma-psr-db: {err}") from None
    if args.samples < 1:
        raise CommandError(f"--samples: must be >= 1, got {args.samples}")
    loaded = stages.load_model(args.model, "--model")
    if "smoothing" in loaded.metadata:
        raise CommandError(f"--model {args.model}: already a smoothed model; smooth its base "
                           f"{loaded.metadata['smoothing']['base']}")
    out = stages.writable_output(args.out, "--out", force=args.force)
    command = artifacts.command_line("smooth", ("--model", args.model), ("--sigma-psr-db", args.sigma_psr_db),
                                     ("--samples", args.samples), ("--out", args.out))
    metadata = smoothing.write_smoothed_model(loaded, out, args.sigma_psr_db, args.samples, command)
    print(f"wrote {out}: {metadata['arch']}, noise PSR {args.sigma_psr_db:g} dB (sigma "
          f"{metadata['smoothing']['sigma']:.4g}), {args.samples} noisy copies per pass")
