"""What each model-making `shapft` command does, as a function: read the inputs, run
the learn/ and attacks/ code, write the artifacts (atomically), return a summary. The
command line parses and prints around them; `shapft reproduce` calls them directly.

Every function checks its inputs before any long computation, and every error is a
ValueError (or FileNotFoundError, FileExistsError, ...) whose message names the
command-line option that gave the bad value. Each one that runs a model takes the
`device` it runs on (--device: auto, cpu, cuda, cuda:N, mps; models.device).
"""
import dataclasses
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from ..core import artifacts, budget, masks, model_file, perturbation_file, recording
from ..core.radioml import class_index


def recording_path(path, option):
    """The .sigmf-meta of a recording given by `option` (its meta, data or base path)."""
    if Path(path).is_dir():
        raise IsADirectoryError(f"{option} {path}: is a directory; give a .sigmf-meta recording")
    meta, _ = recording.paths(path)
    return artifacts.existing_file(meta, option)


def run_device(device):
    """The torch.device of the --device value `device` (models.device.resolve: auto, cpu,
    cuda, cuda:N, mps); one this machine lacks is refused naming --device."""
    from ..models import device as model_device
    return model_device.resolve(device, "--device")


def load_model(path, option):
    """The model file given for `option`, on the CPU (move it with .to(device)); a missing
    or unloadable file is an error naming the option."""
    path = artifacts.existing_file(path, option)
    try:
        return model_file.load(path)
    except ValueError as err:
        raise ValueError(f"{option}: {err}") from None


def read_recording(path, option, loaded=None, invalid_frames="skip", through_mask=True, lazy=False,
                   progress=False):
    """(the recording's valid frames, core.recording.FrameCheck) given its .sigmf-meta (or
    base) path. Invalid frames (NaN, Inf, all zero) are left out, or refused with
    invalid_frames="error". With `loaded`, frames the model cannot take are refused:
    through_mask accepts full-length frames for a model that carries a mask (see
    `classifier`), else only the model's own frame length. lazy: the frames stay in the
    data file (core.recording.FrameFile, read a batch at a time), which one streamed pass
    checks first (with a progress bar when `progress`); else a Recording in memory."""
    meta = recording_path(path, option)
    rec = recording.open_frames(meta, progress) if lazy else recording.read(meta)
    if loaded is not None:
        if through_mask:
            classifier(loaded, rec.frame_length, f"{option} {meta}")
        elif rec.frame_length != loaded.frame_length:
            raise ValueError(f"{option} {meta}: frames of {rec.frame_length} samples, but the model takes "
                             f"{loaded.frame_length}")
    return recording.check_frames(rec, invalid_frames, f"{option} {meta}")


def read_checked_splits(data, required, optional=(), invalid_frames="skip", lazy=False, progress=False):
    """(splits, digests, {split: FrameCheck}) of a dataset directory (recording.read_splits),
    each split's invalid frames left out and counted (or refused: invalid_frames="error").
    lazy: each split a core.recording.FrameFile whose frames stay on disk
    (recording.open_splits; `progress` shows its checking pass)."""
    if lazy:
        splits, digests = recording.open_splits(data, required=required, optional=optional, progress=progress)
    else:
        splits, digests = recording.read_splits(data, required=required, optional=optional)
    checks = {}
    for name in list(splits):
        splits[name], checks[name] = recording.check_frames(
            splits[name], invalid_frames, f"--data {digests[name]['path']}")
    return splits, digests, checks


def classifier(loaded, frame_length, source="frames"):
    """The module that classifies `frame_length`-sample frames for a LoadedModel: the
    model itself for the frames it takes; for a model carrying a mask, on full-length
    frames, the model behind the mask's deletion (models.masked, as classifier_sink and
    fgsm_injector use it), through which gradients flow. Other lengths are refused."""
    if frame_length == loaded.frame_length:
        return loaded.module
    if loaded.mask is not None and frame_length == loaded.full_frame_length:
        from ..models.masked import full_frame_classifier
        return full_frame_classifier(loaded)[0]
    takes = str(loaded.frame_length)
    if loaded.mask is not None:
        takes = (f"{loaded.full_frame_length} (its mask deletes {loaded.mask['m']} positions) or "
                 f"{loaded.frame_length}")
    raise ValueError(f"{source}: frames of {frame_length} samples, but the model takes {takes}")


def mask_applied(loaded, frame_length):
    """m when `classifier` deletes a carried mask's positions from these frames, else None."""
    if loaded.mask is not None and frame_length != loaded.frame_length:
        return int(loaded.mask["m"])
    return None


