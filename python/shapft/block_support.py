"""What the model-running blocks share: loading a model with checked settings, the
frame tags, and which frames cannot be classified."""
import concurrent.futures
import dataclasses

import numpy as np
import pmt

from . import model_file
from .channel_model_source import LABEL_TAG, SNR_TAG
from .shapft_python import read_frame_tags

TAG_KEYS = (pmt.symbol_to_string(LABEL_TAG), pmt.symbol_to_string(SNR_TAG))


def load_model(model_path, batch_size, num_threads):
    """The block's TorchScript model; bad settings are refused naming the parameter.

    Loaded (and shape-checked, which runs the model) in a short-lived thread, not on the
    flowgraph's main thread: libgomp, torch's OpenMP runtime, keeps a team of worker
    threads for every thread that has run parallel torch code. A team kept by the main
    thread would live as long as the flowgraph; with more OpenMP threads than cores
    libgomp stops spin-waiting in all of them, and every parallel operation of any
    other torch code in the process ends in a futex sleep and wake-up (a block with 2
    intra-op threads ran ~1.5x slower, BENCHMARKS.md). A short-lived thread's team
    ends with it.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    if num_threads < 0:
        raise ValueError(f"num_threads: must be >= 0 (0 = torch's default), got {num_threads}")
    try:
        # Leaving the with block joins the worker thread, and its team ends with it.
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="shapft-load") as loader:
            return loader.submit(model_file.load, model_path).result()
    except (FileNotFoundError, ValueError) as err:
        raise ValueError(f"model_path: {err}") from None


@dataclasses.dataclass
class WindowTags:
    """The `label` and `snr_db` tags of the items in a work() window."""
    class_index: np.ndarray   # index in the model's classes; -1 untagged or not one of them
    label_index: np.ndarray   # index in names; -1 untagged
    names: list               # the model's classes, then any other label seen
    snr_db: np.ndarray        # nan where untagged

    def label(self, i):
        """Item i's label text, None where untagged."""
        return self.names[self.label_index[i]] if self.label_index[i] >= 0 else None


def window_tags(block, n, classes):
    """The tags the channel-model source sets on each frame, for the n items of the
    current window, read in one C++ pass (read_frame_tags in lib/frame_tags.cc): read
    one by one in Python they cost ~3.8 us per frame, as much as the compact
    transformer takes to classify the frame."""
    label_index, snr_db, names = read_frame_tags(block.to_basic_block(), n, *TAG_KEYS, list(classes))
    class_index = np.where(label_index < len(classes), label_index, -1)
    return WindowTags(class_index, label_index, names, snr_db)


def check_vector_length(vector_length, frame_length, model_path):
    """Refuse a stated vector length (0 = take the model's) the model cannot classify."""
    if vector_length and vector_length != frame_length:
        raise ValueError(f"vector_length: {vector_length} does not match the frame length "
                         f"{frame_length} of {model_path}")


def frame_validity(frames):
    """(valid: bool per frame; {index: 'nan', 'inf' or 'zero'} for the others).

    One pass computes each frame's energy: NaN or Inf when a sample is, 0 when all
    are 0. Overflow (|x| > 1e19) or underflow (|x| < 1e-23) can flag a good frame
    there, so flagged frames get the exact test, which also names the reason."""
    samples = np.ascontiguousarray(frames, dtype=np.complex64).view(np.float32)
    energy = np.einsum("ij,ij->i", samples, samples)
    valid = np.isfinite(energy) & (energy > 0)
    reasons = {}
    for i in np.flatnonzero(~valid):
        frame = frames[i]
        if np.isnan(frame).any():
            reasons[int(i)] = "nan"
        elif np.isinf(frame).any():
            reasons[int(i)] = "inf"
        elif not frame.any():
            reasons[int(i)] = "zero"
        else:
            valid[i] = True
    return valid, reasons


def batches(valid, batch_size, parts=1):
    """Index of each batch of valid frames: the fewest batches of at most batch_size
    whose number is a multiple of `parts` (workers that take them side by side finish
    together), sizes within one frame of each other. Slices while all frames are valid
    (views, no copies), else index arrays."""
    count = int(np.count_nonzero(valid))
    if count == 0:
        return []
    number = -(-count // batch_size)
    number = min(count, -(-number // parts) * parts)
    bounds = ((np.arange(number + 1) * count) // number).tolist()
    if count == len(valid):
        return [slice(start, end) for start, end in zip(bounds[:-1], bounds[1:])]
    index = np.flatnonzero(valid)
    return [index[start:end] for start, end in zip(bounds[:-1], bounds[1:])]
