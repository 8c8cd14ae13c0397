"""The SHAP-AFT ablation (`shapft reproduce --aft`, docs/shapaft.md): which part of
SHAP-AFT (arXiv 2509.15766: detect, delete SHAP's negative points, adversarially
fine-tune) carries its gain.

On a reproduce run's original CNN-LSTM, tiny-train and masks, with the same recipe,
budget and seeds, it fine-tunes

    at_fgsm          adversarial fine-tuning alone (AFT)
    random+at_fgsm   AFT on frames with m random positions deleted
    shapft+at_fgsm   AFT on frames with SHAP's m negative points deleted (SHAP-AFT)

and scores them, with the original and SHAP-FT, on adv-data's clean frames: clean
accuracy, and accuracy under FGSM, BIM, PGD and C&W-L2 at the eps's PSR, transferred
from the original (the paper's setting) and adaptive (crafted against the model
itself, through its deletion). Paired comparisons over seeds answer whether SHAP's
positions beat random ones and whether deletion adds anything to AFT.
"""
import io
import json
import shutil
from pathlib import Path

import numpy as np

from ..core import artifacts, budget, masks, recording, splits

SETTINGS = {
    "small": dict(eps=(0.075, 0.1, 0.15), seeds=(0, 1, 2), frames=1100, cw_frames=220, bim_steps=10,
                  pgd_steps=20, cw_search_steps=5, cw_iterations=10),
    "micro": dict(eps=(0.1,), seeds=(0,), frames=44, cw_frames=11, bim_steps=2, pgd_steps=2,
                  cw_search_steps=1, cw_iterations=2),
}
VARIANTS = ("original", "shapft", "at_fgsm", "random+at_fgsm", "shapft+at_fgsm")
NEW_VARIANTS = ("at_fgsm", "random+at_fgsm", "shapft+at_fgsm")   # fine-tuned by this stage
ATTACKS = ("fgsm", "bim", "pgd", "cw-l2")
COMPARISONS = (("shapft+at_fgsm", "random+at_fgsm", "SHAP's positions vs random ones, both with AFT"),
               ("shapft+at_fgsm", "at_fgsm", "SHAP deletion added to AFT vs AFT alone"),
               ("random+at_fgsm", "at_fgsm", "random deletion added to AFT vs AFT alone"),
               ("at_fgsm", "shapft", "AFT alone vs SHAP-FT"))


def file_name(variant):
    return variant.replace("+", "_")


def model_path(pipeline, variant, seed, eps):
    if variant == "original":
        return pipeline.original
    folder = pipeline.finetuned("x", seed, eps).parent
    return folder / f"{file_name(variant)}_seed{seed}.pt" if "+" in variant else pipeline.finetuned(variant, seed, eps)


def finetune_jobs(pipeline, settings):
    """(path, stages.finetune_model keyword arguments) of the fine-tunings not done yet,
    and (path, the at_fgsm file it equals) where the mask deletes nothing (m = 0: deletion
    plus AFT is AFT alone with the same seed, bit for bit, as in the SHAP-FT study)."""
    p = pipeline.preset
    tiny_train = pipeline.tiny / "tiny-train.sigmf-meta"
    jobs, copies = [], []
    for seed in settings["seeds"]:
        for eps in settings["eps"]:
            m = masks.load(pipeline.mask(eps))["m"]
            for variant in NEW_VARIANTS:
                path = model_path(pipeline, variant, seed, eps)
                if path.exists() or (variant != "at_fgsm" and pipeline.deletion_skipped(eps)):
                    continue
                if m == 0 and variant != "at_fgsm":
                    copies.append((path, model_path(pipeline, "at_fgsm", seed, eps)))
                    continue
                method = variant.split("+")[0]
                mask = pipeline.mask(eps) if method in ("shapft", "random") else None
                jobs.append((path, dict(model=pipeline.original, data=tiny_train, out=path,
                                        method="direct" if method == "at_fgsm" else method,
                                        adversarial="fgsm", mask=mask, eps=eps,
                                        epochs=p.finetune_epochs, patience=p.finetune_patience,
                                        seed=seed, force=True, progress=False, precision=pipeline.precision,
                                        device=pipeline.device)))
    return jobs, copies


