"""What each model-making `shapft` command does, as a function: read the inputs, run
the learn/ and attacks/ code, write the artifacts (atomically), return a summary. The
command line parses and prints around them; `shapft reproduce` calls them directly.

Every function checks its inputs before any long computation, and every error is a
ValueError (or FileNotFoundError, FileExistsError, ...) whose message names the
command-line option that gave the bad value.
"""
import dataclasses
import time
from pathlib import Path

import numpy as np

from ..core import artifacts, budget, masks, model_file, recording
from ..core.radioml import class_index


def read_recording(path, option, loaded=None):
    """A recording given its .sigmf-meta (or base) path; with `loaded`, frames the model
    cannot take are refused (e.g. 128-sample frames for a SHAP-FT model, which expects
    the mask's shorter frames)."""
    meta, _ = recording.paths(path)
    rec = recording.read(artifacts.existing_file(meta, option))
    if loaded is not None and rec.frame_length != loaded.frame_length:
        hint = " (it carries a negative-point mask)" if loaded.mask else ""
        raise ValueError(f"{option} {meta}: frames of {rec.frame_length} samples, but the model takes "
                         f"{loaded.frame_length}{hint}")
    return rec


# --------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------

@dataclasses.dataclass
class Trained:
    path: Path
    result: object           # learn.training.TrainResult
    test_report: dict        # accuracy report on the test split, or None


def train_classifier(arch, data, out, epochs=200, batch_size=200, lr=1e-3, patience=10, min_delta=0.0,
                     seed=0, checkpoint=None, resume=False, force=False, progress=True, log=None):
    """Train `arch` on DATA/train (early stopping on DATA/val), export it with metadata to
    `out`, and write OUT.training.json and figures (curves; with DATA/test, accuracy vs
    SNR and confusion matrices). Resumable from `checkpoint` (default OUT.ckpt)."""
    import torch
    from .. import models
    from ..learn import training
    from ..learn.metrics import HIGH_SNR_DB, accuracy_report, predict_logits
    from . import figures

    if arch not in model_file.ARCHITECTURES:
        raise ValueError(f"--arch {arch!r} is not one of {', '.join(model_file.ARCHITECTURES)}")
    try:
        config = training.TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience,
                                      min_delta=min_delta, seed=seed)
    except ValueError as err:
        raise ValueError(f"--{str(err).replace('_', '-')}") from None
    out = artifacts.check_new_output(out, force)
    checkpoint = Path(checkpoint) if checkpoint else out.with_name(out.name + ".ckpt")
    if checkpoint.exists() and not resume:
        raise FileExistsError(f"checkpoint {checkpoint} exists (an interrupted run?); "
                              "pass --resume to continue it or delete it")
    artifacts.writable_dir(out.parent)
    splits, digests = recording.read_splits(data, required=("train", "val"), optional=("test",))
    frame_length = splits["train"].frame_length

    torch.manual_seed(seed)
    model = models.build(arch, frame_length=frame_length)
    if log:
        log(f"{arch}: {models.parameter_count(model):,} parameters; train {len(splits['train'])}, "
            f"val {len(splits['val'])} frames of {frame_length} samples")
    result = training.fit(model, _xy(splits["train"]), _xy(splits["val"]), config,
                          checkpoint_path=checkpoint, progress=progress)

    summary = {**result.summary(), "config": dataclasses.asdict(config)}
    test_report = None
    if "test" in splits:
        test = splits["test"]
        predictions = predict_logits(model, test.model_input()).argmax(axis=1)
        test_report = accuracy_report(test.labels, predictions, test.snr_db)
        summary["test_accuracy"] = test_report["accuracy"]
        summary["test_high_snr_accuracy"] = test_report["high_snr_accuracy"]
    command = artifacts.command_line(
        "train", ("--arch", arch), ("--data", data), ("--out", out), ("--epochs", epochs),
        ("--batch-size", batch_size), ("--lr", lr), ("--patience", patience), ("--min-delta", min_delta),
        ("--seed", seed))
    provenance = {"command": command, "seed": seed, "data": digests}
    model_file.export(model, out, arch, frame_length, provenance, training=summary)

    stem = out.with_suffix("")
    artifacts.write_json(f"{stem}.training.json",
                         {"summary": summary, "history": result.history, "test": test_report})
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
    return Trained(out, result, test_report)


