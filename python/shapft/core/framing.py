"""From a complex stream to the frames the classifiers take (stream_framer's library):
the resampling ratio to the model's rate, frame starts for a hop, per-frame unit power,
and the energy gate that keeps silence and empty channels away from the classifier
(unit power per frame: radioml_import.normalise_power, as for imported datasets).

The gate compares a frame's power with a running estimate of the noise floor. The
floor is estimated in the frequency domain, so a signal that never pauses does not
hide it: in a frame's Hann-windowed periodogram the bins a narrowband signal does not
occupy hold noise only, and noise bins follow an exponential distribution. Consecutive
mean excision (FCME) finds them: starting from the bins' lower quartile, bins more
than EXCISION times the estimate are set aside as signal and the rest's mean, corrected
for the truncation, is the new estimate; three rounds. Only bins inside the
resampler's passband count (its roll-off would pull the estimate down). The floor is
the median of the last `floor_frames` per-frame estimates.
"""
import collections
import fractions
import math

import numpy as np

from . import params

# Quartile of the exponential distribution (a complex Gaussian bin's power over its mean).
_NOISE_QUANTILE = 0.25
_NOISE_QUANTILE_OF_MEAN = -math.log(1.0 - _NOISE_QUANTILE)
# FCME: a noise bin exceeds 4.6 times the mean with probability 1 %; the mean of the
# bins below is that fraction of the true mean.
EXCISION = 4.6
_TRUNCATED_MEAN = (1.0 - (EXCISION + 1.0) * math.exp(-EXCISION)) / (1.0 - math.exp(-EXCISION))
_FCME_ROUNDS = 3
# Bins within this fraction of the sample rate around 0 Hz: inside the passband of
# GNU Radio's rational resampler (flat to 0.4, stopband from 0.5 of the output rate).
PASSBAND_FRACTION = 0.35

DEFAULT_GATE_DB = 1.0     # docs/live.md: noise-only input passes 0 %, 0 dB SNR signals 69-100 %
DEFAULT_FLOOR_FRAMES = 64


def resampling_ratio(samp_rate, model_rate, max_denominator=1000):
    """(interpolation, decimation) taking `samp_rate` to `model_rate` exactly, or a
    ValueError naming samp_rate when no ratio of integers up to max_denominator does
    (to 1 part in 10^6)."""
    samp_rate = params.number(samp_rate, "samp_rate")
    if samp_rate <= 0:
        raise ValueError(f"samp_rate: must be a positive number of samples per second, got {samp_rate:g}")
    ratio = fractions.Fraction(model_rate / samp_rate).limit_denominator(max_denominator)
    if abs(ratio * samp_rate - model_rate) > 1e-6 * model_rate:
        raise ValueError(f"samp_rate: {samp_rate:g} Hz has no rational resampling to the model's "
                         f"{model_rate:g} Hz with factors up to {max_denominator}")
    return ratio.numerator, ratio.denominator


def check_parameters(hop, frequency_shift, samp_rate, gate_db, floor_frames):
    """stream_framer's parameters, checked and converted, each refused by name:
    (hop, frequency_shift, gate_db or None, floor_frames)."""
    hop = params.integer(hop, "hop", minimum=1)
    frequency_shift = params.number(frequency_shift, "frequency_shift")
    if abs(frequency_shift) >= samp_rate / 2:
        raise ValueError(f"frequency_shift: must be within +-samp_rate/2 (+-{samp_rate / 2:g} Hz), "
                         f"got {frequency_shift:g}")
    gate_db = None if gate_db is None else params.number(gate_db, "gate_db")
    return hop, frequency_shift, gate_db, params.integer(floor_frames, "floor_frames", minimum=1)


def frame_starts(next_start, available_end, hop, frame_length, limit):
    """Absolute start indices of the frames that fit in the samples up to
    `available_end`, from `next_start` on, every `hop`, at most `limit`."""
    if next_start + frame_length > available_end or limit <= 0:
        return np.zeros(0, dtype=np.int64)
    count = min(limit, (available_end - frame_length - next_start) // hop + 1)
    return next_start + hop * np.arange(count, dtype=np.int64)


class NoiseFloorGate:
    """Decides which frames carry a signal: a frame passes when its power is at least
    `gate_db` dB above the running noise floor (module docstring). Frames with
    non-finite samples are refused as invalid and do not touch the floor; `gate_db`
    None passes every finite frame that is not all zero."""

    def __init__(self, frame_length, gate_db=DEFAULT_GATE_DB, floor_frames=DEFAULT_FLOOR_FRAMES):
        self.gate_db = gate_db
        self.window = np.hanning(frame_length + 2)[1:-1].astype(np.float32)
        self.window_power = float(np.mean(self.window ** 2))
        frequencies = np.fft.fftfreq(frame_length)
        self.passband = np.abs(frequencies) <= PASSBAND_FRACTION
        self.recent = collections.deque(maxlen=floor_frames)   # per-frame noise estimates

    def noise_estimates(self, frames):
        """Noise power per sample of each frame [N, L], by FCME on its periodogram."""
        spectrum = np.fft.fft(frames * self.window, axis=1)
        bins = (spectrum.real ** 2 + spectrum.imag ** 2)[:, self.passband] / (frames.shape[1] * self.window_power)
        estimate = np.quantile(bins, _NOISE_QUANTILE, axis=1) / _NOISE_QUANTILE_OF_MEAN
        for _ in range(_FCME_ROUNDS):
            noise = bins <= EXCISION * estimate[:, None]
            kept = np.maximum(noise.sum(axis=1), 1)
            estimate = np.where(estimate > 0, (bins * noise).sum(axis=1) / kept / _TRUNCATED_MEAN, 0.0)
        return estimate

    def floor(self):
        """The current noise floor (power per sample), nan before the first frame."""
        return float(np.median(self.recent)) if self.recent else math.nan

    def __call__(self, frames):
        """(passed, invalid, power_db_over_floor) for frames [N, L], in order: each
        frame is judged against the floor that includes the frames before it and itself."""
        n = len(frames)
        power = np.mean(frames.real ** 2 + frames.imag ** 2, axis=1)
        invalid = ~np.isfinite(power)
        over_floor_db = np.full(n, np.nan)
        passed = ~invalid & (power > 0)
        valid_index = np.flatnonzero(~invalid)
        estimates = self.noise_estimates(frames[valid_index]) if len(valid_index) else []
        for i, estimate in zip(valid_index, estimates):
            self.recent.append(estimate)
            floor = self.floor()
            if power[i] > 0 and floor > 0:
                over_floor_db[i] = 10.0 * math.log10(power[i] / floor)
            elif power[i] > 0:
                over_floor_db[i] = math.inf     # no noise at all in the passband
        if self.gate_db is not None:
            passed &= over_floor_db >= self.gate_db
        return passed, invalid, over_floor_db