def command_line(kwargs, pipeline):
    return artifacts.command_line(
        "finetune", ("--model", kwargs["model"]), ("--data", kwargs["data"]), ("--epochs", kwargs["epochs"]),
        ("--patience", kwargs["patience"]), ("--method", kwargs["method"]), ("--mask", kwargs["mask"]),
        ("--adversarial", kwargs["adversarial"]), ("--eps", kwargs["eps"]), ("--seed", kwargs["seed"]),
        ("--out", kwargs["out"]), ("--force", True),
        ("--precision", None if kwargs["precision"] == "fp32" else kwargs["precision"]), pipeline.device_option())


def make_attack(name, model, eps, settings, seed, precision):
    """The ablation's attack `name` at eps's budget: L-infinity eps for FGSM, BIM and
    PGD; for C&W-L2 the L2 budget of the same PSR."""
    from .. import attacks
    from ..attacks import library
    if name == "cw-l2":
        return library.make("cw-l2", model, psr_db=budget.eps_to_psr_db(eps), norm="l2", seed=seed,
                            precision=precision, binary_search_steps=settings["cw_search_steps"],
                            max_iter=settings["cw_iterations"])
    options = {"steps": settings[f"{name}_steps"]} if name in ("bim", "pgd") else {}
    return attacks.make(name, model, eps=eps, seed=seed, precision=precision, **options)


def frames(pipeline, settings, seed):
    """adv-data's valid clean frames drawn for the scores: (x, labels), and the first
    cw_frames of them for C&W."""
    clean, _ = recording.check_frames(recording.read(pipeline.tiny / "adv-data.sigmf-meta"))
    index = splits.random_subset(len(clean), settings["frames"], seed, 0xAF7)
    return clean.model_input()[index], clean.labels[index]


def transfer_frames(pipeline, settings, eps, x, labels, out):
    """Each attack's frames crafted against the original at eps (cached in `out`, .npz)."""
    from .. import attacks
    from ..core import model_file
    if out.exists():
        with np.load(out) as saved:
            return {name: saved[name] for name in saved.files}
    original = model_file.load(pipeline.original).to(pipeline.device).module
    crafted = {}
    for name in ATTACKS:
        n = settings["cw_frames"] if name == "cw-l2" else len(x)
        attack = make_attack(name, original, eps, settings, pipeline.seed, pipeline.precision)
        crafted[name] = attacks.attack_array(attack, x[:n], labels[:n])
    buffer = io.BytesIO()
    np.savez(buffer, **crafted)
    artifacts.write_bytes(out, buffer.getvalue())
    return crafted


def score(path, x, labels, transferred, eps, settings, seed, precision, device):
    """Accuracy of the model file `path` (through its deletion, on full frames) on
    `device`: clean, and under each attack transferred and adaptive."""
    from .. import attacks
    from ..core import model_file
    from ..learn import metrics
    from ..models import masked
    loaded = model_file.load(path).to(device)
    classifier, _ = masked.full_frame_classifier(loaded)

    def accuracy(frames, truth):
        return metrics.model_accuracy(classifier, frames, truth, precision=precision)

    result = {"clean": accuracy(x, labels), "transfer": {}, "adaptive": {},
              "m": loaded.mask["m"] if loaded.mask else 0}
    for name in ATTACKS:
        n = settings["cw_frames"] if name == "cw-l2" else len(x)
        result["transfer"][name] = accuracy(transferred[name], labels[:n])
        attack = make_attack(name, classifier, eps, settings, seed, precision)
        result["adaptive"][name] = accuracy(attacks.attack_array(attack, x[:n], labels[:n]), labels[:n])
    return result


def _score_job(path, x, labels, transferred, eps, settings, seed, precision, device, out, stop):
    """One model's scores in a worker process, written to `out` (studies.jobs)."""
    if stop.is_set():
        raise KeyboardInterrupt
    artifacts.write_json(out, {"model": str(path), "sha256": artifacts.sha256_file(path),
                               **score(path, x, labels, transferred, eps, settings, seed, precision, device)})