def _xy(split):
    return split.model_input(), split.labels


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
                     force=False, progress=True):
    """Attack every frame of recording `data` against `model`; write the adversarial
    frames as OUT/<data's name>.sigmf-{meta,data}, keeping the annotations and recording
    the attack in the global `shapft:attack` field."""
    from .. import attacks
    from ..learn.metrics import measured_psr_db, predict_logits

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
    loaded = model_file.load(artifacts.existing_file(model, "--model"))
    data_meta, _ = recording.paths(data)
    source = read_recording(data_meta, "--data", loaded)
    out_base = artifacts.writable_dir(out) / data_meta.name[: -len(recording.META_SUFFIX)]
    if recording.paths(out_base)[0].resolve() == data_meta.resolve():
        raise ValueError(f"--out {out}: the output would overwrite the input recording")

    attack = attacks.make(method, loaded.module, eps=eps, psr_db=psr_db, seed=seed,
                          frame_length=source.frame_length, targeted=targeted, **options)
    x = source.model_input()
    if targeted:
        attack_labels = np.full(len(source), class_index(target_class))
    elif labels == "predicted":
        attack_labels = predict_logits(loaded.module, x).argmax(axis=1)
    else:
        attack_labels = source.labels
    x_adv = attacks.attack_array(attack, x, attack_labels, batch_size, progress=progress)

    info = dict(source.info)
    info["attack"] = {**attack.info(), "labels": "target" if targeted else labels,
                      "target_class": target_class, "model": str(loaded.path),
                      "model_sha256": loaded.sha256, "source": str(data_meta),
                      "measured_psr_db": measured_psr_db(x, x_adv)}
    adversarial = recording.Recording(recording.from_model_input(x_adv), source.labels, source.snr_db, info)
    written = recording.write(out_base, adversarial, f"{attack.describe()} against {loaded.path.name} "
                              f"of {data_meta.name}", overwrite=force)
    predictions = predict_logits(loaded.module, x_adv).argmax(axis=1)
    return Attacked(written, len(source), attack.describe(), attack_labels, predictions, source.labels)


# --------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------

def evaluate_model(model, data, attack_list=(), steps=None, alpha=None, labels="truth", batch_size=256,
                   seed=0, json_path=None, figure=None, progress=True):
    """Accuracy of `model` on recording `data`, clean and under each (method, eps) of
    `attack_list` crafted against the model itself; optionally written as JSON and as a
    figure of accuracy vs SNR. Returns the results dict (learn.metrics.evaluate's)."""
    from ..learn import metrics
    from . import figures

    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    for method, eps in attack_list:
        try:
            budget.resolve_eps(eps)
        except ValueError as err:
            raise ValueError(f"{method}: {err}") from None
    loaded = model_file.load(artifacts.existing_file(model, "--model"))
    meta, _ = recording.paths(data)
    rec = read_recording(meta, "--data", loaded)
    options = {k: v for k, v in (("steps", steps), ("alpha", alpha)) if v is not None}
    result = metrics.evaluate(loaded.module, rec, attack_list, labels=labels, attack_options=options,
                              seed=seed, batch_size=batch_size, progress=progress)
    result.update(model=str(loaded.path), model_sha256=loaded.sha256, arch=loaded.arch, data=str(meta))
    if json_path:
        artifacts.write_json(json_path, result)
    if figure:
        curves = {"clean": result["clean"]}
        curves.update((entry["description"].split(",")[0], entry) for entry in result["attacks"])
        figures.accuracy_vs_snr(curves, figure, title=f"{loaded.path.name} on {meta.name}")
    return result


# --------------------------------------------------------------------------------------
# explain
# --------------------------------------------------------------------------------------

@dataclasses.dataclass
class Explained:
    path: Path
    shape: tuple
    frames: int
    seconds: float


def explain_recording(model, background, data, out, background_size=5000, nsamples=200, outputs="all",
                      output="softmax", alphas="shap", engine="vectorised", batch_size=None, seed=0,
                      force=False, progress=True):
    """SHAP values (expected gradients) of every frame of `data` against a seeded random
    background of `background_size` frames of `background`, written to `out` (.npz)."""
    from ..learn import explain

    for name, value in (("background-size", background_size), ("nsamples", nsamples),
                        ("batch-size", batch_size)):
        if value is not None and value < 1:
            raise ValueError(f"--{name} must be >= 1, got {value}")
    if engine == "shap" and alphas != "shap":
        raise ValueError(f"--alphas {alphas} needs --engine vectorised (shap draws its alphas uniformly)")
    out = artifacts.check_new_output(out, force)
    loaded = model_file.load(artifacts.existing_file(model, "--model"))
    background_rec = read_recording(background, "--background", loaded)
    rec = read_recording(data, "--data", loaded)
    if background_size > len(background_rec):
        raise ValueError(f"--background-size {background_size} exceeds the "
                         f"{len(background_rec)} frames of --background {background}")
    if rec.labels.max() >= len(loaded.classes):
        raise ValueError(f"--data {data}: labels reach class {rec.labels.max()}, "
                         f"the model has {len(loaded.classes)} classes")

    rng = np.random.default_rng(seed)
    background_indices = np.sort(rng.choice(len(background_rec), background_size, replace=False))
    background_x = background_rec.subset(background_indices).model_input()
    frames = rec.model_input()
    predicted = explain.predicted_classes(loaded.module, frames)
    # "predicted" stays a name: shap's engine then explains only the top output (ranked_outputs)
    explained = rec.labels[:, None] if outputs == "true" else outputs

    start = time.perf_counter()
    if engine == "vectorised":
        result = explain.expected_gradients(
            loaded.module, background_x, frames, outputs=explained, nsamples=nsamples, seed=seed,
            output=output, alphas=alphas, batch_size=batch_size or explain.DEFAULT_BATCH_SIZE,
            progress=progress)
    else:
        result = explain.shap_reference(
            loaded.module, background_x, frames, nsamples=nsamples, seed=seed, output=output,
            outputs=explained, batch_size=batch_size or explain.SHAP_BATCH_SIZE, progress=progress)
    seconds = time.perf_counter() - start

    explain.save(out, result, frame_indices=np.arange(len(rec)), background_indices=background_indices,
                 labels=rec.labels, predicted=predicted, class_names=loaded.classes, engine=engine,
                 outputs=outputs, output=output, alphas=alphas, nsamples=nsamples, seed=seed,
                 model_sha256=loaded.sha256, data_sha256=recording.data_sha256(data),
                 background_sha256=recording.data_sha256(background))
    return Explained(out, result.values.shape, len(frames), seconds)


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


