"""The robustness leaderboard (`shapft robustness`, docs/robustness.md): which classifier
and defence survives the strongest attack that knows it.

Every model is attacked as deployed (a model that carries a mask through its deletion,
models.masked) on one stratified subset of a recording, at each PSR budget:

- the L-inf cascade, run as AutoAttack runs its ensemble (Croce & Hein, "Reliable
  evaluation of adversarial robustness with an ensemble of diverse parameter-free
  attacks", arXiv:2003.01690): FGSM -> PGD (random restarts) -> APGD-CE -> APGD-DLR
  (targeted) -> Square (score-based black box), each on the frames still classified
  correctly; robust accuracy = the frames that survive all of them;
- the L2 cascade at the same PSR: FGM -> APGD-CE (L2);
- threat models outside the ensemble, each on every frame: transfer (PGD crafted on a
  surrogate model), and a universal adversarial perturbation (Sadeghi & Larsson,
  "Adversarial attacks on deep-learning based radio signal classification",
  arXiv:1808.07713) without and with a random circular time shift per frame.

A stochastic model (eval-mode outputs that differ between two passes on the same input)
is attacked with expectation over transformation (Athalye et al., "Obfuscated gradients
give a false sense of security", arXiv:1802.00420): the attacks see the mean of its
logits over `eot_samples` draws; it is scored on single draws from a fixed seed.

Each result (per-frame predictions + seconds) is cached atomically in OUT/cache, so an
interrupted run resumes; OUT/settings.json records the settings a directory's results
were made with, and other settings are refused unless `force` (which starts over).
`run` is GNU-Radio-free and callable in-process; every error is a ValueError (or
FileNotFoundError, FileExistsError, ...) whose message names the command-line option.
"""
import dataclasses
import hashlib
import json
import math
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..core import artifacts, budget, perturbation_file, recording, shipped
from ..core.splits import stratified_subset
from ..models import device as model_device
from ..models import precision as model_precision
from ..models.stochastic import ExpectedLogits, is_stochastic
from . import stages

DEFAULT_PSR_DB = (-30.0, -25.0, -20.0, -15.0)
REFERENCE_PSR_DB = -20.0     # the leaderboard is ranked at the PSR closest to this
CASCADE = ("fgsm", "pgd", "apgd-ce", "apgd-dlr", "square")
CASCADE_L2 = ("fgm", "apgd-ce-l2")
STANDALONE = ("transfer", "uap", "uap-shift")
DEFAULT_SURROGATE = "cnn_lstm.pt"
FALLBACK_SURROGATE = "transformer_compact_standard.pt"   # when the attacked model is the default
BATCH_SIZE = 64   # the CNN-LSTM's gradient passes on CPU run faster per frame in batches this small
UAP_BATCH_SIZE = 32   # universal perturbation steps per epoch: several even on a quick run's 220 frames
STOCHASTIC_PROBE_FRAMES = 16
FORMAT = "shapft-robustness/1"
FILES = ("leaderboard.json", "leaderboard.md", "settings.json", "robust_vs_psr.png", "robust_vs_snr.png")


@dataclasses.dataclass(frozen=True)
class Settings:
    """How hard each model is attacked; `make_settings` fills them from a preset. The
    defaults spend the time where it breaks frames (docs/robustness.md, Cost)."""
    frames: int = 2200            # about this many frames, the same number per class x SNR cell
    pgd_steps: int = 20
    restarts: int = 2             # PGD random restarts (a frame is broken if any breaks it)
    apgd_iterations: int = 25     # APGD-CE and APGD-DLR iterations
    dlr_targets: int = 3          # APGD-DLR: target classes tried per frame
    square_queries: int = 100     # Square iterations, one forward pass each
    eot_samples: int = 8          # draws averaged for a stochastic model's logits
    uap_epochs: int = 2
    bootstrap: int = 1000         # resamples of the 95 % intervals
    seed: int = 0
    precision: str = "fp32"
    quick: bool = False

    def check(self):
        for option, value in (("--frames", self.frames), ("--pgd-steps", self.pgd_steps),
                              ("--restarts", self.restarts), ("--apgd-iterations", self.apgd_iterations),
                              ("--dlr-targets", self.dlr_targets), ("--square-queries", self.square_queries),
                              ("--eot-samples", self.eot_samples), ("--uap-epochs", self.uap_epochs),
                              ("--bootstrap", self.bootstrap)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{option} must be an integer >= 1, got {value!r}")
        if not 1 <= self.dlr_targets <= 10:
            raise ValueError(f"--dlr-targets must be 1..10 (the other classes), got {self.dlr_targets}")
        model_precision.check(self.precision, "--precision")
        return self


QUICK = {"frames": 220, "pgd_steps": 10, "restarts": 1, "apgd_iterations": 10, "square_queries": 50}


def make_settings(quick=False, **given):
    """Settings of the full evaluation, or of the --quick preset (one frame per class x
    SNR cell, fewer iterations, queries and restarts); values given (not None) win."""
    values = dict(QUICK) if quick else {}
    values.update({k: v for k, v in given.items() if v is not None})
    return Settings(quick=bool(quick), **values).check()


def psr_levels(values):
    """The PSR budgets (dB) as floats, in the order given: numbers or their text; refuses
    text that is not a number, non-finite values and repeats."""
    levels = []
    for value in values:
        try:
            level = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"--psr-db: {value!r} is not a number") from None
        if not math.isfinite(level):
            raise ValueError(f"--psr-db: {value!r} is not a finite number")
        if level in levels:
            raise ValueError(f"--psr-db: {budget.psr_text(level)} is given twice")
        levels.append(level)
    if not levels:
        raise ValueError("--psr-db: give at least one budget")
    return levels


