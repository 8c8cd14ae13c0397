"""`shapft detector` and `shapft detection`: train an attack detector for a classifier,
and measure it against non-adaptive and adaptive attacks (docs/shapaft.md).

The measurement pairs every test frame with its attacked copy: clean scores are the
negatives, attacked scores the positives. Per PSR and attack it reports ROC AUC and
the true-positive rate at 5 % false alarms, over frames with SNR >= MIN_SNR_DB (the
headline) and per SNR; with the classifier's accuracy and the fraction of frames the
attack both misclassifies and slips past the detector (the guarded receiver's misses).
"""
import dataclasses
from pathlib import Path

import numpy as np

from ..core import artifacts, detector_file
from ..core.splits import random_subset
from .stages import load_model, read_checked_splits, run_device, writable_output

MIN_SNR_DB = 0.0
PSRS = (-30.0, -25.0, -20.0, -15.0)
EVALUATION_ATTACKS = ("fgsm", "pgd", "uap", "adaptive")
EVALUATION_PGD_STEPS = 20
ADAPTIVE_WEIGHTS = (1.0, 10.0, 100.0)   # the detector-aware PGD's weights (and plain PGD); each frame keeps its best
UAP_EPOCHS = 2


def _subset(rec, frames, seed):
    """`frames` frames of rec drawn at random (all when frames is 0 or more than it has)."""
    return rec.subset(random_subset(len(rec), frames, seed, 0x5B5))


@dataclasses.dataclass
class TrainedDetector:
    path: Path
    result: object        # learn.training.TrainResult
    validation: dict      # learn.detection.roc on the val split's clean and attacked frames
    checks: dict          # split: FrameCheck


def train_detector(model, data, out, features="statistics", frames=0, seed=0, epochs=30, patience=5,
                   force=False, progress=True, invalid_frames="skip", precision="fp32", log=print, device="auto"):
    """Train a detector of `features` for the classifier file `model` on DATA/train
    (each frame clean and attacked), stop early on DATA/val, calibrate its false-alarm
    rate on DATA/val's clean frames and export it to `out`. frames: at most this many
    frames of each split (0: all). Resumable (OUT.ckpt). Runs on `device`."""
    from ..learn import detection
    from ..models import detector as detector_models
    from ..models import masked

    if features not in detector_models.FEATURES:
        raise ValueError(f"--features {features!r} is not one of {', '.join(detector_models.FEATURES)}")
    device = run_device(device)
    out = writable_output(out, "--out", force)
    loaded = load_model(model, "--model").to(device)
    classifier, frame_length = masked.full_frame_classifier(loaded)
    splits, digests, checks = read_checked_splits(data, ("train", "val"), invalid_frames=invalid_frames)
    if splits["train"].frame_length != frame_length:
        raise ValueError(f"--data {data}: frames of {splits['train'].frame_length} samples, but {loaded.path} "
                         f"classifies frames of {frame_length}")
    sets = {}
    for name in ("train", "val"):
        rec = _subset(splits[name], frames, seed)
        x = rec.model_input()
        attacked, _, _ = detection.attacked_copies(classifier, x, rec.labels, seed=seed + (name == "val"),
                                                   precision=precision, progress=progress)
        sets[name] = detection.labelled(x, attacked)
    log(f"detector ({features}) for {loaded.path.name}: {len(sets['train'][0])} training frames, "
        f"{len(sets['val'][0])} validation frames (half of each attacked)")
    checkpoint = out.with_name(out.name + ".ckpt")
    detector, result = detection.train(loaded, sets["train"], sets["val"], features, seed, epochs, patience,
                                       precision, progress, checkpoint)
    scorer = detector_models.Scorer(detector).eval()
    x_val, y_val = sets["val"]
    val_scores = detection.scores(scorer, x_val, precision=precision)
    validation = detection.roc(val_scores[y_val == 0], val_scores[y_val == 1])
    command = artifacts.command_line(
        "detector", ("--model", model), ("--data", data), ("--out", out), ("--features", features),
        ("--frames", frames or None), ("--epochs", epochs), ("--patience", patience), ("--seed", seed))
    training_info = {**result.summary(), "attacks": list(detection.TRAIN_ATTACKS),
                     "psr_db": list(detection.TRAIN_PSRS), "pgd_steps": detection.PGD_STEPS,
                     "attack_labels": "truth", "validation": validation}
    provenance = {"command": command, "seed": seed, "data": digests,
                  "frames_invalid": {name: check.counts() for name, check in checks.items()}}
    metadata = detector_file.build_metadata(detector, frame_length, loaded,
                                            detector_file.calibration(val_scores[y_val == 0]),
                                            features, training_info, provenance)
    detector_file.save(scorer, out, metadata)
    checkpoint.unlink(missing_ok=True)
    return TrainedDetector(out, result, validation, checks)


