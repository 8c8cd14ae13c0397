"""White-box gradient attacks on modulation classifiers: FGSM, FGM (L2), BIM and PGD.

One API for the offline tool chain and the GNU Radio injector block:

    attack = attacks.make("fgsm", model, eps=0.05)      # or psr_db=-23
    x_adv = attack(x, labels)                           # float32 [B, 2, L] tensors

The loss is cross-entropy on the model's logits. Untargeted attacks increase it for
`labels` (the model's own predictions when labels is None); targeted attacks decrease
it for the target `labels`. Budgets: FGSM, BIM and PGD bound each real component
(L-infinity); FGM bounds the L2 norm of each frame's perturbation [2, L]. Nothing is
clamped: these are radio samples, not pixels.

The model is crafted against in eval mode (batch norm statistics frozen, no dropout)
and its previous mode is restored afterwards, so a training loss may call an attack
on the model it is training. Only the input's gradient is requested; the model's
parameters and their requires_grad flags are left alone. With precision 'bf16' (or
'auto' where the hardware has it) the model's forward and backward passes run under
bfloat16 autocast; the loss and the perturbation are computed in float32. An attack
runs on the device of the frames it is given, which must be the model's
(models.device); attack_array moves each batch there.
"""
import numpy as np
import torch
import torch.nn.functional as F

from ..core import budget
from ..models import device as model_device
from ..models import precision as precision_module
from ..core.radioml import FRAME_LENGTH


class Attack:
    """A budgeted attack on `model` (any callable returning logits [B, C]).

    Give the budget as exactly one of eps or psr_db; frame_length only matters for
    converting an L2 budget to and from PSR. seed drives any randomness (PGD's
    random start): the same seed and the same calls give the same perturbations.
    """
    name = "attack"
    norm = "linf"
    info_fields = ()   # attributes info() adds after the common settings, in order

    def __init__(self, model, eps=None, psr_db=None, targeted=False, seed=0,
                 frame_length=FRAME_LENGTH, precision="fp32"):
        self.model = model
        self.device = model_device.of(model)
        self.precision = precision_module.resolve(precision, self.device.type)
        self.frame_length = int(frame_length)
        self.eps = budget.resolve_eps(eps, psr_db, self.norm, self.frame_length)
        self.psr_db = budget.eps_to_psr_db(self.eps, self.norm, self.frame_length)
        self.targeted = bool(targeted)
        self.seed = int(seed)

    def describe(self):
        """'FGSM eps 0.05 (PSR -23.0 dB), untargeted': how reports name an attack, then
        the attack's own details ('10 steps of 0.0125')."""
        goal = "targeted" if self.targeted else "untargeted"
        budget_text = budget.describe(self.eps, self.norm, self.frame_length)
        return ", ".join([f"{self.name.upper()} {budget_text}", goal, *self._details()])

    def _details(self):
        """The phrases describe() adds after the budget and goal."""
        return []

    def info(self):
        """The attack's settings as a JSON-serialisable dict (psr_db None for eps 0):
        those every attack has, then its info_fields."""
        info = {"method": self.name, "eps": self.eps,
                "psr_db": self.psr_db if np.isfinite(self.psr_db) else None,
                "norm": self.norm, "targeted": self.targeted, "seed": self.seed,
                "precision": self.precision}
        info.update((field, getattr(self, field)) for field in self.info_fields)
        return info

    def __call__(self, x, labels=None):
        return self.perturb(x, labels)

    def perturb(self, x, labels=None):
        """Adversarial frames for float32 x [B, 2, L]; labels [B] class indices (truth or
        targets), or None for the model's own predictions (untargeted only)."""
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[1] != 2:
            raise ValueError(f"x must be a float tensor [B, 2, L], got "
                             f"{tuple(x.shape) if hasattr(x, 'shape') else type(x).__name__}")
        x = x.detach().to(torch.float32)
        if self.eps == 0 or len(x) == 0:
            return x.clone()
        was_training = getattr(self.model, "training", False)
        self.model.eval()
        try:
            labels = self._labels(x, labels)
            return self._perturb(x, labels).detach()
        finally:
            self.model.train(was_training)

    def _perturb(self, x, labels):
        raise NotImplementedError

    def _labels(self, x, labels):
        if labels is None:
            if self.targeted:
                raise ValueError("a targeted attack needs target labels")
            with torch.no_grad(), precision_module.autocast(self.precision, self.device.type):
                return self.model(x).float().argmax(dim=1)
        labels = torch.as_tensor(labels, dtype=torch.long, device=x.device)
        if labels.shape != (len(x),):
            raise ValueError(f"labels must be shaped [{len(x)}], got {tuple(labels.shape)}")
        return labels

    def _ascent_direction(self, x, labels):
        """Gradient of the attacker's objective at x: +grad CE untargeted, -grad CE targeted.
        The summed loss keeps each frame's gradient independent of the batch."""
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            with precision_module.autocast(self.precision, self.device.type):
                logits = self.model(x)
            loss = F.cross_entropy(logits.float(), labels, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x)
        return -grad if self.targeted else grad


