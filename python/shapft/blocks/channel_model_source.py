"""channel_model_source: RadioML-2016.10a-style frames from live GNU Radio transmitters
through `channels.dynamic_channel_model`, tagged with their class and SNR.

One implementation serves the dataset generator (`shapft generate` runs it in short
flowgraphs) and live flowgraphs such as `examples/attack_defense.grc`.
"""
import math

import numpy as np
import pmt
from gnuradio import channels, gr

from . import transmitters
from ..core.radioml import CLASSES, FRAME_LENGTH, SAMPLE_RATE_HZ, SNRS_DB
from .tags import LABEL_TAG, SNR_TAG

# RadioML 2016.10a's channel (its generator script): slow SRO and CFO random walks,
# Rician (K=4) fading with a 3-path delay profile and 1 Hz Doppler.
DEFAULT_CHANNEL = dict(sro_std_hz=0.01, sro_max_hz=50.0, cfo_std_hz=0.01, cfo_max_hz=500.0,
                       fading_sinusoids=8, doppler_hz=1.0, rician_k=4.0,
                       delays=(0.0, 0.9, 1.7), mags=(1.0, 0.8, 0.3), fading_taps=8)


# How a nominal SNR sets the AWGN. "physical": the frames have the SNR they are tagged
# with. "radioml": the noise RadioML 2016.10a's generator added for the same label, so
# that frames match the published datasets (whose true SNR is twice the label in dB).
SNR_CONVENTION_NAMES = ("physical", "radioml")


def check_snr_convention(snr_convention):
    """The convention, if it is one of SNR_CONVENTION_NAMES; else ValueError naming the parameter."""
    if not isinstance(snr_convention, str) or snr_convention not in SNR_CONVENTION_NAMES:
        raise ValueError(f"snr_convention: must be one of {', '.join(SNR_CONVENTION_NAMES)}, got {snr_convention!r}")
    return snr_convention


def noise_amplitude(snr_db, snr_convention="physical"):
    """AWGN amplitude (std of the complex noise) for a unit-power signal; 0 for SNR +inf.

    "physical": 10^(-SNR/20), noise power 10^(-SNR/10), so the SNR is the nominal one.
    "radioml": 10^(-SNR/10), as RadioML 2016.10a's generator set it; the noise power is
    10^(-SNR/5), a true SNR of twice the nominal one in dB.
    """
    check_snr_convention(snr_convention)
    if math.isinf(snr_db) and snr_db > 0:
        return 0.0
    return 10.0 ** (-snr_db / (20.0 if snr_convention == "physical" else 10.0))


def make_channel(snr_db, seed, channel=None, snr_convention="physical"):
    """gr-channels' dynamic channel model for one transmitter at a given SNR.

    The delay profile's magnitudes are scaled to unit total power, so the fading keeps
    the average signal power at 1 and the AWGN amplitude alone sets the SNR
    (noise_amplitude, under `snr_convention`).
    """
    c = dict(DEFAULT_CHANNEL, **(channel or {}))
    mags = np.asarray(c["mags"], dtype=float)
    mags = (mags / np.sqrt(np.sum(mags ** 2))).tolist()
    return channels.dynamic_channel_model(
        SAMPLE_RATE_HZ, c["sro_std_hz"], c["sro_max_hz"], c["cfo_std_hz"], c["cfo_max_hz"],
        int(c["fading_sinusoids"]), c["doppler_hz"], True, c["rician_k"], list(c["delays"]),
        mags, int(c["fading_taps"]), noise_amplitude(snr_db, snr_convention), float(seed))


def validate_settings(modulations, snrs_db, num_frames, frame_length, window, chains_per_setting,
                      snr_convention="physical"):
    check_snr_convention(snr_convention)
    modulations = list(modulations)
    snrs_db = [float(s) for s in snrs_db]
    if not modulations:
        raise ValueError("modulations: the list is empty; give at least one of " + ", ".join(CLASSES))
    for name in modulations:
        if name not in CLASSES:
            raise ValueError(f"modulations: unknown modulation {name!r}; expected one of {', '.join(CLASSES)}")
    if not snrs_db:
        raise ValueError("snrs_db: the list is empty; give at least one SNR in dB")
    for snr in snrs_db:
        if math.isnan(snr) or snr == -math.inf:
            raise ValueError(f"snrs_db: {snr} is not a usable SNR (finite dB, or +inf for no noise)")
    if num_frames < 0:
        raise ValueError(f"num_frames: must be >= 1, or 0 for an endless stream; got {num_frames}")
    if frame_length < 1:
        raise ValueError(f"frame_length: must be >= 1, got {frame_length}")
    if window < frame_length:
        raise ValueError(f"window: must be >= frame_length ({frame_length}), got {window}")
    if chains_per_setting < 1:
        raise ValueError(f"chains_per_setting: must be >= 1, got {chains_per_setting}")
    return modulations, snrs_db


