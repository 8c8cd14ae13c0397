#!/usr/bin/env python3
#
# Copyright 2026 gr-shapft authors
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""QA of attack_detector: tagged vector source -> detector -> vector sink, messages into
message_debug; scores compared with the detector file run offline on the same frames."""
import os
import tempfile

import numpy as np
import pmt
import torch
from gnuradio import blocks, gr, gr_unittest

from gnuradio.shapft import attack_detector, grc
from gnuradio.shapft.core import detector_file
from gnuradio.shapft.core.recording import to_model_input
import shapft_testing


def offline_scores(detector_path, frames):
    loaded = detector_file.load(detector_path)
    with torch.no_grad():
        return loaded.module(torch.from_numpy(to_model_input(frames))).numpy()


class qa_attack_detector(gr_unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.model_path = shapft_testing.write_model(os.path.join(cls.dir.name, "m.pt"), "cnn_lstm")
        cls.detector_path = shapft_testing.write_detector(os.path.join(cls.dir.name, "d.pt"), cls.model_path)

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def run_detector(self, frames, tags=(), **kwargs):
        tb = gr.top_block()
        source = blocks.vector_source_c(frames.reshape(-1).tolist(), False, frames.shape[1], list(tags))
        detector = attack_detector(self.detector_path, **kwargs)
        sink = blocks.vector_sink_c(frames.shape[1])
        debug = blocks.message_debug()
        tb.connect(source, detector, sink)
        tb.msg_connect(detector, "detection", debug, "store")
        shapft_testing.run_to_end(tb)
        messages = [pmt.to_python(debug.get_message(i)) for i in range(debug.num_messages())]
        out = np.array(sink.data(), dtype=np.complex64).reshape(-1, frames.shape[1])
        return detector, out, sink.tags(), messages

    def test_001_scores_equal_offline_frames_unchanged(self):
        frames = shapft_testing.random_frames(700, seed=1)
        tag = gr.tag_utils.python_to_tag
        tags = [tag((i, pmt.intern("label"), pmt.intern("BPSK"))) for i in range(0, 700, 7)]
        detector, out, out_tags, messages = self.run_detector(frames, tags, batch_size=64, num_threads=2)
        np.testing.assert_array_equal(out, frames)   # all frames out, in order, unchanged
        expected = offline_scores(self.detector_path, frames)
        scores = np.array([m["score"] for m in messages])
        self.assertEqual([m["frame_index"] for m in messages], list(range(700)))
        np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
        threshold = detector_file.load(self.detector_path).threshold_for(0.05)
        self.assertAlmostEqual(detector.threshold_value(), threshold)
        self.assertEqual([m["detected"] for m in messages], (expected > threshold).tolist())
        by_key = {}
        for t in out_tags:
            by_key.setdefault(pmt.symbol_to_string(t.key), []).append((t.offset, pmt.to_python(t.value)))
        self.assertEqual([offset for offset, _ in by_key["label"]], list(range(0, 700, 7)))
        self.assertEqual([offset for offset, _ in by_key["attack_score"]], list(range(700)))
        np.testing.assert_allclose([v for _, v in by_key["attack_score"]], expected, rtol=1e-5, atol=1e-6)
        self.assertEqual([v for _, v in by_key["attack_detected"]], (expected > threshold).tolist())
        self.assertEqual(detector.frames_scored(), 700)
        self.assertAlmostEqual(detector.alarm_rate(), float(np.mean(expected > threshold)))

    def test_001b_small_output_windows_after_large_ones(self):
        # A slow block downstream offers the detector output windows of a few frames
        # after it queued chunks from larger ones: every frame still leaves once, in
        # order, scored as offline.
        frames = shapft_testing.random_frames(300, seed=11)
        tb = gr.top_block()
        source = blocks.vector_source_c(frames.reshape(-1).tolist(), False, frames.shape[1])
        detector = shapft_testing.window_recording(attack_detector)(self.detector_path, batch_size=4, num_threads=2)
        slow = shapft_testing.SlowConsumer(frames.shape[1])
        sink = blocks.vector_sink_c(frames.shape[1])
        tb.connect(source, detector, slow, sink)
        shapft_testing.run_to_end(tb)
        np.testing.assert_array_equal(np.array(sink.data(), dtype=np.complex64).reshape(-1, frames.shape[1]),
                                      frames)
        scores = [pmt.to_python(t.value) for t in sink.tags() if pmt.symbol_to_string(t.key) == "attack_score"]
        np.testing.assert_allclose(scores, offline_scores(self.detector_path, frames), rtol=1e-5, atol=1e-6)
        self.assertEqual(detector.frames_scored(), len(frames))
        self.assertTrue(shapft_testing.small_windows(detector.windows, 4 * 4 * 2, len(frames)))   # < a chunk

    def test_002_invalid_frames_counted_passed_unscored(self):
        frames = shapft_testing.random_frames(40, seed=2)
        frames[3, 5] = np.nan
        frames[4, 0] = np.inf
        frames[5] = 0
        detector, out, out_tags, messages = self.run_detector(frames)
        np.testing.assert_array_equal(out[np.r_[0:3, 6:40]], frames[np.r_[0:3, 6:40]])
        self.assertTrue(np.isnan(out[3, 5]) and np.isinf(out[4, 0].real) and not out[5].any())
        self.assertEqual(detector.frames_in(), 40)
        self.assertEqual(detector.frames_invalid(), 3)
        self.assertEqual(detector.frames_scored(), 37)
        self.assertEqual([(m["valid"], m.get("reason")) for m in messages[3:6]],
                         [(False, "nan"), (False, "inf"), (False, "zero")])
        scored = sorted(t.offset for t in out_tags if pmt.symbol_to_string(t.key) == "attack_score")
        self.assertEqual(scored, [i for i in range(40) if i not in (3, 4, 5)])
        good = np.r_[0:3, 6:40]
        np.testing.assert_allclose([messages[i]["score"] for i in good],
                                   offline_scores(self.detector_path, frames[good]), rtol=1e-5, atol=1e-6)

    def test_003_threshold_callbacks(self):
        frames = shapft_testing.random_frames(200, seed=3)
        expected = offline_scores(self.detector_path, frames)
        threshold = float(np.median(expected))
        detector, _, _, messages = self.run_detector(frames, threshold=threshold)
        self.assertEqual(detector.frames_detected(), int(np.sum(expected > threshold)))
        self.assertEqual({m["threshold"] for m in messages}, {threshold})
        loaded = detector_file.load(self.detector_path)
        detector.set_false_alarm_rate(0.2)
        self.assertAlmostEqual(detector.threshold_value(), loaded.threshold_for(0.2))
        self.assertAlmostEqual(detector.false_alarm_rate(), 0.2, places=3)
        for bad, name in ((0.0, "false_alarm_rate"), (1.5, "false_alarm_rate"), ("x", "false_alarm_rate")):
            with self.assertRaisesRegex((ValueError, TypeError), name):
                detector.set_false_alarm_rate(bad)
        with self.assertRaisesRegex(ValueError, "threshold"):
            detector.set_threshold(float("nan"))
        self.assertAlmostEqual(detector.threshold_value(), loaded.threshold_for(0.2))   # unchanged

    def test_004_bad_construction_refused(self):
        with self.assertRaisesRegex(ValueError, "detector_path: .*does not exist"):
            attack_detector(os.path.join(self.dir.name, "missing.pt"))
        with self.assertRaisesRegex(ValueError, "detector_path: .*is not an attack detector"):
            attack_detector(self.model_path)
        with self.assertRaisesRegex(ValueError, "false_alarm_rate"):
            attack_detector(self.detector_path, false_alarm_rate=0)
        with self.assertRaisesRegex(ValueError, "vector_length: 100 does not match"):
            attack_detector(self.detector_path, vector_length=100)
        with self.assertRaisesRegex(ValueError, "batch_size"):
            attack_detector(self.detector_path, batch_size=0)
        with self.assertRaisesRegex(ValueError, "precision"):
            attack_detector(self.detector_path, precision="fp16")
        for device in shapft_testing.unavailable_devices():
            with self.assertRaisesRegex(ValueError, f"^device: {device} is not available \\([^\n]*\\)$"):
                attack_detector(self.detector_path, device=device)
        self.assertEqual(grc.detector_frame_length(self.detector_path), 128)

    def test_005_failure_passes_frames_on(self):
        frames = shapft_testing.random_frames(300, seed=4)
        tb = gr.top_block()
        source = blocks.vector_source_c(frames.reshape(-1).tolist(), False, 128)
        detector = attack_detector(self.detector_path, batch_size=32)
        sink = blocks.vector_sink_c(128)
        tb.connect(source, detector, sink)
        calls = {"n": 0}
        module = detector.detector.module

        def failing_after_warm_up(x):
            calls["n"] += 1
            if calls["n"] > 3 * detector.num_threads:   # each worker warms up with 3 calls
                raise RuntimeError("detector failed")
            return module(x)

        detector.detector.module = failing_after_warm_up
        shapft_testing.run_to_end(tb)
        out = np.array(sink.data(), dtype=np.complex64).reshape(-1, 128)
        self.assertTrue(detector.errors() and "detector failed" in detector.errors()[0])
        self.assertEqual(detector.frames_in(), 300)
        self.assertEqual(detector.frames_scored() + detector.frames_dropped(), 300)
        np.testing.assert_array_equal(out, frames)


if __name__ == "__main__":
    gr_unittest.run(qa_attack_detector)
