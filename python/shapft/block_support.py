"""What the model-running blocks share: loading a model with checked settings, the
frame tags, and which frames cannot be classified."""
import math

import numpy as np
import pmt

from . import model_file


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


def frame_tags(block, n):
    """(true class name or None, snr_db or nan) per item of the current window, from the
    `label` and `snr_db` stream tags (the channel-model source sets both)."""
    labels, snrs = [None] * n, [math.nan] * n
    start = block.nitems_read(0)
    for tag in block.get_tags_in_window(0, 0, n):
        key = pmt.symbol_to_string(tag.key)
        if key == "label":
            labels[tag.offset - start] = pmt.to_python(tag.value)
        elif key == "snr_db":
            snrs[tag.offset - start] = pmt.to_double(tag.value)
    return labels, snrs


def check_vector_length(vector_length, frame_length, model_path):
    """Refuse a stated vector length (0 = take the model's) the model cannot classify."""
    if vector_length and vector_length != frame_length:
        raise ValueError(f"vector_length: {vector_length} does not match the frame length "
                         f"{frame_length} of {model_path}")


def invalid_reasons(frames):
    """Per frame: None if usable, else 'nan', 'inf' or 'zero'."""
    reasons = np.full(len(frames), None, dtype=object)
    reasons[np.all(frames == 0, axis=1)] = "zero"
    reasons[np.any(np.isinf(frames), axis=1)] = "inf"
    reasons[np.any(np.isnan(frames), axis=1)] = "nan"
    return reasons
