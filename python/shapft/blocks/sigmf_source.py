"""sigmf_source: a SigMF stream recording (cf32_le) as a complex stream, its annotated
segments as `label` and `snr_db` tags."""
import numpy as np
import pmt
from gnuradio import gr

from ..core import params, stream_recording
from .tags import LABEL_TAG, SNR_TAG

# GNU Radio's tag for a stream's sample rate (uhd and soapy sources set it too).
RATE_TAG = pmt.intern("rx_rate")


class sigmf_source(gr.sync_block):
    """Plays a SigMF recording (`recording_path`, the .sigmf-meta or .sigmf-data or
    their base name): complex64 samples; at each annotation's first sample a `label`
    tag (its core:label) and an `snr_db` tag (its shapft:snr_db) where the annotation
    has them, and an `rx_rate` tag (the recording's sample rate) at the first sample.
    The stream ends with the recording, or starts again when `repeat` is set (tags
    again, at their new offsets). The data file is memory-mapped: any size plays."""

    def __init__(self, recording_path, repeat=False):
        recording_path = params.file_path(recording_path, "recording_path")
        repeat = params.boolean(repeat, "repeat")
        self.info = stream_recording.read_info(recording_path, "recording_path")
        if self.info.length == 0:
            raise ValueError(f"recording_path: {self.info.data_path} holds no samples")
        gr.sync_block.__init__(self, name="shapft_sigmf_source", in_sig=None, out_sig=[np.complex64])
        self.samples = stream_recording.samples(self.info)
        self.repeat = repeat
        self.position = 0        # in the recording
        self.segment_tags = [(start, label, snr) for start, _, label, snr in self.info.segments
                             if 0 <= start < self.info.length]
        self.next_tag = 0

    @property
    def sample_rate(self):
        return self.info.sample_rate

    def work(self, input_items, output_items):
        """Copy the next samples of the recording, with the tags that fall on them."""
        out = output_items[0]
        if self.position == self.info.length:
            if not self.repeat:
                return -1   # WORK_DONE (a Python sync_block returns the int)
            self.position, self.next_tag = 0, 0
        n = min(len(out), self.info.length - self.position)
        out[:n] = self.samples[self.position:self.position + n]
        first = self.nitems_written(0)
        if first == 0:
            self.add_item_tag(0, 0, RATE_TAG, pmt.from_double(self.info.sample_rate))
        while self.next_tag < len(self.segment_tags) and self.segment_tags[self.next_tag][0] < self.position + n:
            start, label, snr = self.segment_tags[self.next_tag]
            offset = first + start - self.position
            if label is not None:
                self.add_item_tag(0, offset, LABEL_TAG, pmt.intern(str(label)))
            if np.isfinite(snr):
                self.add_item_tag(0, offset, SNR_TAG, pmt.from_double(snr))
            self.next_tag += 1
        self.position += n
        return n