class FGSM(Attack):
    """Fast gradient sign method: x + eps * sign(grad), one step (Goodfellow et al. 2015)."""
    name = "fgsm"

    def _perturb(self, x, labels):
        return x + self.eps * torch.sign(self._ascent_direction(x, labels))


class FGM(Attack):
    """Fast gradient method, L2: x + eps * grad / ||grad||_2 per frame (a zero gradient
    leaves the frame unchanged)."""
    name = "fgm"
    norm = "l2"

    def _perturb(self, x, labels):
        grad = self._ascent_direction(x, labels)
        norms = grad.flatten(1).norm(dim=1).view(-1, 1, 1)
        return x + self.eps * grad / norms.clamp_min(torch.finfo(grad.dtype).tiny)


def iteration(eps, steps, alpha=None, min_steps=1):
    """Checked (steps, step size) of an iterative L-infinity attack at budget eps; the
    default step 2.5 eps / steps lets a step sequence reach and move along the ball's
    surface (Madry et al.)."""
    if int(steps) != steps or steps < min_steps:
        raise ValueError(f"steps must be an integer >= {min_steps}, got {steps!r}")
    step = 2.5 * eps / max(int(steps), 1) if alpha is None else float(alpha)
    if not np.isfinite(step) or step < 0:
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    return int(steps), step


class BIM(Attack):
    """Basic iterative method (Kurakin et al. 2017): `steps` sign-gradient steps of size
    alpha from x, each projected onto the L-infinity ball of radius eps around x."""
    name = "bim"
    info_fields = ("steps", "alpha")
    _min_steps = 1

    def __init__(self, model, eps=None, psr_db=None, targeted=False, seed=0,
                 frame_length=FRAME_LENGTH, precision="fp32", steps=10, alpha=None):
        super().__init__(model, eps, psr_db, targeted, seed, frame_length, precision)
        self.steps, self.alpha = iteration(self.eps, steps, alpha, self._min_steps)

    def _details(self):
        return [f"{self.steps} steps of {self.alpha:.4g}"]

    def _perturb(self, x, labels):
        return self._iterate(x, labels, x)

    def _iterate(self, x, labels, x_adv):
        for _ in range(self.steps):
            step = self.alpha * torch.sign(self._ascent_direction(x_adv, labels))
            x_adv = x + torch.clamp(x_adv + step - x, -self.eps, self.eps)
        return x_adv


class PGD(BIM):
    """Projected gradient descent (Madry et al. 2018): BIM started from a point drawn
    uniformly from the L-infinity ball (random_start). With steps=0 it returns that
    random start: uniform noise of the same budget, a useful non-adversarial baseline."""
    name = "pgd"
    info_fields = BIM.info_fields + ("random_start",)
    _min_steps = 0

    def __init__(self, model, eps=None, psr_db=None, targeted=False, seed=0,
                 frame_length=FRAME_LENGTH, precision="fp32", steps=10, alpha=None, random_start=True):
        super().__init__(model, eps, psr_db, targeted, seed, frame_length, precision, steps, alpha)
        self.random_start = bool(random_start)
        self._generator = torch.Generator().manual_seed(self.seed)

    def _perturb(self, x, labels):
        start = x
        if self.random_start:
            noise = torch.rand(x.shape, generator=self._generator, dtype=x.dtype)
            start = x + ((2 * noise - 1) * self.eps).to(x.device)
        return self._iterate(x, labels, start)


METHODS = {cls.name: cls for cls in (FGSM, FGM, BIM, PGD)}


def make(method, model, eps=None, psr_db=None, **kwargs):
    """An attack by name (fgsm, fgm, bim, pgd); kwargs go to its constructor
    (targeted, seed, frame_length; steps and alpha for bim/pgd; random_start for pgd)."""
    return by_name(METHODS, method, "attack method")(model, eps=eps, psr_db=psr_db, **kwargs)


def by_name(registry, method, what):
    """The attack class `registry` names `method` (any case); a ValueError lists the names."""
    try:
        return registry[method.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown {what} {method!r}; expected one of {', '.join(registry)}") from None


def attack_array(attack, x, labels=None, batch_size=256, progress=False):
    """Run `attack` over a numpy float32 array [N, 2, L] in batches, each on the attack's
    device; labels [N] or None. Returns float32 [N, 2, L]."""
    x = np.asarray(x, dtype=np.float32)
    if labels is not None:
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != (len(x),):
            raise ValueError(f"labels must be shaped [{len(x)}], got {labels.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = np.empty_like(x)
    starts = range(0, len(x), batch_size)
    if progress:
        from tqdm import tqdm
        starts = tqdm(starts, desc=attack.describe(), unit="batch")
    for start in starts:
        stop = start + batch_size
        batch_labels = None if labels is None else torch.from_numpy(labels[start:stop]).to(attack.device)
        out[start:stop] = attack(torch.from_numpy(x[start:stop]).to(attack.device), batch_labels).cpu().numpy()
    return out
