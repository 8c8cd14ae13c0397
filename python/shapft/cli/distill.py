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
import dataclasses
import hashlib
import json
import shlex
import sys
import time

from . import CommandError, common

TEACHER_FILE = "transformer_large_pgd_at.pt"


def add_arguments(parser):
    from ..learn import distill as d
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
                        help="early stopping: epochs without a lower clean validation loss (default 10)")
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
    common.add_seed(parser)
    common.add_threads(parser)
    common.add_quiet(parser)


def run(args):
    from ..core import artifacts, budget, model_file
    from ..learn import distill, training
    from ..core.splits import stratified_subset
    from ..studies.figures import distill as distill_figures
    import numpy as np
    import torch

    common.apply_threads(args)
    started = time.perf_counter()
    students = _students(args, distill)
    budgets = _floats(args.budgets, "--budgets")
    eps = _training_eps(args, distill)
    _check_numbers(args)
    extra_paths = [common.existing_file(p, "--transfer-models") for p in _items(args.transfer_models)]
    out = common.writable_dir(args.out)
    splits, digests = common.read_splits(args.data)
    frame_length = splits["train"].frame_length
    train_xy = (splits["train"].model_input(), splits["train"].labels)
    val_xy = (splits["val"].model_input(), splits["val"].labels)
    progress = not args.quiet
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731

    def config(epochs):
        try:
            return training.TrainConfig(epochs=epochs, batch_size=args.batch_size, lr=args.lr,
                                        patience=args.patience, seed=args.seed)
        except ValueError as err:
            raise CommandError(f"--{str(err).replace('_', '-')}") from None

    teacher_config, student_config = config(args.teacher_epochs), config(args.epochs)
    provenance = {"command": _command_line(args, eps), "seed": args.seed,
                  "data": {k: v for k, v in digests.items() if k in ("train", "val")}}
    timings = {}

    # 1. the teacher
    if args.teacher:
        teacher_path = common.existing_file(args.teacher, "--teacher")
    else:
        teacher_path = out / TEACHER_FILE
        loss_info = distill.PGDATLoss(eps, args.pgd_steps, seed=args.seed).info()
        request = _request(loss_info, teacher_config, None)

        def train_teacher(checkpoint):
            model, result, info = distill.train_teacher(
                train_xy, val_xy, teacher_config, eps, args.pgd_steps, checkpoint, progress,
                frame_length=frame_length)
            return model, result, info
        timings[teacher_path.stem] = _train_or_reuse(
            teacher_path, distill.TEACHER_ARCH, request, train_teacher, teacher_config, provenance,
            frame_length, None, distill, model_file, artifacts, log)
    try:
        teacher = model_file.load(teacher_path)
    except ValueError as err:
        raise CommandError(f"--teacher: {err}") from None
    teacher_meta = distill.teacher_info(teacher)
    if "attention_ard" in students and not teacher.has_attention():
        raise CommandError(f"--teacher {teacher_path}: the model has no attention maps "
                           "(forward_with_attention); attention_ard needs a transformer teacher")
    log(f"teacher {teacher_path} ({teacher.arch}, {teacher_meta['parameters']:,} parameters, "
        f"sha256 {teacher.sha256[:12]})")

    # 2. the students
    loss_settings = {"eps": eps, "steps": args.pgd_steps, "temperature": args.temperature,
                     "alpha": args.alpha, "attention_weight": args.attention_weight,
                     "heads": args.attention_heads, "distance": args.attention_distance}
    student_paths = {}
    for method in students:
        path = out / f"{distill.model_name(distill.STUDENT_ARCH, method)}.pt"
        uses_teacher = method in ("ard", "attention_ard")
        probe = distill.make_loss(method, teacher=teacher.module if uses_teacher else None,
                                  seed=args.seed, **loss_settings)
        request = _request(probe.info(), student_config, teacher.sha256 if uses_teacher else None)

        def train_student(checkpoint, method=method, uses_teacher=uses_teacher):
            return distill.train_student(method, train_xy, val_xy, student_config,
                                         teacher=teacher.module if uses_teacher else None,
                                         checkpoint_path=checkpoint, progress=progress,
                                         frame_length=frame_length, **loss_settings)
        timings[path.stem] = _train_or_reuse(
            path, distill.STUDENT_ARCH, request, train_student, student_config, provenance, frame_length,
            teacher_meta if uses_teacher else None, distill, model_file, artifacts, log)
        student_paths[method] = path

    # 3. evaluation
    test = splits["test"]
    index = stratified_subset(test.labels, test.snr_db, args.eval_frames, seed=args.seed)
    x_test, y_test, snr_test = test.model_input()[index], test.labels[index], test.snr_db[index]
    attack_list = distill.eval_attacks(budgets, eps, frame_length)
    train_psr = round(budget.eps_to_psr_db(eps, "linf"), 6)
    transfer_key = ("pgd", train_psr)
    transfer_attack = [a for a in attack_list if (a[0], a[2]) == transfer_key]
    eval_settings = {"attacks": [list(a) for a in attack_list], "pgd_steps": args.eval_steps,
                     "seed": args.seed, "frames": int(len(index)),
                     "subset_sha256": hashlib.sha256(index.tobytes()).hexdigest(),
                     "test": digests["test"]["data_sha256"]}
    eval_id = hashlib.sha256(json.dumps(eval_settings, sort_keys=True).encode()).hexdigest()[:12]

    entries = [(teacher_path.stem, teacher, "teacher", attack_list)]
    for method, path in student_paths.items():
        entries.append((path.stem, model_file.load(path), f"student ({method})", attack_list))
    for path in extra_paths:
        try:
            entries.append((path.stem, model_file.load(path), "reference", transfer_attack))
        except ValueError as err:
            raise CommandError(f"--transfer-models: {err}") from None
    names = [e[0] for e in entries]
    if len(set(names)) != len(names):
        raise CommandError(f"two models share a name in {names}; rename a --transfer-models file")
    for entry in entries[1:]:
        if entry[1].frame_length != frame_length:
            raise CommandError(f"{entry[1].path} classifies {entry[1].frame_length}-sample frames, "
                               f"the data has {frame_length}")

    results = {"format": "shapft-distill-results/1", "command": provenance["command"],
               "settings": {"training_eps": eps, "training_psr_db": train_psr,
                            "training_pgd_steps": args.pgd_steps, "epochs": args.epochs,
                            "teacher_epochs": args.teacher_epochs, "batch_size": args.batch_size,
                            "lr": args.lr, "patience": args.patience, "temperature": args.temperature,
                            "alpha": args.alpha, "attention_weight": args.attention_weight,
                            "attention_heads": args.attention_heads,
                            "attention_distance": args.attention_distance,
                            "evaluation": {k: v for k, v in eval_settings.items() if k != "subset_sha256"},
                            "threads": torch.get_num_threads()},
               "data": digests, "models": {}}
    cache = out / ".eval-cache"
    adversarial, modules = {}, {}
    for name, loaded, role, attack_pairs in entries:
        stem = cache / f"{name}-{loaded.sha256[:12]}-{eval_id}"
        t0 = time.perf_counter()
        if stem.with_suffix(".json").exists() and stem.with_suffix(".npy").exists():
            report = json.loads(stem.with_suffix(".json").read_text())
            x_adv = np.load(stem.with_suffix(".npy"))
            log(f"{name}: white-box results from {stem.with_suffix('.json')}")
        else:
            log(f"{name}: white-box evaluation on {len(index)} test frames")
            report, kept = distill.whitebox(loaded.module, x_test, y_test, snr_test, attack_pairs,
                                            args.eval_steps, args.seed, keep=[transfer_key],
                                            progress=progress)
            report["seconds"] = round(time.perf_counter() - t0, 1)
            x_adv = kept[transfer_key]
            with artifacts.atomic_path(stem.with_suffix(".npy")) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, x_adv)
            artifacts.write_json(stem.with_suffix(".json"), report)
        adversarial[name], modules[name] = x_adv, loaded.module
        training_block = loaded.metadata.get("training") or {}
        results["models"][name] = {
            "path": str(loaded.path), "sha256": loaded.sha256, "arch": loaded.arch, "role": role,
            "parameters": int(loaded.metadata.get("parameters") or 0),
            "training": {k: training_block.get(k) for k in
                         ("method", "settings", "epochs_run", "best_epoch", "best_val_acc", "seconds",
                          "teacher") if k in training_block},
            "whitebox": report}
    log("transferability matrix")
    transfer = distill.transfer_matrix(modules, adversarial, y_test)
    transfer["attack"] = {"method": "pgd", "eps": transfer_attack[0][1], "psr_db": train_psr,
                          "steps": args.eval_steps,
                          "description": f"PGD eps {eps:g} (PSR {train_psr:.1f} dB), {args.eval_steps} steps"}
    results["transfer"] = transfer
    results["table"] = distill.results_table(results)
    results["claim"] = distill.claim_check(results, teacher=teacher_path.stem)
    results["timings_seconds"] = {**timings, "total_this_run": round(time.perf_counter() - started, 1)}

    artifacts.write_json(out / "distill_results.json", results)
    table = markdown_table(results)
    artifacts.write_bytes(out / "distill_table.md", table.encode())
    distill_figures.accuracy_vs_budget(results, out / "distill_budget.png")
    distill_figures.accuracy_vs_snr(results, out / "distill_snr.png", train_psr)
    distill_figures.transfer_heatmap(transfer, out / "distill_transfer.png")
    print(table)
    print(f"wrote {out / 'distill_results.json'}, distill_table.md and figures in {out} "
          f"({time.perf_counter() - started:.0f} s)")


