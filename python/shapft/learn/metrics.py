"""Classification accuracy of a model, overall, per SNR and per class, on clean frames
and under attacks. Every result is a JSON-serialisable dict in one format, the accuracy
report (docs/formats.md), whether it comes from arrays of predictions or from the
classifier sink's running counts. Torch is imported only where a model runs."""
import math

import numpy as np

from ..core.radioml import CLASSES

HIGH_SNR_DB = 10.0   # "high SNR" accuracy counts frames at or above this SNR


def predict_logits(module, x, batch_size=1024, precision="fp32"):
    """Logits float32 [N, C] (numpy) of `module` (eval mode, no gradients) for x [N, 2, L],
    the forward passes in `precision` (models.precision) on the module's device."""
    import torch
    from ..models import device as model_device
    from ..models import precision as model_precision
    device = model_device.of(module)
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    was_training = getattr(module, "training", False)
    module.eval()
    try:
        with torch.no_grad(), model_precision.autocast(precision, device.type):
            chunks = [module(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    finally:
        module.train(was_training)
    if not chunks:
        return np.zeros((0, len(CLASSES)), dtype=np.float32)
    return torch.cat(chunks).numpy()


def frame_batches(frames, batch_size, description=None):
    """(index, x) for each run of batch_size consecutive frames of `frames`, a recording
    (core.recording: a Recording, or a FrameFile read a batch at a time): index the
    frames' indices, x their model input float32 [n, 2, L]. A tqdm bar named
    `description` follows them when given."""
    starts = range(0, len(frames), batch_size)
    if description:
        from tqdm import tqdm
        starts = tqdm(starts, desc=description, unit="batch", dynamic_ncols=True)
    for start in starts:
        index = np.arange(start, min(start + batch_size, len(frames)))
        yield index, frames.batch(index)


def predict_classes(module, frames, batch_size=1024, precision="fp32"):
    """The classes int64 [N] `module` gives the frames of a recording (see frame_batches),
    read and classified batch_size at a time (the batches of predict_logits)."""
    classes = [predict_logits(module, x, batch_size, precision).argmax(axis=1)
               for _, x in frame_batches(frames, batch_size)]
    return np.concatenate(classes) if classes else np.zeros(0, dtype=np.int64)


def model_accuracy(module, x, labels, precision="fp32"):
    """Fraction of frames x [N, 2, L] that `module` classifies as `labels`."""
    return accuracy_report(labels, predict_logits(module, x, precision=precision).argmax(axis=1))["accuracy"]


def accuracy_report(labels, predictions, snr_db=None, classes=CLASSES):
    """Accuracy overall, per SNR ({"-20": acc, ...}, ascending; frames without an SNR
    count only overall), at SNR >= 10 dB (None without such frames), and the confusion
    matrix counts[true][predicted]."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    if labels.shape != predictions.shape or labels.ndim != 1:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} must be equal 1-D shapes")
    correct = labels == predictions
    n = len(classes)
    confusion = np.bincount(labels * n + predictions, minlength=n * n).reshape(n, n)
    by_snr = {}
    if snr_db is not None:
        snr_db = np.asarray(snr_db, dtype=np.float64)
        if snr_db.shape != labels.shape:
            raise ValueError(f"snr_db {snr_db.shape} must match labels {labels.shape}")
        for snr in np.unique(snr_db[np.isfinite(snr_db)]):
            at_snr = snr_db == snr
            by_snr[float(snr)] = (int(correct[at_snr].sum()), int(at_snr.sum()))
    return report_from_counts(int(correct.sum()), len(labels), by_snr, confusion, classes)


def report_from_counts(correct, frames, by_snr, confusion, classes=CLASSES):
    """The accuracy report from counts: `correct` of `frames` overall, by_snr {snr:
    (correct, frames)}, confusion counts[true][predicted]."""
    report = {"frames": int(frames), "accuracy": correct / frames if frames else None,
              "per_snr": {}, "frames_per_snr": {}, "high_snr_accuracy": None,
              "classes": list(classes), "confusion": np.asarray(confusion).tolist()}
    high_correct = high_frames = 0
    for snr in sorted(by_snr):
        c, k = by_snr[snr]
        report["per_snr"][f"{snr:g}"] = c / k if k else None
        report["frames_per_snr"][f"{snr:g}"] = int(k)
        if snr >= HIGH_SNR_DB:
            high_correct, high_frames = high_correct + c, high_frames + k
    if high_frames:
        report["high_snr_accuracy"] = high_correct / high_frames
    return report


def evaluate(model, recording, attacks=(), labels="truth", attack_options=None, seed=0,
             batch_size=256, progress=False, precision="fp32"):
    """Accuracy of `model` (a module returning logits) on `recording`, clean and under each
    (method, eps) in `attacks`. The recording (a Recording or a FrameFile) is read a
    batch at a time, once for the clean frames and once per attack, each batch attacked
    and classified as it comes: memory holds a batch of frames, and a class per frame.

    labels: what untargeted attacks push away from, "truth" (the annotations) or
    "predicted" (the model's clean predictions). attack_options go to attacks.make
    (steps, alpha, ...). Each attack entry carries its budget as eps and PSR dB, and the
    measured perturbation-to-signal power in dB.
    """
    from .. import attacks as attack_methods
    from ..models import device as model_device
    from ..models import precision as model_precision
    if labels not in ("truth", "predicted"):
        raise ValueError(f"labels must be 'truth' or 'predicted', got {labels!r}")
    clean_predictions = predict_classes(model, recording, precision=precision)
    result = {"frames": len(recording), "frame_length": recording.frame_length,
              "precision": model_precision.resolve(precision, model_device.of(model).type),
              "clean": accuracy_report(recording.labels, clean_predictions, recording.snr_db),
              "attacks": []}
    attack_labels = recording.labels if labels == "truth" else clean_predictions
    for method, eps in attacks:
        attack = attack_methods.make(method, model, eps=eps, seed=seed, precision=precision,
                                     frame_length=recording.frame_length, **(attack_options or {}))
        predictions, power = np.empty(len(recording), dtype=np.int64), PowerRatio()
        for index, x in frame_batches(recording, batch_size, progress and attack.describe()):
            x_adv = attack_methods.attack_array(attack, x, attack_labels[index], batch_size)
            predictions[index] = predict_logits(model, x_adv, precision=precision).argmax(axis=1)
            power.add(x, x_adv)
        entry = {**attack.info(), "labels": labels, "description": attack.describe(),
                 "measured_psr_db": power.db()}
        entry.update(accuracy_report(recording.labels, predictions, recording.snr_db))
        result["attacks"].append(entry)
    return result


def under_attacks(model, x, attack_list, attack_labels, seed=0, batch_size=256, progress=False,
                  precision="fp32", fields=None):
    """Frames x [N, 2, L] under each (method, eps, options) of attack_list, crafted against
    `model` itself (attacks.make; options such as steps go to it) away from attack_labels
    [N] (towards them for a targeted attack), in batches of batch_size, in `precision`.

    Yields (entry, x_adv, predictions) per attack: entry describes the attack (its
    info(), then `fields`, its description and the measured PSR in dB) for the caller to
    add an accuracy report to; predictions are the model's classes of x_adv."""
    from .. import attacks
    for method, eps, options in attack_list:
        attack = attacks.make(method, model, eps=eps, seed=seed, precision=precision,
                              frame_length=x.shape[-1], **options)
        x_adv = attacks.attack_array(attack, x, attack_labels, batch_size, progress)
        predictions = predict_logits(model, x_adv, precision=precision).argmax(axis=1)
        entry = {**attack.info(), **(fields or {}), "description": attack.describe(),
                 "measured_psr_db": measured_psr_db(x, x_adv)}
        yield entry, x_adv, predictions


class PowerRatio:
    """measured_psr_db of frames that come a batch at a time: add(x, x_adv) per batch,
    then db()."""

    def __init__(self):
        self.perturbation = self.signal = 0.0   # sums of squares, float64

    def add(self, x, x_adv):
        x = np.asarray(x, dtype=np.float64)
        self.perturbation += float(np.sum((np.asarray(x_adv, dtype=np.float64) - x) ** 2))
        self.signal += float(np.sum(x ** 2))

    def db(self):
        if self.perturbation == 0:
            return None
        return 10.0 * math.log10(self.perturbation / self.signal)


def measured_psr_db(x, x_adv):
    """Mean perturbation power over mean signal power, in dB (None when x_adv == x)."""
    ratio = PowerRatio()
    ratio.add(x, x_adv)
    return ratio.db()

