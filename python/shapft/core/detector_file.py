"""Attack-detector files: TorchScript archives like model files (core.model_file), whose
`forward` takes float32 frames [N, 2, L] and returns one score per frame [N], higher
meaning more likely attacked (docs/formats.md).

The metadata (`shapft.json`) names the classifier the detector protects (file name and
sha256), what the score is, and its calibration on clean frames: the score quantiles
from which a false-alarm rate becomes a threshold (threshold_for).
"""
import dataclasses
from pathlib import Path

import numpy as np

from . import artifacts, model_file

FORMAT = model_file.DETECTOR_FORMAT
KIND = "attack_detector"
SCORE = "logit of the probability that the frame is attacked (higher: more likely attacked)"
QUANTILE_POINTS = 2001   # calibration quantiles: thresholds for false-alarm rates in steps of 0.05 %


@dataclasses.dataclass
class LoadedDetector(model_file.LoadedArchive):
    """A loaded detector file: forward returns scores [N]."""

    @property
    def protects(self):
        """{"model": file name, "sha256": ...} of the classifier the detector was trained for."""
        return dict(self.metadata["protects"])

    def threshold_for(self, false_alarm_rate):
        """The score above which a frame is called attacked so that a fraction
        false_alarm_rate of the clean calibration frames is (0 < rate < 1)."""
        return threshold_for(self.metadata["calibration"], false_alarm_rate)

    def false_alarm_rate_at(self, threshold):
        """The fraction of clean calibration frames scoring above `threshold`."""
        quantiles = np.asarray(self.metadata["calibration"]["quantiles"])
        levels = np.linspace(0.0, 1.0, len(quantiles))
        return float(1.0 - np.interp(threshold, quantiles, levels, left=0.0, right=1.0))


def calibration(clean_scores):
    """The metadata's calibration from the scores of clean frames (not used in training)."""
    clean_scores = np.asarray(clean_scores, dtype=np.float64)
    if clean_scores.ndim != 1 or len(clean_scores) < 100 or not np.isfinite(clean_scores).all():
        raise ValueError(f"calibration needs at least 100 finite clean scores, got {clean_scores.shape}")
    levels = np.linspace(0.0, 1.0, QUANTILE_POINTS)
    return {"clean_frames": int(len(clean_scores)),
            "quantiles": [round(float(q), 6) for q in np.quantile(clean_scores, levels)]}


def threshold_for(calibration_metadata, false_alarm_rate):
    rate = float(false_alarm_rate)
    if not 0.0 < rate < 1.0:
        raise ValueError(f"false_alarm_rate: must be between 0 and 1 (exclusive), got {false_alarm_rate!r}")
    quantiles = np.asarray(calibration_metadata["quantiles"])
    return float(np.interp(1.0 - rate, np.linspace(0.0, 1.0, len(quantiles)), quantiles))


def build_metadata(detector, frame_length, protects, calibration_metadata, features, training, provenance):
    """protects: the LoadedModel of the classifier; features: the detector's inputs."""
    return {
        "format": FORMAT,
        "kind": KIND,
        "arch": f"attack_detector_{features}",
        "features": features,
        "frame_length": int(frame_length),
        "input": model_file.INPUT_CONVENTION,
        "output": "scores [N]",
        "score": SCORE,
        "protects": {"model": Path(protects.path).name, "sha256": protects.sha256,
                     "arch": protects.arch},
        "parameters": int(sum(p.numel() for p in detector.parameters() if p.requires_grad)),
        "calibration": calibration_metadata,
        "provenance": provenance,
        "training": training,
    }


def save(detector, path, metadata):
    """Script `detector` and write it with its metadata; it must score two frames as [2]."""
    missing = {"frame_length", "protects", "calibration"} - set(metadata)
    if missing:
        raise ValueError(f"detector metadata lacks {sorted(missing)}")

    def check(output):
        if tuple(output.shape) != (2,):
            raise ValueError(f"detector returns {tuple(output.shape)} for [2, 2, {metadata['frame_length']}] "
                             "input; expected (2,)")

    return model_file.save_scripted(detector, path, metadata, check)


def load(path):
    """Load and check a detector file; any problem is a ValueError naming the file."""
    import torch
    module, metadata, path = model_file.load_scripted(path, "detector file")
    if metadata.get("format") != FORMAT:
        raise ValueError(f"detector file {path} is not an attack detector (format "
                         f"{metadata.get('format')!r}, expected {FORMAT!r})")
    for key in ("frame_length", "protects", "calibration"):
        if key not in metadata:
            raise ValueError(f"detector file {path}: metadata lacks {key!r}")
    loaded = LoadedDetector(module, metadata, artifacts.sha256_file(path), path)
    try:
        with torch.no_grad():
            scores = module(torch.zeros(1, 2, loaded.frame_length))
    except Exception as err:
        raise ValueError(f"detector file {path}: forward fails on [1, 2, {loaded.frame_length}] input "
                         f"({str(err).splitlines()[0]})") from None
    if tuple(scores.shape) != (1,):
        raise ValueError(f"detector file {path}: returns {tuple(scores.shape)}, expected (1,) scores")
    return loaded