def load_detector(path, option="--detector"):
    path = artifacts.existing_file(path, option)
    try:
        return detector_file.load(path)
    except ValueError as err:
        raise ValueError(f"{option}: {err}") from None


def evaluate_detector(detector, model, data, out, psrs=PSRS, attack_names=EVALUATION_ATTACKS, frames=2200,
                      seed=0, steps=EVALUATION_PGD_STEPS, weights=ADAPTIVE_WEIGHTS, precision="fp32",
                      invalid_frames="skip", progress=True, log=print, device="auto"):
    """Measure the detector file `detector` guarding the classifier file `model` on
    DATA/test (`frames` of them, 0: all) against each attack at each PSR, on `device`;
    write OUT/detection.json, detection.md and the ROC figures. Returns the results dict."""
    from .. import attacks
    from ..attacks import universal
    from ..learn import detection, metrics
    from ..models import masked

    unknown = sorted(set(attack_names) - set(EVALUATION_ATTACKS))
    if unknown:
        raise ValueError(f"--attacks: {', '.join(unknown)} not among {', '.join(EVALUATION_ATTACKS)}")
    device = run_device(device)
    guard = load_detector(detector).to(device)
    loaded = load_model(model, "--model").to(device)
    if guard.protects["sha256"] != loaded.sha256:
        log(f"note: {guard.path.name} was trained for {guard.protects['model']} "
            f"(sha256 {guard.protects['sha256'][:12]}), not {loaded.path.name}")
    out = Path(out)
    artifacts.writable_dir(out)
    classifier, frame_length = masked.full_frame_classifier(loaded)
    names = ("train", "test") if "uap" in attack_names else ("test",)
    splits, digests, checks = read_checked_splits(data, names, invalid_frames=invalid_frames)
    test = _subset(splits["test"], frames, seed)
    x, labels, snr = test.model_input(), test.labels, test.snr_db
    scorer = guard.module
    threshold = guard.threshold_for(detection.FALSE_ALARM_RATE)
    clean_scores = detection.scores(scorer, x, precision=precision)
    clean_predictions = metrics.predict_logits(classifier, x, precision=precision).argmax(1)
    headline = snr >= MIN_SNR_DB
    results = {"detector": guard.path.name, "detector_sha256": guard.sha256, "features": guard.metadata.get("features"),
               "model": loaded.path.name, "model_sha256": loaded.sha256, "frames": int(len(x)),
               "min_snr_db": MIN_SNR_DB, "false_alarm_rate": detection.FALSE_ALARM_RATE,
               "calibrated_threshold": threshold,
               "calibrated_false_alarms": float(np.mean(clean_scores[headline] > threshold)),
               "clean_accuracy": float(np.mean(clean_predictions[headline] == labels[headline])),
               "settings": {"pgd_steps": steps, "adaptive_weights": list(weights), "uap_epochs": UAP_EPOCHS,
                            "seed": seed, "precision": precision},
               "data": {name: digests[name] for name in names}, "rows": []}
    curves = {}
    # per PSR, frames every attack so far failed on: classified correctly (the classifier
    # alone), or classified correctly or flagged at the calibrated threshold (guarded)
    survived = {psr: {"classifier": clean_predictions == labels,
                      "guarded": (clean_predictions == labels) & (clean_scores <= threshold)} for psr in psrs}
    jobs = [(psr, name) for psr in psrs for name in attack_names]
    pgd_frames = {}
    if progress:
        from tqdm import tqdm
        jobs = tqdm(jobs, desc="detection", unit="attack")
    for psr, name in jobs:
        options = dict(psr_db=psr, seed=seed, frame_length=frame_length, precision=precision)
        if name == "fgsm":
            attacked = attacks.attack_array(attacks.make("fgsm", classifier, **options), x, labels)
        elif name == "pgd":
            attacked = attacks.attack_array(attacks.make("pgd", classifier, steps=steps, **options), x, labels)
            pgd_frames[psr] = attacked
        elif name == "uap":
            train = _subset(splits["train"], 4 * len(x), seed)
            perturbation = universal.compute(classifier, train.model_input(), train.labels, psr_db=psr,
                                             epochs=UAP_EPOCHS, seed=seed, precision=precision)
            attacked = universal.apply(x, perturbation)
        else:
            # plain PGD (weight 0) is among the attempts: the adaptive attacker is never weaker
            attacked = _adaptive(classifier, scorer, x, labels, weights, steps, options, pgd_frames.get(psr))
        scores = detection.scores(scorer, attacked, precision=precision)
        predictions = metrics.predict_logits(classifier, attacked, precision=precision).argmax(1)
        missed = (predictions != labels) & (scores <= threshold)
        survived[psr]["classifier"] &= predictions == labels
        survived[psr]["guarded"] &= ~missed
        row = {"psr_db": psr, "attack": name,
               **detection.roc(clean_scores[headline], scores[headline]),
               "accuracy": float(np.mean(predictions[headline] == labels[headline])),
               "misclassified_undetected": float(np.mean(missed[headline])),
               "by_snr": {}}
        for value in np.unique(snr):
            at = snr == value
            row["by_snr"][f"{value:g}"] = {k: v for k, v in detection.roc(clean_scores[at], scores[at]).items()
                                           if k in ("auc", "tpr")}
        results["rows"].append(row)
        curves[(psr, name)] = detection.roc_curve(clean_scores[headline], scores[headline])
    results["robust"] = [{"psr_db": psr, "attacks": list(attack_names),
                          "classifier": float(np.mean(survived[psr]["classifier"][headline])),
                          "guarded": float(np.mean(survived[psr]["guarded"][headline]))} for psr in psrs]
    artifacts.write_json(out / "detection.json", results)
    (out / "detection.md").write_text(table(results))
    _figures(results, curves, out)
    return results