class frame_picker(gr.basic_block):
    """Cuts tagged, unit-power frames out of K continuous channel outputs.

    Work proceeds in rounds. In each round every input advances by `window` samples and
    contributes one frame of `frame_length` samples taken at a random offset inside its
    window; the K frames leave in a random order. The first `transient` samples of
    every input are discarded (filter and fading start-up).
    """

    def __init__(self, settings, num_frames, frame_length, window, transient, seed):
        self.settings = list(settings)            # (class name, snr_db) per input
        k = len(self.settings)
        gr.basic_block.__init__(self, "shapft_frame_picker", in_sig=[np.complex64] * k,
                                out_sig=[(np.complex64, frame_length)])
        self.num_frames = num_frames
        self.frame_length = frame_length
        self.window = window
        self.rng = np.random.default_rng([seed, 0xF4A3])
        self.skip_left = [transient] * k
        self.frames_out = 0
        self.labels = [pmt.intern(name) for name, _ in self.settings]
        self.snrs = [pmt.from_double(snr) for _, snr in self.settings]
        self.set_output_multiple(k)
        self.set_tag_propagation_policy(gr.TPP_DONT)

    def forecast(self, noutput_items, ninputs):
        rounds = max(1, noutput_items // ninputs)
        return [skip + rounds * self.window for skip in self.skip_left]

    def general_work(self, input_items, output_items):
        k = len(input_items)
        if self.num_frames and self.frames_out >= self.num_frames:
            return gr.WORK_DONE
        if any(self.skip_left):
            for i in range(k):
                n = min(self.skip_left[i], len(input_items[i]))
                self.consume(i, n)
                self.skip_left[i] -= n
            return 0
        rounds = min(min(len(x) for x in input_items) // self.window, len(output_items[0]) // k)
        if self.num_frames:
            rounds = min(rounds, math.ceil((self.num_frames - self.frames_out) / k))
        if rounds == 0:
            return 0
        out = output_items[0]
        produced = 0
        first_item = self.nitems_written(0)
        for r in range(rounds):
            # Draw round by round, the same draws every round: GNU Radio decides how many
            # rounds one call gets, and the frames must not depend on it.
            offsets = self.rng.integers(0, self.window - self.frame_length + 1, size=k)
            for i in self.rng.permutation(k):
                if self.num_frames and self.frames_out + produced == self.num_frames:
                    break
                start = r * self.window + offsets[i]
                frame = input_items[i][start:start + self.frame_length]
                power = np.mean(frame.real ** 2 + frame.imag ** 2)
                out[produced] = frame / np.sqrt(power) if power > 0 else frame
                self.add_item_tag(0, first_item + produced, LABEL_TAG, self.labels[i])
                self.add_item_tag(0, first_item + produced, SNR_TAG, self.snrs[i])
                produced += 1
        for i in range(k):
            self.consume(i, rounds * self.window)
        self.frames_out += produced
        return produced


class channel_model_source(gr.hier_block2):
    """Frames of RadioML-2016.10a-style signals, tagged `label` and `snr_db`.

    For every (modulation, SNR) setting, `chains_per_setting` independent transmitters
    (different random data and programme offsets) each feed their own dynamic channel
    model; a frame picker takes one frame per chain per round at a random offset,
    normalises it to unit average power and tags it. Output: vectors of
    `frame_length` complex64 samples; stops after `num_frames` (0 = endless).
    `output_buffer` (frames, 0 = GNU Radio's default) sizes the output buffer: a large
    one lets a downstream classifier work on large batches. `snr_convention`
    ("physical" or "radioml", see noise_amplitude) sets how each SNR sets the noise;
    the `snr_db` tags carry the nominal SNR either way.
    """

    def __init__(self, modulations=CLASSES, snrs_db=SNRS_DB, num_frames=0, seed=0,
                 frame_length=FRAME_LENGTH, window=2 * FRAME_LENGTH, transient=4096,
                 chains_per_setting=1, channel=None, output_buffer=0, snr_convention="physical"):
        modulations, snrs_db = validate_settings(modulations, snrs_db, num_frames, frame_length,
                                                 window, chains_per_setting, snr_convention)
        gr.hier_block2.__init__(self, "shapft_channel_model_source", gr.io_signature(0, 0, 0),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex * frame_length))
        seeds = np.random.SeedSequence(seed).generate_state(
            2 * len(modulations) * len(snrs_db) * chains_per_setting)
        settings = [(m, s) for m in modulations for s in snrs_db for _ in range(chains_per_setting)]
        rounds = math.ceil(num_frames / len(settings)) if num_frames else 0
        max_samples = transient + (rounds + 1) * window if num_frames else None
        self.transmitters, self.channels = [], []
        for i, (name, snr) in enumerate(settings):
            # Seeds must stay below 2**31 for GNU Radio's int seeds.
            self.transmitters.append(transmitters.make_transmitter(name, int(seeds[2 * i] >> 1), max_samples))
            self.channels.append(make_channel(snr, int(seeds[2 * i + 1] >> 1), channel, snr_convention))
        self.picker = frame_picker(settings, num_frames, frame_length, window, transient, seed)
        if output_buffer:
            # Room for large batches downstream (a classifier infers faster on many frames).
            # The per-port form: GNU Radio's all-ports form logs an info line on every call.
            self.picker.set_min_output_buffer(0, int(output_buffer))
        for i, (tx, ch) in enumerate(zip(self.transmitters, self.channels)):
            self.connect(tx, ch, (self.picker, i))
        self.connect(self.picker, self)
        self.frame_length = frame_length

    def frames_produced(self):
        return self.picker.frames_out