def writable_output(path, option, force=True):
    """Check before any work that the file `path` can be written: not a directory, in a
    directory that exists (or can be made) and takes new files; without `force` an
    existing file is refused. Errors name the option and the path."""
    path = artifacts.check_new_output(path, force, option)
    directory = path.parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    if not directory.is_dir():
        raise NotADirectoryError(f"{option} {path}: {directory} is not a directory")
    try:   # create and delete a file there: permissions, read-only file systems, ...
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as err:
        raise PermissionError(f"{option} {path}: cannot write in {directory} "
                              f"({err.strerror or type(err).__name__})") from None
    return path


def _budget_option(eps, psr_db):
    return "--psr-db" if psr_db is not None else "--eps"


# --------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------

@dataclasses.dataclass
class Trained:
    path: Path
    result: object           # learn.training.TrainResult
    test_report: dict        # accuracy report on the test split, or None
    checks: dict             # {split: core.recording.FrameCheck}
    main: bool = True        # False in the processes of a torchrun group but rank 0, which wrote nothing


def train_classifier(arch, data, out, epochs=200, batch_size=200, lr=1e-3, patience=10, min_delta=0.0,
                     seed=0, checkpoint=None, resume=False, force=False, progress=True, log=None,
                     invalid_frames="skip", precision="fp32", noise_psr_db=None, adversarial=None,
                     adversarial_psr_db=-20.0, adversarial_steps=10, trades_beta=6.0, init=None, device="auto"):
    """Train `arch` on DATA/train (early stopping on DATA/val), export it with metadata to
    `out`, and write OUT.training.json and figures (curves; with DATA/test, accuracy vs
    SNR and confusion matrices). Resumable from `checkpoint` (default OUT.ckpt). Invalid
    frames of every split are left out and counted (or refused: invalid_frames="error").
    noise_psr_db: train a base classifier for randomized smoothing: Gaussian noise of this
    PSR added to every training batch (learn.smoothing) and, once and seeded, to the
    validation frames that decide early stopping. adversarial: adversarial training
    (attacks.training.ROBUST_TRAINING: pgd_at, trades, fast_at) at adversarial_psr_db,
    its examples crafted against the model being trained. init: a model file of the
    same architecture to start from (fine-tuning) instead of fresh weights. device: where
    it trains (models.device); the weights are initialised on the CPU either way.

    The splits' frames stay on disk (core.recording.FrameFile): training reads each
    shuffled batch, validation and the test report read theirs in order, so memory
    holds batches, not the dataset; only --noise-psr-db's noisy validation frames are
    held in memory (drawn once, as one array).

    Started by torchrun (learn.distributed), every process runs this and they train the
    model together (on cpu with gloo, or each on its own GPU with nccl); rank 0 alone
    logs, writes the checkpoint, the model file (its training.world_size records how
    many trained it) and the rest, and the others return a Trained with main False."""
    import torch
    from .. import models
    from ..learn import distributed, training
    from ..learn.metrics import HIGH_SNR_DB, accuracy_report, predict_classes
    from . import figures

    if arch not in model_file.ARCHITECTURES:
        raise ValueError(f"--arch {arch!r} is not one of {', '.join(model_file.ARCHITECTURES)}")
    device = distributed.process_device(device)
    processes, rank, _ = distributed.environment()
    log = log if rank == 0 else None
    try:
        config = training.TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience,
                                      min_delta=min_delta, seed=seed)
        training.check_shares(batch_size, processes)
    except ValueError as err:
        raise ValueError(f"--{str(err).replace('_', '-')}") from None
    out = writable_output(out, "--out", force)
    checkpoint = Path(checkpoint) if checkpoint else out.with_name(out.name + ".ckpt")
    if checkpoint.exists() and not resume:
        raise FileExistsError(f"checkpoint {checkpoint} exists (an interrupted run?); "
                              "pass --resume to continue it or delete it")
    artifacts.writable_dir(out.parent)
    writable_output(checkpoint, "--checkpoint")
    splits, digests, checks = read_checked_splits(data, ("train", "val"), ("test",), invalid_frames, lazy=True,
                                                  progress=progress and rank == 0)
    frame_length = splits["train"].frame_length

    if noise_psr_db is not None and adversarial is not None:
        raise ValueError("--noise-psr-db and --adversarial are different trainings; give one")
    torch.manual_seed(seed)
    model = models.build(arch, frame_length=frame_length)
    init_sha256 = None
    if init:
        start = load_model(init, "--init")
        if start.arch != arch or start.mask is not None:
            raise ValueError(f"--init {init}: a {start.arch}{' with a mask' if start.mask else ''}, "
                             f"not a plain {arch}")
        try:
            model.load_state_dict(start.module.state_dict())
        except RuntimeError as err:
            raise ValueError(f"--init {init}: its weights do not fit a {arch} "
                             f"({str(err).splitlines()[0]})") from None
        init_sha256 = start.sha256
    model.to(device)
    if log:
        log(f"{arch}: {models.parameter_count(model):,} parameters; train {len(splits['train'])}, "
            f"val {len(splits['val'])} frames of {frame_length} samples")
    loss_fn, val_xy, noise = None, splits["val"], None
    if noise_psr_db is not None:
        from ..learn import smoothing
        if not math.isfinite(noise_psr_db):
            raise ValueError(f"--noise-psr-db must be finite, got {noise_psr_db!r}")
        try:
            sigma = smoothing.sigma_from_psr_db(noise_psr_db)
        except ValueError as err:
            raise ValueError(f"--noise-psr-db: {err}") from None
        loss_fn = smoothing.GaussianNoiseLoss(sigma, seed)
        noise = loss_fn.info()
        x_val = val_xy.batch(np.arange(len(val_xy)))
        draw = torch.randn(x_val.shape, generator=torch.Generator().manual_seed(seed + 1)).numpy()
        val_xy = (x_val + loss_fn.sigma * draw, val_xy.labels)
    if adversarial is not None:
        from ..attacks.training import robust_training_loss
        try:
            loss_fn = robust_training_loss(adversarial, budget.resolve_eps(psr_db=adversarial_psr_db),
                                           adversarial_steps, trades_beta, seed)
        except ValueError as err:
            raise ValueError(f"--adversarial: {err}") from None
    with distributed.process_group(device) as world:
        if log and world.size > 1:
            log(f"distributed training: {world.size} processes ({world.backend}), each on 1/{world.size} of "
                f"every batch of {batch_size}")
        result = training.fit(model, splits["train"], val_xy, config, loss_fn=loss_fn, precision=precision,
                              checkpoint_path=checkpoint, progress=progress)
    if not world.main:
        return Trained(out, result, None, checks, main=False)

    summary = {**result.summary(), "config": dataclasses.asdict(config),
               "frames_invalid": {name: check.counts() for name, check in checks.items()}}
    if noise:
        summary["noise"] = noise
    if adversarial is not None:
        summary["adversarial"] = loss_fn.info()
    if init_sha256:
        summary["init_sha256"] = init_sha256
    test_report = None
    if "test" in splits:
        test = splits["test"]
        predictions = predict_classes(model, test, precision=precision)
        test_report = accuracy_report(test.labels, predictions, test.snr_db)
        summary["test_accuracy"] = test_report["accuracy"]
        summary["test_high_snr_accuracy"] = test_report["high_snr_accuracy"]
    command = artifacts.command_line(
        "train", ("--arch", arch), ("--data", data), ("--out", out), ("--epochs", epochs),
        ("--batch-size", batch_size), ("--lr", lr), ("--patience", patience), ("--min-delta", min_delta),
        ("--noise-psr-db", noise_psr_db), ("--adversarial", adversarial),
        ("--adversarial-psr-db", adversarial_psr_db if adversarial else None),
        ("--adversarial-steps", adversarial_steps if adversarial in ("pgd_at", "trades") else None),
        ("--trades-beta", trades_beta if adversarial == "trades" else None), ("--init", init), ("--seed", seed))
    provenance = {"command": command, "seed": seed, "data": digests}
    model_file.export(model, out, arch, frame_length, provenance, training=summary)

    stem = out.with_suffix("")
    artifacts.write_json(f"{stem}.training.json",
                         {"summary": summary, "history": result.history, "test": test_report,
                          "invalid_frame_indices": {name: check.indices() for name, check in checks.items()}})
    figures.training_curves(result.history, f"{stem}.training.png", title=f"{arch} training")
    if test_report:
        figures.accuracy_vs_snr({arch: test_report}, f"{stem}.snr.png",
                                title=f"{arch}: test accuracy vs SNR")
        figures.confusion_matrix(test_report["confusion"], test_report["classes"], f"{stem}.confusion.png",
                                 title=f"{arch}: test confusion (all SNRs)")
        high = test.snr_db >= HIGH_SNR_DB
        if high.any():
            high_report = accuracy_report(test.labels[high], predictions[high])
            figures.confusion_matrix(high_report["confusion"], high_report["classes"],
                                     f"{stem}.confusion_high_snr.png",
                                     title=f"{arch}: test confusion (SNR >= {HIGH_SNR_DB:g} dB)")
    checkpoint.unlink(missing_ok=True)
    return Trained(out, result, test_report, checks)


