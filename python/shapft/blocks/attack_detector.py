"""attack_detector: score each frame of a stream as attacked or clean, passing it on unchanged."""
import collections
import math
import threading

import numpy as np
import pmt
import torch
from gnuradio import gr

from ..core import detector_file, params
from ..models import precision as model_precision
from .guard import ErrorLog, QuietBuffers
from .runtime import WorkerBlock, block_device, check_vector_length, load_file
from ..core.recording import to_model_input

DETECTION_PORT = pmt.intern("detection")
SCORE_TAG = pmt.intern("attack_score")
DETECTED_TAG = pmt.intern("attack_detected")
CHUNK_BATCHES = 4      # per worker, as the classifier sink: a batch is quick
BUFFER_CHUNKS = 4
RECENT_FRAMES = 500    # recent_alarm_rate() covers the latest valid frames


class attack_detector(WorkerBlock, QuietBuffers, gr.sync_block):
    """Score every frame with a gr-shapft attack-detector file; frames leave unchanged.

    The detector file (`shapft detector`, core.detector_file) maps frames [N, 2, L] to
    one score each, higher meaning more likely attacked. A frame is called attacked
    when its score exceeds the threshold: the one at which `false_alarm_rate` of the
    clean frames the detector was calibrated on would be called attacked, or
    `threshold` itself when given (not None). Each frame leaves tagged `attack_score`
    (float) and `attack_detected` (bool) at its item, and, while someone listens, one
    message on `detection`: frame_index, score, detected, threshold and valid. Frames
    with NaN, Inf or all-zero samples are passed on unscored (valid = false, reason),
    counted, never fatal. The input's own tags pass through.

    Speed: as classifier_sink, `num_threads` worker threads (0: one per core) score
    batches of up to `batch_size` frames side by side while this block's thread tags
    and reports; frames are passed on in order once scored, on `device` (models.device:
    auto = cuda when available, else cpu; cuda, cuda:N, mps).

    Errors while running never stop the flowgraph: each is logged and reported
    (errors()); after one, frames pass unscored and untagged (frames_dropped()).
    """

    def __init__(self, detector_path, false_alarm_rate=0.05, threshold=None, batch_size=256, num_threads=0,
                 vector_length=0, precision="fp32", publish=True, device="auto"):
        detector_path = params.file_path(detector_path, "detector_path")
        self.device = block_device(device)
        self.precision = model_precision.resolve(params.choice(precision, "precision", model_precision.PRECISIONS),
                                                 self.device.type)
        batch_size = params.integer(batch_size, "batch_size", minimum=1)
        num_threads = params.integer(num_threads, "num_threads", minimum=0)
        vector_length = params.integer(vector_length, "vector_length", minimum=0)
        self.publish = params.boolean(publish, "publish")
        self.detector = load_file(detector_file.load, detector_path, "detector_path").to(self.device)
        self.lock = threading.Lock()
        if threshold is None:
            self.set_false_alarm_rate(false_alarm_rate)
        else:
            self.set_threshold(threshold)
        self.frame_length = self.detector.frame_length
        check_vector_length(vector_length, self.frame_length, self.detector.path)
        gr.sync_block.__init__(self, name="shapft_attack_detector",
                               in_sig=[(np.complex64, self.frame_length)],
                               out_sig=[(np.complex64, self.frame_length)])
        self.message_port_register_out(DETECTION_PORT)
        self.batch_size = batch_size
        self.num_threads = num_threads or torch.get_num_threads()
        self.chunks = None
        self.publishing = self.publish
        self.frames = {"in": 0, "scored": 0, "invalid": 0, "dropped": 0, "detected": 0}
        self.recent = collections.deque(maxlen=RECENT_FRAMES)
        self.error_log = ErrorLog(self.logger)
        self.failed = False
        self.set_min_output_buffer(BUFFER_CHUNKS * CHUNK_BATCHES * self.batch_size * self.num_threads)

    def _warm_up(self):
        probe = torch.zeros(self.batch_size, 2, self.frame_length, device=self.device)
        with torch.inference_mode(), model_precision.autocast(self.precision, self.device.type):
            for _ in range(3):
                self.detector.module(probe)

    def start(self):
        """Start the workers (each warms the detector up); an error leaves the block failed."""
        return self._start_publishing(DETECTION_PORT, self._warm_up, CHUNK_BATCHES)

    def stop(self):
        """Stop the workers (frames still queued were never passed on) and log the summary."""
        self._stop_workers()
        self.logger.info(self.summary())
        return True

    def work(self, input_items, output_items):
        """Pass on the frames released by the workers, with their score tags (GNU Radio)."""
        frames, out = input_items[0], output_items[0]
        if self.failed:
            return self._drop(frames, out)
        try:
            start = self.nitems_read(0)
            self.chunks.queue(frames, start, self._scoring)
            released = self.chunks.release(start, len(out))
            n = released.n
            out[:n] = frames[:n]
            self._report(released.results("score"), released.reasons, n)
            return n
        except Exception as err:
            self._fail("work", err)
            return self._drop(frames, out)

    def _drop(self, frames, out):
        """Pass the window's frames on unscored."""
        n = min(len(frames), len(out))
        out[:n] = frames[:n]
        self.frames["in"] += n
        self.frames["dropped"] += n
        return n

    def _scoring(self, frames, first):
        """A chunk's scores and the scoring of one of its batches (ChunkQueue)."""
        inputs = torch.from_numpy(to_model_input(frames))   # a copy
        results = {"score": np.full(len(frames), np.nan)}

        def score(index):
            with torch.inference_mode(), model_precision.autocast(self.precision, self.device.type):
                results["score"][index] = self.detector.module(inputs[index].to(self.device)).float().cpu().numpy()

        return results, score

    def _report(self, scores, reasons, n):
        """Count, tag and publish the n released frames."""
        with self.lock:
            threshold = self.threshold
        first_index = self.frames["in"]
        written = self.nitems_written(0)
        detected = scores > threshold   # False for the unscored (nan)
        valid = np.ones(n, dtype=bool)
        valid[list(reasons)] = False
        self.frames["in"] += n
        self.frames["invalid"] += len(reasons)
        self.frames["scored"] += int(valid.sum())
        self.frames["detected"] += int(detected.sum())
        self.recent.extend(detected[valid].tolist())
        for i in np.flatnonzero(valid):
            self.add_item_tag(0, written + int(i), SCORE_TAG, pmt.from_double(float(scores[i])))
            self.add_item_tag(0, written + int(i), DETECTED_TAG, pmt.from_bool(bool(detected[i])))
        if self.publishing:
            for i in range(n):
                message = {"frame_index": first_index + i, "valid": i not in reasons, "threshold": threshold}
                if i in reasons:
                    message["reason"] = reasons[i]
                else:
                    message.update(score=float(scores[i]), detected=bool(detected[i]))
                self.message_port_pub(DETECTION_PORT, pmt.to_pmt(message))

    # Callbacks (GRC): the frames released next use the new threshold; a bad value is
    # refused (ValueError naming it) and the threshold stays as it was.
    def set_false_alarm_rate(self, false_alarm_rate):
        """Call frames attacked above the threshold of this clean false-alarm rate (0 < rate < 1)."""
        rate = params.number(false_alarm_rate, "false_alarm_rate")
        threshold = self.detector.threshold_for(rate)   # refuses rates outside (0, 1), naming it
        with self.lock:
            self.threshold, self.rate = threshold, rate

    def set_threshold(self, threshold):
        """Call frames attacked whose score exceeds `threshold`."""
        threshold = params.number(threshold, "threshold")
        if not math.isfinite(threshold):
            raise ValueError(f"threshold: must be a finite number, got {threshold!r}")
        with self.lock:
            self.threshold, self.rate = threshold, self.detector.false_alarm_rate_at(threshold)

    def threshold_value(self):
        """The score above which a frame is called attacked."""
        return self.threshold

    def false_alarm_rate(self):
        """The clean calibration frames' false-alarm rate at the current threshold."""
        return self.rate

    def alarm_rate(self):
        """Fraction of the scored frames called attacked so far (nan before any)."""
        return self.frames["detected"] / self.frames["scored"] if self.frames["scored"] else math.nan

    def recent_alarm_rate(self):
        """Alarm rate over the latest RECENT_FRAMES scored frames: follows live changes."""
        recent = list(self.recent)
        return sum(recent) / len(recent) if recent else math.nan

    def frames_in(self):
        return self.frames["in"]

    def frames_scored(self):
        return self.frames["scored"]

    def frames_invalid(self):
        """Frames passed on unscored because of NaN, Inf or all-zero samples."""
        return self.frames["invalid"]

    def frames_dropped(self):
        """Frames passed on unscored after an error (errors())."""
        return self.frames["dropped"]

    def frames_detected(self):
        return self.frames["detected"]

    def errors(self):
        """Texts of the errors caught while running, oldest first (empty when none)."""
        return self.error_log.texts()

    def summary(self):
        """One line: frame counts, alarm rate, threshold and any errors."""
        rate = self.alarm_rate()
        text = (f"{self.detector.path.name}: {self.frames['in']} frames in, {self.frames['scored']} scored, "
                f"{self.frames['invalid']} invalid, {self.frames['dropped']} dropped; alarm rate "
                f"{'n/a' if rate != rate else f'{100 * rate:.1f}%'} at threshold {self.threshold:.3f} "
                f"({100 * self.rate:.1f}% clean false alarms)")
        errors = self.errors()
        if errors:
            text += f"; {len(errors)} error{'s' if len(errors) > 1 else ''}: {errors[-1]}"
        return text

