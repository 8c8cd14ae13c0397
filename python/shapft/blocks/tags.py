"""The frame tags (`label`, `snr_db`) in GNU Radio: the keys as PMT symbols, and
reading a work() window's tags for the model-running blocks."""
import dataclasses

import numpy as np
import pmt

from ..core.radioml import LABEL_TAG_KEY, SNR_TAG_KEY
from ..shapft_python import read_frame_tags

LABEL_TAG = pmt.intern(LABEL_TAG_KEY)
SNR_TAG = pmt.intern(SNR_TAG_KEY)


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
    lib/frame_tags.cc): read one by one in Python they cost as much as the compact
    transformer takes to classify the frame."""
    label_index, snr_db, names = read_frame_tags(block.to_basic_block(), first, n, LABEL_TAG_KEY, SNR_TAG_KEY, list(classes))
    class_index = np.where(label_index < len(classes), label_index, -1)
    return WindowTags(class_index, label_index, names, snr_db)
