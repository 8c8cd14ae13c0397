"""Small, deterministic models and frames for QA tests and benchmarks, and the QA
tests' flowgraph helpers (running to the end without hanging, capturing C++ output).

Models are randomly initialised from a seed (no training) but real: scripted,
saved with metadata as gr-shapft model files, loaded back by the blocks.
"""
import contextlib
import os
import sys
import tempfile
import threading
import time

import numpy as np
import torch
from gnuradio import gr

from gnuradio.shapft import models
from gnuradio.shapft.core import model_file
from gnuradio.shapft.core.radioml import CLASSES
from gnuradio.shapft.core.recording import Recording


def small_cnn_lstm(seed=0):
    torch.manual_seed(seed)
    return models.CnnLstm(len(CLASSES), conv_channels=16, lstm_units=16, dense_units=32)


def write_model(path, arch="cnn_lstm", frame_length=128, mask=None, seed=0):
    """A model file with an untrained model: a small CNN-LSTM or the compact transformer."""
    if arch == "cnn_lstm":
        model = small_cnn_lstm(seed)
    else:
        torch.manual_seed(seed)
        model = models.build(arch, frame_length=frame_length)
    model.eval()
    metadata = model_file.build_metadata(model, arch, frame_length, {"command": "testing.write_model",
                                                                      "seed": seed}, mask=mask)
    model_file.save(model, path, metadata)
    return path


def write_detector(path, model_path, features="frames+logits", seed=0):
    """A detector file with an untrained detector guarding the model file `model_path`,
    calibrated on the scores of random frames."""
    from gnuradio.shapft.core import detector_file
    from gnuradio.shapft.models import detector
    loaded = model_file.load(model_path)
    torch.manual_seed(seed)
    network = detector.AttackDetector(loaded.module, len(loaded.classes), features).eval()
    scorer = detector.Scorer(network)
    x = torch.from_numpy(np.stack([random_frames(400, loaded.frame_length, seed).real,
                                   random_frames(400, loaded.frame_length, seed).imag], axis=1))
    with torch.no_grad():
        calibration = detector_file.calibration(scorer(x).numpy())
    metadata = detector_file.build_metadata(network, loaded.frame_length, loaded, calibration, features,
                                            {}, {"command": "testing.write_detector", "seed": seed})
    detector_file.save(scorer, path, metadata)
    return path


def unavailable_devices():
    """Devices this machine lacks, for the refusal tests: a CUDA index past its last GPU
    (cuda:7 on a machine without any) and, without an Apple GPU, mps."""
    devices = [f"cuda:{max(7, torch.cuda.device_count())}"]
    if not torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def auto_is_cpu():
    """Whether device auto means the CPU here (no CUDA device): the default then equals --device cpu."""
    return not torch.cuda.is_available()


def one_line_error(err, command):
    """The refusal is one line on stderr, `shapft COMMAND: error: ...`; returns it."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"shapft {command}: error: "), err
    return lines[0]


def random_frames(n, frame_length=128, seed=0):
    """Unit-power complex Gaussian frames, complex64 [n, frame_length]."""
    rng = np.random.default_rng(seed)
    frames = rng.standard_normal((n, frame_length)) + 1j * rng.standard_normal((n, frame_length))
    frames /= np.sqrt(np.mean(np.abs(frames) ** 2, axis=1, keepdims=True))
    return frames.astype(np.complex64)


def tone_recording(per_class, snrs_db, seed, length=128):
    """Unit-power frames: class c is a tone at (c + 1) / 24 cycles per sample in noise."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(11), per_class * len(snrs_db))
    snr = np.tile(np.repeat(np.asarray(snrs_db, dtype=float), per_class), 11)
    n = np.arange(length)
    phase = rng.uniform(0, 2 * np.pi, (len(labels), 1))
    frames = np.exp(1j * (2 * np.pi * (labels[:, None] + 1) / 24 * n + phase))
    noise = rng.standard_normal((len(labels), length, 2)) @ np.array([1, 1j])
    frames = frames + noise * np.sqrt(10 ** (-snr[:, None] / 10) / 2)
    frames /= np.sqrt(np.mean(np.abs(frames) ** 2, axis=1, keepdims=True))
    return Recording(frames, labels, snr)


def hand_adaptive(module, keep, x, labels, eps):
    """FGSM crafted against the deletion + model, computed in the test (not by the code
    under test); returns (x_adv, accuracy)."""
    import numpy as np
    from gnuradio.shapft import attacks
    from gnuradio.shapft.models import masked
    classifier = masked.MaskedClassifier(module, torch.as_tensor(keep, dtype=torch.long)).eval()
    x, labels = torch.from_numpy(x), torch.from_numpy(labels)
    x_adv = attacks.FGSM(classifier, eps=eps)(x, labels)
    with torch.no_grad():
        accuracy = float(np.mean((classifier(x_adv).argmax(dim=1) == labels).numpy()))
    return x_adv, accuracy


# --- running flowgraphs in QA -------------------------------------------------------

@contextlib.contextmanager
def captured_output():
    """What the process writes to stdout and stderr (file descriptors 1 and 2, where
    GNU Radio's C++ logging goes), as a list that holds the text once the block ends."""
    text = []
    with tempfile.TemporaryFile() as f:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield text
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)
            f.seek(0)
            text.append(f.read().decode(errors="replace"))


def run_to_end(tb, seconds=60):
    """tb.run(), failing the test rather than hanging when the flowgraph does not end
    (a block whose work() raised leaves it waiting forever)."""
    tb.start()
    waiter = threading.Thread(target=tb.wait, daemon=True)
    waiter.start()
    waiter.join(seconds)
    if waiter.is_alive():
        tb.stop()
        waiter.join(10)
        raise AssertionError(f"the flowgraph did not end within {seconds} s")


class SlowConsumer(gr.sync_block):
    """Takes nothing for its first `pause` seconds, then passes vectors of `length`
    complex samples on, at most `per_call` per work() call and 5 ms apart (400 frames/s
    at 2 per call, slower than the blocks it follows): the block upstream of it works
    on large windows while its output buffer fills, then is offered windows of a few
    frames."""

    def __init__(self, length, per_call=2, pause=0.3):
        gr.sync_block.__init__(self, name="slow_consumer", in_sig=[(np.complex64, length)],
                               out_sig=[(np.complex64, length)])
        self.per_call = per_call
        self.pause = pause
        self.started = None

    def work(self, input_items, output_items):
        self.started = self.started or time.monotonic()
        if time.monotonic() - self.started < self.pause:
            time.sleep(0.01)
            return 0
        n = min(self.per_call, len(output_items[0]))
        output_items[0][:n] = input_items[0][:n]
        time.sleep(0.005)
        return n


def window_recording(block_class):
    """A subclass of the Python block `block_class` that records the output window of each
    of its work() calls (`windows`: (first item, length))."""
    class Recorded(block_class):
        def work(self, input_items, output_items):
            self.windows = getattr(self, "windows", [])
            self.windows.append((self.nitems_read(0), len(output_items[0])))
            return super().work(input_items, output_items)
    return Recorded


def small_windows(windows, size, total):
    """The recorded windows (window_recording) shorter than `size` items that did not
    reach the end of the `total` items: windows the block was offered mid-stream."""
    return [(start, n) for start, n in windows if n < size and start + size <= total]
