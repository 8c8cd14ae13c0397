"""The attention-based adversarial robust distillation study (`shapft distill`,
docs/distillation.md): train (or reuse) the robust teacher and the compact students,
evaluate them white-box and for transferability, write the results, table and figures.

`DistillSettings` holds the study's options (the `shapft distill` options, '-' -> '_')
and checks them; `run_study` runs the study in a directory; `settings_from_options`
builds the settings from `shapft distill` option words (as `shapft reproduce` keeps
them). Every error is a ValueError (or FileNotFoundError, PermissionError, ...) whose
message starts with the command-line option that gave the bad value.
"""
import dataclasses
import hashlib
import json
import sys
import time
from typing import Optional

import numpy as np
import torch

from ..core import artifacts, budget, model_file, recording
from ..core.splits import stratified_subset
from ..learn import distill, training
from ..models import precision as model_precision
from . import stages

TEACHER_FILE = "transformer_large_pgd_at.pt"
RESULTS_FILE = "distill_results.json"
TABLE_FILE = "distill_table.md"


SELECTIONS = ("loss", "robust")   # --select
ROBUST_SELECTION_FRAMES = 1000

@dataclasses.dataclass
class DistillSettings:
    """The study's options, one field per `shapft distill` option (same defaults).
    `students` and `budgets` also take the command line's comma-separated text."""
    students: tuple = distill.STUDENT_METHODS
    epochs: int = 30
    teacher_epochs: int = 15
    batch_size: int = 200
    lr: float = 1e-3
    patience: int = 10
    pgd_eps: Optional[float] = None         # at most one of pgd_eps, pgd_psr_db (default DEFAULT_EPS)
    pgd_psr_db: Optional[float] = None
    pgd_steps: int = distill.DEFAULT_STEPS
    temperature: float = distill.DEFAULT_TEMPERATURE
    alpha: float = distill.DEFAULT_ALPHA
    attention_weight: float = distill.DEFAULT_ATTENTION_WEIGHT
    attention_heads: str = "mean"
    attention_distance: str = "kl"
    budgets: tuple = distill.DEFAULT_EVAL_PSR_DB
    eval_steps: int = distill.DEFAULT_EVAL_STEPS
    eval_frames: int = 0
    seed: int = 0
    precision: str = "fp32"                 # of training, attacks and evaluation (models.precision)
    select: str = "loss"                    # early stopping on: val loss, or robust val accuracy

    def __post_init__(self):
        model_precision.check(self.precision, "--precision")
        self.students = _students(self.students)
        self.budgets = _floats(self.budgets, "--budgets")
        for name in ("lr", "temperature", "alpha", "attention_weight"):
            setattr(self, name, _number(getattr(self, name), f"--{name.replace('_', '-')}"))
        self.training_eps   # raises ValueError on a bad --pgd-eps / --pgd-psr-db
        _check_numbers(self)
        for option, value, choices in (("--attention-heads", self.attention_heads, distill.HEAD_MODES),
                                       ("--attention-distance", self.attention_distance, distill.DISTANCES),
                                       ("--select", self.select, SELECTIONS)):
            if value not in choices:
                raise ValueError(f"{option}: invalid choice {value!r} (choose from {', '.join(choices)})")
        self.train_config(self.teacher_epochs)
        self.train_config(self.epochs)

    @property
    def training_eps(self):
        """The training PGD budget, L-inf per real component (from pgd_psr_db, pgd_eps or
        the default)."""
        if self.pgd_eps is not None and self.pgd_psr_db is not None:
            raise ValueError("--pgd-eps/--pgd-psr-db: give the training budget as one of them, not both")
        try:
            if self.pgd_psr_db is not None:
                return budget.resolve_eps(psr_db=float(self.pgd_psr_db))
            eps = distill.DEFAULT_EPS if self.pgd_eps is None else float(self.pgd_eps)
            eps = budget.resolve_eps(eps=eps)
        except ValueError as err:
            raise ValueError(f"--pgd-eps/--pgd-psr-db: {err}") from None
        if eps == 0:
            raise ValueError("--pgd-eps must be > 0")
        return eps

    @property
    def selection(self):
        """The training.RobustSelection of --select robust (PGD of the training budget and
        steps on 1,000 fixed validation frames), None for the validation loss."""
        if self.select == "loss":
            return None
        return training.RobustSelection(self.training_eps, steps=self.pgd_steps, frames=ROBUST_SELECTION_FRAMES,
                                        seed=self.seed)

    def train_config(self, epochs):
        """The TrainConfig of a training run of `epochs` epochs (teacher or students)."""
        try:
            return training.TrainConfig(epochs=epochs, batch_size=self.batch_size, lr=self.lr,
                                        patience=self.patience, seed=self.seed)
        except ValueError as err:
            raise ValueError(f"--{str(err).replace('_', '-')}") from None


