"""Run the whole SHAP-FT study: data, the original CNN-LSTM, FGSM attacks, SHAP values,
negative-point masks, SHAP-FT fine-tuning with its baselines (AT-FGSM, direct
fine-tuning) and controls (random deletion, adaptive FGSM), the evaluation, the
robustness leaderboard of the original and defended models (`shapft robustness`:
the standard attack ensemble, adaptive, with confidence intervals), figures,
results.json and report.md; with --aft also the SHAP-AFT ablation (adversarial
fine-tuning with SHAP's, random or no deletion, 3 seeds, scored under FGSM, BIM, PGD
and C&W-L2, transferred and adaptive: docs/shapaft.md), and with --distill the
attention-based robust distillation study (`shapft distill`); their results join the
report.

Presets:
  small  the study (data of `shapft generate --preset small` and `tiny`; eps 0.025,
         0.05, 0.075, 0.1, 0.15, 0.2; fine-tuning seeds 0, 1, 2; under 2 hours on
         2 cores (1:57 measured); --distill adds 15+20 epochs of distillation, seed 0, several hours)
  micro  the same pipeline on a few frames and epochs, to check the plumbing (minutes)

Precision: fp32 by default. --precision auto runs the model stages under bf16 autocast
where the CPU or GPU computes bfloat16 natively, except the distillation, which stays in
fp32 (its compact students train slower in bf16); --precision bf16 runs all of them in
bf16. docs/precision.md has what was measured.

Device: every stage that runs a model runs it on --device (default auto: cuda when
available, else cpu), and the commands in OUT/commands.log carry it.

Resumable: finished stages (OUT/stages.json) and finished artifacts are not redone;
run the same command again after an interruption. OUT/commands.log lists every
`shapft` command the run made.
"""
from . import common


def add_arguments(parser):
    from ..studies import reproduce   # no torch: the stages import it when they run
    parser.add_argument("--preset", required=True, choices=["small", "micro"],
                        help="small: the study; micro: the same pipeline on a few frames (see above)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="run directory (an interrupted run continues there)")
    common.add_seed(parser, default=1)
    parser.add_argument("--workers", type=int, default=2,
                        help="parallel processes for data generation and fine-tuning (default 2)")
    parser.add_argument("--until", choices=reproduce.STAGES,
                        help="stop after this stage")
    parser.add_argument("--aft", action="store_true",
                        help="also run the SHAP-AFT ablation (added to a finished run, it redoes only the report)")
    parser.add_argument("--distill", action="store_true",
                        help="also run the distillation study (added to a finished run, it "
                             "redoes only the report)")
    common.add_threads(parser)
    common.add_precision(parser)
    common.add_device(parser)
    common.add_quiet(parser)


def run(args):
    from ..core import artifacts
    from ..studies import reproduce
    if args.threads is not None and args.threads < 0:
        raise common.CommandError(f"--threads must be >= 0 (0 = torch's default, one per core), got {args.threads}")
    if args.workers < 1:
        raise common.CommandError(f"--workers must be >= 1, got {args.workers}")
    out = artifacts.writable_dir(args.out)
    pipeline = reproduce.Pipeline(out, reproduce.PRESETS[args.preset], seed=args.seed, workers=args.workers,
                                  threads=args.threads, progress=not args.quiet,
                                  distill=args.distill, precision=args.precision, aft=args.aft,
                                  device=args.device)
    pipeline.run(until=args.until)
    if (out / "report.md").exists() and args.until in (None, "report"):
        print(f"report: {out / 'report.md'}; results: {out / 'results.json'}")
