"""Attention-based adversarial robust distillation of a compact transformer.

DIR holds train, val and test SigMF recordings (e.g. `shapft generate --preset small`).
The command (docs/distillation.md explains every choice):

1. the teacher: transformer_large trained with PGD adversarial training (L-inf,
   random start, --pgd-eps / --pgd-psr-db, --pgd-steps) into
   OUT/transformer_large_pgd_at.pt, unless --teacher names an existing model file;
2. the students, transformer_compact, trained with the same data, epochs and seed by
   each method of --students: standard, pgd_at, ard (Goldblum et al. 2019), and
   attention_ard (ARD + --attention-weight x distance between the student's and the
   teacher's attention maps on the same adversarial frames), into
   OUT/transformer_compact_<method>.pt (TorchScript, for classifier_sink);
3. the evaluation on test: clean accuracy; white-box FGM (L2) and PGD (L-inf, --eval-steps)
   against each model at every --budgets PSR and the training budget; accuracy per SNR;
   the transferability matrix (PGD at the training budget crafted on each model, the
   --transfer-models included, scored by every other).

Writes OUT/distill_results.json, OUT/distill_table.md and the figures
distill_budget.png, distill_snr.png, distill_transfer.png.

Resumable: a model already in OUT made with the same settings is not retrained (other
settings are refused: delete it or use another OUT); an interrupted training continues
from its checkpoint (MODEL.pt.ckpt); white-box results are cached in OUT/.eval-cache.
"""
import sys
import time

from . import common


def add_arguments(parser):
    from ..learn import distill as d
    from ..studies.distill import TEACHER_FILE
    parser.add_argument("--data", required=True, metavar="DIR",
                        help="directory with train, val and test .sigmf-meta recordings")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--teacher", metavar="TEACHER.pt",
                        help=f"an existing robust teacher model file (default: OUT/{TEACHER_FILE}, "
                             "trained if absent)")
    parser.add_argument("--students", default=",".join(d.STUDENT_METHODS),
                        help=f"comma-separated student methods (default {','.join(d.STUDENT_METHODS)})")
    parser.add_argument("--epochs", type=int, default=30, help="student epochs, all methods (default 30)")
    parser.add_argument("--teacher-epochs", type=int, default=15, help="teacher epochs (default 15)")
    parser.add_argument("--batch-size", type=int, default=200, help="frames per batch (default 200)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--patience", type=int, default=10,
                        help="early stopping: epochs without a better --select criterion (default 10)")
    parser.add_argument("--select", choices=("loss", "robust"), default="loss",
                        help="early stopping and the epoch kept: the lowest clean validation loss (loss, the "
                             "default) or the highest robust validation accuracy (robust: under PGD of the "
                             "training budget and steps on 1,000 fixed validation frames)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--pgd-eps", type=float, default=None,
                        help=f"training PGD budget, L-inf per real component (default {d.DEFAULT_EPS}, "
                             "PSR -23.0 dB)")
    budget.add_argument("--pgd-psr-db", type=float, default=None, help="training PGD budget as PSR dB")
    parser.add_argument("--pgd-steps", type=int, default=d.DEFAULT_STEPS,
                        help=f"PGD steps in training, step 2.5 eps/steps (default {d.DEFAULT_STEPS})")
    parser.add_argument("--temperature", type=float, default=d.DEFAULT_TEMPERATURE,
                        help=f"ARD softmax temperature (default {d.DEFAULT_TEMPERATURE:g})")
    parser.add_argument("--alpha", type=float, default=d.DEFAULT_ALPHA,
                        help=f"ARD weight of the distillation term, 1 - alpha on clean CE "
                             f"(default {d.DEFAULT_ALPHA:g})")
    parser.add_argument("--attention-weight", type=float, default=d.DEFAULT_ATTENTION_WEIGHT,
                        help=f"weight of the attention-map term (default {d.DEFAULT_ATTENTION_WEIGHT:g})")
    parser.add_argument("--attention-heads", choices=d.HEAD_MODES, default="mean",
                        help="mean: match head-averaged maps; group: teacher head groups to student heads")
    parser.add_argument("--attention-distance", choices=d.DISTANCES, default="kl",
                        help="kl: KL(teacher row || student row); mse: squared differences")
    parser.add_argument("--budgets", default=",".join(f"{p:g}" for p in d.DEFAULT_EVAL_PSR_DB),
                        help="evaluation budgets, PSR dB, comma-separated; the training budget is "
                             "added (default -30,-25,-20)")
    parser.add_argument("--eval-steps", type=int, default=d.DEFAULT_EVAL_STEPS,
                        help=f"PGD steps in evaluation (default {d.DEFAULT_EVAL_STEPS})")
    parser.add_argument("--eval-frames", type=int, default=0,
                        help="evaluate on a class- and SNR-stratified subset of about this many test "
                             "frames (default 0: all)")
    parser.add_argument("--transfer-models", default="",
                        help="comma-separated extra model files (e.g. cnn_lstm.pt) for the "
                             "transferability matrix")
    common.add_model_run_options(parser)


def run(args):
    import dataclasses
    from pathlib import Path
    from ..studies import distill as study

    common.apply_threads(args)
    started = time.perf_counter()
    settings = study.DistillSettings(**{field.name: getattr(args, field.name)
                                        for field in dataclasses.fields(study.DistillSettings)})
    transfer_models = [item.strip() for item in args.transfer_models.split(",") if item.strip()]
    results = study.run_study(args.data, args.out, settings, teacher=args.teacher,
                              transfer_models=transfer_models, progress=not args.quiet,
                              log=lambda text: print(text, file=sys.stderr, flush=True), invalid_frames=args.invalid_frames,
                              device=args.device)
    out = Path(args.out)
    print(study.markdown_table(results))
    print(f"wrote {out / 'distill_results.json'}, distill_table.md and figures in {out} "
          f"({time.perf_counter() - started:.0f} s)")
