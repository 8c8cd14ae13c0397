"""fgsm_injector: add adversarial perturbations to frames inside a flowgraph."""
import threading

import numpy as np
import torch
from gnuradio import gr

from .. import attacks
from ..attacks import universal
from ..core import params, perturbation_file
from ..models import masked
from ..models import precision as model_precision
from .guard import ErrorLog, QuietBuffers
from .runtime import WorkerBlock, block_device, check_vector_length, load_model
from .tags import window_tags
from ..core.recording import frame_validity, from_model_input, to_model_input

LABEL_SOURCES = ("tag", "predicted")
METHODS = (*attacks.METHODS, perturbation_file.METHOD)
CHUNK_BATCHES = 1        # per worker: a batch takes long enough that releases cost little
BUFFER_CHUNKS = 4        # room in the output buffer: chunks queued while one is released


class fgsm_injector(WorkerBlock, QuietBuffers, gr.sync_block):
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
    `device`: where the model runs (models.device: auto = cuda when available, else
    cpu; cuda, cuda:N, mps); the model file loads on the CPU and is moved there.

    Method 'uap' adds a universal adversarial perturbation from `perturbation_path` (a
    file of `shapft uap`, core.perturbation_file) to every frame, without a model
    (model_path may be empty and is not read), as universal.apply does: unshifted, or
    with `random_shift` circularly shifted by an independent random amount per frame,
    drawn frame by frame from a generator seeded by `seed`, so the same seed and frames
    give the same output however GNU Radio hands them over. Its budget is the file's
    (eps(), psr_db()); eps, psr_db, steps, label_source, batch_size, num_threads,
    precision and device are unused, and set_eps/set_psr_db are refused. It runs in the block's
    own thread, one addition per frame (after a gather of the shifted rows with
    random_shift); like any Python block it pays a fixed cost per work() call, so more
    frames per call (a larger output buffer on the block before it) make it faster.

    Errors while running never stop the flowgraph: each is logged and reported
    (errors()). After one, the block passes the rest of its frames on as all-zero
    frames (frames_dropped()), which a classifier sink counts as invalid rather than
    score unperturbed frames as attacked ones.
    """

    def __init__(self, model_path, eps=0.05, method="fgsm", enabled=True, label_source="tag",
                 psr_db=None, steps=10, seed=0, batch_size=256, num_threads=0, vector_length=0,
                 precision="fp32", perturbation_path="", random_shift=False, device="auto"):
        method = params.text(method, "method").lower()
        if method not in METHODS:
            raise ValueError(f"method: unknown attack method {method!r}; expected one of {', '.join(METHODS)}")
        self.device = torch.device("cpu")
        if method != perturbation_file.METHOD:   # uap needs no model
            model_path = params.file_path(model_path, "model_path")
            self.device = block_device(device)
        precision = model_precision.resolve(params.choice(precision, "precision", model_precision.PRECISIONS),
                                            self.device.type)
        if psr_db is not None:
            psr_db = params.number(psr_db, "psr_db")
        if eps is not None or psr_db is None:   # eps is the budget unless psr_db is given
            eps = params.number(eps, "eps")
        enabled = params.boolean(enabled, "enabled")
        label_source = params.choice(label_source, "label_source", LABEL_SOURCES)
        steps = params.integer(steps, "steps", minimum=1)
        seed = params.integer(seed, "seed")
        batch_size = params.integer(batch_size, "batch_size", minimum=1)
        num_threads = params.integer(num_threads, "num_threads", minimum=0)
        vector_length = params.integer(vector_length, "vector_length", minimum=0)
        random_shift = params.boolean(random_shift, "random_shift")
        self.num_threads = num_threads or torch.get_num_threads()
        self.chunks = None
        self.settings = dict(method=method, steps=steps, seed=seed, precision=precision)
        if method == perturbation_file.METHOD:
            self.attack = self._load_perturbation(perturbation_path, random_shift)
            self.frame_length = self.attack.frame_length
            check_vector_length(vector_length, self.frame_length, perturbation_path)
        else:
            self.model = load_model(model_path, batch_size, num_threads).to(self.device)
            self.classifier, self.frame_length = masked.full_frame_classifier(self.model)
            check_vector_length(vector_length, self.frame_length, self.model.path)
        gr.sync_block.__init__(self, name="shapft_fgsm_injector",
                               in_sig=[(np.complex64, self.frame_length)],
                               out_sig=[(np.complex64, self.frame_length)])
        self.label_source = label_source
        self.batch_size = batch_size
        self.enabled = enabled
        self.invalid = 0
        self.dropped = 0
        self.error_log = ErrorLog(self.logger)
        self.failed = False   # after an error: frames leave as all-zero frames
        self.lock = threading.Lock()
        if method == perturbation_file.METHOD:
            return
        self.classes = self.model.classes
        self.attack = self._make_attack(eps if psr_db is None else None, psr_db)
        # GNU Radio's default buffer holds ~32 frames of 128: work() would see batches
        # that small. Room for several chunks of full batches (GRC's Min Output Buffer,
        # when set, overrides it).
        self.set_min_output_buffer(BUFFER_CHUNKS * CHUNK_BATCHES * self.batch_size * self.num_threads)

    def _load_perturbation(self, path, random_shift):
        """The universal perturbation of file `path`, ready to add: each circular shift
        as a row of complex samples (one row without random_shift) and the shifts'
        generator; errors name perturbation_path."""
        path = params.file_path(path, "perturbation_path")
        try:
            perturbation, info = perturbation_file.load(path)
        except (FileNotFoundError, ValueError) as err:
            raise ValueError(f"perturbation_path: {err}") from None
        shifted = universal.circular_shifts(perturbation) if random_shift else perturbation[None]
        self.rows = from_model_input(shifted)
        self.shift_generator = np.random.default_rng(self.settings["seed"]) if random_shift else None
        return perturbation_file.Universal(perturbation, info, random_shift)

    def _make_attack(self, eps, psr_db):
        """The attack at budget eps or psr_db with the block's settings; errors name the parameter."""
        options = dict(seed=self.settings["seed"], frame_length=self.frame_length,
                       precision=self.settings["precision"])
        if self.settings["method"] in ("bim", "pgd"):
            options["steps"] = self.settings["steps"]
        try:
            return attacks.make(self.settings["method"], self.classifier, eps=eps, psr_db=psr_db, **options)
        except ValueError as err:
            name = "steps" if "steps" in str(err) else "psr_db" if psr_db is not None else "eps"
            raise ValueError(f"{name}: {err}") from None

    def _warm_up(self):
        # A full batch: TorchScript's profiling executor optimises the graph for the
        # shapes of its first calls; after a smaller probe the batches ran ~10 % slower.
        probe = torch.zeros(self.batch_size, 2, self.frame_length, device=self.device)
        for _ in range(3):
            self.attack(probe, torch.zeros(len(probe), dtype=torch.long, device=self.device))

    def start(self):
        """Start the workers (each warms the attack up); an error leaves the block failed.
        Method uap needs none."""
        if self.settings["method"] != perturbation_file.METHOD:
            self._start_workers(self._warm_up, CHUNK_BATCHES)
        return True

    def stop(self):
        """Stop the workers; frames still queued were never passed on."""
        self._stop_workers()
        return True

    def work(self, input_items, output_items):
        """Pass on the frames released by the workers, perturbed; with uap, the window's
        frames with the perturbation added (GNU Radio)."""
        out = output_items[0]
        if self.failed:
            return self._drop(out)
        try:
            if self.settings["method"] == perturbation_file.METHOD:
                return self._add_universal(input_items[0], out)
            start = self.nitems_read(0)
            self.chunks.queue(input_items[0], start, self._perturbation)
            released = self.chunks.release(start, len(out))
            out[:released.n] = released.results("frames")
            self.invalid += len(released.reasons)
            return released.n
        except Exception as err:
            self._fail("work", err)
            return self._drop(out)

    def _add_universal(self, frames, out):
        """Method uap: out = frames + the perturbation (at each frame's shift); invalid
        frames pass unperturbed. Every frame draws its shift, enabled or not, so frame k
        always gets the k-th draw."""
        n = len(frames)
        if self.shift_generator is not None:
            shifts = universal.draw_shifts(self.shift_generator, n, self.frame_length)
        with self.lock:
            enabled = self.enabled
        valid, reasons = frame_validity(frames)
        self.invalid += len(reasons)
        if not enabled:
            out[:n] = frames
            return n
        if self.shift_generator is None:
            np.add(frames, self.rows[0], out=out[:n])
        else:
            # mode 'clip' writes straight into out ('raise' buffers); the shifts are in range
            np.take(self.rows, shifts, axis=0, out=out[:n], mode="clip")
            out[:n] += frames
        if reasons:
            out[:n][~valid] = frames[~valid]
        return n

    def _drop(self, out):
        """Pass on all-zero frames in place of the window's frames."""
        out[:] = 0
        self.dropped += len(out)
        return len(out)

    def _perturbation(self, frames, first):
        """A chunk's output frames and the attack on one of its batches (ChunkQueue)."""
        perturbed = np.array(frames)   # a copy: the output, perturbed in place
        with self.lock:
            attack, enabled = self.attack, self.enabled
        if not enabled or attack.eps == 0:
            return {"frames": perturbed}, None
        labels = self._labels(first, len(frames))

        def perturb(index):
            x = torch.from_numpy(to_model_input(perturbed[index])).to(self.device)
            batch_labels = labels[index]
            unknown = batch_labels < 0
            if unknown.any():
                with torch.no_grad(), model_precision.autocast(attack.precision, self.device.type):
                    predicted = self.classifier(x[torch.from_numpy(unknown).to(self.device)]).float().argmax(1)
                batch_labels[unknown] = predicted.cpu().numpy()
            adversarial = attack(x, torch.from_numpy(batch_labels).to(self.device))
            perturbed[index] = from_model_input(adversarial.cpu().numpy())

        return {"frames": perturbed}, perturb

    def _labels(self, first, n):
        """Class index per frame from its `label` tag, -1 where the model must predict,
        for the n frames from the window's `first`."""
        if self.label_source == "predicted":
            return np.full(n, -1)
        return window_tags(self, n, self.classes, first).class_index

    # Callbacks (GRC): the next frames queued use the new settings; a bad value is
    # refused (ValueError or TypeError naming it) and the settings stay as they were.
    def set_eps(self, eps):
        """Make eps (L-infinity per I/Q component; L2 per frame for fgm) the budget."""
        self._refuse_with_universal("eps")
        attack = self._make_attack(params.number(eps, "eps"), None)
        with self.lock:
            self.attack = attack

    def set_psr_db(self, psr_db):
        """Make the perturbation-to-signal ratio psr_db (dB) the budget."""
        self._refuse_with_universal("psr_db")
        attack = self._make_attack(None, params.number(psr_db, "psr_db"))
        with self.lock:
            self.attack = attack

    def _refuse_with_universal(self, name):
        if self.settings["method"] == perturbation_file.METHOD:
            raise ValueError(f"{name}: method uap adds the budget of its perturbation_path file; "
                             "it cannot change while running")

    def set_enabled(self, enabled):
        """Attack (True) or pass frames through unperturbed (False)."""
        enabled = params.boolean(enabled, "enabled")
        with self.lock:
            self.enabled = enabled

    def eps(self):
        """The budget as eps (whichever unit it was given in)."""
        return self.attack.eps

    def psr_db(self):
        """The budget as perturbation-to-signal ratio, dB."""
        return self.attack.psr_db

    def frames_invalid(self):
        """Frames passed on unperturbed because of NaN, Inf or all-zero samples."""
        return self.invalid

    def frames_dropped(self):
        """Frames passed on as all-zero frames after an error (errors())."""
        return self.dropped

    def errors(self):
        """Texts of the errors caught while running, oldest first (empty when none)."""
        return self.error_log.texts()