def _train_or_reuse(path, arch, request, train_fn, config, provenance, frame_length, teacher_meta,
                    distill, model_file, artifacts, log):
    """Reuse `path` if it was made with `request`; else train (resuming a checkpoint made
    with the same request) and export. Returns the training seconds (0 when reused)."""
    canonical = json.loads(json.dumps(request))
    if path.exists():
        try:
            existing = model_file.read_metadata(path)
        except ValueError as err:
            raise CommandError(f"{path}: {err}; delete it to retrain") from None
        made_with = (existing.get("training") or {}).get("request")
        if made_with != canonical:
            raise CommandError(f"{path} exists but was made with other settings "
                               f"({_difference(made_with, canonical)}); delete it or use another --out")
        log(f"{path.name}: exists with these settings, not retrained")
        return 0.0
    checkpoint = path.with_name(path.name + ".ckpt")
    request_file = path.with_name(path.name + ".ckpt.request.json")
    if checkpoint.exists():
        saved = json.loads(request_file.read_text()) if request_file.exists() else None
        if saved != canonical:
            raise CommandError(f"checkpoint {checkpoint} was made with other settings "
                               f"({_difference(saved, canonical)}); delete it to start afresh")
        log(f"{path.name}: resuming from {checkpoint}")
    else:
        artifacts.write_json(request_file, canonical)
        log(f"{path.name}: training ({request['settings'].get('method')})")
    try:
        model, result, info = train_fn(checkpoint)
    except ValueError as err:
        raise CommandError(f"{path.name}: {err}") from None
    block = distill.training_metadata(info, config, result, teacher_meta)
    block["request"] = canonical
    block["history"] = result.history
    distill.export(model, path, arch, provenance, block, frame_length)
    artifacts.write_json(path.with_suffix(".training.json"), block)
    from ..studies import figures
    figures.training_curves(result.history, path.with_suffix(".training.png"), title=path.stem)
    checkpoint.unlink(missing_ok=True)
    request_file.unlink(missing_ok=True)
    log(f"wrote {path}: best epoch {result.best_epoch} of {result.epochs_run}, val accuracy "
        f"{100 * result.best_val_acc:.1f}%, {result.seconds:.0f} s")
    return round(result.seconds, 1)