def settings_from_options(words):
    """DistillSettings from `shapft distill` option words, e.g. ("--epochs", "20",
    "--eval-frames", "2200") or ("--budgets=-25",): each value converted to its field's
    type; students and budgets comma-separated as on the command line."""
    fields = {f"--{f.name.replace('_', '-')}": f for f in dataclasses.fields(DistillSettings)}
    words = [str(word) for word in words]
    values, i = {}, 0
    while i < len(words):
        option, value = words[i], None
        if "=" in option:
            option, value = option.split("=", 1)
        if option not in fields:
            raise ValueError(f"{option}: not a study option of shapft distill (expected one of "
                             f"{', '.join(fields)})")
        if value is None:
            if i + 1 >= len(words):
                raise ValueError(f"{option}: expected a value")
            i += 1
            value = words[i]
        field = fields[option]
        values[field.name] = _convert(value, field.type, option)
        i += 1
    return DistillSettings(**values)


def run_study(data_dir, out_dir, settings, teacher=None, transfer_models=(), progress=True, log=None,
              invalid_frames="skip", device="auto"):
    """Run the study on DATA_DIR's train/val/test recordings into OUT_DIR (resumable) and
    return the results (also written to OUT_DIR/distill_results.json, with
    distill_table.md and the figures distill_budget.png, distill_snr.png,
    distill_transfer.png). `teacher`: an existing robust teacher model file (default
    OUT_DIR/transformer_large_pgd_at.pt, trained if absent); `transfer_models`: extra
    model files for the transferability matrix; `log(text)`: progress lines (default:
    stderr). A model already in OUT_DIR is reused whatever precision it was trained in,
    as training.fit resumes a checkpoint in another precision; its training block
    records the precision. Every model trains and runs on `device` (--device)."""
    from .figures import distill as distill_figures

    if log is None:
        log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    started = time.perf_counter()
    s = settings
    students, eps = s.students, s.training_eps
    device = stages.run_device(device)
    precision = model_precision.resolve(s.precision, device.type)
    transfer_models = [str(p) for p in transfer_models]
    extra_paths = [artifacts.existing_file(p, "--transfer-models") for p in transfer_models]
    teacher_path = artifacts.existing_file(teacher, "--teacher") if teacher else None
    out = artifacts.writable_dir(out_dir, option="--out")
    splits, digests = recording.read_splits(data_dir)
    for name in list(splits):
        splits[name], check = recording.check_frames(splits[name], invalid_frames, f"--data {name}")
        digests[name]["frames_invalid"] = check.counts()
    frame_length = splits["train"].frame_length
    budget.warn_if_above_signal(eps, "linf", frame_length, "--pgd-eps/--pgd-psr-db")
    for psr in s.budgets:
        if psr > 0:
            budget.warn_if_above_signal(budget.psr_db_to_eps(psr), "linf", frame_length, "--budgets")
    train_xy = (splits["train"].model_input(), splits["train"].labels)
    val_xy = (splits["val"].model_input(), splits["val"].labels)

    teacher_config, student_config = s.train_config(s.teacher_epochs), s.train_config(s.epochs)
    provenance = {"command": _command_line(data_dir, out_dir, s, teacher, transfer_models),
                  "seed": s.seed, "data": {k: v for k, v in digests.items() if k in ("train", "val")}}
    timings = {}

    # 1. the teacher
    if teacher_path is None:
        teacher_path = out / TEACHER_FILE
        loss_info = distill.PGDATLoss(eps, s.pgd_steps, seed=s.seed).info()
        request = _request(loss_info, teacher_config, None, s.selection)

        def train_teacher(checkpoint):
            model, result, info = distill.train_teacher(
                train_xy, val_xy, teacher_config, eps, s.pgd_steps, checkpoint, progress,
                frame_length=frame_length, precision=precision, device=device, selection=s.selection)
            return model, result, info
        timings[teacher_path.stem] = _train_or_reuse(
            teacher_path, distill.TEACHER_ARCH, request, train_teacher, teacher_config, provenance,
            frame_length, None, log)
    try:
        teacher_model = model_file.load(teacher_path).to(device)
    except ValueError as err:
        raise ValueError(f"--teacher: {err}") from None
    teacher_meta = distill.teacher_info(teacher_model)
    if "attention_ard" in students and not teacher_model.has_attention():
        raise ValueError(f"--teacher {teacher_path}: the model has no attention maps "
                         "(forward_with_attention); attention_ard needs a transformer teacher")
    log(f"teacher {teacher_path} ({teacher_model.arch}, {teacher_meta['parameters']:,} parameters, "
        f"sha256 {teacher_model.sha256[:12]})")

    # 2. the students
    loss_settings = {"eps": eps, "steps": s.pgd_steps, "temperature": s.temperature,
                     "alpha": s.alpha, "attention_weight": s.attention_weight,
                     "heads": s.attention_heads, "distance": s.attention_distance}
    student_paths = {}
    for method in students:
        path = out / f"{distill.model_name(distill.STUDENT_ARCH, method)}.pt"
        uses_teacher = method in ("ard", "attention_ard")
        probe = distill.make_loss(method, teacher=teacher_model.module if uses_teacher else None,
                                  seed=s.seed, **loss_settings)
        request = _request(probe.info(), student_config, teacher_model.sha256 if uses_teacher else None,
                           s.selection)

        def train_student(checkpoint, method=method, uses_teacher=uses_teacher):
            return distill.train_student(method, train_xy, val_xy, student_config,
                                         teacher=teacher_model.module if uses_teacher else None,
                                         checkpoint_path=checkpoint, progress=progress,
                                         frame_length=frame_length, precision=precision, device=device,
                                         selection=s.selection, **loss_settings)
        timings[path.stem] = _train_or_reuse(
            path, distill.STUDENT_ARCH, request, train_student, student_config, provenance, frame_length,
            teacher_meta if uses_teacher else None, log)
        student_paths[method] = path

    # 3. evaluation
    test = splits["test"]
    index = stratified_subset(test.labels, test.snr_db, s.eval_frames, seed=s.seed)
    x_test, y_test, snr_test = test.model_input()[index], test.labels[index], test.snr_db[index]
    attack_list = distill.eval_attacks(list(s.budgets), eps, frame_length)
    train_psr = round(budget.eps_to_psr_db(eps, "linf"), 6)
    transfer_key = ("pgd", train_psr)
    transfer_attack = [a for a in attack_list if (a[0], a[2]) == transfer_key]
    eval_settings = {"attacks": [list(a) for a in attack_list], "pgd_steps": s.eval_steps,
                     "seed": s.seed, "frames": int(len(index)),
                     "subset_sha256": hashlib.sha256(index.tobytes()).hexdigest(),
                     "test": digests["test"]["data_sha256"], "precision": precision}
    eval_id = hashlib.sha256(json.dumps(eval_settings, sort_keys=True).encode()).hexdigest()[:12]

    entries = [(teacher_path.stem, teacher_model, "teacher", attack_list)]
    for method, path in student_paths.items():
        entries.append((path.stem, model_file.load(path).to(device), f"student ({method})", attack_list))
    for path in extra_paths:
        try:
            entries.append((path.stem, model_file.load(path).to(device), "reference", transfer_attack))
        except ValueError as err:
            raise ValueError(f"--transfer-models: {err}") from None
    names = [e[0] for e in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"two models share a name in {names}; rename a --transfer-models file")
    for entry in entries[1:]:
        if entry[1].frame_length != frame_length:
            raise ValueError(f"{entry[1].path} classifies {entry[1].frame_length}-sample frames, "
                             f"the data has {frame_length}")

    results = {"format": "shapft-distill-results/1", "command": provenance["command"],
               "settings": {"training_eps": eps, "training_psr_db": train_psr,
                            "training_pgd_steps": s.pgd_steps, "epochs": s.epochs,
                            "teacher_epochs": s.teacher_epochs, "batch_size": s.batch_size,
                            "lr": s.lr, "patience": s.patience, "temperature": s.temperature,
                            "alpha": s.alpha, "attention_weight": s.attention_weight,
                            "attention_heads": s.attention_heads,
                            "attention_distance": s.attention_distance,
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
                                            s.eval_steps, s.seed, keep=[transfer_key],
                                            progress=progress, precision=precision)
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
                          "precision", "teacher") if k in training_block},
            "whitebox": report}
    log("transferability matrix")
    transfer = distill.transfer_matrix(modules, adversarial, y_test, precision)
    transfer["attack"] = {"method": "pgd", "eps": transfer_attack[0][1], "psr_db": train_psr,
                          "steps": s.eval_steps,
                          "description": f"PGD eps {eps:g} (PSR {train_psr:.1f} dB), {s.eval_steps} steps"}
    results["transfer"] = transfer
    results["table"] = distill.results_table(results)
    results["claim"] = distill.claim_check(results, teacher=teacher_path.stem)
    results["timings_seconds"] = {**timings, "total_this_run": round(time.perf_counter() - started, 1)}

    artifacts.write_json(out / RESULTS_FILE, results)
    artifacts.write_bytes(out / TABLE_FILE, markdown_table(results).encode())
    distill_figures.accuracy_vs_budget(results, out / "distill_budget.png")
    distill_figures.accuracy_vs_snr(results, out / "distill_snr.png", train_psr)
    distill_figures.transfer_heatmap(transfer, out / "distill_transfer.png")
    return results


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