def evaluate(pipeline, settings, out, workers=1, progress=True, log=print):
    """Score every variant and seed at every eps, resumable (one JSON per model in
    OUT/scores); returns {eps: {variant: {seed: scores}}} and writes OUT/scores.json."""
    import multiprocessing
    from .jobs import run as run_in_workers
    from .reproduce import _set_torch_threads
    out = Path(out)
    x, labels = frames(pipeline, settings, pipeline.seed)
    jobs, where = [], {}
    for eps in settings["eps"]:
        transferred = transfer_frames(pipeline, settings, eps, x, labels, out / "transfer" / f"eps{eps:g}.npz")
        for variant in VARIANTS:
            skipped = variant in ("shapft", "random+at_fgsm", "shapft+at_fgsm") and pipeline.deletion_skipped(eps)
            if skipped:
                log(f"[aft] {variant} at eps {eps:g}: {skipped}")
                continue
            for seed in ((pipeline.seed,) if variant == "original" else settings["seeds"]):
                path = model_path(pipeline, variant, seed, eps)
                target = out / "scores" / f"eps{eps:g}" / f"{file_name(variant)}_seed{seed}.json"
                where[(eps, variant, seed)] = target
                if not target.exists():
                    jobs.append((path, x, labels, transferred, eps, settings, pipeline.seed, pipeline.precision,
                                 pipeline.device, target))
    log(f"[aft] {len(jobs)} of {len(where)} models to score, {workers} at a time")
    if jobs:
        run_in_workers(_score_job, jobs, workers, context=multiprocessing.get_context("spawn"),
                       initializer=_set_torch_threads, initargs=(1 if workers > 1 else 0,),
                       progress=progress, desc="SHAP-AFT scores", unit="model")
    results = {}
    for (eps, variant, seed), target in where.items():
        results.setdefault(f"{eps:g}", {}).setdefault(variant, {})[str(seed)] = json.loads(target.read_text())
    artifacts.write_json(out / "scores.json", {"settings": settings, "frames": int(len(x)), "results": results})
    return results


def _spread(values):
    values = np.asarray(values, dtype=float)
    n = len(values)
    std = float(values.std(ddof=1)) if n > 1 else 0.0
    return {"mean": float(values.mean()), "std": std, "n": n, "values": values.tolist()}


