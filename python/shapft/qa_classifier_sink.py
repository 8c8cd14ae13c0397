#!/usr/bin/env python3
#
# Copyright 2026 gr-shapft authors
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""QA of classifier_sink: tagged vector source -> sink, messages into message_debug."""
import json
import os
import tempfile
import unittest
import warnings

import numpy as np
import pmt
import torch
from gnuradio import blocks, gr, gr_unittest

from gnuradio.shapft import classifier_sink, fgsm_injector, grc
from gnuradio.shapft.core import model_file, onnx_file, shipped
from gnuradio.shapft.models import precision
import shapft_testing
from gnuradio.shapft.core.radioml import CLASSES
from gnuradio.shapft.core.recording import to_model_input


def tagged_source(frames, labels=None, snrs=None):
    tags = []
    for i in range(len(frames)):
        if labels is not None:
            tags.append(gr.tag_utils.python_to_tag((i, pmt.intern("label"), pmt.intern(labels[i]))))
        if snrs is not None:
            tags.append(gr.tag_utils.python_to_tag((i, pmt.intern("snr_db"), pmt.from_double(snrs[i]))))
    return blocks.vector_source_c(frames.reshape(-1).tolist(), False, frames.shape[1], tags)


class FailingModule:
    """A model that classifies its first `calls` batches, then raises."""

    def __init__(self, module, calls):
        self.module, self.calls = module, calls

    def __call__(self, x):
        self.calls -= 1
        if self.calls < 0:
            raise RuntimeError("model failed")
        return self.module(x)


def write_onnx(model_path, onnx_path):
    """The ONNX model file exported from a model file (as `shapft export --format onnx`)."""
    onnx_file.export(model_file.load(model_path), onnx_path)
    return onnx_path


def offline_predictions(model_path, frames):
    loaded = onnx_file.load(model_path) if onnx_file.is_onnx_path(model_path) else model_file.load(model_path)
    with torch.no_grad():
        probabilities = torch.softmax(loaded.module(torch.from_numpy(to_model_input(frames))), 1)
    return probabilities.argmax(1).numpy(), probabilities.max(1).values.numpy()


class qa_classifier_sink(gr_unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.rng = np.random.default_rng(4)

    def tearDown(self):
        self.dir.cleanup()

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def run_sink(self, frames, model_path, labels=None, snrs=None, **kwargs):
        tb = gr.top_block()
        tb.source = tagged_source(frames, labels, snrs)
        tb.sink = classifier_sink(model_path, **kwargs)
        tb.debug = blocks.message_debug()
        tb.connect(tb.source, tb.sink)
        tb.msg_connect(tb.sink, "classification", tb.debug, "store")
        tb.run()
        messages = [pmt.to_python(tb.debug.get_message(i)) for i in range(tb.debug.num_messages())]
        return tb.sink, messages

    def test_001_labels_equal_offline_predictions(self):
        for arch in ("cnn_lstm", "transformer_compact"):
            model_path = shapft_testing.write_model(self.path(f"{arch}.pt"), arch)
            frames = shapft_testing.random_frames(300, seed=2)
            labels = [CLASSES[i] for i in self.rng.integers(0, 11, len(frames))]
            snrs = self.rng.choice([-10.0, 0.0, 10.0], len(frames)).tolist()
            sink, messages = self.run_sink(frames, model_path, labels, snrs, batch_size=64)
            predicted, confidence = offline_predictions(model_path, frames)
            self.assertEqual(sink.frames_in(), 300)
            self.assertEqual(sink.frames_scored(), 300)
            self.assertEqual(len(messages), 300)
            self.assertEqual([m["frame_index"] for m in messages], list(range(300)))
            self.assertEqual([m["class_index"] for m in messages], predicted.tolist())
            np.testing.assert_allclose([m["confidence"] for m in messages], confidence, rtol=1e-5)
            self.assertEqual([m["true_label"] for m in messages], labels)
            self.assertEqual([m["snr_db"] for m in messages], snrs)
            truth = np.array([CLASSES.index(name) for name in labels])
            self.assertAlmostEqual(sink.accuracy(), float(np.mean(truth == predicted)))
            confusion = np.zeros((11, 11), int)
            np.add.at(confusion, (truth, predicted), 1)
            np.testing.assert_array_equal(sink.confusion_matrix(), confusion)
            for snr, accuracy in sink.accuracy_by_snr().items():
                at = np.array(snrs) == snr
                self.assertAlmostEqual(accuracy, float(np.mean(truth[at] == predicted[at])))

    def test_001b_class_histogram_and_recent_probabilities_without_labels(self):
        # What a live dashboard shows of a radio's frames, which carry no labels.
        model_path = shapft_testing.write_model(self.path("m.pt"), "cnn_lstm")
        frames = shapft_testing.random_frames(300, seed=5)
        sink, _ = self.run_sink(frames, model_path, batch_size=64)
        predicted, _ = offline_predictions(model_path, frames)
        np.testing.assert_array_equal(sink.predicted_counts(), np.bincount(predicted, minlength=11))
        probabilities = sink.recent_probabilities()
        self.assertEqual(probabilities.shape, (11,))
        self.assertAlmostEqual(float(probabilities.sum()), 1.0, places=5)
        self.assertTrue(np.all(np.isnan(classifier_sink(model_path).recent_probabilities())))

    def test_002_untagged_frames_have_no_accuracy(self):
        model_path = shapft_testing.write_model(self.path("m.pt"), "transformer_compact")
        sink, messages = self.run_sink(shapft_testing.random_frames(20), model_path)
        self.assertEqual(sink.frames_scored(), 20)
        self.assertTrue(np.isnan(sink.accuracy()))
        self.assertNotIn("true_label", messages[0])

    def test_003_bad_frames_counted_not_fatal(self):
        model_path = shapft_testing.write_model(self.path("m.pt"), "cnn_lstm")
        frames = shapft_testing.random_frames(50, seed=3)
        frames[5, 7] = np.nan
        frames[6, 0] = np.inf
        frames[7] = 0
        frames[8] *= 1e20    # energy overflows float32, samples are finite: valid
        frames[9] *= 1e-30   # energy underflows to 0, samples are not: valid
        sink, messages = self.run_sink(frames, model_path, ["BPSK"] * 50, [0.0] * 50)
        self.assertEqual(sink.frames_in(), 50)
        self.assertEqual(sink.frames_scored(), 47)
        self.assertEqual(sink.frames_invalid(), 3)
        self.assertEqual(len(messages), 50)
        self.assertEqual([(m["valid"], m.get("reason")) for m in messages[5:8]],
                         [(False, "nan"), (False, "inf"), (False, "zero")])
        good = np.r_[0:5, 8:50]
        predicted, _ = offline_predictions(model_path, frames[good])
        self.assertEqual([messages[i]["class_index"] for i in good], predicted.tolist())

    def test_004_foreign_tags_reported_not_counted(self):
        # Tags another tool may set: a label that is not one of the model's classes, a
        # label that is not a symbol, an SNR that is not a number, unrelated keys.
        model_path = shapft_testing.write_model(self.path("m.pt"), "transformer_compact")
        frames = shapft_testing.random_frames(6, seed=5)
        tag = gr.tag_utils.python_to_tag
        tags = [tag((0, pmt.intern("label"), pmt.intern("BPSK"))),
                tag((1, pmt.intern("label"), pmt.intern("OOK"))),
                tag((2, pmt.intern("label"), pmt.from_long(3))),
                tag((3, pmt.intern("label"), pmt.intern("OOK"))),
                tag((3, pmt.intern("snr_db"), pmt.intern("high"))),
                tag((4, pmt.intern("snr_db"), pmt.from_long(6))),
                tag((5, pmt.intern("rx_time"), pmt.from_double(1.5)))]
        tb = gr.top_block()
        source = blocks.vector_source_c(frames.reshape(-1).tolist(), False, 128, tags)
        sink = classifier_sink(model_path)
        debug = blocks.message_debug()
        tb.connect(source, sink)
        tb.msg_connect(sink, "classification", debug, "store")
        tb.run()
        messages = [pmt.to_python(debug.get_message(i)) for i in range(debug.num_messages())]
        self.assertEqual([m.get("true_label") for m in messages], ["BPSK", "OOK", "3", "OOK", None, None])
        self.assertEqual([m.get("snr_db") for m in messages], [None, None, None, None, 6.0, None])
        self.assertEqual(sink.frames_scored(), 6)
        # Only frame 0 carries one of the model's classes: it alone counts for accuracy.
        self.assertEqual(int(sink.confusion_matrix().sum()), 1)
        self.assertEqual(sink.accuracy(), float(messages[0]["label"] == "BPSK"))

    def test_005_results_file_written_at_stop(self):
        model_path = shapft_testing.write_model(self.path("m.pt"), "transformer_compact")
        results = self.path("results.json")
        sink, _ = self.run_sink(shapft_testing.random_frames(30), model_path, ["QPSK"] * 30, [4.0] * 30,
                                results_path=results, name="clean")
        with open(results) as f:
            saved = json.load(f)
        self.assertEqual(saved["frames_scored"], 30)
        self.assertEqual(saved["name"], "clean")
        self.assertAlmostEqual(saved["accuracy"], sink.accuracy())
        # the one accuracy report format (learn.metrics.accuracy_report's)
        predicted = [saved["classes"].index(c) for c in saved["classes"] for _ in range(sum(
            row[saved["classes"].index(c)] for row in saved["confusion"]))]
        self.assertEqual(len(predicted), 30)
        self.assertEqual(saved["per_snr"], {"4": sink.accuracy()})
        self.assertEqual(saved["frames_per_snr"], {"4": 30})
        self.assertEqual(saved["frames"], 30)
        self.assertIsNone(saved["high_snr_accuracy"])

    def test_006_bad_construction_refused(self):
        with self.assertRaisesRegex(ValueError, "model_path: .*does not exist"):
            classifier_sink(self.path("missing.pt"))
        corrupt = self.path("corrupt.pt")
        with open(corrupt, "wb") as f:
            f.write(b"PK\x03\x04 this is not a model")
        with self.assertRaisesRegex(ValueError, "model_path: .*(not a TorchScript archive|cannot be loaded)"):
            classifier_sink(corrupt)
        model_path = shapft_testing.write_model(self.path("m100.pt"), "cnn_lstm", frame_length=100)
        with self.assertRaisesRegex(ValueError, "vector_length: 128 does not match the frame length 100"):
            classifier_sink(model_path, vector_length=128)
        with self.assertRaisesRegex(ValueError, "batch_size"):
            classifier_sink(model_path, batch_size=0)
        # Without a stated length the sink takes the model's: 100-sample vectors.
        self.assertEqual(classifier_sink(model_path).frame_length, 100)

    def test_007_chunks_released_in_order(self):
        # Batches of 4 on 2 workers: the sink queues chunks of 32 frames and releases
        # them as they finish; bad frames sit on chunk boundaries.
        model_path = shapft_testing.write_model(self.path("m.pt"), "transformer_compact")
        frames = shapft_testing.random_frames(1000, seed=6)
        bad = [0, 31, 32, 63, 999]
        frames[bad] = 0
        labels = [CLASSES[i] for i in self.rng.integers(0, 11, len(frames))]
        sink, messages = self.run_sink(frames, model_path, labels, [2.0] * 1000, batch_size=4, num_threads=2)
        self.assertEqual((sink.frames_in(), sink.frames_scored(), sink.frames_invalid()), (1000, 995, 5))
        self.assertEqual([m["frame_index"] for m in messages], list(range(1000)))
        self.assertEqual([m["true_label"] for m in messages], labels)
        self.assertEqual([i for i, m in enumerate(messages) if not m["valid"]], bad)
        good = np.setdiff1d(np.arange(1000), bad)
        predicted, _ = offline_predictions(model_path, frames[good])
        self.assertEqual([messages[i]["class_index"] for i in good], predicted.tolist())

    def test_008_unwritable_results_file_reported_not_fatal(self):
        # The results directory is replaced by a file after construction: the write at
        # stop() fails. The process goes on, the error is reported, nothing is created,
        # and the other sinks on the same source score every frame.
        model_path = shapft_testing.write_model(self.path("m.pt"), "transformer_compact")
        frames = shapft_testing.random_frames(200, seed=8)
        gone, kept = self.path("gone"), self.path("kept")
        os.mkdir(gone)
        os.mkdir(kept)
        tb = gr.top_block()
        source = tagged_source(frames, ["BPSK"] * 200, [0.0] * 200)
        failing = classifier_sink(model_path, name="failing", results_path=os.path.join(gone, "r.json"))
        other = classifier_sink(model_path, name="other", results_path=os.path.join(kept, "r.json"))
        plain = classifier_sink(model_path, name="plain")
        for sink in (failing, other, plain):
            tb.connect(source, sink)
        os.rmdir(gone)
        with open(gone, "w") as f:
            f.write("not a directory")
        tb.run()
        self.assertEqual(len(failing.errors()), 1)
        self.assertRegex(failing.errors()[0], r"^stop: results_path .*gone/r\.json: not written")
        self.assertIn(failing.errors()[0], failing.summary())
        self.assertTrue(os.path.isfile(gone))
        for sink in (failing, other, plain):
            self.assertEqual(sink.frames_scored(), 200)
        for sink in (other, plain):
            self.assertEqual(sink.errors(), [])
        with open(os.path.join(kept, "r.json")) as f:
            saved = json.load(f)
        self.assertEqual((saved["frames_scored"], saved["errors"]), (200, []))

    def test_009_results_path_checked_at_construction(self):
        model_path = shapft_testing.write_model(self.path("m.pt"), "transformer_compact")
        with self.assertRaisesRegex(ValueError, "results_path: .*parent directory .*missing/deeper does not exist"):
            classifier_sink(model_path, results_path=self.path("missing/deeper/r.json"))
        self.assertFalse(os.path.exists(self.path("missing")))   # no directory made
        with self.assertRaisesRegex(ValueError, "results_path: .*is a directory"):
            classifier_sink(model_path, results_path=self.dir.name)
        with open(self.path("file"), "w") as f:
            f.write("x")
        with self.assertRaisesRegex(ValueError, "results_path: .*file is not a directory"):
            classifier_sink(model_path, results_path=self.path("file/r.json"))
        with self.assertRaisesRegex(TypeError, "results_path: must be a file path"):
            classifier_sink(model_path, results_path=3)
        self.assertIsNone(classifier_sink(model_path, results_path="").results_path)

    def test_010_classification_error_reported_other_sinks_score_all(self):
        # One sink's model fails after its warm-up (3 calls) and 6 batches (its first
        # chunk holds at most 4): that sink reports the error and passes over the rest
        # of its frames; the sink beside it scores all.
        model_path = shapft_testing.write_model(self.path("m.pt"), "transformer_compact")
        frames = shapft_testing.random_frames(500, seed=9)
        tb = gr.top_block()
        source = tagged_source(frames, ["QPSK"] * 500, [2.0] * 500)
        failing = classifier_sink(model_path, name="failing", batch_size=16, num_threads=1,
                                  results_path=self.path("failing.json"))
        failing.model.module = FailingModule(failing.model.module, calls=3 + 6)
        other = classifier_sink(model_path, name="other", batch_size=16, num_threads=1)
        debug = blocks.message_debug()
        tb.connect(source, failing)
        tb.connect(source, other)
        tb.msg_connect(failing, "classification", debug, "store")
        shapft_testing.run_to_end(tb)
        self.assertEqual(len(failing.errors()), 1)
        self.assertRegex(failing.errors()[0], "^work: RuntimeError: model failed")
        self.assertEqual(failing.frames_in(), 500)
        self.assertGreater(failing.frames_scored(), 0)
        self.assertGreater(failing.frames_dropped(), 0)
        self.assertEqual(failing.frames_scored() + failing.frames_dropped(), 500)
        self.assertEqual(debug.num_messages(), failing.frames_scored())
        with open(self.path("failing.json")) as f:
            saved = json.load(f)
        self.assertEqual(saved["errors"], failing.errors())
        self.assertEqual(saved["frames_dropped"], failing.frames_dropped())
        self.assertEqual((other.frames_scored(), other.errors()), (500, []))
        # The demo's closing table lists the errors too.
        report = grc.demo_report(other, failing, other, fgsm_injector(model_path))
        self.assertEqual(report.splitlines()[-1], f"error in failing: {failing.errors()[0]}")

    def test_011_start_error_reported_other_sinks_score_all(self):
        model_path = shapft_testing.write_model(self.path("m.pt"), "transformer_compact")
        frames = shapft_testing.random_frames(100, seed=10)
        tb = gr.top_block()
        source = tagged_source(frames)
        failing = classifier_sink(model_path, name="failing", num_threads=1)
        failing.model.module = FailingModule(failing.model.module, calls=0)   # the warm-up fails
        other = classifier_sink(model_path, name="other", num_threads=1)
        tb.connect(source, failing)
        tb.connect(source, other)
        shapft_testing.run_to_end(tb)
        self.assertRegex(" ".join(failing.errors()), "^start: RuntimeError: model failed")
        self.assertEqual((failing.frames_in(), failing.frames_scored(), failing.frames_dropped()), (100, 0, 100))
        self.assertEqual(other.frames_scored(), 100)

    def test_012_arguments_checked_naming_the_parameter(self):
        model_path = shapft_testing.write_model(self.path("m.pt"), "transformer_compact")
        cases = [
            (TypeError, "model_path: must be a file path", dict(model_path=None)),
            (ValueError, "model_path: must be a file path, got an empty one", dict(model_path="")),
            (TypeError, "batch_size: must be an integer, got 'abc'", dict(batch_size="abc")),
            (ValueError, "batch_size: must be an integer, got 2.5", dict(batch_size=2.5)),
            (ValueError, "batch_size: must be >= 1", dict(batch_size=0)),
            (TypeError, "num_threads: must be an integer", dict(num_threads="2")),
            (TypeError, "num_threads: must be an integer", dict(num_threads=None)),
            (ValueError, "num_threads: must be >= 0", dict(num_threads=-1)),
            (TypeError, "name: must be a string", dict(name=3)),
            (TypeError, "publish: must be True or False", dict(publish="no")),
            (TypeError, "vector_length: must be an integer", dict(vector_length="x")),
            (ValueError, "vector_length: must be >= 0", dict(vector_length=-128)),
        ]
        for error, message, kwargs in cases:
            kwargs.setdefault("model_path", model_path)
            with self.subTest(**{k: repr(v) for k, v in kwargs.items()}):
                with self.assertRaisesRegex(error, f"^{message}"):
                    classifier_sink(**kwargs)
        # 0 threads: one worker per core (torch's default); numpy integers are integers.
        sink = classifier_sink(model_path, batch_size=np.int64(8), num_threads=0, publish=np.bool_(False))
        self.assertEqual((sink.num_threads, sink.batch_size, sink.publish), (torch.get_num_threads(), 8, False))


    def test_013_bf16_precision_equals_offline_bf16(self):
        model_path = shapft_testing.write_model(self.path("cnn_lstm.pt"), "cnn_lstm")
        frames = shapft_testing.random_frames(200, seed=3)
        labels = [CLASSES[i] for i in self.rng.integers(0, 11, len(frames))]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # emulated bf16 warns on CPUs without it
            sink, messages = self.run_sink(frames, model_path, labels, [0.0] * 200, batch_size=64,
                                           precision="bf16")
            module = model_file.load(model_path).module
            with torch.no_grad(), precision.autocast("bf16"):
                logits = module(torch.from_numpy(to_model_input(frames)))
        self.assertEqual(logits.dtype, torch.bfloat16)
        offline16 = logits.float().argmax(1).numpy()
        predicted = [m["class_index"] for m in messages]
        self.assertEqual(predicted, offline16.tolist())
        fp32, _ = offline_predictions(model_path, frames)
        self.assertGreaterEqual(float(np.mean(np.array(predicted) == fp32)), 0.95)
        self.assertEqual(sink.results()["precision"], "bf16")
        with self.assertRaisesRegex(ValueError, "precision"):
            classifier_sink(model_path, precision="half")

    def test_014_smoothing_majority_abstention_and_counts(self):
        model_path = shapft_testing.write_model(self.path("m.pt"), "transformer_compact")
        frames = shapft_testing.random_frames(90, seed=8)
        frames[4] = 0
        labels = [CLASSES[i] for i in self.rng.integers(0, 11, len(frames))]
        # negligible noise: every sample votes for the plain prediction, which wins the test
        sink, messages = self.run_sink(frames, model_path, labels, [0.0] * 90, batch_size=16,
                                       smoothing_psr_db=-120, smoothing_samples=20)
        predicted, _ = offline_predictions(model_path, frames)
        good = [i for i in range(90) if i != 4]
        self.assertEqual([messages[i]["class_index"] for i in good], predicted[good].tolist())
        self.assertEqual([messages[i]["confidence"] for i in good], [1.0] * 89)
        self.assertEqual((sink.frames_scored(), sink.frames_abstained(), sink.frames_invalid()), (89, 0, 1))
        # one sample per frame can never beat the runner-up: every valid frame abstains
        sink, messages = self.run_sink(frames, model_path, labels, [0.0] * 90, batch_size=16,
                                       smoothing_psr_db=-20, smoothing_samples=1)
        self.assertEqual((sink.frames_in(), sink.frames_scored(), sink.frames_abstained()), (90, 0, 89))
        self.assertTrue(all(m.get("abstained") for m in messages if m["valid"]))
        self.assertTrue(all("correct" not in m for m in messages))
        self.assertTrue(np.isnan(sink.accuracy()))
        self.assertEqual(sink.results()["frames_abstained"], 89)
        for kwargs, name in ((dict(smoothing_psr_db=float("nan")), "smoothing_psr_db"),
                             (dict(smoothing_psr_db=4000), "^smoothing_psr_db: must give a noise level > 0"),
                             (dict(smoothing_psr_db=-20, smoothing_samples=0), "smoothing_samples"),
                             (dict(smoothing_psr_db=-20, smoothing_alpha=1.5), "smoothing_alpha")):
            with self.assertRaisesRegex(ValueError, name):
                classifier_sink(model_path, **kwargs)

    def run_sinks(self, frames, model_paths, labels=None, snrs=None, **kwargs):
        """Sinks, one per model file, on one source in one flowgraph: [(sink, messages)]."""
        tb = gr.top_block()
        tb.source = tagged_source(frames, labels, snrs)
        tb.sinks, tb.debugs = [], []
        for model_path in model_paths:
            tb.sinks.append(classifier_sink(model_path, **kwargs))
            tb.debugs.append(blocks.message_debug())
            tb.connect(tb.source, tb.sinks[-1])
            tb.msg_connect(tb.sinks[-1], "classification", tb.debugs[-1], "store")
        shapft_testing.run_to_end(tb)
        return [(sink, [pmt.to_python(debug.get_message(i)) for i in range(debug.num_messages())])
                for sink, debug in zip(tb.sinks, tb.debugs)]

    def test_015_onnx_model_classifies_as_torchscript(self):
        # The TorchScript sink and the ONNX sink side by side on the same frames, two
        # workers each sharing one ONNX Runtime session, with invalid frames among them.
        for arch in ("cnn_lstm", "transformer_compact"):
            model_path = shapft_testing.write_model(self.path(f"{arch}.pt"), arch)
            onnx_path = write_onnx(model_path, self.path(f"{arch}.onnx"))
            frames = shapft_testing.random_frames(400, seed=11)
            frames[[3, 200]] = 0
            frames[77, 5] = np.nan
            labels = [CLASSES[i] for i in self.rng.integers(0, 11, len(frames))]
            snrs = self.rng.choice([-10.0, 0.0, 10.0], len(frames)).tolist()
            (ts, ts_messages), (ox, ox_messages) = self.run_sinks(
                frames, [model_path, onnx_path], labels, snrs, batch_size=32, num_threads=2)
            self.assertEqual((ox.frames_in(), ox.frames_scored(), ox.frames_invalid()), (400, 397, 3))
            self.assertEqual((ox.errors(), ts.errors()), ([], []))
            fields = ("frame_index", "valid", "reason", "true_label", "snr_db")
            self.assertEqual([[m.get(f) for f in fields] for m in ox_messages],
                             [[m.get(f) for f in fields] for m in ts_messages])
            # Logits agree to ~1e-6 (tests/test_onnx.py): the class agrees wherever the
            # TorchScript model's top two are further apart than that.
            logits = model_file.load(model_path).module(torch.from_numpy(to_model_input(frames))).detach()
            top2 = logits.topk(2, dim=1).values
            clear = ((top2[:, 0] - top2[:, 1]) > 1e-4).numpy()
            self.assertGreater(clear.sum(), 390)
            for ours, theirs, is_clear in zip(ox_messages, ts_messages, clear):
                if ours["valid"] and is_clear:
                    self.assertEqual(ours["class_index"], theirs["class_index"])
                    self.assertEqual(ours["label"], theirs["label"])
                    self.assertEqual(ours["correct"], theirs["correct"])
            np.testing.assert_allclose([m.get("confidence", 0) for m in ox_messages],
                                       [m.get("confidence", 0) for m in ts_messages], atol=1e-5)
            predicted, confidence = offline_predictions(onnx_path, frames)
            valid = [m["valid"] for m in ox_messages]
            self.assertEqual([m["class_index"] for m in ox_messages if m["valid"]], predicted[valid].tolist())
            results = ox.results()
            self.assertEqual((results["model"], results["model_sha256"], results["precision"]),
                             (onnx_path, onnx_file.load(onnx_path).sha256, "fp32"))
            self.assertEqual(results["frames_labelled"], ts.results()["frames_labelled"])

    def test_016_onnx_model_with_a_mask_and_smoothing(self):
        # A shipped SHAP-FT model (frames of 128 - m) and randomized smoothing: the noise
        # is the seed's whatever the runtime; the votes are the plain classes when the
        # noise is negligible, and agree with the TorchScript sink's when it is not.
        model_path = shipped.model("cnn_lstm_shapft_eps0.1.pt")
        onnx_path = write_onnx(model_path, self.path("shapft.onnx"))
        frame_length = model_file.load(model_path).frame_length
        self.assertEqual((grc.model_frame_length(onnx_path), grc.model_full_frame_length(onnx_path)),
                         (frame_length, 128))
        frames = shapft_testing.random_frames(60, frame_length, seed=12)
        (sink, messages), = self.run_sinks(frames, [onnx_path], batch_size=16, smoothing_psr_db=-120,
                                           smoothing_samples=20)
        predicted, _ = offline_predictions(onnx_path, frames)
        self.assertEqual([m["class_index"] for m in messages], predicted.tolist())
        self.assertEqual((sink.frames_scored(), sink.frames_abstained()), (60, 0))
        (ts, ts_messages), (ox, ox_messages) = self.run_sinks(
            frames, [model_path, onnx_path], batch_size=16, smoothing_psr_db=-20, smoothing_samples=20, seed=5)
        self.assertTrue(0 < ts.frames_abstained() < 60)   # the noise splits some votes
        agree = np.mean([[m.get("class_index"), m.get("abstained"), m["confidence"]] ==
                         [t.get("class_index"), t.get("abstained"), t["confidence"]]
                         for m, t in zip(ox_messages, ts_messages)])
        self.assertGreaterEqual(agree, 0.95)   # a noisy copy within ~1e-6 of a tie may vote otherwise
        self.assertEqual(ox.frames_scored() + ox.frames_abstained(), 60)
        self.assertEqual(ox.results()["smoothing"], ts.results()["smoothing"])

    def test_017_onnx_options_and_files_refused_naming_the_parameter(self):
        model_path = shapft_testing.write_model(self.path("m.pt"), "cnn_lstm")
        onnx_path = write_onnx(model_path, self.path("m.onnx"))
        with self.assertRaisesRegex(ValueError, "^precision: bf16 runs TorchScript models only; an ONNX model"):
            classifier_sink(onnx_path, precision="bf16")
        self.assertEqual(classifier_sink(onnx_path, precision="auto").precision, "fp32")
        with self.assertRaisesRegex(ValueError, "^model_path: .*m.onnx is an ONNX model, which only classifier_sink runs"):
            fgsm_injector(onnx_path)
        renamed = self.path("renamed.onnx")
        with open(model_path, "rb") as source, open(renamed, "wb") as f:
            f.write(source.read())
        with self.assertRaisesRegex(ValueError, "^model_path: model file .*renamed.onnx is not an ONNX model"):
            classifier_sink(renamed)
        with self.assertRaisesRegex(ValueError, "^model_path: model file .*missing.onnx does not exist"):
            classifier_sink(self.path("missing.onnx"))
        with self.assertRaisesRegex(ValueError, "^vector_length: 100 does not match the frame length 128"):
            classifier_sink(onnx_path, vector_length=100)

    def test_018_device_refused_naming_it(self):
        model_path = shapft_testing.write_model(self.path("m.pt"), "cnn_lstm")
        onnx_path = write_onnx(model_path, self.path("m.onnx"))
        for device in shapft_testing.unavailable_devices():
            for path in (model_path, onnx_path):
                with self.subTest(device=device, model=path):
                    with self.assertRaisesRegex(ValueError, f"^device: {device} is not available \\([^\n]*\\)$"):
                        classifier_sink(path, device=device)
        with self.assertRaisesRegex(ValueError, "^device: 'gpu' is not one of auto, cpu, cuda, cuda:N, mps$"):
            classifier_sink(model_path, device="gpu")
        with self.assertRaisesRegex(TypeError, "^device: must be a string, got None"):
            classifier_sink(model_path, device=None)
        self.assertEqual(classifier_sink(onnx_path).device, torch.device("cpu"))   # auto: ONNX Runtime's CPU

    @unittest.skipUnless(shapft_testing.auto_is_cpu(), "device auto is a GPU here")
    def test_019_device_cpu_equals_the_default(self):
        model_path = shapft_testing.write_model(self.path("m.pt"), "transformer_compact")
        frames = shapft_testing.random_frames(150, seed=6)
        for smoothing in (None, -20.0):
            with self.subTest(smoothing_psr_db=smoothing):
                default, default_messages = self.run_sink(frames, model_path, batch_size=32, num_threads=2,
                                                          smoothing_psr_db=smoothing, smoothing_samples=8)
                cpu, cpu_messages = self.run_sink(frames, model_path, batch_size=32, num_threads=2,
                                                  smoothing_psr_db=smoothing, smoothing_samples=8, device="cpu")
                self.assertEqual(len(cpu_messages), 150)
                self.assertEqual(cpu_messages, default_messages)
                self.assertEqual((default.results()["device"], cpu.results()["device"]), ("cpu", "cpu"))

    def test_020_smoothing_noise_does_not_depend_on_batching(self):
        # Each frame's noise comes from the seed and its frame number: batches of 7 on one
        # worker and of 32 on two give the same votes for every frame.
        model_path = shapft_testing.write_model(self.path("m.pt"), "transformer_compact")
        frames = shapft_testing.random_frames(100, seed=12)
        runs = [self.run_sink(frames, model_path, batch_size=batch_size, num_threads=threads,
                              smoothing_psr_db=-20, smoothing_samples=8, seed=3)[1]
                for batch_size, threads in ((7, 1), (32, 2))]
        self.assertEqual(len(runs[0]), 100)
        self.assertEqual(runs[0], runs[1])
        self.assertLess(sum(m["confidence"] for m in runs[0]), 100)   # the noise does change votes


if __name__ == '__main__':
    gr_unittest.run(qa_classifier_sink)
