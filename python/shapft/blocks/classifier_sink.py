"""classifier_sink: classify frames with a TorchScript or ONNX model inside a flowgraph."""
import math

import numpy as np
import pmt
import torch
from gnuradio import gr

from ..core import artifacts, model_file, onnx_file, params
from ..learn import smoothing
from ..models import precision as model_precision
from .guard import ErrorLog, QuietBuffers
from .runtime import WorkerBlock, block_device, check_vector_length, load_model
from .tags import window_tags
from .tally import Tally
from ..core.recording import to_model_input

CLASSIFICATION_PORT = pmt.intern("classification")
CHUNK_BATCHES = 4   # per worker: fewer, larger releases cost this thread less (a batch is quick)


class classifier_sink(WorkerBlock, QuietBuffers, gr.sync_block):
    """Classify vectors of complex64 frames with a gr-shapft model file: TorchScript
    (.pt), or ONNX (.onnx, `shapft export --format onnx`; core.onnx_file), run by ONNX
    Runtime. Both give the same messages, counts and results.

    The vector length is the model's (its metadata says; 128 - m for a SHAP-FT model).
    One message per frame leaves on `classification`: a dict with frame_index, label,
    class_index, confidence (softmax probability) and valid, plus true_label, snr_db and
    correct when the frame carries `label`/`snr_db` tags. Frames with NaN, Inf or all
    zeros are not classified: they are counted and reported (valid = false, reason).
    `vector_length`, when not 0, is checked against the model's.

    Speed: `num_threads` worker threads (0: torch's default, one per core) classify
    batches of up to `batch_size` frames side by side, one torch thread each, while
    this block's thread checks, tags and reports the frames before and after them
    (runtime.BatchWorkers says why workers rather than intra-op threads).
    Frames are consumed in order, once classified (chunk_queue). Batches fill as far
    as the upstream buffer allows: the injector and the mask reserve large output
    buffers; after another block, set its min output buffer (GRC: Advanced > Min
    Output Buffer) so batches fill up.

    Randomized smoothing (`smoothing_psr_db`, None for off): each frame is classified
    `smoothing_samples` times with Gaussian noise of that PSR added, and the sink reports
    the majority class, or abstains where it does not beat the runner-up in a binomial
    test at `smoothing_alpha` (learn.smoothing, Cohen et al.'s PREDICT; `shapft certify`
    measures what that guarantees). Abstained frames are counted apart from errors
    (frames_abstained(); in = scored + invalid + dropped + abstained) and their message
    says abstained = true; confidence is the majority's share of the samples. Each
    frame's noise is drawn from `seed` and the frame's number in the stream.

    `precision` bf16 runs TorchScript models only: an ONNX model runs in float32, and is
    refused with bf16; `auto` means fp32 for it.

    `device`: where a TorchScript model runs (models.device: auto = cuda when available,
    else cpu; cuda, cuda:N, mps); the model file loads on the CPU and is moved there. An
    ONNX model runs on the CPU (ONNX Runtime's CPU provider): `auto` means cpu for it,
    and another device is refused.

    `results_path` ('' for none): the results (results()) are written there as JSON
    when the flowgraph stops; its directory must exist and be writable. Errors while
    running never stop the flowgraph: each is logged and reported (errors(), and in
    the results). A sink whose classification failed passes over the rest of its
    frames unclassified and without messages (counted as dropped), so that the
    blocks feeding it, and the other branches they feed, run on.
    """

    def __init__(self, model_path, batch_size=256, num_threads=0, name="", results_path="",
                 publish=True, vector_length=0, precision="fp32", smoothing_psr_db=None, smoothing_samples=100,
                 smoothing_alpha=0.001, seed=0, device="auto"):
        model_path = params.file_path(model_path, "model_path")
        onnx = onnx_file.is_onnx_path(model_path)
        precision = params.choice(precision, "precision", model_precision.PRECISIONS)
        if onnx and precision == "bf16":
            raise ValueError("precision: bf16 runs TorchScript models only; an ONNX model (.onnx) runs in "
                             "float32: use fp32 (or auto)")
        self.device = torch.device("cpu") if onnx and device == "auto" else block_device(device)
        if onnx and self.device.type != "cpu":
            raise ValueError(f"device: an ONNX model (.onnx) runs on the CPU in ONNX Runtime, not on {device}: "
                             "use cpu (or auto)")
        self.precision = "fp32" if onnx else model_precision.resolve(precision, self.device.type)
        batch_size = params.integer(batch_size, "batch_size", minimum=1)
        num_threads = params.integer(num_threads, "num_threads", minimum=0)
        name = params.text(name, "name")
        self.results_path = params.output_file(results_path, "results_path")
        self.publish = params.boolean(publish, "publish")
        vector_length = params.integer(vector_length, "vector_length", minimum=0)
        self.smoothing = None
        if smoothing_psr_db is not None:
            psr = params.number(smoothing_psr_db, "smoothing_psr_db")
            if not math.isfinite(psr):
                raise ValueError(f"smoothing_psr_db: must be a finite number, got {smoothing_psr_db!r}")
            alpha = params.number(smoothing_alpha, "smoothing_alpha")
            if not 0 < alpha < 1:
                raise ValueError(f"smoothing_alpha: must be between 0 and 1, got {smoothing_alpha!r}")
            try:
                sigma = smoothing.sigma_from_psr_db(psr)
            except ValueError as err:
                raise ValueError(f"smoothing_psr_db: {err}") from None
            self.smoothing = {"psr_db": psr, "sigma": sigma, "alpha": alpha,
                              "samples": params.integer(smoothing_samples, "smoothing_samples", minimum=1)}
        self.seed = params.integer(seed, "seed")
        self.model = load_model(model_path, batch_size, num_threads,
                                onnx_file.load if onnx else model_file.load).to(self.device)
        self.num_threads = num_threads or torch.get_num_threads()
        self.chunks = None
        self.frame_length = self.model.frame_length
        check_vector_length(vector_length, self.frame_length, self.model.path)
        gr.sync_block.__init__(self, name="shapft_classifier_sink",
                               in_sig=[(np.complex64, self.frame_length)], out_sig=None)
        self.message_port_register_out(CLASSIFICATION_PORT)
        self.batch_size = batch_size
        self.name = name or self.model.path.stem
        self.publishing = self.publish
        self.classes = self.model.classes
        self.tally = Tally(self.classes)
        self.latest_probabilities = np.full(len(self.classes), np.nan)
        self.log = gr.logger(f"shapft.classifier_sink.{self.name}")
        self.error_log = ErrorLog(self.log)
        self.failed = False   # after an error: frames pass unclassified

    def _warm_up(self):
        # The batch the model will run (with smoothing, one frame's noisy copies):
        # TorchScript's profiling executor optimises the graph for the shapes of its
        # first calls; after a smaller probe the batches ran ~10 % slower.
        size = self.smoothing["samples"] if self.smoothing is not None else self.batch_size
        probe = torch.zeros(size, 2, self.frame_length, device=self.device)
        with torch.inference_mode(), model_precision.autocast(self.precision, self.device.type):
            for _ in range(3):
                self.model.module(probe)

    def work(self, input_items, output_items):
        """Classify, count and report the frames released by the workers (GNU Radio)."""
        n = len(input_items[0])
        if self.failed:
            return self._drop(n)
        counted = self.tally.frames_in
        try:
            return self._work(input_items)
        except Exception as err:
            self._fail("work", err)
            return self._drop(n - (self.tally.frames_in - counted))

    def _drop(self, n):
        """Pass over n frames unclassified."""
        self.tally.frames_in += n
        self.tally.frames_dropped += n
        return n

    def _work(self, input_items):
        """work() while nothing failed: the number of frames consumed."""
        start = self.nitems_read(0)
        self.chunks.queue(input_items[0], start, self._classification)
        released = self.chunks.release(start, len(input_items[0]))
        n = released.n
        first_index = self.tally.frames_in
        self.tally.frames_in += n
        tags = window_tags(self, n, self.classes)
        predicted, confidence = released.results("predicted"), released.results("confidence")
        abstained = released.valid & (predicted == smoothing.ABSTAIN)
        valid = released.valid & ~abstained
        self.tally.frames_abstained += int(abstained.sum())
        self.tally.add(predicted[valid], tags.class_index[valid], tags.snr_db[valid])
        if valid.any():
            self.latest_probabilities = released.results("probabilities")[valid].mean(axis=0)
        for reason in released.reasons.values():
            self.tally.add_invalid(reason)
        if self.publishing:
            for i in range(n):
                self._publish(first_index + i, predicted[i], confidence[i], tags.label(i), tags.snr_db[i],
                              released.reasons.get(i))
        return n

    def _classification(self, frames, first):
        """A chunk's results and the classification of one of its batches (ChunkQueue)."""
        inputs = torch.from_numpy(to_model_input(frames))   # a copy
        results = {"predicted": np.full(len(frames), -1), "confidence": np.zeros(len(frames)),
                   "probabilities": np.zeros((len(frames), len(self.classes)), dtype=np.float32)}
        if self.smoothing is not None:
            return results, self._smoothed(inputs, results, self.nitems_read(0) + first)

        def classify(index):
            with torch.inference_mode():
                with model_precision.autocast(self.precision, self.device.type):
                    logits = self.model.module(inputs[index].to(self.device))
                probabilities = torch.softmax(logits.float(), 1).cpu()
                best = probabilities.max(dim=1)
            results["predicted"][index] = best.indices.numpy()
            results["confidence"][index] = best.values.numpy()
            results["probabilities"][index] = probabilities.numpy()

        return results, classify

    def _smoothed(self, inputs, results, first_frame):
        """The smoothed classification of a batch; each frame's noise is drawn from the
        seed and its absolute frame number, so it does not depend on how GNU Radio's
        work() windows or the workers split the stream."""
        settings = self.smoothing

        def classify(index):
            positions = np.arange(len(inputs))[index]
            counts = np.stack([smoothing.class_counts(
                self.model.module, inputs[position:position + 1], settings["sigma"], settings["samples"],
                len(self.classes), self._frame_generator(first_frame + position), settings["samples"],
                self.precision)[0] for position in positions])
            results["predicted"][index] = smoothing.predict_from_counts(counts, settings["alpha"])
            results["confidence"][index] = counts.max(axis=1) / settings["samples"]
            results["probabilities"][index] = counts / settings["samples"]

        return classify

    def _frame_generator(self, frame_number):
        """The noise generator of one frame of the stream."""
        return torch.Generator().manual_seed(int(np.random.SeedSequence(
            [self.seed, int(frame_number)]).generate_state(1)[0]))

    def _publish(self, frame_index, predicted, confidence, label, snr, reason):
        """One frame's message on `classification`."""
        message = {"frame_index": int(frame_index), "valid": reason is None}
        if reason is None and predicted == smoothing.ABSTAIN:
            message.update(abstained=True, confidence=float(confidence))
        elif reason is None:
            message.update(label=self.classes[predicted], class_index=int(predicted),
                           confidence=float(confidence))
        else:
            message["reason"] = reason
        if label is not None:
            message["true_label"] = label
            if reason is None and predicted != smoothing.ABSTAIN:
                message["correct"] = bool(self.classes[predicted] == label)
        if not math.isnan(snr):
            message["snr_db"] = float(snr)
        self.message_port_pub(CLASSIFICATION_PORT, pmt.to_pmt(message))

    def start(self):
        """Start the workers (each warms the model up); an error leaves the sink failed."""
        return self._start_publishing(CLASSIFICATION_PORT, self._warm_up, CHUNK_BATCHES)

    def stop(self):
        """Stop the workers, log the summary and write the results file."""
        self._stop_workers()   # frames still queued were never consumed: not counted
        if self.results_path:
            try:
                params.write_output_file(self.results_path,
                                         lambda path: artifacts.write_json(path, self.results()))
            except Exception as err:
                self.error_log.record("stop", f"results_path {self.results_path}: not written: {err}")
        self.log.info(self.summary())
        return True

    def results(self):
        """The frame counts, accuracy report, errors and the model, as written to results_path."""
        return dict(self.tally.as_dict(), errors=self.errors(), name=self.name,
                    model=str(self.model.path), model_sha256=self.model.sha256, precision=self.precision,
                    device=str(self.device), smoothing=self.smoothing)

    def errors(self):
        """Texts of the errors caught while running, oldest first (empty when none)."""
        return self.error_log.texts()

    def frames_in(self):
        """Frames received so far."""
        return self.tally.frames_in

    def frames_scored(self):
        """Frames classified so far."""
        return self.tally.frames_scored

    def frames_invalid(self):
        """Frames not classified because of NaN, Inf or all-zero samples."""
        return sum(self.tally.frames_invalid.values())

    def frames_dropped(self):
        """Frames passed over unclassified after an error (errors())."""
        return self.tally.frames_dropped

    def frames_abstained(self):
        """Frames a smoothed sink abstained on (no clear majority class)."""
        return self.tally.frames_abstained

    def accuracy(self):
        """Fraction of the labelled frames classified correctly (nan before any)."""
        return self.tally.accuracy()

    def recent_accuracy(self):
        """Accuracy over the latest labelled frames (tally.RECENT_FRAMES): follows live changes."""
        return self.tally.recent_accuracy()

    def accuracy_by_snr(self):
        """{snr_db: accuracy} of the labelled frames that carried an SNR."""
        return self.tally.accuracy_by_snr()

    def recent_probabilities(self):
        """Class probabilities (softmax; a smoothed sink's vote shares) averaged over the
        classified frames of the latest batches work() released; nan before any."""
        return self.latest_probabilities.copy()

    def predicted_counts(self):
        """Frames classified as each class so far, labelled or not (the class histogram)."""
        return self.tally.predicted.copy()

    def confusion_matrix(self):
        """Counts [true class, predicted class] of the labelled frames (a copy)."""
        return self.tally.confusion.copy()

    def summary(self):
        """One line: the sink's name, frame counts, accuracy and any errors."""
        text = f"{self.name}: {self.tally.summary()}"
        errors = self.errors()
        if errors:
            text += f"; {len(errors)} error{'s' if len(errors) > 1 else ''}: {errors[-1]}"
        return text