def _request(loss_info, config, teacher_sha256):
    """What a model is made from: loss settings, TrainConfig, teacher (compared on reuse)."""
    settings = {k: v for k, v in loss_info.items() if k != "layer_map"}
    return {"settings": settings, "config": dataclasses.asdict(config), "teacher_sha256": teacher_sha256}


def _difference(old, new):
    if not isinstance(old, dict):
        return "no record of its settings"
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changes += [f"{key}.{k} {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
                        if a.get(k) != b.get(k)]
        elif a != b:
            changes.append(f"{key} {a!r} -> {b!r}")
    return ", ".join(changes) or "unknown"


def markdown_table(results):
    """The results table: parameters, clean, FGM and PGD accuracy at each budget (PSR dB)."""
    attack_columns = []
    for entry in results["models"].values():
        for attack in entry["whitebox"]["attacks"]:
            key = (attack["method"], attack["psr_db"], attack["eps"])
            if key not in attack_columns:
                attack_columns.append(key)
    attack_columns.sort(key=lambda k: (k[0], k[1]))
    header = ["model", "parameters", "clean"] + [
        f"{m.upper()} {p:.1f} dB (eps {e:.3g})" for m, p, e in attack_columns]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for name, entry in results["models"].items():
        found = {(a["method"], a["psr_db"], a["eps"]): a["accuracy"] for a in entry["whitebox"]["attacks"]}
        cells = [name, f"{entry['parameters']:,}", f"{100 * entry['whitebox']['clean']['accuracy']:.1f}"]
        cells += [f"{100 * found[k]:.1f}" if k in found else "" for k in attack_columns]
        lines.append("| " + " | ".join(cells) + " |")
    transfer = results["transfer"]
    lines += ["", f"Transferability ({transfer['attack']['description']}): accuracy (%) of the column "
              "model on frames crafted against the row model", "",
              "| crafted on \\ scored by | " + " | ".join(transfer["targets"]) + " |",
              "|---|" + "---:|" * len(transfer["targets"])]
    for source, row in zip(transfer["sources"], transfer["accuracy"]):
        lines.append(f"| {source} | " + " | ".join(f"{100 * v:.1f}" for v in row) + " |")
    claim = results.get("claim", {})
    if claim.get("checked"):
        lines += ["", "Claim check (attention_ard minus baseline, accuracy points, per attack):", ""]
        for baseline, comparison in claim["comparisons"].items():
            margins = ", ".join(f"{k} {100 * v:+.1f}" for k, v in comparison["margins"].items())
            lines.append(f"- vs {baseline}: wins {comparison['budgets_won']}/{comparison['budgets']} "
                         f"({margins})")
        if "parameter_ratio" in claim:
            lines.append(f"- parameters: {claim['parameter_ratio']:.4f} of the teacher's "
                         f"({'<=' if claim['parameters_ok'] else '>'} 1/10)")
        lines.append(f"- claim holds on these runs: {'yes' if claim['holds'] else 'no'}")
    return "\n".join(lines) + "\n"


