"""What the model-running blocks share in GNU Radio: loading a model with checked
settings and reading the frame tags."""
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


def window_tags(block, n, classes, first=0):
    """The tags the channel-model source sets on each frame, for n items of the
    current window from its `first`, read in one C++ pass (read_frame_tags in
    lib/frame_tags.cc): read one by one in Python they cost ~3.8 us per frame, as much
    as the compact transformer takes to classify the frame."""
    label_index, snr_db, names = read_frame_tags(block.to_basic_block(), first, n, *TAG_KEYS, list(classes))
    class_index = np.where(label_index < len(classes), label_index, -1)
    return WindowTags(class_index, label_index, names, snr_db)


def check_vector_length(vector_length, frame_length, model_path):
    """Refuse a stated vector length (0 = take the model's) the model cannot classify."""
    if vector_length and vector_length != frame_length:
        raise ValueError(f"vector_length: {vector_length} does not match the frame length "
                         f"{frame_length} of {model_path}")
