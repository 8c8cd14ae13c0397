#!/usr/bin/env python3
#
# Copyright 2026 gr-shapft authors
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""QA of channel_model_source in real flowgraphs: frame count, tags on every frame,
unit power, reproducibility, and the SNR the channel actually delivers."""
import math

import numpy as np
import pmt
from gnuradio import blocks, gr, gr_unittest

from gnuradio.shapft import channel_model_source
from gnuradio.shapft.core.radioml import CLASSES
import shapft_testing

DIGITAL = ["BPSK", "QPSK", "8PSK", "QAM16", "QAM64", "PAM4", "GFSK", "CPFSK", "WBFM"]
# Line of sight only: the received power equals the transmitted power in every frame,
# so the noise-to-signal ratio of each frame measures the AWGN level exactly.
LINE_OF_SIGHT = {"rician_k": 1e6, "delays": [0.0], "mags": [1.0]}


def run_source(max_noutput_items=None, picker_max_items=None, **kwargs):
    """Frames and tags of a finite source; the two limits change how GNU Radio splits
    the work into calls (all blocks', and the frame picker's, items per call)."""
    tb = gr.top_block()
    tb.source = channel_model_source(**kwargs)
    tb.sink = blocks.vector_sink_c(128)
    tb.connect(tb.source, tb.sink)
    if picker_max_items:
        tb.source.picker.set_max_noutput_items(picker_max_items)
    if max_noutput_items:
        tb.run(max_noutput_items)
    else:
        tb.run()
    frames = np.asarray(tb.sink.data(), dtype=np.complex64).reshape(-1, 128)
    return frames, tb.sink.tags()


def tags_by_frame(tags, key):
    return {t.offset: t.value for t in tags if pmt.symbol_to_string(t.key) == key}


def measured_snr_db(noisy, clean):
    """Mean per-frame signal-to-noise ratio of `noisy` given the noise-free frames of the
    same seeds: each noisy frame is (x + w)/|x + w|, each clean one x/|x|, so the part of
    a noisy frame orthogonal to its clean frame is the (scaled) noise."""
    scale = np.sum(noisy * np.conj(clean), axis=1) / np.sum(np.abs(clean) ** 2, axis=1)
    noise = noisy - scale[:, None] * clean
    ratio = np.abs(scale) ** 2 * np.sum(np.abs(clean) ** 2, axis=1) / np.sum(np.abs(noise) ** 2, axis=1)
    return 10 * np.log10(np.mean(ratio))


class qa_channel_model_source(gr_unittest.TestCase):

    def test_001_frame_count_tags_and_power(self):
        snrs = [-10.0, 4.0, 18.0]
        n = 2 * len(CLASSES) * len(snrs) + 5     # two full rounds and a partial one
        frames, tags = run_source(modulations=CLASSES, snrs_db=snrs, num_frames=n, seed=3)
        self.assertEqual(frames.shape, (n, 128))
        labels = tags_by_frame(tags, "label")
        snr_tags = tags_by_frame(tags, "snr_db")
        self.assertEqual(sorted(labels), list(range(n)))
        self.assertEqual(sorted(snr_tags), list(range(n)))
        self.assertTrue(all(pmt.symbol_to_string(v) in CLASSES for v in labels.values()))
        self.assertTrue(all(pmt.to_double(v) in snrs for v in snr_tags.values()))
        # Each full round holds every (class, SNR) setting exactly once.
        first_round = {(pmt.symbol_to_string(labels[i]), pmt.to_double(snr_tags[i]))
                       for i in range(len(CLASSES) * len(snrs))}
        self.assertEqual(len(first_round), len(CLASSES) * len(snrs))
        power = np.mean(np.abs(frames) ** 2, axis=1)
        np.testing.assert_allclose(power, 1.0, atol=1e-5)

    def test_002_same_seed_same_frames(self):
        kwargs = dict(modulations=["QAM16", "AM-SSB", "GFSK"], snrs_db=[0.0, 10.0], num_frames=40)
        a, tags_a = run_source(seed=11, **kwargs)
        b, tags_b = run_source(seed=11, **kwargs)
        c, _ = run_source(seed=12, **kwargs)
        np.testing.assert_array_equal(a, b)
        self.assertEqual([(t.offset, pmt.write_string(t.value)) for t in tags_a],
                         [(t.offset, pmt.write_string(t.value)) for t in tags_b])
        self.assertGreater(np.mean(np.abs(a - c)), 0.1)

    def test_003_frames_do_not_depend_on_scheduling(self):
        # Twelve chains (three classes, two SNRs, two chains each): one call of the
        # frame picker may cover one round or many, a few samples of a chain or many.
        kwargs = dict(modulations=["QAM16", "WBFM", "GFSK"], snrs_db=[0.0, 10.0], num_frames=101,
                      seed=4, chains_per_setting=2)
        reference, reference_tags = run_source(**kwargs)
        for limits in (dict(picker_max_items=12), dict(picker_max_items=36, output_buffer=64),
                       dict(max_noutput_items=96), dict(max_noutput_items=1000, output_buffer=512)):
            frames, tags = run_source(**limits, **kwargs)
            np.testing.assert_array_equal(frames, reference, err_msg=str(limits))
            self.assertEqual([(t.offset, pmt.write_string(t.value)) for t in tags],
                             [(t.offset, pmt.write_string(t.value)) for t in reference_tags])

    def test_004_measured_snr_follows_the_convention(self):
        # Physical: noise amplitude 10^(-SNR/20), the SNR as labelled. RadioML 2016.10a's
        # 10^(-SNR/10): twice the label in dB. The tags keep the label in both.
        kwargs = dict(modulations=DIGITAL, num_frames=360, seed=5, chains_per_setting=4,
                      channel=LINE_OF_SIGHT)
        clean, _ = run_source(snrs_db=[math.inf], **kwargs)
        for convention, label, expected in (("physical", 10.0, 10.0), ("physical", 18.0, 18.0),
                                            ("radioml", 5.0, 10.0), ("radioml", 9.0, 18.0)):
            noisy, tags = run_source(snrs_db=[label], snr_convention=convention, **kwargs)
            self.assertAlmostEqual(measured_snr_db(noisy, clean), expected, delta=0.5,
                                   msg=f"{convention} {label} dB")
            self.assertEqual({pmt.to_double(v) for v in tags_by_frame(tags, "snr_db").values()}, {label})

    def test_005_fading_channel_changes_frames(self):
        # The default channel (Rician fading, frequency and rate offsets) must do
        # something a line-of-sight channel does not: distort the waveform.
        kwargs = dict(modulations=["QPSK"], snrs_db=[math.inf], num_frames=20, seed=9)
        faded, _ = run_source(**kwargs)
        los, _ = run_source(channel=LINE_OF_SIGHT, **kwargs)
        self.assertGreater(np.mean(np.abs(faded - los)), 0.05)

    def test_006_bad_input_refused(self):
        bad = [dict(modulations=["QAM256"]), dict(modulations=[]), dict(snrs_db=[]),
               dict(snrs_db=[float("nan")]), dict(num_frames=-1), dict(window=64),
               dict(chains_per_setting=0), dict(snr_convention="RadioML"), dict(snr_convention=None)]
        for kwargs in bad:
            with self.assertRaises(ValueError) as ctx:
                channel_model_source(**kwargs)
            self.assertEqual(str(ctx.exception).split(":")[0], next(iter(kwargs)), str(ctx.exception))

    def test_007_endless_stream_with_head(self):
        tb = gr.top_block()
        tb.source = channel_model_source(modulations=["BPSK", "WBFM"], snrs_db=[6.0], seed=1)
        tb.head = blocks.head(gr.sizeof_gr_complex * 128, 50)
        tb.sink = blocks.vector_sink_c(128)
        tb.connect(tb.source, tb.head, tb.sink)
        tb.run()
        self.assertEqual(len(tb.sink.data()), 50 * 128)

    def test_008_output_buffer_sized_without_an_info_line(self):
        # GNU Radio's set_min_output_buffer(size) logs an info line on every call, so
        # every flowgraph with an Output Buffer (GRC's default 2048) printed one.
        with shapft_testing.captured_output() as output:
            frames, _ = run_source(modulations=["BPSK"], snrs_db=[6.0], num_frames=4, seed=1,
                                   output_buffer=2048)
        self.assertNotIn("set_min_output_buffer", output[0])
        self.assertEqual(len(frames), 4)
        source = channel_model_source(modulations=["BPSK"], snrs_db=[6.0], num_frames=4, output_buffer=2048)
        self.assertEqual(source.picker.min_output_buffer(0), 2048)


if __name__ == '__main__':
    gr_unittest.run(qa_channel_model_source)
