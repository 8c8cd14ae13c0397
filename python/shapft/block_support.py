"""What the model-running blocks share: loading a model with checked settings, the
frame tags, and which frames cannot be classified."""
import math

import numpy as np
import pmt

from . import model_file
from .channel_model_source import LABEL_TAG, SNR_TAG


def load_model(model_path, batch_size, num_threads):
    """The block's TorchScript model; bad settings are refused naming the parameter."""
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    if num_threads < 0:
        raise ValueError(f"num_threads: must be >= 0 (0 = torch's default), got {num_threads}")
    try:
        return model_file.load(model_path, num_threads=num_threads or None)
    except (FileNotFoundError, ValueError) as err:
        raise ValueError(f"model_path: {err}") from None


def frame_labels(block, n):
    """True class name per item of the current window (object array, None where
    untagged), from the `label` stream tags the channel-model source sets. Asking for
    the key lets GNU Radio filter the tags in C++; the per-tag Python left is one
    value conversion."""
    start = block.nitems_read(0)
    labels = np.full(n, None, dtype=object)
    for tag in block.get_tags_in_window(0, 0, n, LABEL_TAG):
        labels[tag.offset - start] = tag_text(tag.value)
    return labels


def frame_snrs(block, n):
    """snr_db per item of the current window (float array, nan where untagged), from
    the `snr_db` stream tags."""
    start = block.nitems_read(0)
    snrs = np.full(n, math.nan)
    for tag in block.get_tags_in_window(0, 0, n, SNR_TAG):
        snrs[tag.offset - start] = pmt.to_double(tag.value)
    return snrs


def tag_text(value):
    try:
        return pmt.symbol_to_string(value)
    except ValueError:           # not a symbol: a label written by another tool
        return str(pmt.to_python(value))


def class_indices(names, classes):
    """Index of each name in `classes`; -1 for None or a class the model does not know."""
    index = {name: i for i, name in enumerate(classes)}
    return np.fromiter((index.get(name, -1) for name in names), dtype=np.int64, count=len(names))


def check_vector_length(vector_length, frame_length, model_path):
    """Refuse a stated vector length (0 = take the model's) the model cannot classify."""
    if vector_length and vector_length != frame_length:
        raise ValueError(f"vector_length: {vector_length} does not match the frame length "
                         f"{frame_length} of {model_path}")


def frame_validity(frames):
    """(valid: bool per frame; {index: 'nan', 'inf' or 'zero'} for the others). Two
    passes over the window; the per-frame reason is looked up only for bad frames."""
    valid = np.isfinite(frames).all(axis=1) & frames.any(axis=1)
    reasons = {}
    for i in np.flatnonzero(~valid):
        frame = frames[i]
        reasons[int(i)] = "nan" if np.isnan(frame).any() else "inf" if np.isinf(frame).any() else "zero"
    return valid, reasons


def batches(valid, batch_size):
    """Index of each batch of valid frames: slices while all frames are valid (views,
    no copies), else index arrays."""
    n = len(valid)
    if valid.all():
        return [slice(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
    index = np.flatnonzero(valid)
    return [index[start:start + batch_size] for start in range(0, len(index), batch_size)]
