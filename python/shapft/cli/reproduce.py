"""Run the whole study: data, the original CNN-LSTM, FGSM attacks, SHAP values,
negative-point masks, SHAP-FT fine-tuning with its baselines (AT-FGSM, direct
fine-tuning) and controls (random deletion, adaptive FGSM), the evaluation, the
attention-based robust distillation, figures, results.json and report.md.

Presets:
  small  the study (data of `shapft generate --preset small` and `tiny`; eps 0.025,
         0.05, 0.075, 0.1, 0.15, 0.2; fine-tuning seeds 0 and 1; distillation 15+20 epochs,
         seed 0)
  micro  the same pipeline on a few frames and epochs, to check the plumbing (minutes)

Resumable: finished stages (OUT/stages.json) and finished artifacts are not redone;
run the same command again after an interruption. OUT/commands.log lists every
`shapft` command the run made.
"""
from . import common


def add_arguments(parser):
    parser.add_argument("--preset", required=True, choices=["small", "micro"])
    parser.add_argument("--out", required=True, metavar="DIR")
    common.add_seed(parser, default=1)
    parser.add_argument("--workers", type=int, default=2,
                        help="parallel processes for data generation and fine-tuning (default 2)")
    parser.add_argument("--until", choices=["data", "train", "attack", "explain", "mask", "finetune",
                                            "evaluate", "distill", "report"],
                        help="stop after this stage")
    common.add_threads(parser)
    common.add_quiet(parser)


def run(args):
    from .. import reproduce
    if args.workers < 1:
        raise common.CommandError(f"--workers must be >= 1, got {args.workers}")
    out = common.writable_dir(args.out)
    pipeline = reproduce.Pipeline(out, reproduce.PRESETS[args.preset], seed=args.seed, workers=args.workers,
                                  threads=args.threads, progress=not args.quiet)
    pipeline.run(until=args.until)
    if (out / "report.md").exists() and args.until in (None, "report"):
        print(f"report: {out / 'report.md'}; results: {out / 'results.json'}")
