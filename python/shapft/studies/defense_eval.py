"""Accuracy of the original model and of every defence on adv-data, per attack level.

Three numbers per model: clean (adv-data unattacked), attacked (FGSM crafted against
the ORIGINAL model, the paper's setting: the defender's model sees transferred
examples) and adaptive (the same FGSM crafted against the defended pipeline itself,
gradient through the deletion for SHAP-FT and random deletion). Deletion models see
their frames with the mask's positions removed, in every case.
"""
import json

import numpy as np

from ..core import artifacts, budget, model_file, masks, recording
from .. import attacks
from ..learn import metrics
from ..models import masked

METHODS = ("direct", "at_fgsm", "shapft", "random")


def score_model(path, clean, attacked, eps, seed, device="cpu"):
    """clean / attacked / adaptive accuracy of one model file on adv-data frames, on `device`."""
    loaded = model_file.load(path).to(device)
    classifier, _ = masked.full_frame_classifier(loaded)   # deletion + model, full frames in
    adaptive = attacks.attack_array(attacks.FGSM(classifier, eps=eps, seed=seed),
                                    clean.model_input(), clean.labels)
    return {"clean": metrics.model_accuracy(classifier, clean.model_input(), clean.labels),
            "attacked": metrics.model_accuracy(classifier, attacked.model_input(), attacked.labels),
            "adaptive": metrics.model_accuracy(classifier, adaptive, clean.labels),
            "m": loaded.mask["m"] if loaded.mask else 0}


def evaluate_all(pipeline, path, progress=True, log=print):
    """Fill `path` (JSON) with every model's scores, eps by eps; entries already in the
    file are kept, so an interrupted evaluation resumes."""
    results = json.loads(path.read_text()) if path.exists() else {}
    preset = pipeline.preset
    # invalid frames left out of the clean set here, as the attack left them out of its output
    clean, _ = recording.check_frames(recording.read(pipeline.tiny / "adv-data.sigmf-meta"))
    original = model_file.load(pipeline.original).to(pipeline.device)
    scored = {}   # (model file sha256, eps, seed) -> scores: byte-identical models are scored once
    for eps in preset.eps_levels:
        key = f"{eps:g}"
        entry = results.setdefault(key, {"eps": eps, "psr_db": budget.eps_to_psr_db(eps)})
        attacked = recording.read(pipeline.attacked(eps, "adv-data"))
        mask = masks.load(pipeline.mask(eps))
        entry.update(m=mask["m"], frame_rule=mask.get("frame_rule"), frames_used=mask.get("frames_used"))
        if "original" not in entry:
            entry["original"] = {
                "clean": metrics.model_accuracy(original.module, clean.model_input(), clean.labels),
                "attacked": metrics.model_accuracy(original.module, attacked.model_input(), attacked.labels),
                "attacked_per_snr": metrics.accuracy_report(
                    attacked.labels, metrics.predict_logits(original.module, attacked.model_input()).argmax(1),
                    attacked.snr_db)["per_snr"]}
        skipped = pipeline.deletion_skipped(eps)
        for method in METHODS:
            seeds = preset.at_fgsm_seeds if method == "at_fgsm" else preset.seeds
            scores = entry.setdefault(method, {})
            if skipped and method in ("shapft", "random"):
                entry.setdefault("skipped", {})[method] = skipped
                continue
            for seed in seeds:
                if str(seed) in scores:
                    continue
                model_path = pipeline.finetuned(method, seed, None if method == "direct" else eps)
                memo_key = (artifacts.sha256_file(model_path), eps, seed)
                if memo_key not in scored:
                    scored[memo_key] = score_model(model_path, clean, attacked, eps, seed, pipeline.device)
                scores[str(seed)] = scored[memo_key]
                artifacts.write_json(path, results)
                log(f"[evaluate] {budget.describe(eps)} {method} seed {seed}: "
                    + ", ".join(f"{k} {100 * v:.1f}%" for k, v in scores[str(seed)].items() if k != "m"))
        artifacts.write_json(path, results)
    return results


def summarise(scores):
    """mean and standard deviation over seeds of each score of one method at one eps
    (None, n = 0, for a method that has no model there)."""
    out = {}
    for metric in ("clean", "attacked", "adaptive"):
        values = np.array([s[metric] for s in scores.values()])
        if len(values) == 0:
            out[metric] = {"mean": None, "std": None, "n": 0, "values": []}
            continue
        out[metric] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                       "n": int(len(values)), "values": values.tolist()}
    return out
