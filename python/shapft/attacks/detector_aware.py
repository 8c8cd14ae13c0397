"""PGD that knows the attack detector: the adaptive attack on a classifier guarded by
a detector (Carlini & Wagner, "Adversarial examples are not easily detected:
bypassing ten detection methods", arXiv 1705.07263).

Each step ascends cross-entropy(classifier) - weight * softplus(detector score): the
frame is pushed towards a wrong class and, while the detector still scores it as
attacked, towards a lower score. softplus lets a frame the detector already passes
spend its steps on the classifier alone.
"""
import torch
import torch.nn.functional as F

from . import PGD
from ..models import precision as precision_module


class DetectorAwarePGD(PGD):
    """PGD against `model` whose objective also lowers `detector`'s score (any module
    frames [B, 2, L] -> scores [B]) with `weight` >= 0 (0: plain PGD)."""
    name = "pgd_detector_aware"
    info_fields = PGD.info_fields + ("weight",)

    def __init__(self, model, detector, weight=1.0, **kwargs):
        super().__init__(model, **kwargs)
        if self.targeted:
            raise ValueError("targeted: the detector-aware PGD is untargeted")
        weight = float(weight)
        if not weight >= 0:
            raise ValueError(f"weight must be >= 0, got {weight!r}")
        self.detector = detector
        self.weight = weight

    def _details(self):
        return super()._details() + [f"detector weight {self.weight:g}"]

    def _ascent_direction(self, x, labels):
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            with precision_module.autocast(self.precision, self.device.type):
                logits = self.model(x)
                scores = self.detector(x)
            loss = F.cross_entropy(logits.float(), labels, reduction="sum")
            loss = loss - self.weight * F.softplus(scores.float()).sum()
            (grad,) = torch.autograd.grad(loss, x)
        return grad