def reference_psr(levels):
    """The budget the leaderboard is ranked at: the one closest to -20 dB (the lower on a tie)."""
    return min(sorted(levels), key=lambda p: abs(p - REFERENCE_PSR_DB))


@dataclasses.dataclass
class Leaderboard:
    rows: list             # one dict per (model, psr_db), docs/robustness.md
    settings: dict         # OUT/settings.json
    table: str             # leaderboard.md
    paths: list            # files written (not the cache)
    computed: list         # names of the cache files this run computed
    reused: int            # results taken from the cache


def bootstrap_ci(correct, resamples=1000, seed=0):
    """95 % percentile bootstrap interval [low, high] of the mean of `correct` (bool per
    frame), resampling frames with replacement; the same seed draws the same resamples,
    so intervals of one run are paired."""
    correct = np.asarray(correct, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = []
    for start in range(0, resamples, 100):   # bounded memory for large subsets
        index = rng.integers(0, len(correct), size=(min(100, resamples - start), len(correct)))
        means.append(correct[index].mean(axis=1))
    low, high = np.percentile(np.concatenate(means), [2.5, 97.5])
    return [float(low), float(high)]


# --------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------

def run(models, data, out, psr_db=DEFAULT_PSR_DB, settings=None, surrogate=None, uap_data=None, force=False,
        invalid_frames="skip", progress=True, log=None, workers=1, device="auto"):
    """Attack every model file of `models` on a stratified subset of recording `data` at
    each PSR of `psr_db`; write OUT/leaderboard.json (a list of rows), settings.json,
    leaderboard.md, robust_vs_psr.png, robust_vs_snr.png and OUT/uap/*.npz (each model's
    universal perturbations), resuming from OUT/cache. `surrogate`: the transfer
    attack's model (default: the shipped cnn_lstm.pt, or transformer_compact_standard.pt
    for that model itself); `uap_data`: the recording the universal perturbations are
    computed on (default: frames of `data` outside the evaluated subset). `log(text)`:
    progress lines (default stderr). `workers` > 1: the attacks run in that many
    processes (each on one model at one PSR, torch's threads shared out among them);
    the results are the same, the cache the same. Every model runs on `device`
    (--device; the cache does not depend on it)."""
    if log is None:
        log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    settings = (settings or Settings()).check()
    levels = psr_levels(psr_db)
    workers = _count_workers(workers)
    device = stages.run_device(device)
    study = _Study(models, data, out, levels, settings, surrogate, uap_data, force, invalid_frames, progress, log,
                   device)
    if workers > 1:
        study.run_in_workers(workers, (models, data, out, levels, settings, surrogate, uap_data, invalid_frames,
                                       device))
    return study.run()


def _count_workers(workers):
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"--workers must be an integer >= 1, got {workers!r}")
    return workers


# In a worker process of run_in_workers: the study its jobs run in.
_worker_study = None


def _start_worker(args, threads):
    global _worker_study
    torch.set_num_threads(threads)
    _worker_study = _Study(*args[:7], force=False, invalid_frames=args[7], progress=False, log=lambda text: None,
                           device=args[8], claim=False)


def _craft_job(surrogate_sha256, level, stop):
    study = _worker_study
    study.stop, study.computed = stop, []
    surrogate = next(s for s in study.surrogates.values() if s.sha256 == surrogate_sha256)
    study.crafted(surrogate, level)
    return study.computed


def _rows_job(model_index, level, stop):
    study = _worker_study
    study.stop, study.computed = stop, []
    study.model_rows(study.models[model_index], [level])
    return study.computed