# --------------------------------------------------------------------------------------
# attack
# --------------------------------------------------------------------------------------

@dataclasses.dataclass
class Attacked:
    path: Path               # the written .sigmf-meta
    frames: int
    description: str
    labels: np.ndarray       # what the attack pushed away from (or towards, targeted)
    predictions: np.ndarray  # the model's classes on the adversarial frames
    true_labels: np.ndarray
    check: object = None     # core.recording.FrameCheck of the source: the invalid frames left out


def attack_options(method, steps=None, alpha=None):
    """The iterative attacks' options given on the command line (refused for one-step ones)."""
    if method in ("fgsm", "fgm"):
        for name, value in (("steps", steps), ("alpha", alpha)):
            if value is not None:
                raise ValueError(f"--{name} applies to bim and pgd only")
        return {}
    return {k: v for k, v in (("steps", steps), ("alpha", alpha)) if v is not None}


def attack_recording(model, data, method, out, eps=None, psr_db=None, steps=None, alpha=None,
                     targeted=False, target_class=None, labels="truth", batch_size=256, seed=0,
                     force=False, progress=True, invalid_frames="skip", precision="fp32", device="auto"):
    """Attack every valid frame of recording `data` against `model`; write the adversarial
    frames as OUT/<data's name>.sigmf-{meta,data}, keeping the annotations and recording
    the attack in the global `shapft:attack` field. Invalid frames (NaN, Inf, all zero)
    cannot be attacked: they are left out of the output and counted in `shapft:attack`
    (frames_invalid, invalid_frame_indices: indices in `data`), or refused with
    invalid_frames="error". A model that carries a mask is attacked through its deletion
    on full-length frames. The recording is read, attacked and written a batch at a
    time: any size fits in memory."""
    from .. import attacks
    from ..learn.metrics import PowerRatio, frame_batches, predict_logits

    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    if targeted != (target_class is not None):
        raise ValueError("--targeted and --target-class go together")
    if labels not in ("truth", "predicted"):
        raise ValueError(f"--labels must be truth or predicted, got {labels!r}")
    try:
        budget.resolve_eps(eps, psr_db)
    except ValueError as err:
        raise ValueError(f"--eps/--psr-db: {err}") from None
    if target_class is not None:
        class_index(target_class)
    options = attack_options(method, steps, alpha)
    device = run_device(device)
    loaded = load_model(model, "--model").to(device)
    data_meta = recording_path(data, "--data")
    out_base = artifacts.writable_dir(out) / data_meta.name[: -len(recording.META_SUFFIX)]
    out_meta, out_data = recording.paths(out_base)
    if out_meta.resolve() == data_meta.resolve():
        raise ValueError(f"--out {out}: the output would overwrite the input recording")
    for path in (out_meta, out_data):
        writable_output(path, "--out", force)
    source, check = read_recording(data_meta, "--data", loaded, invalid_frames, lazy=True, progress=progress)
    module = classifier(loaded, source.frame_length)

    attack = attacks.make(method, module, eps=eps, psr_db=psr_db, seed=seed, precision=precision,
                          frame_length=source.frame_length, targeted=targeted, **options)
    budget.warn_if_above_signal(attack.eps, attack.norm, source.frame_length, _budget_option(eps, psr_db))
    attack_labels, predictions = np.empty(len(source), dtype=np.int64), np.empty(len(source), dtype=np.int64)
    power = PowerRatio()
    description = f"{attack.describe()} against {loaded.path.name} of {data_meta.name}"
    with recording.writer(out_base, source.frame_length, description, overwrite=force) as out:
        for index, x in frame_batches(source, batch_size, progress and attack.describe()):
            if targeted:
                attack_labels[index] = class_index(target_class)
            elif labels == "predicted":
                attack_labels[index] = predict_logits(module, x, precision=precision).argmax(axis=1)
            else:
                attack_labels[index] = source.labels[index]
            x_adv = attacks.attack_array(attack, x, attack_labels[index], batch_size)
            out.append(recording.from_model_input(x_adv), source.labels[index], source.snr_db[index])
            predictions[index] = predict_logits(module, x_adv, precision=precision).argmax(axis=1)
            power.add(x, x_adv)
        out.info = {**source.info, "attack": {
            **attack.info(), "labels": "target" if targeted else labels, "target_class": target_class,
            "model": str(loaded.path), "model_sha256": loaded.sha256, "source": str(data_meta),
            "measured_psr_db": power.db(), "mask_applied": mask_applied(loaded, source.frame_length),
            **check.as_json()}}
    return Attacked(out.meta_path, len(source), attack.describe(), attack_labels, predictions, source.labels,
                    check)