# --------------------------------------------------------------------------------------
# training: reuse, resume or train


def _train_or_reuse(path, arch, request, train_fn, config, provenance, frame_length, teacher_meta, log):
    """Reuse `path` if it was made with `request`; else train (resuming a checkpoint made
    with the same request) and export. Returns the training seconds (0 when reused)."""
    canonical = json.loads(json.dumps(request))
    if path.exists():
        try:
            existing = model_file.read_metadata(path)
        except ValueError as err:
            raise ValueError(f"{path}: {err}; delete it to retrain") from None
        made_with = (existing.get("training") or {}).get("request")
        if made_with != canonical:
            raise ValueError(f"{path} exists but was made with other settings "
                             f"({_difference(made_with, canonical)}); delete it or use another --out")
        log(f"{path.name}: exists with these settings, not retrained")
        return 0.0
    checkpoint = path.with_name(path.name + ".ckpt")
    request_file = path.with_name(path.name + ".ckpt.request.json")
    if checkpoint.exists():
        saved = json.loads(request_file.read_text()) if request_file.exists() else None
        if saved != canonical:
            raise ValueError(f"checkpoint {checkpoint} was made with other settings "
                             f"({_difference(saved, canonical)}); delete it to start afresh")
        log(f"{path.name}: resuming from {checkpoint}")
    else:
        artifacts.write_json(request_file, canonical)
        log(f"{path.name}: training ({request['settings'].get('method')})")
    try:
        model, result, info = train_fn(checkpoint)
    except ValueError as err:
        raise ValueError(f"{path.name}: {err}") from None
    block = distill.training_metadata(info, config, result, teacher_meta)
    block["request"] = canonical
    block["history"] = result.history
    distill.export(model, path, arch, provenance, block, frame_length)
    artifacts.write_json(path.with_suffix(".training.json"), block)
    from . import figures
    figures.training_curves(result.history, path.with_suffix(".training.png"), title=path.stem)
    checkpoint.unlink(missing_ok=True)
    request_file.unlink(missing_ok=True)
    log(f"wrote {path}: best epoch {result.best_epoch} of {result.epochs_run}, val accuracy "
        f"{100 * result.best_val_acc:.1f}%, {result.seconds:.0f} s")
    return round(result.seconds, 1)


