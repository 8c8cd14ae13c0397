"""stream_framer: a complex stream from a radio or a recording, at any sample rate, as
the frames a gr-shapft model classifies (the library: core/framing.py)."""
import numpy as np
import pmt
from gnuradio import blocks, filter, gr

from ..core import framing, model_file, params
from ..core.radioml_import import normalise_power
from ..core.radioml import FRAME_LENGTH, LABEL_TAG_KEY, SAMPLE_RATE_HZ, SNR_TAG_KEY
from .guard import ErrorLog, QuietBuffers
from .tags import LABEL_TAG, SNR_TAG

# Tag on every frame: the index, in the framer's input stream, of its first sample.
SAMPLE_INDEX_TAG = pmt.intern("sample_index")
# Room for a classifier sink's large batches, as the other frame-producing blocks.
MIN_OUTPUT_FRAMES = 1024


class frame_cutter(QuietBuffers, gr.basic_block):
    """Cuts a stream at the model's rate into frames every `hop` samples, gates them
    (framing.NoiseFloorGate), scales the passed ones to unit power and tags them:
    `sample_index` (first sample, in the input stream before resampling:
    (start * decimation - delay) / interpolation), and the `label` and `snr_db` in
    force at the first sample where the stream carries such tags."""

    def __init__(self, frame_length, hop, gate_db, floor_frames, interpolation=1, decimation=1, delay=0.0):
        gr.basic_block.__init__(self, name="shapft_frame_cutter", in_sig=[np.complex64],
                                out_sig=[(np.complex64, frame_length)])
        self.frame_length, self.hop = frame_length, hop
        self.gate = framing.NoiseFloorGate(frame_length, gate_db, floor_frames)
        self.interpolation, self.decimation, self.delay = interpolation, decimation, delay
        self.next_start = 0
        self.tags_read_to = 0
        self.pending = []                    # (offset, key, value) not yet in force
        self.in_force = {}                   # tag key -> value at the current position
        self.cut = self.passed = self.gated = self.invalid = 0
        self.by_label = {}                   # label -> [frames cut, frames passed]
        self.error_log = ErrorLog(self.logger)
        self.failed = False
        self.set_tag_propagation_policy(gr.TPP_DONT)
        self.set_min_output_buffer(MIN_OUTPUT_FRAMES)

    def forecast(self, noutput_items, ninputs):
        ahead = max(0, self.next_start - self.nitems_read(0))
        return [ahead + self.frame_length + (max(1, noutput_items) - 1) * self.hop]

    def general_work(self, input_items, output_items):
        samples, out = input_items[0], output_items[0]
        base, n = self.nitems_read(0), len(samples)
        if not self.failed:
            try:
                produced = self._cut(samples, out, base)
            except Exception as err:
                self.error_log.record("work", err)
                self.failed = True
        if self.failed:   # the stream still flows, so the flowgraph's other branches run
            produced = 0
            self.next_start = max(self.next_start, base + n)
        self.consume(0, min(self.next_start, base + n) - base)
        return produced

    def _cut(self, samples, out, base):
        end = base + len(samples)
        starts = framing.frame_starts(self.next_start, end, self.hop, self.frame_length, len(out))
        if self.tags_read_to < end:
            for tag in self.get_tags_in_range(0, max(self.tags_read_to, base), end):
                key = pmt.symbol_to_string(tag.key)
                if key in (LABEL_TAG_KEY, SNR_TAG_KEY):
                    self.pending.append((tag.offset, key, tag.value))
            self.pending.sort(key=lambda t: t[0])
            self.tags_read_to = end
        if not len(starts):
            return 0
        frames = samples[(starts - base)[:, None] + np.arange(self.frame_length)]
        passed, invalid, _ = self.gate(frames)
        produced = 0
        first_out = self.nitems_written(0)
        for start, frame, keep in zip(starts.tolist(), frames, passed):
            while self.pending and self.pending[0][0] <= start:
                _, key, value = self.pending.pop(0)
                self.in_force[key] = value
            if LABEL_TAG_KEY in self.in_force:
                counts = self.by_label.setdefault(pmt.symbol_to_string(self.in_force[LABEL_TAG_KEY]), [0, 0])
                counts[0] += 1
                counts[1] += bool(keep)
            if not keep:
                continue
            out[produced] = frame
            offset = first_out + produced
            index = max(0, round((start * self.decimation - self.delay) / self.interpolation))
            self.add_item_tag(0, offset, SAMPLE_INDEX_TAG, pmt.from_uint64(index))
            if LABEL_TAG_KEY in self.in_force:
                self.add_item_tag(0, offset, LABEL_TAG, self.in_force[LABEL_TAG_KEY])
            if SNR_TAG_KEY in self.in_force:
                self.add_item_tag(0, offset, SNR_TAG, self.in_force[SNR_TAG_KEY])
            produced += 1
        out[:produced] = normalise_power(out[:produced])
        self.cut += len(starts)
        self.passed += produced
        self.invalid += int(invalid.sum())
        self.gated += len(starts) - produced - int(invalid.sum())
        self.next_start = int(starts[-1]) + self.hop
        return produced