def paired(a, b):
    """Paired comparison over seeds of two lists of accuracies: the mean difference a - b,
    its 95 % t interval, and how many seeds a beats b."""
    from scipy import stats
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(d)
    half = float(stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return {"mean": float(d.mean()), "ci95": [float(d.mean() - half), float(d.mean() + half)],
            "wins": int(np.sum(d > 0)), "n": n, "differences": d.tolist()}


def summarise(results, settings):
    """Mean and spread of each variant's scores, and the paired comparisons, per eps."""
    summary = {}
    for eps, by_variant in results.items():
        rows = {}
        for variant, by_seed in by_variant.items():
            seeds = list(by_seed.values())
            row = {"clean": _spread([s["clean"] for s in seeds]), "m": seeds[0]["m"]}
            for mode in ("transfer", "adaptive"):
                row[mode] = {name: _spread([s[mode][name] for s in seeds]) for name in ATTACKS}
            rows[variant] = row
        comparisons = []
        for a, b, meaning in COMPARISONS:
            if a not in by_variant or b not in by_variant:
                continue
            common = sorted(set(by_variant[a]) & set(by_variant[b]))
            entry = {"a": a, "b": b, "meaning": meaning, "seeds": common, "clean": paired(
                [by_variant[a][s]["clean"] for s in common], [by_variant[b][s]["clean"] for s in common])}
            for mode in ("transfer", "adaptive"):
                entry[mode] = {name: paired([by_variant[a][s][mode][name] for s in common],
                                            [by_variant[b][s][mode][name] for s in common]) for name in ATTACKS}
            comparisons.append(entry)
        summary[eps] = {"eps": float(eps), "psr_db": budget.eps_to_psr_db(float(eps)), "rows": rows,
                        "comparisons": comparisons}
    return summary


NAMES = {"original": "original", "shapft": "SHAP-FT", "at_fgsm": "AFT (AT-FGSM)",
         "random+at_fgsm": "random deletion + AFT", "shapft+at_fgsm": "SHAP-AFT (SHAP deletion + AFT)"}


def _cell(spread):
    text = f"{100 * spread['mean']:.1f}"
    return text + (f" ± {100 * spread['std']:.1f}" if spread["n"] > 1 else "")


def _difference(entry):
    low, high = entry["ci95"]
    interval = f" [{100 * low:+.1f}, {100 * high:+.1f}]" if entry["n"] > 1 else ""
    return f"{100 * entry['mean']:+.1f}{interval} ({entry['wins']}/{entry['n']})"


def markdown(summary, frames, settings):
    """The ablation tables and paired comparisons (docs/shapaft.md's format)."""
    lines = [f"{frames} adv-data frames (C&W-L2: the first {settings['cw_frames']}); accuracy %, mean ± standard "
             f"deviation over seeds {list(settings['seeds'])}. transfer: crafted against the original; adaptive: "
             f"against the model itself, through its deletion. BIM {settings['bim_steps']} steps, PGD "
             f"{settings['pgd_steps']} steps from a random start, C&W-L2 {settings['cw_search_steps']} x "
             f"{settings['cw_iterations']} iterations at the L2 budget of the same PSR.", ""]
    for eps, entry in summary.items():
        lines += [f"### eps {float(eps):g} (PSR {entry['psr_db']:.1f} dB)", "",
                  "| model | m | clean | " + " | ".join(f"{a} transfer" for a in ATTACKS) + " | "
                  + " | ".join(f"{a} adaptive" for a in ATTACKS) + " |",
                  "|---|---|---|" + "---|" * (2 * len(ATTACKS))]
        for variant in VARIANTS:
            row = entry["rows"].get(variant)
            if row is None:
                continue
            cells = [_cell(row["transfer"][a]) for a in ATTACKS] + [_cell(row["adaptive"][a]) for a in ATTACKS]
            lines.append(f"| {NAMES[variant]} | {row['m']} | {_cell(row['clean'])} | " + " | ".join(cells) + " |")
        lines += ["", "Paired differences over seeds, points: mean [95 % t interval] (seeds where the first "
                  "is higher / seeds).", "",
                  "| comparison | clean | " + " | ".join(f"{a} transfer" for a in ATTACKS) + " | "
                  + " | ".join(f"{a} adaptive" for a in ATTACKS) + " |",
                  "|---|---|" + "---|" * (2 * len(ATTACKS))]
        for c in entry["comparisons"]:
            cells = [_difference(c["transfer"][a]) for a in ATTACKS] + [_difference(c["adaptive"][a]) for a in ATTACKS]
            lines.append(f"| {c['meaning']} | {_difference(c['clean'])} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def run(pipeline, settings, log=print):
    """The stage: fine-tune what is missing (pipeline.workers at a time), score, write
    OUT/aft/summary.json and aft.md."""
    out = pipeline.out / "aft"
    artifacts.writable_dir(out)
    jobs, copies = finetune_jobs(pipeline, settings)
    log(f"[aft] {len(jobs)} fine-tuning runs to do, {pipeline.workers} at a time")
    for path, _ in jobs:
        path.parent.mkdir(parents=True, exist_ok=True)
    pipeline.call_parallel([(command_line(kwargs, pipeline), kwargs) for _, kwargs in jobs])
    for path, same in copies:
        shutil.copyfile(same, path)
        pipeline._note(f"# m = 0: {path} is a copy of {same}")
    results = evaluate(pipeline, settings, out, workers=pipeline.workers, progress=pipeline.progress, log=log)
    summary = summarise(results, settings)
    frames_used = json.loads((out / "scores.json").read_text())["frames"]
    artifacts.write_json(out / "summary.json", {"settings": settings, "frames": frames_used, "eps": summary})
    (out / "aft.md").write_text(markdown(summary, frames_used, settings))
    return summary