def _request(loss_info, config, teacher_sha256, selection=None):
    """What a model is made from: loss settings, TrainConfig, teacher and, when not the
    validation loss, the selection criterion (compared on reuse)."""
    settings = {k: v for k, v in loss_info.items() if k != "layer_map"}
    request = {"settings": settings, "config": dataclasses.asdict(config), "teacher_sha256": teacher_sha256}
    if selection is not None:
        request["selection"] = selection.describe()
    return request


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


# --------------------------------------------------------------------------------------
# settings: checks, parsing, the provenance command line


def _students(methods):
    if isinstance(methods, str):
        methods = _items(methods)
    methods = [str(m).strip() for m in methods if str(m).strip()]
    if not methods:
        raise ValueError("--students: give at least one of " + ",".join(distill.STUDENT_METHODS))
    unknown = [m for m in methods if m not in distill.STUDENT_METHODS]
    if unknown:
        raise ValueError(f"--students: unknown method {unknown[0]!r}; expected from "
                         f"{','.join(distill.STUDENT_METHODS)}")
    return tuple(dict.fromkeys(methods))


def _check_numbers(s):
    checks = [("--pgd-steps", s.pgd_steps >= 1, "an integer >= 1"),
              ("--eval-steps", s.eval_steps >= 1, "an integer >= 1"),
              ("--temperature", s.temperature > 0, "> 0"),
              ("--alpha", 0 <= s.alpha <= 1, "in [0, 1]"),
              ("--attention-weight", s.attention_weight >= 0, ">= 0"),
              ("--eval-frames", s.eval_frames >= 0, ">= 0 (0: all)"),
              ("--teacher-epochs", s.teacher_epochs >= 1, "an integer >= 1"),
              ("--epochs", s.epochs >= 1, "an integer >= 1")]
    for option, ok, requirement in checks:
        if not ok:
            raise ValueError(f"{option} must be {requirement}, got {getattr(s, option[2:].replace('-', '_'))}")


