"""From a stream to a verdict: test recordings of the shipped transmitters at any
sample rate (`shapft record`), classification of a recording through the blocks a live
flowgraph uses (`shapft classify`), and the reference those verdicts are judged by:
the same classes straight from channel_model_source at the same SNR."""
import math

import numpy as np
from gnuradio import blocks, gr

from ..blocks import transmitters
from ..blocks.channel_model_source import channel_model_source, make_channel
from ..blocks.classifier_sink import classifier_sink
from ..blocks.negative_point_mask import negative_point_mask
from ..blocks.sigmf_source import sigmf_source
from ..blocks.stream_framer import stream_framer
from ..core import framing, model_file, stream_recording
from ..core.radioml import FRAME_LENGTH, SAMPLE_RATE_HZ

TRANSIENT_SAMPLES = 4096    # at 200 kHz: the channel's filters and fading start up
# Fading is slow (1 Hz Doppler): a fraction of a second of one channel sees one fade,
# and a class's accuracy is an average over fades. So recordings and references take
# their frames from many independent channels, about 20 frames from each.
FRAMES_PER_CHAIN = 20
REFERENCE_CHAINS = 16


def noise_amplitude_in_band(snr_db, sample_rate):
    """AWGN amplitude at `sample_rate` that gives `snr_db` for a unit-power signal in the
    model's 200 kHz band: the noise's power spreads over the whole sample rate."""
    return math.sqrt(sample_rate / SAMPLE_RATE_HZ * 10 ** (-snr_db / 10))


def chains_for(frames):
    """Independent channels that give `frames` frames, FRAMES_PER_CHAIN from each."""
    return max(1, math.ceil(frames / FRAMES_PER_CHAIN))