class _Study:
    def __init__(self, models, data, out, levels, settings, surrogate, uap_data, force, invalid_frames,
                 progress, log, device, claim=True):
        from ..attacks import library
        self.s, self.levels, self.progress, self.log = settings, levels, progress, log
        self.stop = None   # in a worker: the parent's request to stop (jobs.run)
        self.device = device
        self.precision = model_precision.resolve(settings.precision, device.type)
        self.computed, self.reused = [], 0
        self._surrogate_files = {}    # resolved path -> LoadedModel
        # every input is checked before anything is attacked
        models = [models] if isinstance(models, (str, Path)) else list(models)
        if not models:
            raise ValueError("--models: give at least one model file")
        self.models = [stages.load_model(path, "--models").to(device) for path in models]
        _check_names(self.models)
        self.data_meta = stages.recording_path(data, "--data")
        rec, self.check = stages.read_recording(self.data_meta, "--data", invalid_frames=invalid_frames)
        self.length = rec.frame_length
        for loaded in self.models:
            module = stages.classifier(loaded, self.length,
                                       f"--data {self.data_meta} (for --models {loaded.path.name})")
            _check_logits(module, self.length, f"--models {loaded.path}")
        for level in levels:
            budget.warn_if_above_signal(budget.psr_db_to_eps(level), "linf", self.length, "--psr-db")
        chosen = stratified_subset(rec.labels, rec.snr_db, settings.frames, seed=settings.seed)
        subset = rec.subset(chosen)
        self.x, self.y, self.snr = subset.model_input(), subset.labels, subset.snr_db
        self.uap_x, self.uap_y, uap_record = self._uap_frames(rec, chosen, uap_data, invalid_frames)
        self.surrogates = {loaded.sha256: self._surrogate(loaded, surrogate) for loaded in self.models}
        self.keys = {loaded.sha256: behaviour_sha256(loaded) for loaded in self.models}
        self.out = artifacts.writable_dir(out, option="--out")
        self.cache = self.out / "cache"
        data_record = {"path": str(self.data_meta), "data_sha256": recording.data_sha256(self.data_meta),
                       "frames_total": self.check.total, "frame_length": self.length, "frames": int(len(chosen)),
                       "subset_sha256": _digest(self.check.kept[chosen]), **self.check.as_json()}
        self.settings_doc = {
            "format": FORMAT,
            "command": command_line(models, data, out, levels, settings, surrogate, uap_data, invalid_frames,
                                    None if device.type == "cpu" else str(device)),
            "versions": {"gr-shapft": __version__, "adversarial-robustness-toolbox": library.art_version(),
                         "torch": torch.__version__},
            "settings": {**dataclasses.asdict(settings), "precision": self.precision, "batch_size": BATCH_SIZE,
                         "uap_batch_size": UAP_BATCH_SIZE},
            "data": data_record, "uap_data": uap_record,
            "models": [str(loaded.path) for loaded in self.models], "psr_db": levels,
            "surrogates": {loaded.path.name: str(self.surrogates[loaded.sha256].path) for loaded in self.models},
            "threads": torch.get_num_threads(), "device": str(device)}
        if claim:
            self._claim_directory(force)

    # --- inputs ---------------------------------------------------------------------
    def _uap_frames(self, rec, chosen, uap_data, invalid_frames):
        """(frames, labels, provenance) the universal perturbations are computed on: about
        as many as are evaluated, stratified, from --uap-data or from the frames of --data
        outside the evaluated subset."""
        if uap_data is not None:
            meta = stages.recording_path(uap_data, "--uap-data")
            source, check = stages.read_recording(meta, "--uap-data", invalid_frames=invalid_frames)
            if source.frame_length != self.length:
                raise ValueError(f"--uap-data {meta}: frames of {source.frame_length} samples, --data has "
                                 f"{self.length}")
            index = stratified_subset(source.labels, source.snr_db, self.s.frames, seed=self.s.seed + 1)
            provenance = {"path": str(meta), "data_sha256": recording.data_sha256(meta), **check.as_json()}
        else:
            rest = np.setdiff1d(np.arange(len(rec)), chosen)
            if not len(rest):
                raise ValueError(f"--uap-data: every valid frame of --data {self.data_meta} is among the "
                                 f"{len(chosen)} evaluated; give --uap-data or a smaller --frames")
            source = rec
            index = rest[stratified_subset(rec.labels[rest], rec.snr_db[rest], self.s.frames, seed=self.s.seed + 1)]
            provenance = {"path": "frames of --data outside the evaluated subset"}
        provenance.update(frames=int(len(index)), subset_sha256=_digest(index))
        frames = source.subset(index)
        return frames.model_input(), frames.labels, provenance

    def _surrogate(self, loaded, given):
        """The transfer attack's surrogate for `loaded`: `given`, else the shipped
        cnn_lstm.pt, else (for that model itself) transformer_compact_standard.pt; never
        the attacked model itself."""
        choices = [(given, "--surrogate")] if given is not None else []
        choices += [(name, "--surrogate (default)") for name in (DEFAULT_SURROGATE, FALLBACK_SURROGATE)]
        candidates = (self._load_surrogate(path, option) for path, option in choices)
        return next(candidate for candidate in candidates if candidate.sha256 != loaded.sha256)

    def _load_surrogate(self, path, option):
        if option != "--surrogate":
            try:
                path = shipped.model(path)
            except FileNotFoundError as err:
                raise FileNotFoundError(f"{option}: {err}; give --surrogate") from None
        key = str(Path(path).resolve())
        if key not in self._surrogate_files:
            surrogate = stages.load_model(path, option).to(self.device)
            try:
                stages.classifier(surrogate, self.length, f"{option} {path}")
            except ValueError as err:
                raise ValueError(f"{err}{'' if option == '--surrogate' else '; give --surrogate'}") from None
            self._surrogate_files[key] = surrogate
        return self._surrogate_files[key]

    def _claim_directory(self, force):
        """Refuse a directory holding results of other settings (unless force: start over)."""
        record = self.out / "settings.json"
        if force:
            for name in ("cache", "uap"):
                shutil.rmtree(self.out / name, ignore_errors=True)
            for name in FILES:
                (self.out / name).unlink(missing_ok=True)
        elif record.exists():
            try:
                old = json.loads(record.read_text())
            except json.JSONDecodeError:
                raise ValueError(f"--out {self.out}: {record} is not valid JSON; pass --force to start over") from None
            new = json.loads(json.dumps(self.settings_doc))
            differing = [key for key in ("versions", "settings", "data", "uap_data")
                         if _comparable(old.get(key)) != _comparable(new[key])]
            if differing:
                raise ValueError(f"--out {self.out} holds results made with other {', '.join(differing)} "
                                 f"({record}); use another --out or pass --force to start over")
        elif self.cache.exists():
            raise ValueError(f"--out {self.out}: {self.cache} exists without settings.json; "
                             "pass --force to start over")
        artifacts.write_json(record, self.settings_doc)

    # --- attacking ------------------------------------------------------------------
    def run_in_workers(self, workers, args):
        """Fill the cache in `workers` processes: first the transfer frames of each
        surrogate and PSR, then each model at each PSR; `run` then reads the results."""
        import multiprocessing
        from .jobs import run as run_in_workers
        options = dict(context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                       initargs=(args, max(1, torch.get_num_threads() // workers)), progress=self.progress)
        surrogates = sorted({surrogate.sha256 for surrogate in self.surrogates.values()})
        first = {}   # behaviour key -> the first model computing it: the others find its results
        for i, loaded in enumerate(self.models):
            first.setdefault(self.keys[loaded.sha256], i)
        self.log(f"{len(first)} models x {len(self.levels)} PSRs in {workers} worker processes")
        computed = run_in_workers(_craft_job, [(sha, level) for sha in surrogates for level in self.levels],
                                  workers, desc="transfer frames", unit="PSR", **options)
        computed += run_in_workers(_rows_job, [(i, level) for i in first.values() for level in self.levels],
                                   workers, desc="models x PSRs", unit="row", **options)
        self.computed.extend(name for names in computed for name in names)

    def run(self):
        from .figures import robustness as figures
        # results the workers computed: the pass below finds them in the cache
        by_workers = sum(not name.startswith("transfer_") for name in self.computed)
        rows = []
        for loaded in self.models:
            rows.extend(self.model_rows(loaded))
        self.reused -= by_workers
        table = markdown_table(rows, self.settings_doc)
        written = [self.out / "leaderboard.json", self.out / "settings.json", self.out / "leaderboard.md"]
        artifacts.write_json(written[0], rows)
        artifacts.write_json(written[1], self.settings_doc)
        artifacts.write_bytes(written[2], table.encode())
        written.append(figures.robust_vs_psr(rows, self.out / "robust_vs_psr.png"))
        written.append(figures.robust_vs_snr(rows, reference_psr(self.levels), self.out / "robust_vs_snr.png"))
        written.extend(self.out / path for row in rows for path in row["uap_files"].values())
        return Leaderboard(rows, self.settings_doc, table, written, self.computed, self.reused)

    def model_rows(self, loaded, levels=None):
        name = loaded.path.name
        module = stages.classifier(loaded, self.length)
        eot = self.s.eot_samples if is_stochastic(module, self.x[:STOCHASTIC_PROBE_FRAMES]) else 0
        how = (f"attacked through the mean logits of {eot} draws" if eot > 1 else
               "attacked on single draws (--eot-samples 1)")
        same = [other.path.name for other in self.models[:self.models.index(loaded)]
                if self.keys[other.sha256] == self.keys[loaded.sha256]]
        if same:
            self.log(f"{name}: the same weights and deletion as {same[0]} (only its metadata differs): "
                     "its attack results are shared")
        self.log(f"{name}: {len(self.x)} frames" + (
            f"; stochastic (its outputs differ between passes): {how}, scored on single draws" if eot else ""))
        clean = self._score(module, self.x)
        rows = []
        for level in self.levels if levels is None else levels:
            with _bar(f"{name} {level:g} dB", len(CASCADE + CASCADE_L2 + STANDALONE), self.progress) as bar:
                context = _Context(loaded, module, eot, level, self.length, bar)
                entries = {}
                for cascade in (CASCADE, CASCADE_L2):
                    for i, attack in enumerate(cascade):
                        # FGSM and FGM on every frame, each later attack on the frames still correct
                        todo = (np.ones(len(self.x), bool) if i == 0
                                else self._correct_after(cascade[i - 1], entries, clean))
                        entries[attack] = self._entry(context, attack, todo)
                for threat in STANDALONE:
                    entries[threat] = self._entry(context, threat, np.ones(len(self.x), bool))
            rows.append(self._row(context, clean, entries))
        return rows

    def _extra(self, context, name):
        """What a cached result depends on beyond the directory's settings."""
        if name == "transfer":
            return {"surrogate_sha256": self.surrogates[context.loaded.sha256].sha256}
        if name in ("uap", "uap-shift"):
            return {"uap_file": self._uap_name(context.loaded, context.level, name)}
        return {}

    def _entry(self, context, name, todo):
        """(predictions [N], -1 for frames not attacked; seconds) of one attack or threat
        on the frames `todo`, from the cache or computed and cached."""
        # a universal perturbation is made per model file (OUT/uap/<model>...); the rest is
        # shared by models that compute the same
        key = context.loaded.sha256 if name in ("uap", "uap-shift") else self.keys[context.loaded.sha256]
        path = self.cache / f"{key[:12]}_psr{budget.psr_text(context.level)}_{name}.npz"
        extra = self._extra(context, name)
        context.bar.set_postfix_str(name)
        cached = _read_entry(path, todo, extra)
        if cached is not None and (name not in ("uap", "uap-shift") or self._stored_uap(context, name) is not None):
            self.reused += 1
            context.bar.update()
            return cached
        if cached is None and path.exists():
            self.log(f"{path}: made for other frames or settings, recomputed")
        if self.stop is not None and self.stop.is_set():
            raise KeyboardInterrupt
        index = np.flatnonzero(todo)
        start = time.perf_counter()
        context.seconds_elsewhere = 0.0
        predictions = np.full(len(self.x), -1, dtype=np.int64)
        if len(index):
            with model_device.fork_rng(self.device):
                torch.manual_seed(self._seed(name, context.level))   # a stochastic model's draws
                predictions[index] = getattr(self, "_" + name.replace("-", "_"))(context, index)
        seconds = time.perf_counter() - start + context.seconds_elsewhere
        _write_entry(path, predictions, seconds, extra)
        self.computed.append(path.name)
        context.bar.update()
        return predictions, seconds

    def _seed(self, name, level, restart=0):
        text = f"{self.s.seed}:{budget.psr_text(level)}:{name}:{restart}".encode()
        return int.from_bytes(hashlib.sha256(text).digest()[:4], "little")

    def _score(self, module, x):
        """Predicted classes of frames x; a stochastic model's draws from a fixed seed."""
        from ..learn.metrics import predict_logits
        with model_device.fork_rng(self.device):
            torch.manual_seed(self._seed("score", 0))
            return predict_logits(module, x, precision=self.precision).argmax(axis=1)

    def _run_attack(self, attack, context, index):
        from .. import attacks
        x_adv = attacks.attack_array(attack, self.x[index], self.y[index], BATCH_SIZE)
        return self._score(context.module, x_adv)

    def _ours(self, method, context, eps, seed, **options):
        from .. import attacks
        return attacks.make(method, context.attacked, eps=eps, seed=seed, precision=self.precision,
                            frame_length=self.length, **options)

    def _art(self, method, context, eps, norm="linf", **options):
        from ..attacks import library
        return library.make(method, context.attacked, eps=eps, norm=norm, seed=self._seed(method, context.level),
                            precision=self.precision, frame_length=self.length, batch_size=BATCH_SIZE, **options)

    # one method per attack or threat, named after it: the predictions on x[index]
    def _fgsm(self, context, index):
        return self._run_attack(self._ours("fgsm", context, context.eps, 0), context, index)

    def _pgd(self, context, index):
        predictions = np.empty(len(index), dtype=np.int64)
        alive = np.arange(len(index))
        for restart in range(self.s.restarts):   # each restart on the frames no earlier one broke
            attack = self._ours("pgd", context, context.eps, self._seed("pgd", context.level, restart),
                                steps=self.s.pgd_steps)
            predictions[alive] = self._run_attack(attack, context, index[alive])
            alive = alive[predictions[alive] == self.y[index[alive]]]
            if not len(alive):
                break
        return predictions

    def _apgd_ce(self, context, index):
        attack = self._art("apgd-ce", context, context.eps, max_iter=self.s.apgd_iterations)
        return self._run_attack(attack, context, index)

    def _apgd_dlr(self, context, index):
        attack = self._art("apgd-dlr", context, context.eps, max_iter=self.s.apgd_iterations,
                           top_k=self.s.dlr_targets)
        return self._run_attack(attack, context, index)

    def _square(self, context, index):
        attack = self._art("square", context, context.eps, max_iter=self.s.square_queries)
        return self._run_attack(attack, context, index)

    def _fgm(self, context, index):
        return self._run_attack(self._ours("fgm", context, context.eps_l2, 0), context, index)

    def _apgd_ce_l2(self, context, index):
        attack = self._art("apgd-ce", context, context.eps_l2, norm="l2", max_iter=self.s.apgd_iterations)
        return self._run_attack(attack, context, index)

    def _transfer(self, context, index):
        """PGD crafted on the surrogate, scored by the attacked model. Each row's seconds
        include crafting the frames, done once for all the models of a surrogate."""
        crafted, seconds, now = self.crafted(self.surrogates[context.loaded.sha256], context.level)
        context.seconds_elsewhere = 0.0 if now else seconds   # if now, already in this entry's wall time
        return self._score(context.module, crafted[index])

    def crafted(self, surrogate, level):
        """(the frames PGD crafts on `surrogate` at PSR `level`, the seconds that took,
        whether they were crafted now); cached once per surrogate and PSR."""
        path = self.cache / f"transfer_{surrogate.sha256[:12]}_psr{budget.psr_text(level)}.npz"
        if path.exists():
            with np.load(path) as content:
                if content["frames"].shape == self.x.shape:
                    return content["frames"], float(content["seconds"]), False
        from .. import attacks
        start = time.perf_counter()
        module = stages.classifier(surrogate, self.length)
        if is_stochastic(module, self.x[:STOCHASTIC_PROBE_FRAMES]):
            module = ExpectedLogits(module, self.s.eot_samples).eval()
        attack = attacks.make("pgd", module, eps=budget.psr_db_to_eps(level, "linf", self.length),
                              seed=self._seed("transfer", level), steps=self.s.pgd_steps, precision=self.precision,
                              frame_length=self.length)
        crafted = attacks.attack_array(attack, self.x, self.y, BATCH_SIZE)
        seconds = time.perf_counter() - start
        with artifacts.atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, frames=crafted, seconds=np.float64(seconds))
        self.computed.append(path.name)
        return crafted, seconds, True

    def _uap(self, context, index, shift=False):
        from ..attacks import universal
        threat = "uap-shift" if shift else "uap"
        perturbation = self._stored_uap(context, threat)
        if perturbation is None:
            wanted = self._uap_settings(context, threat)
            perturbation = universal.compute(
                context.attacked, self.uap_x, self.uap_y, eps=context.eps, norm="linf", epochs=self.s.uap_epochs,
                batch_size=UAP_BATCH_SIZE, random_shift=shift, seed=wanted["seed"], precision=self.precision)
            perturbation_file.save(self.out / self._uap_name(context.loaded, context.level, threat), perturbation,
                                   {"model": context.loaded.path.name, "frame_length": self.length, **wanted})
        x_adv = universal.apply(self.x[index], perturbation, shift=shift,
                                seed=self._seed(threat + " shifts", context.level))
        return self._score(context.module, x_adv)

    def _uap_settings(self, context, threat):
        """What a universal perturbation file records of how it was made (and is checked against)."""
        return {"model_sha256": context.loaded.sha256, "eps": context.eps, "norm": "linf",
                "random_shift": threat == "uap-shift", "epochs": self.s.uap_epochs, "eot_samples": context.eot,
                "seed": self._seed(threat, context.level), "precision": self.precision,
                "uap_data": _comparable(self.settings_doc["uap_data"])}

    def _stored_uap(self, context, threat):
        """The perturbation OUT/uap holds for this model, budget and settings, else None (a
        damaged file is reported and made again)."""
        path = self.out / self._uap_name(context.loaded, context.level, threat)
        if not path.exists():
            return None
        try:
            perturbation, info = perturbation_file.load(path)
        except ValueError as err:
            self.log(f"{err}; made again")
            return None
        wanted = json.loads(json.dumps(self._uap_settings(context, threat)))
        return perturbation if {key: info.get(key) for key in wanted} == wanted else None

    def _uap_shift(self, context, index):
        return self._uap(context, index, shift=True)

    @staticmethod
    def _uap_name(loaded, level, threat):
        """The universal perturbation's file, relative to OUT."""
        return f"uap/{loaded.path.stem}_psr{budget.psr_text(level)}{'_shift' if threat == 'uap-shift' else ''}.npz"

    # --- the row --------------------------------------------------------------------
    def _row(self, context, clean, entries):
        from ..learn.metrics import accuracy_report
        ci = lambda correct: bootstrap_ci(correct, self.s.bootstrap, self.s.seed)  # noqa: E731
        cascade = {name: self._correct_after(name, entries, clean) for name in CASCADE + CASCADE_L2}
        standalone = {name: entries[name][0] == self.y for name in STANDALONE}
        robust, robust_l2 = cascade[CASCADE[-1]], cascade[CASCADE_L2[-1]]
        final = clean.copy()   # each frame's prediction after the L-inf cascade
        for attack in CASCADE:
            predictions = entries[attack][0]
            update = (predictions >= 0) & (final == self.y)
            final[update] = predictions[update]
        report = accuracy_report(self.y, final, self.snr)
        loaded, level, surrogate = context.loaded, context.level, self.surrogates[context.loaded.sha256]
        return {
            "model": loaded.path.name, "model_path": str(loaded.path), "model_sha256": loaded.sha256,
            "arch": loaded.arch, "mask_applied": stages.mask_applied(loaded, self.length),
            "psr_db": level, "eps": context.eps, "eps_l2": context.eps_l2,
            "clean_accuracy": float((clean == self.y).mean()), "clean_ci95": ci(clean == self.y),
            "robust_accuracy": float(robust.mean()), "ci95": ci(robust),
            "robust_accuracy_l2": float(robust_l2.mean()), "ci95_l2": ci(robust_l2),
            "per_attack": {name: float(correct.mean())
                           for name, correct in {**cascade, **standalone}.items() if name not in CASCADE_L2},
            "per_attack_ci95": {name: ci(correct)
                                for name, correct in {**cascade, **standalone}.items() if name not in CASCADE_L2},
            "per_attack_l2": {name: float(cascade[name].mean()) for name in CASCADE_L2},
            "per_snr": report["per_snr"], "frames_per_snr": report["frames_per_snr"],
            "clean_per_snr": accuracy_report(self.y, clean, self.snr)["per_snr"],
            "robust_confusion": report["confusion"],
            "n_frames": int(len(self.x)), "invalid_frames": self.check.counts(),
            "eot_samples": int(context.eot),
            "surrogate": surrogate.path.name, "surrogate_sha256": surrogate.sha256,
            "uap_files": {threat: self._uap_name(loaded, level, threat) for threat in ("uap", "uap-shift")},
            "seconds_per_attack": {name: round(float(entries[name][1]), 3) for name in entries},
            "quick": self.s.quick}

    def _correct_after(self, name, entries, clean):
        """Frames correct after the cascade up to and including `name` (AutoAttack's
        per-attack robust accuracy): correct clean and under every attack so far."""
        order = CASCADE if name in CASCADE else CASCADE_L2
        correct = clean == self.y
        for attack in order[: order.index(name) + 1]:
            predictions = entries[attack][0]
            correct = correct & ((predictions < 0) | (predictions == self.y))
        return correct


class _Context:
    """One model at one budget: what the attack methods need."""

    def __init__(self, loaded, module, eot, level, length, bar):
        self.loaded, self.module, self.eot, self.level, self.bar = loaded, module, eot, level, bar
        self.attacked = ExpectedLogits(module, eot).eval() if eot else module
        self.eps = budget.psr_db_to_eps(level, "linf", length)
        self.eps_l2 = budget.psr_db_to_eps(level, "l2", length)
        self.seconds_elsewhere = 0.0   # time spent on this entry before (the transfer's crafting)


def _check_logits(module, length, source):
    """Refuse a model whose output looks like probabilities where ART's APGD probes it
    (a frame of ones): APGD would refuse it only after the attacks before it had run."""
    from art.utils import is_probability
    with torch.no_grad():
        output = module(torch.ones(1, 2, length, device=model_device.of(module))).float().cpu().numpy()
    if is_probability(output):
        raise ValueError(f"{source}: returns probabilities (non-negative, summing to 1) on a frame of ones; "
                         "the attacks need logits (export the model without its final softmax)")


def _check_names(models):
    names = {}
    for loaded in models:
        if loaded.sha256 in names.values():
            raise ValueError(f"--models: {loaded.path} is given twice (the same file content)")
        if loaded.path.stem in names:
            raise ValueError(f"--models: two different models are named {loaded.path.stem}; "
                             "the leaderboard names models by file name, rename one")
        names[loaded.path.stem] = loaded.sha256


def behaviour_sha256(loaded):
    """A key for what a model computes as deployed: architecture, TorchScript graph,
    weights and deletion, not its metadata. Files that differ only in metadata (two
    SHAP-FT models fine-tuned alike with an empty mask at two eps) share it, and so
    their cached attack results."""
    mask = loaded.mask or {}
    digest = hashlib.sha256(json.dumps([loaded.arch, loaded.frame_length, loaded.full_frame_length,
                                        mask.get("drop"), mask.get("mode")]).encode())
    digest.update(str(loaded.module.inlined_graph).encode())
    for name, tensor in loaded.module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _digest(index):
    return hashlib.sha256(np.asarray(index, dtype=np.int64).tobytes()).hexdigest()


def _comparable(record):
    """A settings.json section without the paths, which may be spelled differently."""
    return {k: v for k, v in record.items() if k != "path"} if isinstance(record, dict) else record


def _bar(description, total, progress):
    from tqdm import tqdm
    return tqdm(total=total, desc=description, unit="attack", disable=not progress, leave=False)


def _read_entry(path, todo, extra):
    """(predictions, seconds) of a cache file made for the same frames and `extra`, else None."""
    if not path.exists():
        return None
    try:
        with np.load(path) as content:
            predictions = content["predictions"].astype(np.int64)
            seconds = float(content["seconds"])
            stored = json.loads(str(content["extra"]))
    except (OSError, ValueError, KeyError):
        return None
    if predictions.shape != todo.shape or not np.array_equal(predictions >= 0, todo) or stored != extra:
        return None
    return predictions, seconds


def _write_entry(path, predictions, seconds, extra):
    with artifacts.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, predictions=predictions.astype(np.int16), seconds=np.float64(seconds),
                     extra=np.asarray(json.dumps(extra, sort_keys=True)))


# --------------------------------------------------------------------------------------
# the table and the command line
# --------------------------------------------------------------------------------------

COLUMNS = (("clean", "clean"), ("FGSM", "fgsm"), ("PGD", "pgd"), ("APGD-CE", "apgd-ce"),
           ("APGD-DLR", "apgd-dlr"), ("Square", "square"), ("robust (95 % CI)", "robust"),
           ("L2 robust", "l2"), ("transfer", "transfer"), ("UAP", "uap"), ("UAP shift", "uap-shift"))


def ranked_models(rows):
    """Model names, most robust first at the reference PSR (then by clean accuracy, name)."""
    reference = reference_psr({row["psr_db"] for row in rows})
    at_reference = [row for row in rows if row["psr_db"] == reference]
    ordered = sorted(at_reference, key=lambda r: (-r["robust_accuracy"], -r["clean_accuracy"], r["model"]))
    return [row["model"] for row in ordered]


def markdown_table(rows, settings_doc):
    """leaderboard.md: one table per PSR (the reference PSR first), models ranked by
    robust accuracy at the reference PSR; accuracies in %."""
    s = settings_doc["settings"]
    reference = reference_psr({row["psr_db"] for row in rows})
    order = ranked_models(rows)
    first = rows[0]
    lines = ["# Robustness leaderboard", "",
             f"{first['n_frames']} frames of {Path(settings_doc['data']['path']).name} (stratified by class and "
             f"SNR, seed {s['seed']}){'; quick preset' if s['quick'] else ''}. Accuracies in %, ranked by robust "
             f"accuracy at PSR {reference:g} dB.",
             "",
             f"robust: frames that survive FGSM, PGD ({s['pgd_steps']} steps, {s['restarts']} restart"
             f"{'s' if s['restarts'] != 1 else ''}), APGD-CE and APGD-DLR ({s['apgd_iterations']} iterations, "
             f"top {s['dlr_targets']} targets) and Square ({s['square_queries']} queries) in turn; each attack "
             "column is the accuracy after the cascade up to it. L2 robust: FGM then APGD-CE (L2) at the same "
             "PSR. transfer (PGD crafted on the surrogate), UAP and UAP shift are separate threat models, on "
             "every frame, not part of robust."]
    for level in sorted({row["psr_db"] for row in rows}, key=lambda p: (p != reference, p)):
        by_model = {row["model"]: row for row in rows if row["psr_db"] == level}
        some = next(iter(by_model.values()))
        lines += ["", f"## PSR {level:g} dB (L-inf eps {some['eps']:.4g} per component, "
                      f"L2 eps {some['eps_l2']:.4g} per frame)", "",
                  "| model | " + " | ".join(title for title, _ in COLUMNS) + " |",
                  "|---|" + "---:|" * len(COLUMNS)]
        for name in order:
            if name in by_model:
                lines.append(_table_row(by_model[name]))
    notes = sorted({(row["model"], row["eot_samples"]) for row in rows if row["eot_samples"]})
    surrogates = sorted({(row["model"], row["surrogate"]) for row in rows})
    lines += ["", "transfer surrogate: " + ", ".join(f"{model} <- {s_}" for model, s_ in surrogates)]
    if notes:
        lines.append("Models marked * are stochastic: attacked through the mean logits of K draws (EOT), scored "
                     "on single draws: " + ", ".join(f"{model} K = {k}" for model, k in notes))
    return "\n".join(lines) + "\n"


def _table_row(row):
    def pct(value):
        return f"{100 * value:.1f}"
    cells = []
    for _, key in COLUMNS:
        if key == "clean":
            cells.append(pct(row["clean_accuracy"]))
        elif key == "robust":
            low, high = row["ci95"]
            cells.append(f"**{pct(row['robust_accuracy'])}** [{pct(low)}, {pct(high)}]")
        elif key == "l2":
            cells.append(pct(row["robust_accuracy_l2"]))
        else:
            cells.append(pct(row["per_attack"].get(key)))
    name = row["model"] + (" *" if row["eot_samples"] else "")
    return f"| {name} | " + " | ".join(cells) + " |"


def command_line(models, data, out, levels, settings, surrogate=None, uap_data=None, invalid_frames="skip",
                 device=None):
    """The `shapft robustness` command that remakes a leaderboard (provenance)."""
    quick_defaults = make_settings(quick=settings.quick)
    changed = lambda name: (getattr(settings, name) if getattr(settings, name)   # noqa: E731
                            != getattr(quick_defaults, name) else None)
    head = shlex.join(["shapft", "robustness", "--models", *map(str, models),
                       "--psr-db", *map(budget.psr_text, levels)])
    tuned = [(f"--{name.replace('_', '-')}", changed(name)) for name in (
        "frames", "restarts", "pgd_steps", "apgd_iterations", "dlr_targets", "square_queries", "eot_samples",
        "uap_epochs", "bootstrap")]
    rest = artifacts.command_line(
        "robustness", ("--data", data), ("--out", out), ("--quick", settings.quick), *tuned,
        ("--surrogate", surrogate), ("--uap-data", uap_data),
        ("--invalid-frames", None if invalid_frames == "skip" else invalid_frames), ("--seed", settings.seed),
        ("--precision", None if settings.precision == "fp32" else settings.precision),
        ("--device", device))
    return head + rest[len("shapft robustness"):]
