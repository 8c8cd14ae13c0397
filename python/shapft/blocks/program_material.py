"""Synthetic program material for the analog modulations (AM-DSB, AM-SSB, WBFM).

RadioML modulated a recorded radio serial; nothing can be downloaded here, so we
synthesise a broadcast-like programme: speech turns (a source-filter vowel model:
a glottal pulse train with a falling, jittered pitch contour through three formant
resonators, syllable envelopes, noise-burst consonants and pauses between phrases)
alternating with music (chords of harmonic notes with attack/decay envelopes).
The result is band-limited to 8 kHz and peak-normalised to 1. It is seeded, so the
same seed gives the same programme.
"""
import functools

import numpy as np
from scipy import signal

AUDIO_RATE_HZ = 40e3
AUDIO_BANDWIDTH_HZ = 8e3

# (F1, F2, F3) in Hz of five vowels, adult speaker averages.
_VOWEL_FORMANTS = np.array([[730, 1090, 2440], [530, 1840, 2480], [270, 2290, 3010],
                            [570, 840, 2410], [300, 870, 2240]], dtype=float)


@functools.lru_cache(maxsize=8)
def programme(seed, seconds=12.0, rate=AUDIO_RATE_HZ):
    """float32 audio of `seconds` at `rate`, peak 1: speech turns and music."""
    rng = np.random.default_rng([seed, 0x5A11])
    total = int(seconds * rate)
    parts, length = [], 0
    while length < total:
        part = _speech_turn(rng, rate) if rng.random() < 0.7 else _music_phrase(rng, rate)
        parts += [part, np.zeros(int(rng.uniform(0.05, 0.4) * rate))]
        length += len(part) + len(parts[-1])
    audio = np.concatenate(parts)[:total]
    sos = signal.butter(8, AUDIO_BANDWIDTH_HZ, fs=rate, output="sos")
    audio = signal.sosfilt(sos, audio)
    audio /= np.max(np.abs(audio))
    audio.setflags(write=False)
    return audio.astype(np.float32)


def _speech_turn(rng, rate):
    syllables = []
    f0_start = rng.uniform(95, 230)
    n_syllables = rng.integers(4, 16)
    for k in range(n_syllables):
        # Declination: pitch falls over a phrase.
        f0 = f0_start * (1 - 0.25 * k / n_syllables) * rng.uniform(0.95, 1.05)
        syllables.append(_syllable(rng, rate, f0))
        if rng.random() < 0.15:  # a short pause inside the turn
            syllables.append(np.zeros(int(rng.uniform(0.08, 0.25) * rate)))
    return np.concatenate(syllables)


def _syllable(rng, rate, f0):
    n = int(rng.uniform(0.12, 0.32) * rate)
    t = np.arange(n) / rate
    # Glottal source: pulse train with jitter, smoothed into a glottal-like pulse.
    pitch = f0 * (1 + 0.03 * np.sin(2 * np.pi * rng.uniform(3, 6) * t)) * (1 + 0.01 * rng.standard_normal())
    phase = np.cumsum(pitch / rate)
    pulses = np.diff(np.floor(phase), prepend=0.0)
    source = signal.lfilter([1.0], [1.0, -0.97], pulses)  # spectral tilt of the glottis
    formants = _VOWEL_FORMANTS[rng.integers(len(_VOWEL_FORMANTS))] * rng.uniform(0.9, 1.15)
    voiced = np.zeros(n)
    for i, (freq, bw) in enumerate(zip(formants, (80.0, 100.0, 140.0))):
        b, a = _resonator(freq, bw, rate)
        voiced += signal.lfilter(b, a, source) * (1.0, 0.6, 0.3)[i]
    envelope = np.sin(np.pi * np.arange(n) / n) ** 0.7
    syllable = voiced * envelope
    if rng.random() < 0.5:  # a fricative or plosive before the vowel
        m = int(rng.uniform(0.02, 0.08) * rate)
        b, a = signal.butter(2, [2500, min(7000, rate / 2 - 1)], btype="band", fs=rate)
        burst = signal.lfilter(b, a, rng.standard_normal(m)) * np.hanning(m)
        syllable = np.concatenate([burst * 0.3 * np.std(voiced) / (np.std(burst) + 1e-12), syllable])
    return syllable / (np.max(np.abs(syllable)) + 1e-12)


def _resonator(freq, bandwidth, rate):
    r = np.exp(-np.pi * bandwidth / rate)
    theta = 2 * np.pi * freq / rate
    return [1 - r], [1.0, -2 * r * np.cos(theta), r * r]


def _music_phrase(rng, rate):
    beat = 60.0 / rng.uniform(90, 140)
    root = 220.0 * 2 ** (rng.integers(-5, 7) / 12)
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    notes = []
    for _ in range(rng.integers(4, 12)):
        n = int(beat * rng.choice([0.5, 1.0, 2.0]) * rate)
        t = np.arange(n) / rate
        chord = root * 2 ** (rng.choice(scale, size=3, replace=False) / 12)
        tone = sum(np.sin(2 * np.pi * h * f * t) / h for f in chord for h in range(1, 5))
        envelope = np.minimum(t / 0.01, 1.0) * np.exp(-t / (0.6 * beat))
        notes.append(tone * envelope / 6.0)
    return np.concatenate(notes)