# --------------------------------------------------------------------------------------
# uap
# --------------------------------------------------------------------------------------

@dataclasses.dataclass
class Computed:
    path: Path                               # the written perturbation file
    universal: perturbation_file.Universal   # the perturbation and its info
    accuracy: dict                           # the model's accuracy on the frames: clean, perturbed, shifted
    check: object                            # core.recording.FrameCheck: the invalid frames left out

    @property
    def frames(self):
        return self.universal.info["frames"]


# attacks.universal.settings()'s parameters as `shapft uap` names them in errors
_UAP_OPTIONS = {"eps": "--eps", "psr_db": "--psr-db", "eps/psr_db": "--eps/--psr-db", "norm": "--norm",
                "epochs": "--epochs", "batch_size": "--batch-size", "step": "--step"}


def uap_recording(model, data, out, eps=None, psr_db=None, norm="linf", epochs=5, batch_size=256,
                  step=None, random_shift=False, seed=0, precision="fp32", invalid_frames="skip",
                  force=False, progress=True, device="auto"):
    """What `shapft uap` does: attacks.universal.compute() for model file `model` on the
    valid frames of recording `data` (labelled with their true classes), saved to `out`
    with its provenance (core.perturbation_file), and the model's accuracy on those
    frames clean, with the perturbation added, and added at random shifts
    (universal.apply(), seeded by seed). A model that carries a mask is attacked through
    its deletion on full-length frames. Invalid frames are left out and counted (or
    refused: invalid_frames="error")."""
    from ..attacks import universal
    from ..learn.metrics import model_accuracy
    from ..models import precision as precision_module

    device = run_device(device)
    loaded = load_model(model, "--model").to(device)
    data_meta = recording_path(data, "--data")
    out = writable_output(out, "--out", force)
    source, check = read_recording(data_meta, "--data", loaded, invalid_frames)
    length = source.frame_length
    try:
        eps, norm, epochs, batch_size, step_used = universal.settings(eps, psr_db, norm, epochs, batch_size, step,
                                                                      len(source), length)
    except ValueError as err:
        name, _, message = str(err).partition(": ")
        raise ValueError(f"{_UAP_OPTIONS[name]}: {message}") from None
    budget.warn_if_above_signal(eps, norm, length, "--psr-db" if psr_db is not None else "--eps")
    module = classifier(loaded, length)
    x = source.model_input()
    perturbation = universal.compute(module, x, source.labels, eps=eps, norm=norm, epochs=epochs,
                                     batch_size=batch_size, step=step, random_shift=random_shift, seed=seed,
                                     precision=precision, progress=progress)
    accuracy = {name: model_accuracy(module, frames, source.labels, precision)
                for name, frames in (("clean", x), ("perturbed", universal.apply(x, perturbation)),
                                     ("shifted", universal.apply(x, perturbation, shift=True, seed=seed)))}
    command = artifacts.command_line(
        "uap", ("--model", model), ("--data", data), ("--eps", None if psr_db is not None else eps),
        ("--psr-db", psr_db), ("--norm", norm), ("--epochs", epochs), ("--batch-size", batch_size),
        ("--step", step), ("--random-shift", random_shift), ("--seed", seed), ("--precision", precision),
        ("--invalid-frames", invalid_frames), ("--out", out))
    info = {"norm": norm, "eps": eps, "random_shift": random_shift, "model": loaded.path.name,
            "model_sha256": loaded.sha256, "data": data_meta.name,
            "data_sha256": artifacts.sha256_file(recording.paths(data_meta)[1]), "frames": len(source),
            "epochs": epochs, "batch_size": batch_size, "step": step_used, "seed": seed,
            "precision": precision_module.resolve(precision, device.type), "mask_applied": mask_applied(loaded, length),
            "accuracy": accuracy, **check.as_json(), "command": command}
    info = perturbation_file.save(out, perturbation, info)
    return Computed(out, perturbation_file.Universal(perturbation, info), accuracy, check)


