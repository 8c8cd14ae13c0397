"""fgsm_injector: add adversarial perturbations to frames inside a flowgraph."""
import threading

import numpy as np
import torch
from gnuradio import gr

from .. import attacks
from ..models import masked
from .runtime import ChunkQueue, check_vector_length, load_model
from .tags import window_tags
from ..core.recording import from_model_input, to_model_input

LABEL_SOURCES = ("tag", "predicted")
CHUNK_BATCHES = 1        # per worker: a batch takes long enough that releases cost little
BUFFER_CHUNKS = 4        # room in the output buffer: chunks queued while one is released


class fgsm_injector(gr.sync_block):
    """Perturb each frame against a TorchScript classifier with the library's attacks.

    FGSM by default (`method`: fgsm, fgm, bim, pgd); the budget is `eps` (L-infinity per
    I/Q component on the unit-power scale; L2 norm per frame for fgm) or, when given,
    `psr_db` (perturbation-to-signal ratio). Untargeted: the loss of the frame's true
    class is increased, taken from its `label` tag (`label_source='tag'`, falling back
    to the model's prediction for untagged frames) or always the model's prediction.
    With a SHAP-FT model (one that carries a mask) the gradient flows through the
    deletion: an attack that knows the defence. `enabled` and the budget can change
    while the flowgraph runs. Tags pass through; frames with NaN, Inf or all zeros
    pass unperturbed and are counted.

    Speed: `num_threads` worker threads (0: torch's default, one per core) attack
    batches of up to `batch_size` frames side by side, one torch thread each
    (runtime.BatchWorkers says why), while this block's thread queues the next
    frames and passes on the perturbed ones, in order (chunk_queue). A change of
    settings applies from the next frames queued. PGD draws its random starts per
    batch, so the start a frame gets depends on how frames fall into batches.
    """

    def __init__(self, model_path, eps=0.05, method="fgsm", enabled=True, label_source="tag",
                 psr_db=None, steps=10, seed=0, batch_size=256, num_threads=0, vector_length=0):
        if label_source not in LABEL_SOURCES:
            raise ValueError(f"label_source: {label_source!r} is not one of {', '.join(LABEL_SOURCES)}")
        self.model = load_model(model_path, batch_size, num_threads)
        self.num_threads = int(num_threads) or torch.get_num_threads()
        self.chunks = None
        self.classifier, self.frame_length = masked.full_frame_classifier(self.model)
        check_vector_length(vector_length, self.frame_length, self.model.path)
        gr.sync_block.__init__(self, name="shapft_fgsm_injector",
                               in_sig=[(np.complex64, self.frame_length)],
                               out_sig=[(np.complex64, self.frame_length)])
        self.classes = self.model.classes
        self.label_source = label_source
        self.batch_size = int(batch_size)
        self.enabled = bool(enabled)
        self.invalid = 0
        self.lock = threading.Lock()
        self.settings = dict(method=method, steps=steps, seed=seed)
        self.attack = self._make_attack(eps if psr_db is None else None, psr_db)
        # GNU Radio's default buffer holds ~32 frames of 128: work() would see batches
        # that small. Room for several chunks of full batches (GRC's Min Output Buffer,
        # when set, overrides it).
        self.set_min_output_buffer(BUFFER_CHUNKS * CHUNK_BATCHES * self.batch_size * self.num_threads)

    def _make_attack(self, eps, psr_db):
        options = dict(seed=self.settings["seed"], frame_length=self.frame_length)
        if self.settings["method"] in ("bim", "pgd"):
            options["steps"] = self.settings["steps"]
        try:
            return attacks.make(self.settings["method"], self.classifier, eps=eps, psr_db=psr_db, **options)
        except ValueError as err:
            name = "psr_db" if psr_db is not None else ("eps" if "eps" in str(err) else "method")
            raise ValueError(f"{name}: {err}") from None

    def _warm_up(self):
        # A full batch: TorchScript's profiling executor optimises the graph for the
        # shapes of its first calls; after a smaller probe the batches ran ~10 % slower.
        probe = torch.zeros(self.batch_size, 2, self.frame_length)
        for _ in range(3):
            self.attack(probe, torch.zeros(len(probe), dtype=torch.long))

    def start(self):
        self.chunks = ChunkQueue(self.num_threads, self._warm_up, self.batch_size, CHUNK_BATCHES)
        return True

    def stop(self):
        if self.chunks:
            self.chunks.close()   # frames still queued were never passed on
        return True

    def work(self, input_items, output_items):
        start = self.nitems_read(0)
        self.chunks.queue(input_items[0], start, self._perturbation)
        released = self.chunks.release(start)
        output_items[0][:released.n] = released.results("frames")
        self.invalid += len(released.reasons)
        return released.n

    def _perturbation(self, frames, first):
        """A chunk's output frames and the attack on one of its batches (ChunkQueue)."""
        perturbed = np.array(frames)   # a copy: the output, perturbed in place
        with self.lock:
            attack, enabled = self.attack, self.enabled
        if not enabled or attack.eps == 0:
            return {"frames": perturbed}, None
        labels = self._labels(first, len(frames))

        def perturb(index):
            x = torch.from_numpy(to_model_input(perturbed[index]))
            batch_labels = labels[index]
            unknown = batch_labels < 0
            if unknown.any():
                with torch.no_grad():
                    batch_labels[unknown] = self.classifier(x[torch.from_numpy(unknown)]).argmax(1).numpy()
            perturbed[index] = from_model_input(attack(x, torch.from_numpy(batch_labels)).numpy())

        return {"frames": perturbed}, perturb

    def _labels(self, first, n):
        """Class index per frame from its `label` tag, -1 where the model must predict,
        for the n frames from the window's `first`."""
        if self.label_source == "predicted":
            return np.full(n, -1)
        return window_tags(self, n, self.classes, first).class_index

    # Callbacks (GRC): the next work() call uses the new settings.
    def set_eps(self, eps):
        attack = self._make_attack(eps, None)
        with self.lock:
            self.attack = attack

    def set_psr_db(self, psr_db):
        attack = self._make_attack(None, psr_db)
        with self.lock:
            self.attack = attack

    def set_enabled(self, enabled):
        with self.lock:
            self.enabled = bool(enabled)

    def eps(self):
        return self.attack.eps

    def psr_db(self):
        return self.attack.psr_db

    def frames_invalid(self):
        return self.invalid
