#!/usr/bin/env python3
#
# Copyright 2026 gr-shapft authors
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""QA of stream_framer and sigmf_source in real flowgraphs: frame counts and positions
for several rates and hops, unit power, the energy gate on noise and on signals,
tags, bad parameters."""
import os
import tempfile

import numpy as np
import pmt
from gnuradio import analog, blocks, filter, gr, gr_unittest

from gnuradio.shapft import sigmf_source, stream_framer
from gnuradio.shapft.blocks import transmitters
from gnuradio.shapft.core import framing, stream_recording
from gnuradio.shapft.core.radioml_import import normalise_power
import shapft_testing


def tags_by_key(sink, key):
    return {tag.offset: tag.value for tag in sink.tags() if pmt.symbol_to_string(tag.key) == key}


def run(samples, framer, source_tags=()):
    tb = gr.top_block()
    source = blocks.vector_source_c(np.asarray(samples, dtype=np.complex64).tolist(), False, 1, list(source_tags))
    sink = blocks.vector_sink_c(framer.frame_length)
    tb.connect(source, framer, sink)
    shapft_testing.run_to_end(tb)
    frames = np.array(sink.data(), dtype=np.complex64).reshape(-1, framer.frame_length)
    return frames, sink


def noise(n, seed, power=1.0):
    rng = np.random.default_rng(seed)
    return (np.sqrt(power / 2) * (rng.standard_normal(n) + 1j * rng.standard_normal(n))).astype(np.complex64)


def transmitted(name, n, snr_db, seed):
    """n samples of a shipped transmitter at 200 kHz with AWGN at snr_db (unit signal power)."""
    tb = gr.top_block()
    add, sink = blocks.add_cc(), blocks.vector_sink_c()
    tb.connect(transmitters.make_transmitter(name, seed, n + 8192), (add, 0))
    tb.connect(analog.noise_source_c(analog.GR_GAUSSIAN, 10 ** (-snr_db / 20), seed + 1), (add, 1))
    tb.connect(add, blocks.head(gr.sizeof_gr_complex, n + 4096), sink)
    tb.run()
    return np.array(sink.data()[4096:], dtype=np.complex64)


class qa_stream_framer(gr_unittest.TestCase):

    def test_001_contiguous_frames_at_the_model_rate_are_the_stream_cut_and_scaled(self):
        samples = noise(128 * 10 + 50, seed=1) * 3.0
        frames, sink = run(samples, stream_framer(gate_db=None))
        self.assertEqual(frames.shape, (10, 128))
        expected = normalise_power(samples[:1280].reshape(10, 128))
        np.testing.assert_allclose(frames, expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.mean(np.abs(frames) ** 2, axis=1), 1.0, rtol=1e-5)
        indices = tags_by_key(sink, "sample_index")
        self.assertEqual({k: pmt.to_uint64(v) for k, v in indices.items()}, {i: 128 * i for i in range(10)})

    def test_002_hops_overlap_and_skip(self):
        samples = noise(2000, seed=2)
        for hop in (32, 64, 128, 200, 384):
            framer = stream_framer(hop=hop, gate_db=None)
            frames, sink = run(samples, framer)
            count = (2000 - 128) // hop + 1
            self.assertEqual(len(frames), count, f"hop {hop}")
            starts = [pmt.to_uint64(v) for _, v in sorted(tags_by_key(sink, "sample_index").items())]
            self.assertEqual(starts, [hop * i for i in range(count)], f"hop {hop}")
            np.testing.assert_allclose(frames[-1], normalise_power(samples[None, starts[-1]:starts[-1] + 128])[0],
                                       rtol=1e-5, atol=1e-6)
            self.assertEqual((framer.frames_cut(), framer.frames_passed(), framer.frames_gated()), (count, count, 0))

    def test_003_resampled_frames_match_the_resampler_output_cut_by_the_library(self):
        samples = noise(20000, seed=3)
        for samp_rate, ratio in ((1e6, (1, 5)), (400e3, (1, 2)), (250e3, (4, 5)), (100e3, (2, 1)), (240e3, (5, 6))):
            framer = stream_framer(samp_rate=samp_rate, gate_db=None)
            self.assertEqual((framer.interpolation, framer.decimation), ratio)
            frames, sink = run(samples, framer)
            tb = gr.top_block()
            resampled = blocks.vector_sink_c()
            tb.connect(blocks.vector_source_c(samples.tolist()), filter.rational_resampler_ccc(*ratio), resampled)
            tb.run()
            at_model_rate = np.array(resampled.data(), dtype=np.complex64)
            starts = framing.frame_starts(0, len(at_model_rate), 128, 128, 10 ** 6)
            self.assertEqual(len(frames), len(starts), samp_rate)
            expected = normalise_power(at_model_rate[starts[:, None] + np.arange(128)])
            # atol: GNU Radio's FIR filters round differently with their buffers' alignment
            np.testing.assert_allclose(frames, expected, rtol=1e-4, atol=1e-4)
            # sample_index: the input sample at the frame's first sample, less the filter's delay
            delay = (len(framer.resampler.taps()) - 1) / 2
            indices = [pmt.to_uint64(v) for _, v in sorted(tags_by_key(sink, "sample_index").items())]
            self.assertEqual(indices, [max(0, round((s * ratio[1] - delay) / ratio[0])) for s in starts.tolist()])

    def test_004_sample_index_finds_a_burst_in_the_input_stream(self):
        # A burst starting at input sample 30,000 of a 1 Msps stream: the first frame the
        # gate passes is the one the burst starts in or the next (640 input samples
        # each), give or take the resampler's delay.
        samples = noise(60000, seed=4, power=0.01)
        samples[30000:] += transmitted("QPSK", 30000 // 5 + 64, 30, seed=5).repeat(5)[:30000]
        framer = stream_framer(samp_rate=1e6)
        frames, sink = run(samples, framer)
        first = int(min(pmt.to_uint64(v) for v in tags_by_key(sink, "sample_index").values()))
        delay = (len(framer.resampler.taps()) - 1) / 2
        self.assertTrue(30000 - 640 - delay <= first <= 30000 + 640, first)
        self.assertGreater(framer.frames_gated(), 0)

    def test_005_gate_drops_noise_and_passes_signals_at_0_db(self):
        framer = stream_framer()
        run(noise(128 * 2000, seed=6, power=0.3), framer)
        dropped = framer.frames_gated() / framer.frames_cut()
        self.assertGreaterEqual(dropped, 0.95)
        for name in ("QPSK", "QAM16", "GFSK", "WBFM"):
            framer = stream_framer()
            run(transmitted(name, 128 * 300, 0.0, seed=7), framer)
            passed = framer.frames_passed() / framer.frames_cut()
            self.assertGreaterEqual(passed, 0.9, name)
            self.assertEqual(framer.frames_cut(), framer.frames_passed() + framer.frames_gated() + framer.frames_invalid())

    def test_006_non_finite_and_silent_frames_are_dropped_and_counted(self):
        samples = noise(128 * 6, seed=8)
        samples[130] = np.nan
        samples[128 * 3:128 * 4] = 0
        framer = stream_framer(gate_db=None)
        frames, _ = run(samples, framer)
        self.assertEqual(len(frames), 4)
        self.assertTrue(np.all(np.isfinite(frames)))
        self.assertEqual((framer.frames_invalid(), framer.frames_gated()), (1, 1))

    def test_007_label_and_snr_tags_reach_the_frames_they_fall_in(self):
        samples = noise(128 * 8, seed=9)
        tags = [gr.tag_utils.python_to_tag((0, pmt.intern("label"), pmt.intern("BPSK"))),
                gr.tag_utils.python_to_tag((0, pmt.intern("snr_db"), pmt.from_double(10.0))),
                gr.tag_utils.python_to_tag((300, pmt.intern("label"), pmt.intern("QPSK"))),
                gr.tag_utils.python_to_tag((300, pmt.intern("snr_db"), pmt.from_double(4.0)))]
        framer = stream_framer(gate_db=None)
        frames, sink = run(samples, framer, tags)
        labels = {k: pmt.symbol_to_string(v) for k, v in tags_by_key(sink, "label").items()}
        snrs = {k: pmt.to_double(v) for k, v in tags_by_key(sink, "snr_db").items()}
        # frames start at 0, 128, 256, 384, ...: the change at 300 applies from the frame at 384
        self.assertEqual(labels, {0: "BPSK", 1: "BPSK", 2: "BPSK", **{i: "QPSK" for i in range(3, 8)}})
        self.assertEqual(snrs, {0: 10.0, 1: 10.0, 2: 10.0, **{i: 4.0 for i in range(3, 8)}})
        self.assertEqual(framer.frames_by_label(), {"BPSK": (3, 3), "QPSK": (5, 5)})

    def test_008_frequency_shift_centres_an_offset_signal(self):
        n = 128 * 5 * 40
        tone = np.exp(2j * np.pi * 20e3 / 1e6 * np.arange(n)).astype(np.complex64)
        for shift, peak_hz in ((0.0, 20e3), (-20e3, 0.0)):
            frames, _ = run(tone, stream_framer(samp_rate=1e6, frequency_shift=shift, gate_db=None))
            spectrum = np.mean(np.abs(np.fft.fft(frames[5:], axis=1)) ** 2, axis=0)
            self.assertAlmostEqual(np.fft.fftfreq(128, 1 / 200e3)[np.argmax(spectrum)], peak_hz, delta=200e3 / 128)

    def test_009_model_file_gives_the_frame_length(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.pt")
            shapft_testing.write_model(path, frame_length=64)
            framer = stream_framer(model_path=path, gate_db=None)
            frames, _ = run(noise(64 * 5, seed=10), framer)
            self.assertEqual(frames.shape, (5, 64))

    def test_010_bad_parameters_are_refused_by_name(self):
        cases = [(dict(hop=-1), "hop:"), (dict(hop=1.5), "hop:"), (dict(samp_rate=0), "samp_rate:"),
                 (dict(samp_rate=200e3 * 1.0001), "samp_rate:"), (dict(samp_rate="fast"), "samp_rate:"),
                 (dict(samp_rate=1e6, frequency_shift=600e3), "frequency_shift:"),
                 (dict(gate_db=float("nan")), "gate_db:"), (dict(floor_frames=0), "floor_frames:"),
                 (dict(model_path="/nonexistent/m.pt"), "model_path:")]
        for kwargs, name in cases:
            with self.assertRaises((ValueError, TypeError), msg=str(kwargs)) as caught:
                stream_framer(**kwargs)
            self.assertTrue(str(caught.exception).startswith(name), str(caught.exception))


class qa_sigmf_source(gr_unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.base = os.path.join(self.dir.name, "rec")
        self.samples = noise(5000, seed=11)
        segments = [dict(sample_start=0, sample_count=2000, label="BPSK", snr_db=18.0),
                    dict(sample_start=2000, sample_count=3000, label="QPSK", snr_db=6.0)]
        stream_recording.write(self.base, self.samples, 1e6, segments, "qa")

    def tearDown(self):
        self.dir.cleanup()

    def play(self, source, limit=None):
        tb = gr.top_block()
        sink = blocks.vector_sink_c()
        if limit:
            tb.connect(source, blocks.head(gr.sizeof_gr_complex, limit), sink)
        else:
            tb.connect(source, sink)
        shapft_testing.run_to_end(tb)
        return np.array(sink.data(), dtype=np.complex64), sink

    def test_001_plays_the_samples_with_segment_tags(self):
        source = sigmf_source(self.base + ".sigmf-meta")
        self.assertEqual(source.sample_rate, 1e6)
        data, sink = self.play(source)
        np.testing.assert_array_equal(data, self.samples)
        labels = {k: pmt.symbol_to_string(v) for k, v in tags_by_key(sink, "label").items()}
        self.assertEqual(labels, {0: "BPSK", 2000: "QPSK"})
        self.assertEqual({k: pmt.to_double(v) for k, v in tags_by_key(sink, "snr_db").items()}, {0: 18.0, 2000: 6.0})
        self.assertEqual(pmt.to_double(tags_by_key(sink, "rx_rate")[0]), 1e6)

    def test_002_repeat_starts_again_with_its_tags(self):
        data, sink = self.play(sigmf_source(self.base, repeat=True), limit=12000)
        np.testing.assert_array_equal(data, np.tile(self.samples, 3)[:12000])
        self.assertEqual(sorted(tags_by_key(sink, "label")), [0, 2000, 5000, 7000, 10000])

    def test_003_bad_recordings_are_refused_by_name(self):
        with open(self.base + ".sigmf-data", "ab") as data:
            data.write(b"\0\0\0")
        for path in (self.base, os.path.join(self.dir.name, "missing"), ""):
            with self.assertRaises((ValueError, FileNotFoundError)) as caught:
                sigmf_source(path)
            self.assertTrue(str(caught.exception).startswith("recording_path:"), str(caught.exception))


if __name__ == '__main__':
    gr_unittest.run(qa_stream_framer)   # runs every TestCase of the module