def derive_mask(shap, out, eps=None, psr_db=None, attack="fgsm", frames="auto", normalise="none",
                figure=None, force=False):
    """The negative points of an explain .npz (true class explained), written as a mask."""
    from ..learn import explain

    out = artifacts.check_new_output(out, force)
    try:
        eps = budget.resolve_eps(eps, psr_db)
    except ValueError as err:
        raise ValueError(f"--eps/--psr-db: {err}") from None
    content = explain.load(artifacts.existing_file(shap, "--shap"))
    values = masks.true_class_values(content)
    drop, sums, rule, n_frames = masks.find(values, content["labels"], content["predicted"],
                                            eps, frames, normalise)
    if n_frames == 0:
        raise ValueError(f"--frames: rule {rule!r} selects no frames (the model gets every attacked frame "
                         "right); use --frames all")
    mask = masks.make_mask(
        drop, values.shape[-1], attack, eps, content["model_sha256"],
        psr_db=budget.eps_to_psr_db(eps), frame_rule=rule, frames_used=n_frames,
        normalise=normalise, shap_output=content["output"], nsamples=content["nsamples"],
        shap_seed=content["seed"], explained_sha256=content["data_sha256"])
    masks.save(out, mask)
    if figure:
        from .figures import shapft as shapft_figures
        shapft_figures.shapley_sums({eps: (sums, drop)}, figure)
    return Masked(out, mask, rule, n_frames, eps)


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


def finetune_model(model, data, out, method="shapft", mask=None, eps=None, epochs=50, patience=5,
                   evaluate=None, seed=0, force=False, progress=True):
    """SHAP-FT fine-tuning (or a baseline: random, direct, at_fgsm) of the original
    CNN-LSTM on `data`, exported with its mask; then, optionally, its accuracy on the
    recording `evaluate` after deleting the same positions."""
    from ..learn import finetune, metrics

    if method not in finetune.METHODS:
        raise ValueError(f"--method {method!r} is not one of {', '.join(finetune.METHODS)}")
    out = artifacts.check_new_output(out, force)
    loaded = model_file.load(artifacts.existing_file(model, "--model"))
    rec = read_recording(data, "--data", loaded)
    chosen = None
    if method in ("shapft", "random"):
        if not mask:
            raise ValueError(f"--method {method} needs --mask")
        chosen = masks.load(mask)
        masks.check_fits_model(chosen, loaded, force=force)
        if method == "random":
            chosen = masks.make_mask(
                masks.random_positions(chosen["m"], chosen["frame_length"], seed),
                chosen["frame_length"], chosen.get("attack"), chosen.get("eps"), loaded.sha256,
                selection=f"random (seed {seed}), m of {mask}")
    if method == "at_fgsm" and eps is None:
        raise ValueError("--method at_fgsm needs --eps")
    if eps is not None:
        try:
            budget.resolve_eps(eps)
        except ValueError as err:
            raise ValueError(f"--eps: {err}") from None
    target = read_recording(evaluate, "--evaluate", loaded) if evaluate else None   # before training

    keep = masks.keep_positions(chosen) if chosen else None
    network, result = finetune.finetune(finetune.cnn_lstm_from(loaded), rec.model_input(), rec.labels,
                                        rec.snr_db, method, keep=keep, eps=eps, seed=seed, epochs=epochs,
                                        patience=patience, progress=progress)
    length = len(keep) if keep is not None else loaded.frame_length
    command = artifacts.command_line(
        "finetune", ("--model", model), ("--data", data), ("--out", out), ("--method", method),
        ("--mask", mask), ("--eps", eps), ("--epochs", epochs), ("--patience", patience), ("--seed", seed))
    provenance = {"command": command, "seed": seed, "original_sha256": loaded.sha256,
                  "data_sha256": {Path(data).name: recording.data_sha256(data)}}
    finetune.export(network, out, length, chosen, provenance, result, method)
    report = None
    if target is not None:
        x = target.model_input()
        if keep is not None:
            x = x[:, :, keep]
        predictions = metrics.predict_logits(network, x).argmax(axis=1)
        report = metrics.accuracy_report(target.labels, predictions, target.snr_db)
    return FineTuned(out, method, length, result, report)