# --------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------

def evaluate_model(model, data, attack_list=(), steps=None, alpha=None, labels="truth", batch_size=256,
                   seed=0, json_path=None, figure=None, progress=True, invalid_frames="skip", precision="fp32",
                   device="auto"):
    """Accuracy of `model` on the valid frames of recording `data`, as recorded and under
    each attack of `attack_list` crafted against the model itself: (method, eps) or
    (method, None, psr_db), the PSR converted with the method's norm at the recording's
    frame length. A model that carries a mask classifies (and is attacked) through its
    deletion on full-length frames. Optionally written as JSON and as a figure of
    accuracy vs SNR (both checked writable first). Returns the results dict
    (learn.metrics.evaluate's, plus the invalid frames left out and the recording's
    condition as the description of `clean`). The recording is read a batch at a time:
    any size fits in memory."""
    from .. import attacks
    from ..learn import metrics
    from . import figures

    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    attack_list = [tuple(item) + (None,) * (3 - len(item)) for item in attack_list]
    for method, eps, psr_db in attack_list:
        if method not in attacks.METHODS:
            raise ValueError(f"unknown attack method {method!r}; expected one of {', '.join(attacks.METHODS)}")
        try:
            budget.resolve_eps(eps, psr_db)
        except ValueError as err:
            raise ValueError(f"{method}: {err}") from None
    for path, option in ((json_path, "--json"), (figure, "--figure")):
        if path:
            writable_output(path, option)
    device = run_device(device)
    loaded = load_model(model, "--model").to(device)
    meta = recording_path(data, "--data")
    rec, check = read_recording(meta, "--data", loaded, invalid_frames, lazy=True, progress=progress)
    module = classifier(loaded, rec.frame_length)
    resolved = []
    for method, eps, psr_db in attack_list:
        norm = attacks.METHODS[method].norm
        eps = budget.resolve_eps(eps, psr_db, norm, rec.frame_length)
        budget.warn_if_above_signal(eps, norm, rec.frame_length, method)
        resolved.append((method, eps))
    options = {k: v for k, v in (("steps", steps), ("alpha", alpha)) if v is not None}
    result = metrics.evaluate(module, rec, resolved, labels=labels, attack_options=options, precision=precision,
                              seed=seed, batch_size=batch_size, progress=progress)
    result["clean"]["description"] = recording.condition(rec)
    result.update(model=str(loaded.path), model_sha256=loaded.sha256, arch=loaded.arch, data=str(meta),
                  mask_applied=mask_applied(loaded, rec.frame_length), **check.as_json())
    if json_path:
        artifacts.write_json(json_path, result)
    if figure:
        curves = {condition_name(result["clean"]): result["clean"]}
        curves.update((entry["description"].split(",")[0], entry) for entry in result["attacks"])
        figures.accuracy_vs_snr(curves, figure, title=f"{loaded.path.name} on {meta.name}")
    return result


