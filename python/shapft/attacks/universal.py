"""Universal adversarial perturbations (UAP): one perturbation, computed offline on
training frames, added to every frame without seeing it. This is the realistic
over-the-air threat to a modulation classifier: the attacker transmits it, with no
knowledge of the frame it lands on (Sadeghi & Larsson, "Adversarial Attacks on
Deep-Learning Based Radio Signal Classification", arXiv:1808.07713).

    p = universal.compute(model, x, labels, eps=0.05)    # numpy float32 [2, L]
    x_adv = universal.apply(x, p)                        # x + p, every frame
    x_adv = universal.apply(x, p, shift=True, seed=1)    # rolled at random per frame

compute() runs projected stochastic gradient ascent of the mean cross-entropy over
minibatches, from zero (the stochastic-gradient UAP of Shafahi et al., "Universal
Adversarial Training", arXiv:1811.11304): `epochs` passes over the frames, shuffled
afresh each pass; per minibatch a sign step (L-infinity) or a step along the gradient
normalised to unit L2 norm over [2, L] (L2), then projection onto the budget ball.
With random_shift every frame of every step sees the perturbation circularly rolled
in time by its own uniformly random shift, so the ascent maximises the loss expected
over shifts (expectation over transformation: Athalye et al., "Synthesizing Robust
Adversarial Examples", arXiv:1707.07397): a perturbation that works without frame
synchronisation, as over the air. Nothing is clipped: these are radio samples.

A perturbation's file (what `shapft uap` writes and the fgsm_injector block's method
'uap' adds to a stream) is core.perturbation_file.
"""
import numpy as np
import torch
import torch.nn.functional as F

from ..core import budget, params
from ..models import device as model_device
from ..models import precision as precision_module
from .library import contain

STEP_FRACTION = 10        # default step: eps / STEP_FRACTION, or larger so that
STEP_PATH = 2.5           # all steps add up to at least STEP_PATH * eps


