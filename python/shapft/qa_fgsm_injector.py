#!/usr/bin/env python3
#
# Copyright 2026 gr-shapft authors
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""QA of fgsm_injector: tagged vector source -> injector -> vector sink; the output
must equal the library's offline attack on the same frames (for method uap, the
library's universal.apply)."""
import os
import tempfile
import warnings

import numpy as np
import pmt
import torch
from gnuradio import blocks, gr, gr_unittest

from gnuradio.shapft import attacks, fgsm_injector, grc
from gnuradio.shapft.attacks import universal
from gnuradio.shapft.core import model_file, masks, perturbation_file
from gnuradio.shapft.models import masked
import shapft_testing
from gnuradio.shapft.core.radioml import CLASSES
from gnuradio.shapft.core.recording import from_model_input, to_model_input


def tagged_source(frames, labels):
    tags = []
    for i, label in enumerate(labels):
        if label is not None:
            tags.append(gr.tag_utils.python_to_tag((i, pmt.intern("label"), pmt.intern(label))))
        tags.append(gr.tag_utils.python_to_tag((i, pmt.intern("snr_db"), pmt.from_double(2.0 * i))))
    return blocks.vector_source_c(frames.reshape(-1).tolist(), False, frames.shape[1], tags)


class FailingAttack:
    """An attack (eps 0.05) that perturbs nothing for its first `calls` calls, then raises."""
    eps = 0.05

    def __init__(self, calls):
        self.calls = calls

    def __call__(self, x, labels):
        self.calls -= 1
        if self.calls < 0:
            raise RuntimeError("attack failed")
        return x