def condition_name(report):
    """Short name of the frames as recorded: 'clean' or 'as recorded' (attacked)."""
    return "clean" if report.get("description", "clean") == "clean" else "as recorded"


# --------------------------------------------------------------------------------------
# explain
# --------------------------------------------------------------------------------------

@dataclasses.dataclass
class Explained:
    path: Path
    shape: tuple
    frames: int
    seconds: float
    check: object = None             # core.recording.FrameCheck of --data
    background_check: object = None  # ... and of --background


def explain_recording(model, background, data, out, background_size=5000, nsamples=200, outputs="all",
                      output="softmax", alphas="shap", engine="vectorised", batch_size=None, seed=0,
                      force=False, progress=True, invalid_frames="skip", precision="fp32", device="auto"):
    """SHAP values (expected gradients) of every valid frame of `data` against a seeded
    random background of `background_size` valid frames of `background`, written to `out`
    (.npz). Invalid frames (NaN, Inf, all zero) are left out of both, so the values are
    those of the same recordings without them; the .npz records which data frames were
    skipped (invalid_indices, invalid_reasons; background_invalid_*). A model that
    carries a mask is explained through its deletion on full-length frames."""
    from ..learn import explain
    from ..models import precision as model_precision
    device = run_device(device)
    if engine == "shap" and model_precision.resolve(precision, device.type) != "fp32":
        raise ValueError("--precision: the shap engine (the reference) runs in fp32; use --engine vectorised")

    for name, value in (("background-size", background_size), ("nsamples", nsamples),
                        ("batch-size", batch_size)):
        if value is not None and value < 1:
            raise ValueError(f"--{name} must be >= 1, got {value}")
    if engine == "shap" and alphas != "shap":
        raise ValueError(f"--alphas {alphas} needs --engine vectorised (shap draws its alphas uniformly)")
    out = writable_output(out, "--out", force)
    loaded = load_model(model, "--model").to(device)
    background_rec, background_check = read_recording(background, "--background", loaded, invalid_frames)
    rec, check = read_recording(data, "--data", loaded, invalid_frames)
    if background_rec.frame_length != rec.frame_length:
        raise ValueError(f"--background {background}: frames of {background_rec.frame_length} samples, "
                         f"--data {data}: {rec.frame_length}; they must be the same")
    if background_size > len(background_rec):
        valid = " valid" if background_check.invalid else ""
        raise ValueError(f"--background-size {background_size} exceeds the "
                         f"{len(background_rec)}{valid} frames of --background {background}")
    if rec.labels.max() >= len(loaded.classes):
        raise ValueError(f"--data {data}: labels reach class {rec.labels.max()}, "
                         f"the model has {len(loaded.classes)} classes")
    module = classifier(loaded, rec.frame_length)

    # drawn among the valid frames, recorded as indices in the background recording
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(background_rec), background_size, replace=False))
    background_x = background_rec.subset(chosen).model_input()
    background_indices = background_check.kept[chosen]
    frames = rec.model_input()
    predicted = explain.predicted_classes(module, frames)
    # "predicted" stays a name: shap's engine then explains only the top output (ranked_outputs)
    explained = rec.labels[:, None] if outputs == "true" else outputs

    start = time.perf_counter()
    if engine == "vectorised":
        with model_precision.autocast(precision, device.type):
            result = explain.expected_gradients(
                module, background_x, frames, outputs=explained, nsamples=nsamples, seed=seed,
                output=output, alphas=alphas, batch_size=batch_size or explain.DEFAULT_BATCH_SIZE,
                progress=progress)
    else:
        result = explain.shap_reference(
            module, background_x, frames, nsamples=nsamples, seed=seed, output=output,
            outputs=explained, batch_size=batch_size or explain.SHAP_BATCH_SIZE, progress=progress)
    seconds = time.perf_counter() - start

    explain.save(out, result, frame_indices=check.kept, background_indices=background_indices,
                 labels=rec.labels, predicted=predicted, class_names=loaded.classes, engine=engine,
                 outputs=outputs, output=output, alphas=alphas, nsamples=nsamples, seed=seed,
                 model_sha256=loaded.sha256, data_sha256=recording.data_sha256(data),
                 background_sha256=recording.data_sha256(background), invalid=check.reasons,
                 background_invalid=background_check.reasons)
    return Explained(out, result.values.shape, len(frames), seconds, check, background_check)


