"""SHAP-FT's fine-tuning (paper section IV-B) and the baselines that share its recipe.

Every method starts from the original CNN-LSTM, replaces its dense head (256 units ->
128, the paper's change) and fine-tunes on tiny-train with the paper's settings: batch
20, up to 50 epochs, early stopping on a held-out part of tiny-train. They differ only
in what the network sees:

- shapft: tiny-train with the mask's negative points deleted (frames of 128 - m);
- random: the same with m positions drawn at random (the control for SHAP's choice);
- direct: tiny-train unchanged;
- at_fgsm: tiny-train, each batch half clean and half FGSM-perturbed against the
  network being trained, at the attack's own eps (Goodfellow et al.'s adversarial
  training, given the same data, budget and epochs as the others).

Adversarial fine-tuning (AFT, SHAP-AFT's third stage) combines with any of the
deletions: `adversarial` fgsm or pgd makes every batch half clean and half perturbed
against the network being trained, on the frames as the network sees them (after the
deletion). at_fgsm is direct fine-tuning with adversarial fgsm; shapft with
adversarial fgsm is SHAP-AFT (arXiv 2509.15766).
"""
import numpy as np
import torch

from ..attacks.training import MixedATLoss
from ..core import model_file, splits
from . import training
from ..models import CnnLstm
from ..models import device as model_device

METHODS = ("shapft", "random", "direct", "at_fgsm")
ADVERSARIAL = ("fgsm", "pgd")
AFT_PGD_STEPS = 10
FINETUNE_DENSE_UNITS = 128
VAL_FRACTION = 0.2


def finetune_config(seed=0, epochs=50, patience=5):
    return training.TrainConfig(epochs=epochs, batch_size=20, lr=1e-3, patience=patience, seed=seed)


def cnn_lstm_from(loaded):
    """An nn.Module CnnLstm holding the weights of a loaded CNN-LSTM model file, on the
    device its module is on."""
    if loaded.arch != "cnn_lstm":
        raise ValueError(f"{loaded.path}: SHAP-FT fine-tunes a cnn_lstm, not a {loaded.arch}")
    state = loaded.module.state_dict()
    model = CnnLstm(num_classes=state["classifier.weight"].shape[0],
                    conv_channels=state["conv.weight"].shape[0],
                    kernel_size=state["conv.weight"].shape[2],
                    lstm_units=state["lstm.weight_hh_l0"].shape[1],
                    dense_units=state["dense.weight"].shape[0])
    model.load_state_dict(state)
    return model.to(model_device.of(loaded.module))


def check_kept(original, kept, source):
    """Refuse deletions that leave frames of `kept` samples, too short for `original` (a
    CnnLstm): its convolution needs at least a kernel's length. The error names `source`."""
    if kept < original.kernel_size:
        raise ValueError(f"{source}: leaves frames of {kept} samples, but the cnn_lstm needs at least "
                         f"{original.kernel_size} (its convolution's kernel length)")


def split_train_val(labels, snr_db, seed, val_fraction=VAL_FRACTION):
    """Indices of the fine-tuning recipe's stratified (class, SNR) train/val split."""
    val, train = splits.stratified_split(labels, snr_db, (val_fraction, 1 - val_fraction),
                                         np.random.default_rng([seed, 0x7A1]))
    return train, val


def method_name(method, adversarial=None):
    """What a fine-tuning is called in model files and reports: the method, or with
    adversarial fine-tuning at_<attack> after the deletion (shapft+at_fgsm is SHAP-AFT;
    direct with at_fgsm is at_fgsm)."""
    method, adversarial = _normalised(method, adversarial)
    if adversarial is None:
        return method
    return f"at_{adversarial}" if method == "direct" else f"{method}+at_{adversarial}"


def _normalised(method, adversarial):
    """(deletion method, adversarial attack or None), at_fgsm read as direct + fgsm."""
    if method not in METHODS:
        raise ValueError(f"method {method!r} is not one of {', '.join(METHODS)}")
    if adversarial is not None and adversarial not in ADVERSARIAL:
        raise ValueError(f"adversarial {adversarial!r} is not one of {', '.join(ADVERSARIAL)}")
    if method == "at_fgsm":
        if adversarial not in (None, "fgsm"):
            raise ValueError(f"method at_fgsm is FGSM adversarial fine-tuning; adversarial {adversarial!r} "
                             "contradicts it (use method direct)")
        return "direct", "fgsm"
    return method, adversarial


def finetune(original, x, y, snr_db, method, keep=None, eps=None, seed=0, epochs=50, patience=5,
             checkpoint_path=None, progress=True, precision="fp32", stop=None, adversarial=None,
             steps=AFT_PGD_STEPS):
    """Fine-tune a copy of `original` (a CnnLstm) by `method` on frames x [N, 2, 128].

    keep: positions kept (shapft and random); adversarial: fgsm or pgd (`steps` steps)
    adversarial fine-tuning at eps, on the frames after the deletion (at_fgsm: direct
    with fgsm); stop: an Event (threading or multiprocessing) whose setting ends
    training with KeyboardInterrupt at the next batch. Returns the fine-tuned network
    (dense 128, on the device of `original`) and its training result.
    """
    method, adversarial = _normalised(method, adversarial)
    if method in ("shapft", "random"):
        if keep is None:
            raise ValueError(f"{method} fine-tuning needs the kept positions")
        check_kept(original, len(keep), "keep")
        x = x[:, :, keep]
    if adversarial is not None and eps is None:
        raise ValueError(f"adversarial fine-tuning ({adversarial}) needs eps")
    train, val = split_train_val(y, snr_db, seed)
    if len(val) == 0 or len(train) == 0:
        raise ValueError(f"{len(y)} frames are too few to hold out a validation fifth of every class "
                         "and SNR (need at least 3 frames per class and SNR)")
    torch.manual_seed(seed)   # the new dense head's initialisation
    model = original.with_dense_units(FINETUNE_DENSE_UNITS)
    loss_fn = training.cross_entropy_loss if adversarial is None else MixedATLoss(eps, adversarial, steps, seed)
    result = training.fit(model, (x[train], y[train]), (x[val], y[val]),
                          finetune_config(seed, epochs, patience),
                          loss_fn=loss_fn if stop is None else _stopping(loss_fn, stop),
                          checkpoint_path=checkpoint_path, progress=progress, precision=precision)
    return model.eval(), result


def _stopping(loss_fn, stop):
    """loss_fn, raising KeyboardInterrupt instead once `stop` is set: the only per-batch hook."""
    def loss(model, x, y):
        if stop.is_set():
            raise KeyboardInterrupt
        return loss_fn(model, x, y)
    return loss


def export(model, path, frame_length, mask, provenance, result, method, adversarial=None):
    """Write a fine-tuned model file carrying its mask and how it was fine-tuned
    (adversarial: the MixedATLoss info of adversarial fine-tuning, or None)."""
    recipe = "SHAP-FT fine-tuning: dense 128, batch 20, Adam 1e-3, <= 50 epochs, early stopping"
    training_info = dict(result.summary(), method=method, recipe=recipe)
    if adversarial:
        training_info["adversarial"] = adversarial
    return model_file.export(model, path, "cnn_lstm", frame_length, provenance, mask=mask, training=training_info)