def record_noise(snr_db, sample_rate, seconds, seed):
    """(samples, segments): the noise of record_transmitters for `snr_db`, no signal (an
    empty channel, for the energy gate); no segments."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).generate_state(1)[0])
    n = int(round(seconds * sample_rate))
    amplitude = noise_amplitude_in_band(snr_db, sample_rate)
    return (amplitude / math.sqrt(2) * (rng.standard_normal(n) + 1j * rng.standard_normal(n))).astype(np.complex64), []


CHANNELS = ("radioml", "awgn")


def record_transmitters(modulations, snr_db, sample_rate, offset_hz, seconds_per_class, seed, channel="radioml"):
    """(samples, segments): every modulation in turn for `seconds_per_class`, from
    independent transmitter and channel pairs (channel "radioml": channel_model_source's
    channel, its noise off; "awgn": none, noise only; chains_for the frames that makes
    at the model's rate), resampled from
    200 kHz to `sample_rate`, shifted by `offset_hz`, AWGN added for `snr_db` in the
    model's band. One segment (label, snr_db) per chain.

    GNU Radio makes the 200 kHz signals; resampling, shift and noise are numpy's
    (scipy.signal.resample_poly), because GNU Radio's FIR filters round differently
    with their buffers' alignment and the same seed must give the same bytes."""
    from scipy import signal
    interpolation, decimation = framing.resampling_ratio(SAMPLE_RATE_HZ, sample_rate)
    chains = chains_for(seconds_per_class * SAMPLE_RATE_HZ / FRAME_LENGTH)
    per_chain = int(round(seconds_per_class * sample_rate / chains))
    if per_chain < 1:
        raise ValueError(f"--seconds: {seconds_per_class} s at {sample_rate:g} Hz in {chains} pieces is no sample")
    at_model_rate = int(math.ceil(per_chain * decimation / interpolation)) + 64   # + the filter's edge
    seeds = np.random.SeedSequence(seed).generate_state(3 * len(modulations) * chains)
    amplitude = noise_amplitude_in_band(snr_db, sample_rate)
    pieces, segments, start = [], [], 0
    for m, name in enumerate(modulations):
        for c in range(chains):
            s = [int(v >> 1) for v in seeds[3 * (m * chains + c):3 * (m * chains + c) + 3]]
            tb = gr.top_block()
            sink = blocks.vector_sink_c()
            faded = [make_channel(math.inf, s[1])] if channel == "radioml" else []
            tb.connect(transmitters.make_transmitter(name, s[0], TRANSIENT_SAMPLES + at_model_rate + 4096),
                       *faded, blocks.skiphead(gr.sizeof_gr_complex, TRANSIENT_SAMPLES),
                       blocks.head(gr.sizeof_gr_complex, at_model_rate), sink)
            tb.run()
            clean = np.array(sink.data(), dtype=np.complex128)
            piece = signal.resample_poly(clean, interpolation, decimation)[:per_chain]
            n = start + np.arange(len(piece))
            piece = piece * np.exp(2j * np.pi * offset_hz / sample_rate * n)
            rng = np.random.default_rng(s[2])
            piece += amplitude / math.sqrt(2) * (rng.standard_normal(len(piece)) + 1j * rng.standard_normal(len(piece)))
            pieces.append(piece.astype(np.complex64))
            segments.append(dict(sample_start=start, sample_count=len(piece), label=name, snr_db=snr_db))
            start += len(piece)
    return np.concatenate(pieces), segments


def write_recording(base, modulations, snr_db, sample_rate, offset_hz, seconds_per_class, seed, overwrite=False,
                    channel="radioml"):
    """record_transmitters written as a SigMF stream recording at `base`; no modulations:
    record_noise for as long as one class would last."""
    if modulations:
        samples, segments = record_transmitters(modulations, snr_db, sample_rate, offset_hz, seconds_per_class,
                                                seed, channel)
        description = (f"gr-shapft transmitters at {sample_rate:g} Hz, offset {offset_hz:g} Hz, "
                       f"SNR {snr_db:g} dB in a 200 kHz band, channel {channel}")
    else:
        samples, segments = record_noise(snr_db, sample_rate, seconds_per_class, seed)
        description = f"noise only at {sample_rate:g} Hz, as for SNR {snr_db:g} dB in a 200 kHz band"
    info = dict(generator="shapft record", modulations=list(modulations), snr_db=snr_db, channel=channel,
                offset_hz=offset_hz, seconds_per_class=seconds_per_class, seed=seed,
                snr_definition="in the model's 200 kHz band around the signal")
    return stream_recording.write(base, samples, sample_rate, segments, description, info, overwrite)


def _sink_after(tb, source, model_path, batch_size, device):
    """classifier_sink fed by `source` (frames of the model's full length), through the
    model's negative-point mask when it carries one."""
    sink = classifier_sink(model_path, batch_size=batch_size, publish=False, device=device)
    if model_file.read_metadata(model_path).get("mask"):
        mask = negative_point_mask(model_path)
        tb.connect(source, mask, sink)
    else:
        tb.connect(source, sink)
    return sink


def per_class(confusion, classes):
    """{class: (frames, accuracy)} from a confusion matrix [true, predicted] (classes with frames)."""
    return {name: (int(confusion[i].sum()), float(confusion[i, i] / confusion[i].sum()))
            for i, name in enumerate(classes) if confusion[i].sum()}


def classify_recording(recording_path, model_path, frequency_shift=0.0, hop=0,
                       gate_db=framing.DEFAULT_GATE_DB, batch_size=256, device="auto"):
    """Play a recording through stream_framer into classifier_sink (a live flowgraph
    with a file for a radio). Returns the framer's counts, the sink's summary and
    per-class accuracy over the labelled frames."""
    source = sigmf_source(recording_path)
    framer = stream_framer(model_path, samp_rate=source.sample_rate, frequency_shift=frequency_shift,
                           hop=hop, gate_db=gate_db)
    tb = gr.top_block()
    tb.connect(source, framer)
    sink = _sink_after(tb, framer, model_path, batch_size, device)
    tb.run()
    errors = framer.errors() + sink.errors()
    if errors:
        raise RuntimeError(f"the flowgraph reported errors: {'; '.join(errors)}")
    return {"sample_rate": source.sample_rate, "frames_cut": framer.frames_cut(),
            "frames_passed": framer.frames_passed(), "frames_gated": framer.frames_gated(),
            "frames_invalid": framer.frames_invalid(), "noise_floor_db": framer.noise_floor_db(),
            "gate_by_class": framer.frames_by_label(),
            "summary": sink.summary(), "accuracy": sink.accuracy(),
            "per_class": per_class(sink.confusion_matrix(), sink.classes)}


def reference_accuracy(model_path, modulations, snr_db, frames_per_class, seed, batch_size=256, device="auto"):
    """Per-class accuracy on frames of the same classes straight from channel_model_source
    at `snr_db`: what a recording's verdicts are compared with. The frames come from
    chains_for(frames_per_class) channels per class, REFERENCE_CHAINS per flowgraph
    (each chain is a transmitter and a channel: a flowgraph of hundreds would not start)."""
    classes = model_file.read_metadata(model_path)["classes"]
    confusion = np.zeros((len(classes),) * 2, dtype=np.int64)
    seeds = np.random.SeedSequence(seed).generate_state(len(modulations) * frames_per_class)
    runs = 0
    for name in modulations:
        left = frames_per_class
        while left > 0:
            frames = min(left, REFERENCE_CHAINS * FRAMES_PER_CHAIN)
            source = channel_model_source(modulations=[name], snrs_db=[snr_db], num_frames=frames,
                                          seed=int(seeds[runs] >> 1), chains_per_setting=chains_for(frames),
                                          output_buffer=1024)
            tb = gr.top_block()
            sink = _sink_after(tb, source, model_path, batch_size, device)
            tb.run()
            confusion += sink.confusion_matrix()
            left -= frames
            runs += 1
    return {"accuracy": float(np.trace(confusion) / confusion.sum()), "per_class": per_class(confusion, classes)}
