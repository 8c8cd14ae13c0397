"""The robustness leaderboard: which classifier and defence survives the strongest
attack that knows it (docs/robustness.md).

Each model is attacked as deployed (a model that carries a mask through its deletion)
on a class- and SNR-stratified subset of --data, at every --psr-db budget:

  robust     the frames that survive FGSM, PGD (random restarts), APGD-CE, APGD-DLR
             (targeted) and Square (score-based black box) in turn, as AutoAttack runs
             them (each attack on the frames still correct), with a 95 % bootstrap
             interval; each attack's column is the accuracy after the cascade up to it
  L2 robust  FGM then APGD-CE (L2) at the same PSR
  transfer   PGD crafted on --surrogate (default: the shipped cnn_lstm.pt, or
             transformer_compact_standard.pt when the attacked model is cnn_lstm.pt)
  uap        one universal perturbation for every frame, computed on --uap-data
             (default: frames of --data outside the evaluated subset), written to
             OUT/uap/ for the injector; uap-shift: one made for and applied at a
             random circular time shift per frame

A stochastic model (outputs that differ between two passes in eval mode) is attacked
through the mean of its logits over --eot-samples draws (expectation over
transformation) and scored on single draws.

Writes OUT/leaderboard.json (one row per model and budget), OUT/settings.json
(provenance), OUT/leaderboard.md (the table printed at the end), robust_vs_psr.png and
robust_vs_snr.png. Every result is cached in OUT/cache: run the same command again to
continue an interrupted run; an OUT of other settings is refused unless --force (which
starts over). --quick is a fast preset for a first look (one frame per class x SNR
cell, fewer iterations, queries and restarts).
"""
from . import common


def add_arguments(parser):
    from ..studies import robustness as r
    full, quick = r.Settings(), r.QUICK
    parser.add_argument("--models", required=True, nargs="+", metavar="MODEL.pt", help="model files to rank")
    parser.add_argument("--data", required=True, metavar="REC", help="recording (.sigmf-meta path)")
    parser.add_argument("--psr-db", nargs="+", default=[f"{p:g}" for p in r.DEFAULT_PSR_DB], metavar="PSR",
                        help="budgets as perturbation-to-signal ratio in dB (default "
                             f"{' '.join(f'{p:g}' for p in r.DEFAULT_PSR_DB)})")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--quick", action="store_true", help="fast preset for a first look (see above)")

    def preset(name, text):
        default = f"default {getattr(full, name)}"
        return f"{text} ({default}; --quick {quick[name]})" if name in quick else f"{text} ({default})"
    parser.add_argument("--frames", type=int, help=preset("frames", "about this many frames, the same number "
                                                                     "per class x SNR cell"))
    parser.add_argument("--restarts", type=int, help=preset("restarts", "PGD random restarts"))
    parser.add_argument("--pgd-steps", type=int, help=preset("pgd_steps", "PGD steps (also the transfer's)"))
    parser.add_argument("--apgd-iterations", type=int, help=preset("apgd_iterations", "APGD-CE and APGD-DLR "
                                                                                       "iterations"))
    parser.add_argument("--dlr-targets", type=int, help=preset("dlr_targets", "APGD-DLR target classes per frame"))
    parser.add_argument("--square-queries", type=int,
                        help=preset("square_queries", "Square's query budget: iterations, one forward pass each"))
    parser.add_argument("--eot-samples", type=int,
                        help=preset("eot_samples", "draws a stochastic model's logits are averaged over"))
    parser.add_argument("--uap-epochs", type=int, help=preset("uap_epochs", "passes of the universal "
                                                                             "perturbation over its frames"))
    parser.add_argument("--bootstrap", type=int, help=preset("bootstrap", "resamples of the 95 %% intervals"))
    parser.add_argument("--surrogate", metavar="S.pt", help="the transfer attack's model (default above)")
    parser.add_argument("--uap-data", metavar="REC",
                        help="recording the universal perturbations are computed on (default above)")
    parser.add_argument("--workers", type=int, default=2,
                        help="processes attacking in parallel, each one model at one PSR, torch's threads "
                             "shared out among them (default 2)")
    parser.add_argument("--force", action="store_true", help="start over in an OUT that holds other results")
    common.add_model_run_options(parser)


def run(args):
    from ..studies import robustness

    common.apply_threads(args)
    settings = robustness.make_settings(
        quick=args.quick, frames=args.frames, restarts=args.restarts, pgd_steps=args.pgd_steps,
        apgd_iterations=args.apgd_iterations, dlr_targets=args.dlr_targets, square_queries=args.square_queries,
        eot_samples=args.eot_samples, uap_epochs=args.uap_epochs, bootstrap=args.bootstrap, seed=args.seed,
        precision=args.precision)
    board = robustness.run(args.models, args.data, args.out, args.psr_db, settings, surrogate=args.surrogate,
                           uap_data=args.uap_data, force=args.force, invalid_frames=args.invalid_frames,
                           progress=not args.quiet, workers=args.workers, device=args.device)
    print(board.table)
    print(f"wrote ({len(board.computed)} results computed, {board.reused} from OUT/cache):")
    for path in board.paths:
        print(f"  {path}")
