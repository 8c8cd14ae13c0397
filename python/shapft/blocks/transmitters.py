"""The 11 RadioML 2016.10a transmitters, built from GNU Radio's own blocks.

Every transmitter is a hier block with no input and one complex output at 200 kHz
whose average power is 1, so that the channel's AWGN amplitude sets the SNR directly.
Digital modulations run at 8 samples per symbol (25 kBd); linear ones are shaped by a
root-raised-cosine filter (roll-off 0.35). Analog ones carry the synthetic programme
of `program_material`, up-sampled from 40 kHz.
"""
import functools

import numpy as np
from gnuradio import analog, blocks, digital, fft, filter, gr

from . import program_material
from ..core.radioml import CLASSES, SAMPLE_RATE_HZ

SAMPLES_PER_SYMBOL = 8
RRC_ROLLOFF = 0.35
RRC_SPAN_SYMBOLS = 11
GFSK_SENSITIVITY = 0.1    # rad/sample: modulation index 0.1*8/pi = 0.25, as RadioML's GFSK
GFSK_BT = 0.35
CPFSK_INDEX = 0.5
AM_DSB_INDEX = 0.8        # modulation depth of the full-carrier AM
WBFM_DEVIATION_HZ = 75e3
AUDIO_UPSAMPLE = int(SAMPLE_RATE_HZ // program_material.AUDIO_RATE_HZ)


def _unit_energy(points):
    points = np.asarray(points, dtype=np.complex128)
    return (points / np.sqrt(np.mean(np.abs(points) ** 2))).astype(np.complex64).tolist()


def constellation_points(name):
    """Symbol alphabet (unit mean energy) of a linear modulation, from gr-digital."""
    points = {
        "BPSK": lambda: digital.constellation_bpsk().points(),
        "QPSK": lambda: digital.constellation_qpsk().points(),
        "8PSK": lambda: digital.constellation_8psk().points(),
        "QAM16": lambda: digital.constellation_16qam().points(),
        "QAM64": lambda: digital.qam_constellation(64).points(),
        "PAM4": lambda: [-3, -1, 1, 3],
    }[name]()
    return _unit_energy(points)


def rrc_taps():
    """RRC interpolation taps scaled so unit-energy symbols give unit output power."""
    taps = np.array(filter.firdes.root_raised_cosine(
        1.0, SAMPLES_PER_SYMBOL, 1.0, RRC_ROLLOFF, RRC_SPAN_SYMBOLS * SAMPLES_PER_SYMBOL + 1))
    return (taps * np.sqrt(SAMPLES_PER_SYMBOL / np.sum(taps ** 2))).tolist()


class linear_transmitter(gr.hier_block2):
    """Random symbols -> constellation map -> RRC pulse shaping at 8 samples/symbol."""

    def __init__(self, name, seed):
        gr.hier_block2.__init__(self, f"shapft_{name}_tx", gr.io_signature(0, 0, 0),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex))
        points = constellation_points(name)
        self.symbols = analog.random_uniform_source_b(0, len(points), seed)
        self.mapper = digital.chunks_to_symbols_bc(points, 1)
        self.shaper = filter.interp_fir_filter_ccf(SAMPLES_PER_SYMBOL, rrc_taps())
        self.connect(self.symbols, self.mapper, self.shaper, self)


class gfsk_transmitter(gr.hier_block2):
    """Random bytes -> gr-digital's GFSK modulator (BT 0.35, h = 0.25)."""

    def __init__(self, seed):
        gr.hier_block2.__init__(self, "shapft_GFSK_tx", gr.io_signature(0, 0, 0),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex))
        self.bytes = analog.random_uniform_source_b(0, 256, seed)
        self.modulator = digital.gfsk_mod(SAMPLES_PER_SYMBOL, GFSK_SENSITIVITY, GFSK_BT)
        self.connect(self.bytes, self.modulator, self)


class cpfsk_transmitter(gr.hier_block2):
    """Random bits -> gr-analog's binary CPFSK (h = 0.5)."""

    def __init__(self, seed):
        gr.hier_block2.__init__(self, "shapft_CPFSK_tx", gr.io_signature(0, 0, 0),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex))
        self.bits = analog.random_uniform_source_b(0, 2, seed)
        self.modulator = analog.cpfsk_bc(CPFSK_INDEX, 1.0, SAMPLES_PER_SYMBOL)
        self.connect(self.bits, self.modulator, self)


