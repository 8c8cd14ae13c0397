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