def _items(text):
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def _floats(values, option):
    """Finite floats from a comma-separated text (as on the command line) or a sequence."""
    text = values if isinstance(values, str) else ",".join(str(v) for v in values)
    try:
        numbers = tuple(float(item) for item in _items(text))
    except ValueError:
        raise ValueError(f"{option}: {text!r} is not a comma-separated list of numbers") from None
    if any(v != v or v in (float("inf"), float("-inf")) for v in numbers):
        raise ValueError(f"{option}: budgets must be finite, got {text!r}")
    return numbers


def _number(value, option):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{option}: {value!r} is not a number") from None


def _convert(text, kind, option):
    """An option word as the field's type: int, float, str, Optional[float]; tuples (students,
    budgets) stay comma-separated text, parsed by DistillSettings."""
    if getattr(kind, "__origin__", None) is not None:   # Optional[float]
        kind = next(k for k in kind.__args__ if k is not type(None))
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"{option}: invalid {kind.__name__} value: {text!r}") from None
    return text


def _command_line(data_dir, out_dir, s, teacher, transfer_models):
    """The `shapft distill` command of this study, every option spelled out (provenance)."""
    return artifacts.command_line(
        "distill", ("--data", data_dir), ("--out", out_dir), ("--teacher", teacher or None),
        ("--students", ",".join(s.students)), ("--epochs", s.epochs),
        ("--teacher-epochs", s.teacher_epochs), ("--batch-size", s.batch_size), ("--lr", s.lr),
        ("--patience", s.patience), ("--pgd-eps", f"{s.training_eps:.6g}"),
        ("--pgd-steps", s.pgd_steps), ("--temperature", s.temperature), ("--alpha", s.alpha),
        ("--attention-weight", s.attention_weight), ("--attention-heads", s.attention_heads),
        ("--attention-distance", s.attention_distance),
        ("--budgets", ",".join(budget.psr_text(b) for b in s.budgets)),
        ("--eval-steps", s.eval_steps), ("--eval-frames", s.eval_frames),
        ("--transfer-models", ",".join(transfer_models) or None), ("--seed", s.seed),
        ("--precision", None if s.precision == "fp32" else s.precision),
        ("--select", None if s.select == "loss" else s.select))   # as reproduce: not at the default
