#!/usr/bin/env python3
#
# Copyright 2026 gr-shapft authors
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""QA of negative_point_mask: vector source -> mask -> vector sink."""
import json
import os
import tempfile

import numpy as np
import pmt
from gnuradio import blocks, gr, gr_unittest

from gnuradio.shapft import negative_point_mask
from gnuradio.shapft.core import masks
import shapft_testing

DROP = [0, 3, 4, 17, 64, 100, 127]


def tagged_source(frames):
    tags = []
    for i in range(len(frames)):
        tags.append(gr.tag_utils.python_to_tag((i, pmt.intern("label"), pmt.intern("QPSK"))))
        tags.append(gr.tag_utils.python_to_tag((i, pmt.intern("snr_db"), pmt.from_double(float(i)))))
    return blocks.vector_source_c(frames.reshape(-1).tolist(), False, frames.shape[1], tags)


class qa_negative_point_mask(gr_unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.mask_path = os.path.join(self.dir.name, "mask.json")
        masks.save(self.mask_path, masks.make_mask(DROP, 128, "fgsm", 0.05, "0" * 64))
        self.frames = shapft_testing.random_frames(37, seed=1)

    def tearDown(self):
        self.dir.cleanup()

    def run_mask(self, mask_path, mode):
        tb = gr.top_block()
        tb.source = tagged_source(self.frames)
        tb.mask = negative_point_mask(mask_path, mode)
        tb.sink = blocks.vector_sink_c(tb.mask.output_length)
        tb.connect(tb.source, tb.mask, tb.sink)
        tb.run()
        out = np.asarray(tb.sink.data(), dtype=np.complex64).reshape(-1, tb.mask.output_length)
        return out, tb.sink.tags()

    def test_001_drop_removes_exactly_the_listed_positions(self):
        out, tags = self.run_mask(self.mask_path, "drop")
        keep = [i for i in range(128) if i not in DROP]
        self.assertEqual(out.shape, (37, 128 - len(DROP)))
        np.testing.assert_array_equal(out, self.frames[:, keep])
        # Tags stay on their frames, in order.
        snr_tags = [(t.offset, pmt.to_double(t.value)) for t in tags if pmt.symbol_to_string(t.key) == "snr_db"]
        self.assertEqual(snr_tags, [(i, float(i)) for i in range(37)])
        self.assertEqual(sum(pmt.symbol_to_string(t.key) == "label" for t in tags), 37)

    def test_002_zero_keeps_length_and_zeroes_positions(self):
        out, _ = self.run_mask(self.mask_path, "zero")
        expected = self.frames.copy()
        expected[:, DROP] = 0
        np.testing.assert_array_equal(out, expected)

    def test_002b_off_passes_frames_and_tags_unchanged(self):
        out, tags = self.run_mask(self.mask_path, "off")
        np.testing.assert_array_equal(out, self.frames)
        snr_tags = [(t.offset, pmt.to_double(t.value)) for t in tags if pmt.symbol_to_string(t.key) == "snr_db"]
        self.assertEqual(snr_tags, [(i, float(i)) for i in range(37)])

    def test_003_mask_from_a_shapft_model_file(self):
        mask = masks.load(self.mask_path)
        model_path = os.path.join(self.dir.name, "shapft_model.pt")
        shapft_testing.write_model(model_path, "cnn_lstm", frame_length=128 - len(DROP), mask=mask)
        out, _ = self.run_mask(model_path, "drop")
        np.testing.assert_array_equal(out, self.frames[:, masks.keep_positions(mask)])

    def test_004_bad_masks_refused(self):
        cases = {
            "out of range": {"frame_length": 128, "drop": [1, 128]},
            "duplicate": {"frame_length": 128, "drop": [5, 5]},
            "list of integer positions": {"frame_length": 128, "drop": [1.5]},
            "nothing would remain": {"frame_length": 4, "drop": [0, 1, 2, 3]},
            "m = 3 but": {"frame_length": 128, "drop": [1, 2], "m": 3},
            "must be sorted": {"frame_length": 128, "drop": [9, 2]},
        }
        for message, mask in cases.items():
            path = os.path.join(self.dir.name, "bad.json")
            with open(path, "w") as f:
                json.dump(mask, f)
            with self.assertRaises(ValueError) as ctx:
                negative_point_mask(path)
            self.assertIn("mask_path", str(ctx.exception))
            self.assertIn(message, str(ctx.exception))
        with open(path, "w") as f:
            f.write("{not json")
        with self.assertRaisesRegex(ValueError, "mask_path: .*not valid JSON"):
            negative_point_mask(path)
        with self.assertRaisesRegex(ValueError, "mask_path: .*does not exist"):
            negative_point_mask(os.path.join(self.dir.name, "missing.json"))
        with self.assertRaisesRegex(ValueError, "mode: 'delete'"):
            negative_point_mask(self.mask_path, "delete")
        model_path = os.path.join(self.dir.name, "plain_model.pt")
        shapft_testing.write_model(model_path, "cnn_lstm")
        with self.assertRaisesRegex(ValueError, "carries no mask"):
            negative_point_mask(model_path)

    def test_005_arguments_checked_naming_the_parameter(self):
        with self.assertRaisesRegex(TypeError, "^mask_path: must be a file path, got None"):
            negative_point_mask(None)
        with self.assertRaisesRegex(ValueError, "^mask_path: must be a file path, got an empty one"):
            negative_point_mask("")
        with self.assertRaisesRegex(ValueError, "^mode: None is not one of drop, zero, off$"):
            negative_point_mask(self.mask_path, None)

    def test_006_work_error_reported_frames_zeroed_others_run(self):
        # A corrupted deletion makes work() fail: the error is reported, the frames
        # leave as all-zero frames, and the branch beside it gets every frame.
        tb = gr.top_block()
        source = tagged_source(self.frames)
        mask = negative_point_mask(self.mask_path)
        mask.keep = np.array([10 ** 6])   # out of range for every frame
        masked, clean = blocks.vector_sink_c(mask.output_length), blocks.vector_sink_c(128)
        tb.connect(source, mask, masked)
        tb.connect(source, clean)
        shapft_testing.run_to_end(tb)
        self.assertEqual(len(mask.errors()), 1)
        self.assertRegex(mask.errors()[0], "^work: IndexError")
        self.assertEqual(mask.frames_dropped(), 37)
        self.assertEqual(len(masked.data()), 37 * mask.output_length)
        self.assertFalse(np.any(masked.data()))
        self.assertEqual(len(clean.data()), 37 * 128)

    def test_007_output_buffer_sized_without_an_info_line(self):
        # The block reserves its buffer, and GRC's Min Output Buffer calls
        # set_min_output_buffer(size) on it: neither prints.
        with shapft_testing.captured_output() as output:
            mask = negative_point_mask(self.mask_path)
            default = mask.min_output_buffer(0)
            mask.set_min_output_buffer(4096)
        self.assertNotIn("set_min_output_buffer", output[0])
        self.assertEqual((default, mask.min_output_buffer(0)), (1024, 4096))


if __name__ == '__main__':
    gr_unittest.run(qa_negative_point_mask)
