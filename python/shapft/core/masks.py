"""SHAP-FT's negative-point mask: the sample positions to delete (or zero).

A mask (docs/formats.md) is JSON: `frame_length`, `drop` (sorted positions),
`m`, `mode`, `attack`, `eps`, `model_sha256`, and how it was derived. The same object
sits under the key `mask` in the metadata of the model fine-tuned on it, so a model
file alone says which positions its input lacks.
"""
import json
import zipfile
from pathlib import Path

import numpy as np

from . import artifacts

MODES = ("drop", "zero")
FRAME_RULES = ("auto", "error", "all")
NORMALISATIONS = ("none", "l1")
# The paper takes all frames (not only the misclassified "error-n") at its two
# weakest attack levels, where most attacked frames are still classified correctly.
ALL_FRAMES_UP_TO_EPS = 0.05


def frame_rule(rule, eps):
    """The frame selection a rule means at a budget: 'auto' is the paper's choice."""
    if rule not in FRAME_RULES:
        raise ValueError(f"frame rule {rule!r} is not one of {', '.join(FRAME_RULES)}")
    if rule == "auto":
        return "all" if eps <= ALL_FRAMES_UP_TO_EPS + 1e-12 else "error"
    return rule


def summed_shapley(values, selected, normalise="none"):
    """The 128 numbers of the paper's Fig. 4: Shapley values of the true class
    ([N, 2, L]), summed over I/Q and over the selected frames. 'l1' first scales each
    frame's values to unit total magnitude, so every frame weighs the same."""
    values = np.asarray(values, dtype=np.float64)[np.asarray(selected, dtype=bool)]
    if normalise == "l1":
        scale = np.abs(values).sum(axis=(1, 2), keepdims=True)
        values = values / np.where(scale > 0, scale, 1.0)
    elif normalise != "none":
        raise ValueError(f"normalisation {normalise!r} is not one of {', '.join(NORMALISATIONS)}")
    return values.sum(axis=(0, 1))


def find(values, labels, predictions, eps, rule="auto", normalise="none"):
    """Negative points as the paper defines them.

    values: Shapley values of each frame's true class, [N, 2, L]; labels and predictions
    of the original model on the attacked frames. Frames are the misclassified ones
    ('error', the paper's error-n) or all of them ('all'); 'auto' picks the paper's
    rule for `eps`. Returns (sorted positions whose sum is negative, the sums, the
    rule used, the number of frames used).
    """
    used_rule = frame_rule(rule, eps)
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    selected = labels != predictions if used_rule == "error" else np.ones(len(labels), bool)
    sums = summed_shapley(values, selected, normalise)
    return np.flatnonzero(sums < 0).tolist(), sums, used_rule, int(selected.sum())


def true_class_values(content):
    """[N, 2, L] Shapley values of each frame's true class, from an explain .npz
    (explain.load) whose explained classes include every frame's label."""
    labels, classes = content["labels"], content["output_classes"]
    columns = np.argmax(classes == labels[:, None], axis=1)
    if not np.all(classes[np.arange(len(labels)), columns] == labels):
        raise ValueError("the SHAP values do not include every frame's true class; "
                         "run `shapft explain --outputs true` (or all)")
    return content["shap_values"][np.arange(len(labels)), :, :, columns]


def random_positions(m, frame_length, seed):
    """m distinct positions drawn uniformly: the control for SHAP's choice."""
    rng = np.random.default_rng([seed, 0x5EED])
    return sorted(rng.choice(frame_length, size=m, replace=False).tolist())


def make_mask(drop, frame_length, attack, eps, model_sha256, mode="drop", **derivation):
    drop = sorted(int(i) for i in drop)
    mask = {"frame_length": int(frame_length), "drop": drop, "m": len(drop), "mode": mode,
            "attack": attack, "eps": eps, "model_sha256": model_sha256}
    mask.update(derivation)
    return validate(mask)


def _is_integer(value):
    return isinstance(value, int) and not isinstance(value, bool)   # JSON true is not position 1