def interpolation_taps():
    """x5 audio interpolation: flat to 9 kHz (the programme is band-limited to 8 kHz),
    images above 20 kHz removed; gain 5 keeps the amplitude."""
    return filter.firdes.low_pass(AUDIO_UPSAMPLE, SAMPLE_RATE_HZ, 9e3, 6e3)


HILBERT_TAPS = 257   # at 40 kHz: a 150 Hz transition band, below the programme's pitch


@functools.lru_cache(maxsize=4)
def analytic_power(seed):
    """Mean power of the programme's analytic signal a + jH{a} through gr-filter's own
    Hilbert taps, so AM-SSB can be scaled to exactly unit power."""
    audio = program_material.programme(seed).astype(np.float64)
    hilbert = np.convolve(audio, filter.firdes.hilbert(HILBERT_TAPS, fft.window.WIN_HAMMING, 6.76), "same")
    return float(np.mean(audio ** 2) + np.mean(hilbert ** 2))


class analog_transmitter(gr.hier_block2):
    """Synthetic programme at 40 kHz -> AM-DSB, AM-SSB or WBFM at 200 kHz (x5 interpolation).

    AM-DSB: full carrier, 1 + 0.8 a(t). AM-SSB: upper sideband, suppressed carrier
    (Hilbert transformer at the audio rate). WBFM: 75 us pre-emphasis and an FM
    modulator with 75 kHz deviation. Each output has unit average power.
    """

    def __init__(self, name, seed, max_samples=None):
        gr.hier_block2.__init__(self, f"shapft_{name}_tx", gr.io_signature(0, 0, 0),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex))
        programme = program_material.programme(0)
        # Each transmitter starts at its own point of the shared programme; a finite run
        # needs only an excerpt (much faster to hand to vector_source_f than the whole).
        start = np.random.default_rng(seed).integers(len(programme))
        audio = np.roll(programme, -start)
        if max_samples:
            audio = audio[: max_samples // AUDIO_UPSAMPLE + 1024]
        self.audio = blocks.vector_source_f(audio.tolist(), True)
        mean_square = float(np.mean(programme.astype(np.float64) ** 2))
        if name == "WBFM":
            # What gr-analog's wfm_tx does, without its console print.
            self.upsampler = filter.interp_fir_filter_fff(AUDIO_UPSAMPLE, interpolation_taps())
            self.preemphasis = analog.fm_preemph(SAMPLE_RATE_HZ, tau=75e-6)
            self.modulator = analog.frequency_modulator_fc(2 * np.pi * WBFM_DEVIATION_HZ / SAMPLE_RATE_HZ)
            self.connect(self.audio, self.upsampler, self.preemphasis, self.modulator, self)
        elif name == "AM-DSB":
            power = 1.0 + AM_DSB_INDEX ** 2 * mean_square
            self.upsampler = filter.interp_fir_filter_fff(AUDIO_UPSAMPLE, interpolation_taps())
            self.depth = blocks.multiply_const_ff(AM_DSB_INDEX / np.sqrt(power))
            self.carrier = blocks.add_const_ff(1.0 / np.sqrt(power))
            self.to_complex = blocks.float_to_complex()
            self.connect(self.audio, self.upsampler, self.depth, self.carrier, self.to_complex, self)
        elif name == "AM-SSB":
            self.hilbert = filter.hilbert_fc(HILBERT_TAPS, fft.window.WIN_HAMMING, 6.76)
            self.upsampler = filter.interp_fir_filter_ccf(AUDIO_UPSAMPLE, interpolation_taps())
            self.gain = blocks.multiply_const_cc(1.0 / np.sqrt(analytic_power(0)))
            self.connect(self.audio, self.hilbert, self.upsampler, self.gain, self)
        else:
            raise ValueError(f"no analog transmitter for {name!r}")


def make_transmitter(name, seed, max_samples=None):
    """The transmitter hier block for a class name of CLASSES; `max_samples` is how many
    output samples a finite run needs (None: endless)."""
    if name not in CLASSES:
        raise ValueError(f"unknown modulation {name!r}; expected one of {', '.join(CLASSES)}")
    if name in ("BPSK", "QPSK", "8PSK", "QAM16", "QAM64", "PAM4"):
        return linear_transmitter(name, seed)
    if name == "GFSK":
        return gfsk_transmitter(seed)
    if name == "CPFSK":
        return cpfsk_transmitter(seed)
    return analog_transmitter(name, seed, max_samples)