# --------------------------------------------------------------------------------------
# mask
# --------------------------------------------------------------------------------------

@dataclasses.dataclass
class Masked:
    path: Path
    mask: dict
    rule: str
    frames_used: int
    eps: float
    check: object = None     # core.recording.FrameCheck: the frames `explain` skipped as invalid


def derive_mask(shap, out, eps=None, psr_db=None, attack="fgsm", frames="auto", normalise="none",
                figure=None, force=False):
    """The negative points of an explain .npz (true class explained), written as a mask.
    The frames explain skipped as invalid are counted in the mask (frames_invalid)."""
    from ..learn import explain

    out = writable_output(out, "--out", force)
    if figure:
        writable_output(figure, "--figure")
    try:
        eps = budget.resolve_eps(eps, psr_db)
    except ValueError as err:
        raise ValueError(f"--eps/--psr-db: {err}") from None
    budget.warn_if_above_signal(eps, option=_budget_option(eps, psr_db))
    content = explain.load(artifacts.existing_file(shap, "--shap"))
    values = masks.true_class_values(content)
    drop, sums, rule, n_frames = masks.find(values, content["labels"], content["predicted"],
                                            eps, frames, normalise)
    if n_frames == 0:
        raise ValueError(f"--frames: rule {rule!r} selects no frames (the model gets every attacked frame "
                         "right); use --frames all")
    skipped = {reason: [] for reason in recording.INVALID_REASONS}
    for index, reason in zip(content["invalid_indices"].tolist(), content["invalid_reasons"].tolist()):
        skipped[reason].append(index)
    check = recording.FrameCheck.from_indices(skipped, kept=content["frame_indices"])
    mask = masks.make_mask(
        drop, values.shape[-1], attack, eps, content["model_sha256"],
        psr_db=budget.eps_to_psr_db(eps), frame_rule=rule, frames_used=n_frames,
        normalise=normalise, shap_output=content["output"], nsamples=content["nsamples"],
        shap_seed=content["seed"], explained_sha256=content["data_sha256"], frames_invalid=check.counts())
    masks.save(out, mask)
    if figure:
        from .figures import shapft as shapft_figures
        shapft_figures.shapley_sums({eps: (sums, drop)}, figure)
    return Masked(out, mask, rule, n_frames, eps, check)


# --------------------------------------------------------------------------------------
# finetune
# --------------------------------------------------------------------------------------

@dataclasses.dataclass
class FineTuned:
    path: Path
    method: str
    frame_length: int
    result: object           # learn.training.TrainResult
    evaluation: dict         # accuracy report on `evaluate`, or None
    checks: dict = None      # {"--data": FrameCheck, "--evaluate": FrameCheck (with evaluate)}
    main: bool = True        # as Trained.main