class stream_framer(gr.hier_block2):
    """Complex stream in at `samp_rate`; out, frames as the model expects them.

    Steps: a frequency shift by `frequency_shift` Hz (blocks.rotator_cc; to centre the
    signal of interest, shift by minus its offset), rational resampling to the model's
    sample rate (filter.rational_resampler_ccc, its default anti-alias filter), frames
    of the model's full frame length every `hop` samples at the model's rate (0 = the
    frame length: contiguous; less overlaps; more skips), the energy gate (frames less
    than `gate_db` dB above the running noise floor are dropped and counted; None
    turns it off, all-zero frames still dropped), unit average power per frame.

    `model_path` gives the frame length and sample rate (model metadata; 128 samples,
    200 kHz when empty). Every frame carries a `sample_index` tag: the index of its
    first sample in this block's input stream, so a verdict traces back to the
    recording or radio stream; `label`/`snr_db` tags on the input (sigmf_source sets
    them from annotations) are carried to the frames they fall in.
    """

    def __init__(self, model_path="", samp_rate=SAMPLE_RATE_HZ, frequency_shift=0.0, hop=0,
                 gate_db=framing.DEFAULT_GATE_DB, floor_frames=framing.DEFAULT_FLOOR_FRAMES):
        if model_path:
            try:
                metadata = model_file.read_metadata(params.file_path(model_path, "model_path"))
            except (FileNotFoundError, ValueError) as err:
                raise ValueError(f"model_path: {err}") from None
            frame_length, model_rate = model_file.full_frame_length(metadata), model_file.sample_rate_hz(metadata)
        else:
            frame_length, model_rate = FRAME_LENGTH, SAMPLE_RATE_HZ
        interpolation, decimation = framing.resampling_ratio(samp_rate, model_rate)
        hop, frequency_shift, gate_db, floor_frames = framing.check_parameters(
            hop or frame_length, frequency_shift, samp_rate, gate_db, floor_frames)
        gr.hier_block2.__init__(self, "shapft_stream_framer", gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex * frame_length))
        self.samp_rate, self.model_rate, self.frame_length, self.hop = float(samp_rate), model_rate, frame_length, hop
        self.interpolation, self.decimation = interpolation, decimation
        chain = []
        self.rotator = blocks.rotator_cc(2 * np.pi * frequency_shift / samp_rate)
        chain.append(self.rotator)
        delay = 0.0
        if (interpolation, decimation) != (1, 1):
            self.resampler = filter.rational_resampler_ccc(interpolation, decimation)
            chain.append(self.resampler)
            delay = (len(self.resampler.taps()) - 1) / 2   # group delay, at the interpolated rate
        self.cutter = frame_cutter(frame_length, hop, gate_db, floor_frames, interpolation, decimation, delay)
        self.connect(self, *chain, self.cutter, self)

    def set_frequency_shift(self, frequency_shift):
        """Retune while running (GRC callback), in Hz."""
        frequency_shift = framing.check_parameters(self.hop, frequency_shift, self.samp_rate, None, 1)[1]
        self.rotator.set_phase_inc(2 * np.pi * frequency_shift / self.samp_rate)

    def frames_cut(self):
        """Frames cut from the stream (passed + gated + invalid)."""
        return self.cutter.cut

    def frames_passed(self):
        """Frames that left the block."""
        return self.cutter.passed

    def frames_gated(self):
        """Frames the energy gate dropped: below the noise floor plus gate_db, or all zero."""
        return self.cutter.gated

    def frames_invalid(self):
        """Frames dropped for samples that are not finite (NaN, inf)."""
        return self.cutter.invalid

    def frames_by_label(self):
        """{label: (frames cut, frames passed)} for frames that carried a `label` tag: what
        the gate let through of each class of a labelled recording."""
        return {label: tuple(counts) for label, counts in self.cutter.by_label.items()}

    def noise_floor_db(self):
        """The running noise floor estimate, dB of power per sample at the model's rate (nan before any frame)."""
        floor = self.cutter.gate.floor()
        return 10 * np.log10(floor) if floor > 0 else (-np.inf if floor == 0 else np.nan)

    def errors(self):
        """Texts of the errors caught while running, oldest first (empty when none)."""
        return self.cutter.error_log.texts()