def _students(args, distill):
    methods = _items(args.students)
    if not methods:
        raise CommandError("--students: give at least one of " + ",".join(distill.STUDENT_METHODS))
    unknown = [m for m in methods if m not in distill.STUDENT_METHODS]
    if unknown:
        raise CommandError(f"--students: unknown method {unknown[0]!r}; expected from "
                           f"{','.join(distill.STUDENT_METHODS)}")
    return list(dict.fromkeys(methods))


def _training_eps(args, distill):
    from ..core import budget
    try:
        if args.pgd_psr_db is not None:
            return budget.resolve_eps(psr_db=args.pgd_psr_db)
        eps = distill.DEFAULT_EPS if args.pgd_eps is None else args.pgd_eps
        eps = budget.resolve_eps(eps=eps)
    except ValueError as err:
        raise CommandError(f"--pgd-eps/--pgd-psr-db: {err}") from None
    if eps == 0:
        raise CommandError("--pgd-eps must be > 0")
    return eps


def _check_numbers(args):
    checks = [("--pgd-steps", args.pgd_steps >= 1, "an integer >= 1"),
              ("--eval-steps", args.eval_steps >= 1, "an integer >= 1"),
              ("--temperature", args.temperature > 0, "> 0"),
              ("--alpha", 0 <= args.alpha <= 1, "in [0, 1]"),
              ("--attention-weight", args.attention_weight >= 0, ">= 0"),
              ("--eval-frames", args.eval_frames >= 0, ">= 0 (0: all)"),
              ("--teacher-epochs", args.teacher_epochs >= 1, "an integer >= 1"),
              ("--epochs", args.epochs >= 1, "an integer >= 1")]
    for option, ok, requirement in checks:
        if not ok:
            raise CommandError(f"{option} must be {requirement}, got {getattr(args, option[2:].replace('-', '_'))}")


def _items(text):
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def _floats(text, option):
    try:
        values = [float(item) for item in _items(text)]
    except ValueError:
        raise CommandError(f"{option}: {text!r} is not a comma-separated list of numbers") from None
    if any(v != v or v in (float("inf"), float("-inf")) for v in values):
        raise CommandError(f"{option}: budgets must be finite, got {text!r}")
    return values


def _command_line(args, eps):
    words = ["shapft", "distill", "--data", args.data, "--out", args.out]
    if args.teacher:
        words += ["--teacher", args.teacher]
    options = [("--students", args.students), ("--epochs", args.epochs),
               ("--teacher-epochs", args.teacher_epochs), ("--batch-size", args.batch_size),
               ("--lr", args.lr), ("--patience", args.patience)]
    options.append(("--pgd-eps", f"{eps:.6g}"))
    options += [("--pgd-steps", args.pgd_steps), ("--temperature", args.temperature),
                ("--alpha", args.alpha), ("--attention-weight", args.attention_weight),
                ("--attention-heads", args.attention_heads),
                ("--attention-distance", args.attention_distance), ("--budgets", args.budgets),
                ("--eval-steps", args.eval_steps), ("--eval-frames", args.eval_frames)]
    if args.transfer_models:
        options.append(("--transfer-models", args.transfer_models))
    options.append(("--seed", args.seed))
    for option, value in options:
        words += [option, str(value)]
    return shlex.join(words)
