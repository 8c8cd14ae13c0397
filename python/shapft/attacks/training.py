"""Adversarial-training losses for learn.training.fit: each is called as
loss(model, x, y) -> (loss, logits of the frames the model was trained on) and crafts
its examples against the model being trained (attacks craft in eval mode and restore
train mode). `info()` says how, for the model file's metadata."""
import math

import torch
import torch.nn.functional as F

from . import iteration, make
from ..core import budget


class MixedATLoss:
    """Goodfellow et al.'s adversarial training: half clean, half adversarial
    cross-entropy, the examples crafted at every batch against the model being trained:
    FGSM, or PGD (`steps`, random start). One attack object is kept so PGD's random
    starts advance."""

    def __init__(self, eps, attack="fgsm", steps=10, seed=0):
        if attack not in ("fgsm", "pgd"):
            raise ValueError(f"attack: {attack!r} is not fgsm or pgd")
        self.eps = budget.resolve_eps(eps)
        self.attack = attack
        self.steps = int(steps) if attack == "pgd" else None
        self.seed = int(seed)
        self._attack = None

    @property
    def method(self):
        return f"at_{self.attack}"

    def __call__(self, model, x, y):
        if self._attack is None or self._attack.model is not model:
            options = {"steps": self.steps} if self.attack == "pgd" else {}
            self._attack = make(self.attack, model, eps=self.eps, seed=self.seed, frame_length=x.shape[-1],
                                **options)
        x_adv = self._attack(x, y)
        logits = model(torch.cat([x, x_adv]))
        return F.cross_entropy(logits.float(), torch.cat([y, y])), logits[len(x):]

    def info(self):
        info = {"method": self.method, "attack": self.attack, "norm": "linf", "eps": self.eps}
        if self.steps is not None:
            info["steps"] = self.steps
        return info


class AdversarialLoss:
    """The base of PGD-based training losses: crafts PGD examples (random start) against
    the model being trained. One attack object is kept so its random starts advance."""

    def __init__(self, eps, steps, step_size=None, seed=0):
        self.eps = budget.resolve_eps(eps)
        self.steps, self._step = iteration(self.eps, steps, step_size, min_steps=0)
        self.step_size = step_size
        self.seed = int(seed)
        self._attack = None

    def adversarial(self, model, x, y):
        if self._attack is None or self._attack.model is not model:
            self._attack = make("pgd", model, eps=self.eps, steps=self.steps,
                                alpha=self.step_size, seed=self.seed, frame_length=x.shape[-1])
        return self._attack(x, y)

    def info(self):
        psr = budget.eps_to_psr_db(self.eps, "linf")
        return {"attack": "pgd", "norm": "linf", "eps": self.eps,
                "psr_db": round(psr, 3) if math.isfinite(psr) else None,
                "steps": self.steps, "step_size": self._step, "random_start": True,
                "attack_labels": "truth"}


class PGDATLoss(AdversarialLoss):
    """Madry et al.'s PGD adversarial training: CE(model(PGD(x)), y)."""
    method = "pgd_at"

    def __call__(self, model, x, y):
        logits = model(self.adversarial(model, x, y))
        return F.cross_entropy(logits.float(), y), logits

    def info(self):
        return {"method": self.method, **super().info()}


def fast_at_loss(eps, seed=0):
    """Wong, Rice & Kolter's fast adversarial training ("Fast is better than free",
    arXiv 2001.03994): one signed-gradient step of 1.25 eps from a uniform random start
    in the ball, i.e. PGD-AT with one step."""
    loss = PGDATLoss(eps, steps=1, step_size=1.25 * budget.resolve_eps(eps), seed=seed)
    loss.method = "fast_at"
    return loss


class TRADESLoss(AdversarialLoss):
    """Zhang et al.'s TRADES ("Theoretically principled trade-off between robustness and
    accuracy", arXiv 1901.08573): CE(model(x), y) + beta * KL(model(x) || model(x')),
    x' maximising that KL in the ball by `steps` signed-gradient steps from x plus
    N(0, 0.001^2) noise, crafted in eval mode (the model's mode restored)."""
    method = "trades"

    def __init__(self, eps, steps, step_size=None, beta=6.0, seed=0):
        super().__init__(eps, steps, step_size, seed)
        if not (math.isfinite(beta) and beta >= 0):
            raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
        self.beta = float(beta)
        self._generator = torch.Generator().manual_seed(self.seed)

    def adversarial(self, model, x, y):
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                p_clean = F.softmax(model(x).float(), dim=1)
            noise = torch.randn(x.shape, generator=self._generator).to(x.device)
            x_adv = x + 0.001 * noise
            for _ in range(self.steps):
                x_adv = x_adv.detach().requires_grad_(True)
                with torch.enable_grad():
                    kl = F.kl_div(F.log_softmax(model(x_adv).float(), dim=1), p_clean, reduction="sum")
                    (grad,) = torch.autograd.grad(kl, x_adv)
                x_adv = x + torch.clamp(x_adv.detach() + self._step * torch.sign(grad) - x, -self.eps, self.eps)
            return x_adv.detach()
        finally:
            model.train(was_training)

    def __call__(self, model, x, y):
        x_adv = self.adversarial(model, x, y)
        clean, adv = model(x).float(), model(x_adv).float()   # two passes, as the reference code
        robust = F.kl_div(F.log_softmax(adv, dim=1), F.softmax(clean, dim=1), reduction="batchmean")
        return F.cross_entropy(clean, y) + self.beta * robust, clean

    def info(self):
        info = {"method": self.method, **super().info(), "beta": self.beta}
        info["attack"] = "pgd on KL(model(x) || model(x'))"
        info["random_start"] = "N(0, 0.001^2)"
        info.pop("attack_labels")
        return info


ROBUST_TRAINING = ("pgd_at", "trades", "fast_at")


def robust_training_loss(method, eps, steps=10, beta=6.0, seed=0):
    """The adversarial-training loss `method` (ROBUST_TRAINING) at budget eps."""
    if method == "pgd_at":
        return PGDATLoss(eps, steps, seed=seed)
    if method == "trades":
        return TRADESLoss(eps, steps, beta=beta, seed=seed)
    if method == "fast_at":
        return fast_at_loss(eps, seed)
    raise ValueError(f"adversarial training {method!r} is not one of {', '.join(ROBUST_TRAINING)}")