class qa_fgsm_injector(gr_unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.model_path = shapft_testing.write_model(os.path.join(self.dir.name, "m.pt"), "cnn_lstm")
        self.frames = shapft_testing.random_frames(90, seed=5)
        rng = np.random.default_rng(6)
        self.labels = [CLASSES[i] for i in rng.integers(0, 11, len(self.frames))]

    def tearDown(self):
        self.dir.cleanup()

    def run_injector(self, frames, labels, **kwargs):
        tb = gr.top_block()
        tb.source = tagged_source(frames, labels)
        tb.injector = fgsm_injector(self.model_path, **kwargs)
        tb.sink = blocks.vector_sink_c(frames.shape[1])
        tb.connect(tb.source, tb.injector, tb.sink)
        tb.run()
        return np.asarray(tb.sink.data(), dtype=np.complex64).reshape(frames.shape), tb.sink.tags(), tb.injector

    def offline(self, frames, labels, model=None, **kwargs):
        module = model if model is not None else model_file.load(self.model_path).module
        x = torch.from_numpy(to_model_input(frames))
        y = None if labels is None else torch.tensor(labels)
        return from_model_input(attacks.make("fgsm", module, **kwargs)(x, y).numpy())

    def test_001_output_equals_offline_fgsm_with_tag_labels(self):
        # 90 frames: batches of up to 32 split over 2 workers, written back in place.
        out, tags, _ = self.run_injector(self.frames, self.labels, eps=0.05, batch_size=32, num_threads=2)
        truth = [CLASSES.index(name) for name in self.labels]
        np.testing.assert_allclose(out, self.offline(self.frames, truth, eps=0.05), atol=1e-6)
        delta = np.concatenate([(out - self.frames).real, (out - self.frames).imag], axis=1)
        np.testing.assert_allclose(np.abs(delta).max(axis=1), 0.05, rtol=1e-4)
        snr_tags = [(t.offset, pmt.to_double(t.value)) for t in tags if pmt.symbol_to_string(t.key) == "snr_db"]
        self.assertEqual(snr_tags, [(i, 2.0 * i) for i in range(len(self.frames))])

    def test_002_untagged_frames_use_the_models_prediction(self):
        labels = [None if i % 3 else name for i, name in enumerate(self.labels)]
        out, _, _ = self.run_injector(self.frames, labels, eps=0.05)
        predicted = self.offline(self.frames, None, eps=0.05)
        tagged = self.offline(self.frames, [CLASSES.index(n) if n else 0 for n in labels], eps=0.05)
        for i, name in enumerate(labels):
            np.testing.assert_allclose(out[i], tagged[i] if name else predicted[i], atol=1e-6)
        out, _, _ = self.run_injector(self.frames, self.labels, eps=0.05, label_source="predicted")
        np.testing.assert_allclose(out, predicted, atol=1e-6)

    def test_003_psr_budget_disable_and_callbacks(self):
        out, _, injector = self.run_injector(self.frames, self.labels, psr_db=-23.0)
        self.assertAlmostEqual(injector.eps(), np.sqrt(10 ** -2.3 / 2), places=6)
        psr = 10 * np.log10(np.mean(np.abs(out - self.frames) ** 2))
        self.assertAlmostEqual(psr, -23.0, places=3)
        out, _, _ = self.run_injector(self.frames, self.labels, eps=0.05, enabled=False)
        np.testing.assert_array_equal(out, self.frames)
        injector = fgsm_injector(self.model_path, eps=0.05)
        injector.set_eps(0.1)
        self.assertEqual(injector.eps(), 0.1)
        injector.set_psr_db(-17.0)
        self.assertAlmostEqual(injector.psr_db(), -17.0)

    def test_004_other_methods(self):
        out, _, _ = self.run_injector(self.frames[:20], self.labels[:20], eps=0.05, method="bim", steps=3)
        module = model_file.load(self.model_path).module
        x = torch.from_numpy(to_model_input(self.frames[:20]))
        y = torch.tensor([CLASSES.index(n) for n in self.labels[:20]])
        expected = from_model_input(attacks.make("bim", module, eps=0.05, steps=3)(x, y).numpy())
        np.testing.assert_allclose(out, expected, atol=1e-6)

    def test_005_shapft_model_attacked_through_the_deletion(self):
        drop = list(range(0, 128, 4))
        mask = masks.make_mask(drop, 128, "fgsm", 0.05, "0" * 64)
        self.model_path = shapft_testing.write_model(os.path.join(self.dir.name, "shapft.pt"), "cnn_lstm",
                                              frame_length=128 - len(drop), mask=mask)
        out, _, injector = self.run_injector(self.frames, self.labels, eps=0.05)
        self.assertEqual(injector.frame_length, 128)
        delta = out - self.frames
        np.testing.assert_array_equal(delta[:, drop], 0)   # no gradient reaches deleted samples
        classifier, _ = masked.full_frame_classifier(model_file.load(self.model_path))
        truth = [CLASSES.index(name) for name in self.labels]
        np.testing.assert_allclose(out, self.offline(self.frames, truth, model=classifier, eps=0.05), atol=1e-6)

    def test_006_bad_frames_pass_through_counted(self):
        frames = self.frames[:12].copy()
        frames[2, 3] = np.nan
        frames[4] = 0
        out, _, injector = self.run_injector(frames, self.labels[:12], eps=0.05)
        self.assertEqual(injector.frames_invalid(), 2)
        np.testing.assert_array_equal(out[4], 0)
        self.assertTrue(np.isnan(out[2, 3]))
        self.assertTrue(np.all(np.isfinite(np.delete(out, [2], axis=0))))
        good = np.r_[0:2, 3, 5:12]                   # the valid frames are attacked as offline
        truth = [CLASSES.index(self.labels[i]) for i in good]
        np.testing.assert_allclose(out[good], self.offline(frames[good], truth, eps=0.05), atol=1e-6)

    def test_007_bad_construction_refused(self):
        with self.assertRaisesRegex(ValueError, "eps: .*eps must be a finite number >= 0"):
            fgsm_injector(self.model_path, eps=-0.1)
        with self.assertRaisesRegex(ValueError, "method: .*unknown attack method 'cw'; expected one of "
                                                "fgsm, fgm, bim, pgd, uap"):
            fgsm_injector(self.model_path, method="cw")
        with self.assertRaisesRegex(ValueError, "label_source"):
            fgsm_injector(self.model_path, label_source="oracle")
        with self.assertRaisesRegex(ValueError, "model_path: .*does not exist"):
            fgsm_injector(os.path.join(self.dir.name, "missing.pt"))
        with self.assertRaisesRegex(ValueError, "vector_length: 64 does not match the frame length 128"):
            fgsm_injector(self.model_path, vector_length=64)

    def test_008_chunks_released_in_order(self):
        # Batches of 4 on 2 workers: chunks of 8 frames, many queued per window (the
        # labels of a chunk come from its place in the window); bad frames on chunk
        # boundaries.
        frames = shapft_testing.random_frames(600, seed=7)
        bad = [0, 7, 8, 15, 599]
        frames[bad] = 0
        labels = [CLASSES[i] for i in np.random.default_rng(8).integers(0, 11, len(frames))]
        out, tags, injector = self.run_injector(frames, labels, eps=0.05, batch_size=4, num_threads=2)
        self.assertEqual(injector.frames_invalid(), len(bad))
        np.testing.assert_array_equal(out[bad], 0)
        good = np.setdiff1d(np.arange(len(frames)), bad)
        truth = [CLASSES.index(labels[i]) for i in good]
        np.testing.assert_allclose(out[good], self.offline(frames[good], truth, eps=0.05), atol=1e-6)
        label_tags = [(t.offset, pmt.symbol_to_string(t.value)) for t in tags if pmt.symbol_to_string(t.key) == "label"]
        self.assertEqual(label_tags, list(enumerate(labels)))

    def test_008b_small_output_windows_after_large_ones(self):
        # A slow block downstream: the injector queues chunks of 8 from large windows,
        # then is offered output windows of a few frames. Every frame still leaves once,
        # in order, equal to the offline attack (a chunk longer than the window is split).
        frames = shapft_testing.random_frames(300, seed=9)
        labels = [CLASSES[i] for i in np.random.default_rng(10).integers(0, 11, len(frames))]
        tb = gr.top_block()
        source = tagged_source(frames, labels)
        injector = shapft_testing.window_recording(fgsm_injector)(self.model_path, eps=0.05, batch_size=4,
                                                                  num_threads=2)
        slow = shapft_testing.SlowConsumer(frames.shape[1])
        sink = blocks.vector_sink_c(frames.shape[1])
        tb.connect(source, injector, slow, sink)
        shapft_testing.run_to_end(tb)
        out = np.asarray(sink.data(), dtype=np.complex64).reshape(-1, frames.shape[1])
        self.assertTrue(shapft_testing.small_windows(injector.windows, 8, len(frames)))   # smaller than a chunk
        self.assertEqual(injector.frames_dropped(), 0)
        truth = [CLASSES.index(label) for label in labels]
        np.testing.assert_allclose(out, self.offline(frames, truth, eps=0.05), atol=1e-6)

    def test_009_arguments_checked_naming_the_parameter(self):
        cases = [
            (TypeError, "model_path: must be a file path", dict(model_path=None)),
            (TypeError, "eps: must be a number, got 'abc'", dict(eps="abc")),
            (TypeError, "eps: must be a number", dict(eps=None)),
            (ValueError, "eps: must be a finite number", dict(eps=float("nan"))),
            (TypeError, "psr_db: must be a number", dict(psr_db="x")),
            (ValueError, "psr_db: must be a finite number", dict(psr_db=float("inf"))),
            (TypeError, "method: must be a string", dict(method=None)),
            (TypeError, "enabled: must be True or False", dict(enabled="no")),
            (ValueError, "label_source: None is not one of", dict(label_source=None)),
            (TypeError, "steps: must be an integer", dict(steps="x", method="bim")),
            (ValueError, "steps: must be >= 1", dict(steps=0, method="pgd")),
            (TypeError, "seed: must be an integer", dict(seed="x")),
            (ValueError, "batch_size: must be an integer, got 2.5", dict(batch_size=2.5)),
            (TypeError, "batch_size: must be an integer", dict(batch_size="256")),
            (TypeError, "num_threads: must be an integer", dict(num_threads="a")),
            (ValueError, "num_threads: must be >= 0", dict(num_threads=-1)),
            (TypeError, "vector_length: must be an integer", dict(vector_length="x")),
        ]
        for error, message, kwargs in cases:
            kwargs.setdefault("model_path", self.model_path)
            with self.subTest(**{k: repr(v) for k, v in kwargs.items()}):
                with self.assertRaisesRegex(error, f"^{message}"):
                    fgsm_injector(**kwargs)
        # A PSR budget needs no eps; 0 threads is one worker per core (torch's default).
        injector = fgsm_injector(self.model_path, eps=None, psr_db=-23.0, method="BIM", steps=3, num_threads=0)
        self.assertEqual(injector.num_threads, torch.get_num_threads())
        self.assertEqual(injector.attack.steps, 3)
        with self.assertRaisesRegex(TypeError, "^eps: must be a number"):
            injector.set_eps("abc")
        with self.assertRaisesRegex(ValueError, "^eps: "):
            injector.set_eps(-1.0)
        with self.assertRaisesRegex(TypeError, "^psr_db: must be a number"):
            injector.set_psr_db(None)
        with self.assertRaisesRegex(TypeError, "^enabled: must be True or False"):
            injector.set_enabled("no")
        self.assertAlmostEqual(injector.psr_db(), -23.0)   # unchanged by the refused calls
        self.assertTrue(injector.enabled)

    def test_010_attack_error_reported_frames_zeroed_others_run(self):
        # The attack fails after its warm-up (3 calls) and 2 batches: the injector
        # reports it and passes the rest of its frames on as all-zero frames; the
        # branch beside it, on the same source, gets every frame.
        frames = shapft_testing.random_frames(400, seed=11)
        tb = gr.top_block()
        source = tagged_source(frames, self.labels * 5)
        injector = fgsm_injector(self.model_path, eps=0.05, batch_size=8, num_threads=1)
        injector.attack = FailingAttack(calls=3 + 2)
        attacked, clean = blocks.vector_sink_c(128), blocks.vector_sink_c(128)
        tb.connect(source, injector, attacked)
        tb.connect(source, clean)
        shapft_testing.run_to_end(tb)
        self.assertEqual(len(injector.errors()), 1)
        self.assertRegex(injector.errors()[0], "^work: RuntimeError: attack failed")
        out = np.asarray(attacked.data(), dtype=np.complex64).reshape(-1, 128)
        self.assertEqual(len(out), 400)
        zero = ~out.any(axis=1)
        self.assertEqual(int(zero.sum()), injector.frames_dropped())
        self.assertGreater(injector.frames_dropped(), 0)
        np.testing.assert_array_equal(out[~zero], frames[~zero])   # FailingAttack perturbs nothing
        self.assertEqual(len(clean.data()), 400 * 128)

    def test_011_start_error_reported_frames_zeroed(self):
        tb = gr.top_block()
        source = tagged_source(self.frames, self.labels)
        injector = fgsm_injector(self.model_path, eps=0.05, num_threads=1)
        injector.attack = FailingAttack(calls=0)   # the warm-up fails
        attacked, clean = blocks.vector_sink_c(128), blocks.vector_sink_c(128)
        tb.connect(source, injector, attacked)
        tb.connect(source, clean)
        shapft_testing.run_to_end(tb)
        self.assertRegex(" ".join(injector.errors()), "^start: RuntimeError: attack failed")
        self.assertEqual(injector.frames_dropped(), 90)
        self.assertFalse(np.any(attacked.data()))
        self.assertEqual(len(attacked.data()), len(clean.data()))

    def test_012_output_buffer_sized_without_an_info_line(self):
        # GRC's Min Output Buffer calls set_min_output_buffer(size) on the block.
        with shapft_testing.captured_output() as output:
            injector = fgsm_injector(self.model_path, batch_size=32, num_threads=2)
            default = injector.min_output_buffer(0)
            injector.set_min_output_buffer(4096)
        self.assertNotIn("set_min_output_buffer", output[0])
        self.assertEqual((default, injector.min_output_buffer(0)), (4 * 32 * 2, 4096))


    def test_013_bf16_precision_equals_offline_bf16_and_agrees_with_fp32(self):
        truth = [CLASSES.index(name) for name in self.labels]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # emulated bf16 warns on CPUs without it
            out16, _, injector = self.run_injector(self.frames, self.labels, eps=0.05, batch_size=32,
                                                   precision="bf16")
            offline16 = self.offline(self.frames, truth, eps=0.05, precision="bf16")
        out32, _, _ = self.run_injector(self.frames, self.labels, eps=0.05, batch_size=32)
        np.testing.assert_allclose(out16, offline16, atol=1e-6)
        self.assertEqual(injector.attack.precision, "bf16")
        d16, d32 = out16 - self.frames, out32 - self.frames
        signs16 = np.sign(np.concatenate([d16.real, d16.imag]))
        signs32 = np.sign(np.concatenate([d32.real, d32.imag]))
        self.assertGreaterEqual(float(np.mean(signs16 == signs32)), 0.98)
        np.testing.assert_allclose(np.abs(np.concatenate([d16.real, d16.imag])), 0.05, rtol=1e-4)
        with self.assertRaisesRegex(ValueError, "precision"):
            fgsm_injector(self.model_path, precision="fp16")

    def test_013b_device_refused_naming_it_cpu_equals_the_default(self):
        for device in shapft_testing.unavailable_devices():
            with self.subTest(device=device):
                with self.assertRaisesRegex(ValueError, f"^device: {device} is not available \\([^\n]*\\)$"):
                    fgsm_injector(self.model_path, device=device)
        with self.assertRaisesRegex(ValueError, "^device: 'gpu' is not one of"):
            fgsm_injector(self.model_path, device="gpu")
        if not shapft_testing.auto_is_cpu():
            self.skipTest("device auto is a GPU here")
        for method in ("fgsm", "pgd"):   # one worker: PGD's random starts follow the order batches run in
            with self.subTest(method=method):
                default, _, _ = self.run_injector(self.frames, self.labels, method=method, steps=3, batch_size=32,
                                                  num_threads=1)
                cpu, _, injector = self.run_injector(self.frames, self.labels, method=method, steps=3,
                                                     batch_size=32, num_threads=1, device="cpu")
                np.testing.assert_array_equal(cpu, default)
                self.assertFalse(np.array_equal(cpu, self.frames))
                self.assertEqual(injector.device, torch.device("cpu"))

    # --- method uap: a universal perturbation from a file, no model ------------------------

    def write_perturbation(self, length=128, eps=0.05, name="p.npz"):
        rng = np.random.default_rng(21)
        perturbation = rng.uniform(-eps, eps, (2, length)).astype(np.float32)
        path = os.path.join(self.dir.name, name)
        perturbation_file.save(path, perturbation, {"norm": "linf", "eps": eps})
        return path, perturbation

    def run_universal(self, frames, labels, window=None, **kwargs):
        """The uap injector's output on frames; `window` caps the frames GNU Radio hands
        it per call, so one run sees many calls."""
        tb = gr.top_block()
        tb.source = tagged_source(frames, labels)
        tb.injector = fgsm_injector("", method="uap", **kwargs)
        if window:
            tb.injector.set_max_noutput_items(window)
        tb.sink = blocks.vector_sink_c(frames.shape[1])
        tb.connect(tb.source, tb.injector, tb.sink)
        shapft_testing.run_to_end(tb)
        return np.asarray(tb.sink.data(), dtype=np.complex64).reshape(frames.shape), tb.sink.tags(), tb.injector

    def test_014_uap_output_equals_universal_apply(self):
        path, perturbation = self.write_perturbation()
        frames = shapft_testing.random_frames(300, seed=12)
        labels = self.labels * 4
        for shift in (False, True):
            for window in (None, 7):
                with self.subTest(shift=shift, window=window):
                    out, tags, injector = self.run_universal(frames, labels[:300], window, perturbation_path=path,
                                                             random_shift=shift, seed=9)
                    expected = from_model_input(universal.apply(to_model_input(frames), perturbation,
                                                                shift=shift, seed=9))
                    np.testing.assert_array_equal(out, expected)
                    label_tags = [(t.offset, pmt.symbol_to_string(t.value)) for t in tags
                                  if pmt.symbol_to_string(t.key) == "label"]
                    self.assertEqual(label_tags, list(enumerate(labels[:300])))
        self.assertEqual(injector.eps(), 0.05)
        self.assertAlmostEqual(injector.psr_db(), 10 * np.log10(2 * 0.05 ** 2), places=9)
        self.assertEqual(injector.attack.describe(), "UAP (linf) eps 0.05 (PSR -23.0 dB), "
                                                     "added at a random shift per frame")
        # shifted: the frames do not all get the same perturbation
        delta = out - frames
        self.assertFalse(np.allclose(delta[0], delta[1]))

    def test_015_uap_invalid_frames_pass_counted_and_enabled_switches_it(self):
        path, perturbation = self.write_perturbation()
        frames = self.frames[:20].copy()
        frames[3, 5] = np.nan
        frames[8] = 0
        out, _, injector = self.run_universal(frames, self.labels[:20], perturbation_path=path, random_shift=True)
        self.assertEqual(injector.frames_invalid(), 2)
        self.assertTrue(np.isnan(out[3, 5]))
        np.testing.assert_array_equal(out[8], 0)
        expected = from_model_input(universal.apply(to_model_input(frames), perturbation, shift=True, seed=0))
        good = np.r_[0:3, 4:8, 9:20]
        np.testing.assert_array_equal(out[good], expected[good])
        out, _, injector = self.run_universal(frames, self.labels[:20], perturbation_path=path, enabled=False)
        np.testing.assert_array_equal(out[good], frames[good])
        self.assertEqual(injector.frames_invalid(), 2)
        # a model path, when given, is not read with uap
        injector = fgsm_injector(os.path.join(self.dir.name, "missing.pt"), method="UAP", perturbation_path=path)
        self.assertEqual(injector.frame_length, 128)

    def test_016_uap_bad_perturbation_files_refused_naming_perturbation_path(self):
        path, _ = self.write_perturbation(length=64, name="short.npz")
        not_npz = os.path.join(self.dir.name, "frames.sigmf-data")
        with open(not_npz, "wb") as f:
            f.write(b"\x00" * 64)
        cases = [
            (ValueError, "perturbation_path: must be a file path, got an empty one", dict()),
            (ValueError, "perturbation_path: .*missing.npz: no such file",
             dict(perturbation_path=os.path.join(self.dir.name, "missing.npz"))),
            (ValueError, "perturbation_path: perturbation file .*frames.sigmf-data: not a .npz",
             dict(perturbation_path=not_npz)),
            (ValueError, "vector_length: 128 does not match the frame length 64 of .*short.npz",
             dict(perturbation_path=path, vector_length=128)),
            (TypeError, "random_shift: must be True or False", dict(perturbation_path=path, random_shift="yes")),
        ]
        for error, message, kwargs in cases:
            with self.subTest(**{k: repr(v) for k, v in kwargs.items()}):
                with self.assertRaisesRegex(error, f"^{message}"):
                    fgsm_injector("", method="uap", **kwargs)
        injector = fgsm_injector("", method="uap", perturbation_path=path)
        self.assertEqual(injector.frame_length, 64)
        self.assertEqual(grc.perturbation_length(path), 64)   # GRC sizes the ports as the block does
        with self.assertRaisesRegex(ValueError, "^eps: method uap"):
            injector.set_eps(0.1)
        with self.assertRaisesRegex(ValueError, "^psr_db: method uap"):
            injector.set_psr_db(-20.0)
        with self.assertRaisesRegex(TypeError, "^model_path: must be a file path"):
            fgsm_injector(None, method="fgsm", perturbation_path=path)


if __name__ == '__main__':
    gr_unittest.run(qa_fgsm_injector)