def _adaptive(classifier, scorer, x, labels, weights, steps, options, pgd=None):
    """The detector-aware PGD at each weight (and plain PGD's frames `pgd`, weight 0,
    when given); each frame keeps the attempt that is misclassified with the lowest
    score, else the one with the lowest score."""
    from .. import attacks
    from ..attacks.detector_aware import DetectorAwarePGD
    from ..learn import detection, metrics
    attempts = [] if pgd is None else [pgd]
    attempts += [attacks.attack_array(DetectorAwarePGD(classifier, scorer, weight=weight, steps=steps, **options),
                                      x, labels) for weight in weights]
    best = best_key = None
    for attempt in attempts:
        scores = detection.scores(scorer, attempt, precision=options["precision"])
        wrong = metrics.predict_logits(classifier, attempt, precision=options["precision"]).argmax(1) != labels
        key = np.where(wrong, scores, 1e9 + scores)   # misclassified attempts first, lowest score first
        if best is None:
            best, best_key = attempt.copy(), key
        else:
            better = key < best_key
            best[better] = attempt[better]
            best_key = np.minimum(best_key, key)
    return best


def table(results):
    """detection.md: AUC and TPR at 5 % false alarms per PSR and attack (SNR >= MIN_SNR_DB)."""
    far = int(round(100 * results["false_alarm_rate"]))
    lines = [f"# {results['detector']} guarding {results['model']}", "",
             f"{results['frames']} test frames; rows over the frames with SNR >= {results['min_snr_db']:g} dB. "
             f"Clean accuracy {100 * results['clean_accuracy']:.1f} %; the file's {far} % threshold gives "
             f"{100 * results['calibrated_false_alarms']:.1f} % false alarms on these clean frames.", "",
             f"| PSR (dB) | attack | ROC AUC | TPR at {far} % FA | accuracy % | misclassified and undetected % |",
             "|---|---|---|---|---|---|"]
    for row in results["rows"]:
        lines.append(f"| {row['psr_db']:g} | {row['attack']} | {row['auc']:.3f} | {100 * row['tpr']:.1f} | "
                     f"{100 * row['accuracy']:.1f} | {100 * row['misclassified_undetected']:.1f} |")
    lines += ["", "Robust accuracy, frames that survive every attack above (%): the classifier alone "
              "(classified correctly), and guarded by the detector (classified correctly and not flagged when "
              "clean; classified correctly or flagged under each attack).", "",
              "| PSR (dB) | classifier alone | classifier + detector |", "|---|---|---|"]
    for row in results["robust"]:
        lines.append(f"| {row['psr_db']:g} | {100 * row['classifier']:.1f} | {100 * row['guarded']:.1f} |")
    return "\n".join(lines) + "\n"


def _figures(results, curves, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    psrs = sorted({psr for psr, _ in curves})
    attack_names = list(dict.fromkeys(name for _, name in curves))
    fig, axes = plt.subplots(1, len(psrs), figsize=(4 * len(psrs), 4), squeeze=False, sharey=True)
    for ax, psr in zip(axes[0], psrs):
        for name in attack_names:
            fpr, tpr = curves[(psr, name)]
            auc = next(r["auc"] for r in results["rows"] if r["psr_db"] == psr and r["attack"] == name)
            ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        ax.set(title=f"PSR {psr:g} dB", xlabel="false-alarm rate", xlim=(0, 1), ylim=(0, 1.01))
        ax.legend(loc="lower right", fontsize=8)
    axes[0][0].set_ylabel("true-positive rate")
    fig.suptitle(f"{results['detector']} guarding {results['model']} (SNR >= {results['min_snr_db']:g} dB)")
    fig.tight_layout()
    fig.savefig(out / "detection_roc.png", dpi=120)
    plt.close(fig)
