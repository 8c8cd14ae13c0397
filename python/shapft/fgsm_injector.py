"""fgsm_injector: add adversarial perturbations to frames inside a flowgraph."""
import threading

import numpy as np
import torch
from gnuradio import gr

from . import attacks, pipelines
from .block_support import batches, check_vector_length, frame_validity, load_model, window_tags
from .recording import from_model_input, to_model_input
from .torch_threads import BatchWorkers

LABEL_SOURCES = ("tag", "predicted")


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
    (torch_threads.BatchWorkers says why). PGD draws its random starts per batch, so
    the start a frame gets depends on how frames fall into batches and workers.
    """

    def __init__(self, model_path, eps=0.05, method="fgsm", enabled=True, label_source="tag",
                 psr_db=None, steps=10, seed=0, batch_size=256, num_threads=0, vector_length=0):
        if label_source not in LABEL_SOURCES:
            raise ValueError(f"label_source: {label_source!r} is not one of {', '.join(LABEL_SOURCES)}")
        self.model = load_model(model_path, batch_size, num_threads)
        self.num_threads = int(num_threads) or torch.get_num_threads()
        self.workers = None
        self.classifier, self.frame_length = pipelines.full_frame_classifier(self.model)
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
        # that small. Room for two full batches per call (GRC's Min Output Buffer, when
        # set, overrides it).
        self.set_min_output_buffer(4 * self.batch_size)

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
        self.workers = BatchWorkers(self.num_threads, self._warm_up)
        return True

    def stop(self):
        if self.workers:
            self.workers.close()
        return True

    def work(self, input_items, output_items):
        frames, out = input_items[0], output_items[0]
        n = len(frames)
        out[:] = frames
        with self.lock:
            attack, enabled = self.attack, self.enabled
        valid, reasons = frame_validity(frames)
        self.invalid += len(reasons)
        if not enabled or attack.eps == 0:
            return n
        labels = self._labels(n)

        def perturb(index):
            x = torch.from_numpy(to_model_input(frames[index]))
            batch_labels = labels[index]
            unknown = batch_labels < 0
            if unknown.any():
                with torch.no_grad():
                    batch_labels[unknown] = self.classifier(x[torch.from_numpy(unknown)]).argmax(1).numpy()
            out[index] = from_model_input(attack(x, torch.from_numpy(batch_labels)).numpy())

        perturbed = [self.workers.submit(perturb, index)
                     for index in batches(valid, self.batch_size, self.workers.count)]
        for batch in perturbed:
            batch.result()   # raises what the batch raised
        return n

    def _labels(self, n):
        """Class index per frame from its `label` tag, -1 where the model must predict."""
        if self.label_source == "predicted":
            return np.full(n, -1)
        return window_tags(self, n, self.classes).class_index

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