def validate(mask, source="mask"):
    """Check a mask object; a ValueError names the problem and where it came from."""
    if not isinstance(mask, dict):
        raise ValueError(f"{source}: expected a JSON object, got {type(mask).__name__}")
    for key in ("frame_length", "drop"):
        if key not in mask:
            raise ValueError(f"{source}: no {key!r}")
    length = mask["frame_length"]
    if not _is_integer(length) or length < 1:
        raise ValueError(f"{source}: frame_length must be a positive integer, got {length!r}")
    drop = mask["drop"]
    if not isinstance(drop, list) or not all(_is_integer(i) for i in drop):
        raise ValueError(f"{source}: drop must be a list of integer positions")
    bad = [i for i in drop if not 0 <= i < length]
    if bad:
        raise ValueError(f"{source}: positions {bad[:5]} out of range 0..{length - 1}")
    if len(set(drop)) != len(drop):
        duplicates = sorted({i for i in drop if drop.count(i) > 1})
        raise ValueError(f"{source}: duplicate positions {duplicates[:5]}")
    if drop != sorted(drop):
        raise ValueError(f"{source}: drop must be sorted")
    if len(drop) >= length:
        raise ValueError(f"{source}: drops all {length} positions; nothing would remain")
    if mask.get("m", len(drop)) != len(drop):
        raise ValueError(f"{source}: m = {mask['m']} but drop lists {len(drop)} positions")
    if mask.get("mode", "drop") not in MODES:
        raise ValueError(f"{source}: mode {mask['mode']!r} is not one of {', '.join(MODES)}")
    return mask


def keep_positions(mask):
    """The positions a drop-mode mask keeps, in order."""
    return np.setdiff1d(np.arange(mask["frame_length"]), mask["drop"])


def apply(frames, mask, mode="drop"):
    """Delete (drop) or zero the mask's positions along the last axis of `frames`."""
    if frames.shape[-1] != mask["frame_length"]:
        raise ValueError(f"frames have {frames.shape[-1]} samples, the mask expects {mask['frame_length']}")
    if mode == "drop":
        return frames[..., keep_positions(mask)]
    if mode == "zero":
        out = np.array(frames, copy=True)
        out[..., mask["drop"]] = 0
        return out
    raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")


def save(path, mask):
    artifacts.write_json(path, validate(mask))


def load(path):
    """A mask from a mask JSON file, or the mask a SHAP-FT model file carries."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask file {path} does not exist")
    if zipfile.is_zipfile(path):
        return _mask_of_model_file(path)
    try:
        mask = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"mask file {path}: not valid JSON ({err})") from None
    return validate(mask, f"mask file {path}")


def output_length(mask, mode="drop"):
    """Length of a frame after `mask` (a mask object, or a file `load` reads) in `mode`."""
    mask = mask if isinstance(mask, dict) else load(mask)
    return mask["frame_length"] - mask["m"] if mode == "drop" else mask["frame_length"]


def _mask_of_model_file(path):
    from . import model_file
    metadata = model_file.read_metadata(path)
    if not metadata.get("mask"):
        raise ValueError(f"model file {path} carries no mask (it was not fine-tuned by SHAP-FT)")
    return validate(metadata["mask"], f"mask of model file {path}")


def check_fits_model(mask, loaded_model, force=False):
    """Refuse a mask whose frame length or source model does not fit `loaded_model`.

    A SHAP-FT model (one that carries a mask) must receive frames of 128 - m samples,
    and its own mask must be this one. For the original model the mask was derived
    from, `model_sha256` must be its hash; `force` accepts a mismatching hash.
    """
    import warnings
    carried = loaded_model.mask
    if carried is not None:
        if carried["drop"] != mask["drop"] or carried["frame_length"] != mask["frame_length"]:
            raise ValueError(f"model {loaded_model.path} was fine-tuned with another mask "
                             f"(m = {carried['m']}), not this one (m = {mask['m']})")
        return
    if loaded_model.frame_length != mask["frame_length"]:
        raise ValueError(f"mask frame_length {mask['frame_length']} does not match the model's "
                         f"frame length {loaded_model.frame_length} ({loaded_model.path})")
    if mask.get("model_sha256") and mask["model_sha256"] != loaded_model.sha256:
        message = (f"the mask was derived from model sha256 {mask['model_sha256'][:12]}..., "
                   f"not {loaded_model.path} ({loaded_model.sha256[:12]}...)")
        if not force:
            raise ValueError(message + "; pass --force to use it anyway")
        warnings.warn(message)
