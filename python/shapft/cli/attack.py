"""Attack a recording against a model: write adversarial frames as a new recording.

The loss is cross-entropy on the model's logits. Untargeted attacks push frames away
from their labels: the recording's annotations (--labels truth) or the model's own
clean predictions (--labels predicted). --targeted pushes every frame towards
--target-class instead. Budgets: fgsm, bim and pgd bound each I and Q value by eps
(L-infinity); fgm bounds the L2 norm of each frame's perturbation. Give eps or the
perturbation-to-signal ratio --psr-db (fgsm at eps 0.05 is -23 dB).

The output OUTDIR/<input name>.sigmf-{meta,data} keeps the input's annotations (true
classes and SNRs) and records the attack in its global `shapft:attack` field.
"""

from . import CommandError, common


def add_arguments(parser):
    parser.add_argument("--model", required=True, metavar="MODEL.pt", help="TorchScript model file")
    parser.add_argument("--data", required=True, metavar="REC",
                        help="recording to attack (.sigmf-meta path)")
    parser.add_argument("--method", required=True, choices=["fgsm", "fgm", "bim", "pgd"],
                        help="attack method")
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--eps", type=float, help="perturbation budget on the unit-power scale")
    budget.add_argument("--psr-db", type=float, help="budget as perturbation-to-signal ratio in dB")
    parser.add_argument("--steps", type=int, help="iterations of bim/pgd (default 10)")
    parser.add_argument("--alpha", type=float, help="step size of bim/pgd (default 2.5 eps / steps)")
    parser.add_argument("--targeted", action="store_true",
                        help="targeted attack towards --target-class")
    parser.add_argument("--target-class", metavar="NAME", help="class name the targeted attack aims at")
    parser.add_argument("--labels", choices=["truth", "predicted"], default="truth",
                        help="labels untargeted attacks move away from (default truth)")
    parser.add_argument("--out", required=True, metavar="OUTDIR", help="output directory")
    parser.add_argument("--batch-size", type=int, default=256, help="frames per batch (default 256)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output recording")
    common.add_seed(parser)
    common.add_threads(parser)
    common.add_quiet(parser)


def run(args):
    import numpy as np
    from .. import attacks
    from ..core import model_file, recording
    from ..learn.metrics import measured_psr_db, predict_logits
    from ..core.radioml import class_index

    common.apply_threads(args)
    if args.batch_size < 1:
        raise CommandError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.targeted != (args.target_class is not None):
        raise CommandError("--targeted and --target-class go together")
    options = _attack_options(args)
    loaded = model_file.load(common.existing_file(args.model, "--model"))
    data_meta, _ = recording.paths(args.data)
    source = recording.read(common.existing_file(data_meta, "--data"))
    check_frame_length(loaded, source)
    out_base = common.writable_dir(args.out) / data_meta.name[: -len(recording.META_SUFFIX)]
    if recording.paths(out_base)[0].resolve() == data_meta.resolve():
        raise CommandError(f"--out {args.out}: the output would overwrite the input recording")

    attack = attacks.make(args.method, loaded.module, eps=args.eps, psr_db=args.psr_db, seed=args.seed,
                          frame_length=source.frame_length, targeted=args.targeted, **options)
    x = source.model_input()
    if args.targeted:
        labels = np.full(len(source), class_index(args.target_class))
    elif args.labels == "predicted":
        labels = predict_logits(loaded.module, x).argmax(axis=1)
    else:
        labels = source.labels
    x_adv = attacks.attack_array(attack, x, labels, args.batch_size, progress=not args.quiet)

    info = dict(source.info)
    info["attack"] = {**attack.info(), "labels": "target" if args.targeted else args.labels,
                      "target_class": args.target_class, "model": str(loaded.path),
                      "model_sha256": loaded.sha256, "source": str(data_meta),
                      "measured_psr_db": measured_psr_db(x, x_adv)}
    adversarial = recording.Recording(recording.from_model_input(x_adv), source.labels, source.snr_db, info)
    written = recording.write(out_base, adversarial, f"{attack.describe()} against {loaded.path.name} "
                              f"of {data_meta.name}", overwrite=args.force)
    predictions = predict_logits(loaded.module, x_adv).argmax(axis=1)
    outcome = (f"{100 * np.mean(predictions == labels):.1f}% now classified as {args.target_class}"
               if args.targeted else f"model now wrong on {100 * np.mean(predictions != source.labels):.1f}%")
    print(f"wrote {written}: {len(source)} frames, {attack.describe()}; {outcome}")


def check_frame_length(loaded, rec):
    """Refuse data whose frames the model cannot take (e.g. 128-sample frames for a
    SHAP-FT model that expects the mask's shorter frames)."""
    if rec.frame_length != loaded.frame_length:
        hint = " (it carries a negative-point mask)" if loaded.mask else ""
        raise CommandError(f"model {loaded.path.name} expects {loaded.frame_length}-sample frames{hint}, "
                           f"the recording has {rec.frame_length}")


def _attack_options(args):
    from ..core.budget import resolve_eps
    from ..core.radioml import class_index
    try:
        resolve_eps(args.eps, args.psr_db)
    except ValueError as err:
        raise CommandError(f"--eps/--psr-db: {err}") from None
    if args.target_class is not None:
        class_index(args.target_class)
    if args.method in ("fgsm", "fgm"):
        for name in ("steps", "alpha"):
            if getattr(args, name) is not None:
                raise CommandError(f"--{name} applies to bim and pgd only")
        return {}
    return {k: v for k, v in (("steps", args.steps), ("alpha", args.alpha)) if v is not None}