def finetune_model(model, data, out, method="shapft", mask=None, eps=None, epochs=50, patience=5,
                   evaluate=None, seed=0, force=False, progress=True, invalid_frames="skip", precision="fp32",
                   stop=None, adversarial=None, steps=None, device="auto"):
    """SHAP-FT fine-tuning (or a baseline: random, direct, at_fgsm), with adversarial
    fine-tuning when `adversarial` is fgsm or pgd (`steps`), of the original
    CNN-LSTM on the valid frames of `data`, exported with its mask; then, optionally, its
    accuracy on the valid frames of the recording `evaluate` after deleting the same
    positions. Invalid frames (NaN, Inf, all zero) are left out and counted, or refused
    with invalid_frames="error". Setting the Event `stop` ends training with
    KeyboardInterrupt (learn.finetune.finetune). Under torchrun the processes fine-tune
    together and rank 0 alone writes, as train_classifier says."""
    from ..learn import distributed, finetune, metrics

    if method not in finetune.METHODS:
        raise ValueError(f"--method {method!r} is not one of {', '.join(finetune.METHODS)}")
    if adversarial is not None and adversarial not in finetune.ADVERSARIAL:
        raise ValueError(f"--adversarial {adversarial!r} is not one of {', '.join(finetune.ADVERSARIAL)}")
    if method == "at_fgsm" and adversarial == "pgd":
        raise ValueError("--adversarial pgd contradicts --method at_fgsm (FGSM adversarial fine-tuning); "
                         "use --method direct --adversarial pgd")
    if steps is not None and adversarial != "pgd":
        raise ValueError("--steps applies to --adversarial pgd only")
    if steps is not None and steps < 1:
        raise ValueError(f"--steps: must be >= 1, got {steps}")
    name = finetune.method_name(method, adversarial)
    device = distributed.process_device(device)
    out = writable_output(out, "--out", force)
    loaded = load_model(model, "--model").to(device)
    original = finetune.cnn_lstm_from(loaded)
    rec, data_check = read_recording(data, "--data", loaded, invalid_frames, through_mask=False)
    checks = {"--data": data_check}
    chosen = None
    if method in ("shapft", "random"):
        if not mask:
            raise ValueError(f"--method {method} needs --mask")
        chosen = masks.load(mask)
        masks.check_fits_model(chosen, loaded, force=force)
        finetune.check_kept(original, masks.output_length(chosen), f"--mask {mask}")
        if method == "random":
            chosen = masks.make_mask(
                masks.random_positions(chosen["m"], chosen["frame_length"], seed),
                chosen["frame_length"], chosen.get("attack"), chosen.get("eps"), loaded.sha256,
                selection=f"random (seed {seed}), m of {mask}")
    if name.startswith("at_") or "+at_" in name:
        if eps is None:
            raise ValueError(f"{'--method at_fgsm' if method == 'at_fgsm' else '--adversarial'} needs --eps")
    if eps is not None:
        try:
            budget.resolve_eps(eps)
        except ValueError as err:
            raise ValueError(f"--eps: {err}") from None
        budget.warn_if_above_signal(eps, option="--eps")
    target = None
    if evaluate:   # read before training
        target, checks["--evaluate"] = read_recording(evaluate, "--evaluate", loaded, invalid_frames,
                                                      through_mask=False)

    keep = masks.keep_positions(chosen) if chosen else None
    steps = steps or finetune.AFT_PGD_STEPS
    length = len(keep) if keep is not None else loaded.frame_length
    with distributed.process_group(device) as world:
        network, result = finetune.finetune(original, rec.model_input(), rec.labels, rec.snr_db, method,
                                            keep=keep, eps=eps, seed=seed, epochs=epochs, patience=patience,
                                            progress=progress, precision=precision, stop=stop,
                                            adversarial=adversarial, steps=steps)
    if not world.main:
        return FineTuned(out, name, length, result, None, checks, main=False)
    command = artifacts.command_line(
        "finetune", ("--model", model), ("--data", data), ("--out", out), ("--method", method),
        ("--mask", mask), ("--adversarial", adversarial), ("--steps", steps if adversarial == "pgd" else None),
        ("--eps", eps), ("--epochs", epochs), ("--patience", patience), ("--seed", seed))
    provenance = {"command": command, "seed": seed, "original_sha256": loaded.sha256,
                  "data_sha256": {Path(data).name: recording.data_sha256(data)}, **data_check.as_json()}
    adversarial_info = None
    if name != method or method == "at_fgsm":
        adversarial_info = {"attack": adversarial or "fgsm", "eps": eps, "norm": "linf",
                            "batches": "half clean, half crafted against the network being trained",
                            **({"steps": steps} if adversarial == "pgd" else {})}
    finetune.export(network, out, length, chosen, provenance, result, name, adversarial_info)
    report = None
    if target is not None:
        x = target.model_input()
        if keep is not None:
            x = x[:, :, keep]
        predictions = metrics.predict_logits(network, x, precision=precision).argmax(axis=1)
        report = metrics.accuracy_report(target.labels, predictions, target.snr_db)
    return FineTuned(out, name, length, result, report, checks)