def compute(model, x, labels, eps=None, psr_db=None, norm="linf", epochs=5, batch_size=256, step=None,
            random_shift=False, seed=0, precision="fp32", progress=False):
    """The universal perturbation, numpy float32 [2, L], that raises `model`'s mean
    cross-entropy on frames x (numpy float32 [N, 2, L]) of true classes `labels` [N].

    model: a torch callable [B, 2, L] -> logits [B, C] on full frames (a model that
    carries a mask comes wrapped in its deletion, models.masked). Budget: exactly one
    of eps or psr_db, converted at this frame length (budget.py); norm 'linf' bounds
    each component, 'l2' the norm over [2, L]; the result is within it exactly. step:
    the size of each step (a component's change for 'linf', the L2 length for 'l2';
    default eps / 10, or 2.5 eps / the number of steps when that is larger). The same
    seed and arguments give the same perturbation. The model runs in eval mode (its
    mode is restored), on its device, and only the input's gradient is taken; precision
    as models.precision, the loss in float32."""
    x, labels = _frames(x, labels)
    length = x.shape[2]
    eps, norm, epochs, batch_size, step = settings(eps, psr_db, norm, epochs, batch_size, step, len(x), length)
    random_shift = params.boolean(random_shift, "random_shift")
    seed = params.integer(seed, "seed")
    device = model_device.of(model)
    precision = precision_module.resolve(precision_module.check(precision), device.type)
    perturbation = torch.zeros(2, length, device=device)
    if eps == 0:
        return perturbation.cpu().numpy()
    from tqdm import tqdm
    generator = np.random.default_rng(seed)
    bar = tqdm(total=epochs * -(-len(x) // batch_size), desc=f"UAP {budget.describe(eps, norm, length)}",
               unit="step", dynamic_ncols=True, disable=not progress)
    was_training = getattr(model, "training", False)
    try:
        model.eval()
        _check_labels(model, x, labels, precision, device)
        for _ in range(epochs):
            order = generator.permutation(len(x))
            for start in range(0, len(x), batch_size):
                index = order[start:start + batch_size]
                shifts = draw_shifts(generator, len(index), length) if random_shift else None
                grad = _gradient(model, torch.from_numpy(x[index]).to(device),
                                 torch.from_numpy(labels[index]).to(device), perturbation, shifts, precision)
                perturbation = _project(perturbation + _ascent_step(grad, norm, step), norm, eps)
                bar.update()
    finally:
        model.train(was_training)
        bar.close()
    return _within(perturbation.cpu().numpy(), norm, eps)


def settings(eps, psr_db, norm, epochs, batch_size, step, frames, frame_length):
    """compute()'s checked (eps, norm, epochs, batch_size, step) for `frames` frames of
    frame_length samples, the default step filled in. Errors start with the parameter's
    name ('eps/psr_db' when not exactly one of them is given): ValueError, or TypeError
    for a value of the wrong type."""
    if norm not in budget.NORMS:
        raise ValueError(f"norm: {norm!r} is not one of {', '.join(budget.NORMS)}")
    try:
        eps = budget.resolve_eps(eps, psr_db, norm, frame_length)
    except (TypeError, ValueError) as err:
        name = "eps/psr_db" if (eps is None) == (psr_db is None) else "psr_db" if psr_db is not None else "eps"
        raise ValueError(f"{name}: {err}") from None
    epochs = params.integer(epochs, "epochs", minimum=1)
    batch_size = params.integer(batch_size, "batch_size", minimum=1)
    if step is None:
        # eps / 10; with fewer than 25 steps in all, larger, so that the steps can add
        # up to 2.5 eps (BIM's default rule, attacks.iteration)
        return eps, norm, epochs, batch_size, eps * max(1 / STEP_FRACTION,
                                                        STEP_PATH / (epochs * -(-frames // batch_size)))
    step = params.number(step, "step")
    if step <= 0:
        raise ValueError(f"step: must be > 0, got {step!r}")
    return eps, norm, epochs, batch_size, step


def apply(x, perturbation, shift=False, seed=0):
    """x + perturbation for frames x (float32 [N, 2, L]) and a perturbation [2, L], as
    float32 [N, 2, L]. With shift, each frame gets the perturbation circularly rolled
    in time by its own integer drawn uniformly from [0, L), frame by frame from a numpy
    Generator seeded by seed (draw_shifts: the fgsm_injector block draws the same)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3 or x.shape[1] != 2:
        raise ValueError(f"x: must be frames [N, 2, L], got shape {x.shape}")
    perturbation = np.asarray(perturbation, dtype=np.float32)
    if perturbation.shape != (2, x.shape[2]):
        raise ValueError(f"perturbation: shaped {perturbation.shape}, but frames of {x.shape[2]} samples "
                         f"need [2, {x.shape[2]}]")
    if not params.boolean(shift, "shift"):
        return x + perturbation
    shifts = draw_shifts(np.random.default_rng(params.integer(seed, "seed")), len(x), x.shape[2])
    return x + circular_shifts(perturbation)[shifts]


def draw_shifts(generator, n, length):
    """Circular shifts for the next n frames, each uniform on [0, length), drawn one per
    frame in order: n draws now and m later are the n + m draws made at once."""
    return generator.integers(length, size=n)


def circular_shifts(perturbation):
    """Every circular shift of a perturbation [..., L] in time, [L, ..., L]: entry s is
    np.roll(perturbation, s, axis=-1)."""
    length = perturbation.shape[-1]
    return np.moveaxis(perturbation[..., _roll_index(np.arange(length), length)], -2, 0)


def _roll_index(shifts, length):
    """Index [n, L] that rolls a length-L axis by shifts[i] (np.roll's direction)."""
    return (np.arange(length)[None, :] - np.asarray(shifts)[:, None]) % length


# --- the ascent --------------------------------------------------------------------------

def _frames(x, labels):
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 3 or x.shape[1] != 2 or len(x) == 0 or x.shape[2] == 0:
        raise ValueError(f"x: must be frames [N, 2, L] with N, L > 0, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("x: has non-finite samples (leave invalid frames out)")
    labels = np.asarray(labels)
    if labels.shape != (len(x),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels: must be {len(x)} class indices, got {labels.dtype} shaped {labels.shape}")
    return x, labels.astype(np.int64)


def _check_labels(model, x, labels, precision, device):
    """Refuse labels outside the model's classes (one forward pass tells how many)."""
    with torch.no_grad(), precision_module.autocast(precision, device.type):
        logits = model(torch.from_numpy(x[:1]).to(device))
    if logits.ndim != 2 or logits.shape[0] != 1:
        raise ValueError(f"model: must return logits [B, C], got shape {tuple(logits.shape)} for one frame")
    classes = logits.shape[1]
    if labels.min() < 0 or labels.max() >= classes:
        raise ValueError(f"labels: must be class indices in 0..{classes - 1}, got {labels.min()}..{labels.max()}")


def _gradient(model, x, labels, perturbation, shifts, precision):
    """Gradient of the batch's mean cross-entropy with respect to the perturbation, each
    frame seeing it rolled by its shift (or not at all without shifts)."""
    delta = perturbation.detach().requires_grad_(True)
    with torch.enable_grad():
        if shifts is None:
            added = x + delta
        else:
            index = torch.from_numpy(_roll_index(shifts, x.shape[2])).to(x.device)
            added = x + delta[:, index].transpose(0, 1)
        with precision_module.autocast(precision, x.device.type):
            logits = model(added)
        loss = F.cross_entropy(logits.float(), labels)
        (grad,) = torch.autograd.grad(loss, delta)
    return grad


def _ascent_step(grad, norm, step):
    if norm == "linf":
        return step * torch.sign(grad)
    return step * grad / grad.norm().clamp_min(torch.finfo(grad.dtype).tiny)


def _project(perturbation, norm, eps):
    if norm == "linf":
        return perturbation.clamp(-eps, eps)
    return perturbation * min(1.0, eps / max(float(perturbation.norm()), torch.finfo(torch.float32).tiny))


def _within(perturbation, norm, eps):
    """The perturbation inside its budget exactly (float32 rounding can leave a hair above)."""
    return contain(np.zeros((1, *perturbation.shape), np.float32), perturbation[None], eps, norm)[0]
