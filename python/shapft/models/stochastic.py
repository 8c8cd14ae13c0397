"""Stochastic classifiers (a randomized defence: eval-mode outputs that differ between
passes on the same input): telling one apart, and attacking one with expectation over
transformation (EOT).
"""
import numpy as np
import torch
from torch import nn

from . import device as model_device


class ExpectedLogits(nn.Module):
    """The mean of a stochastic model's logits over `samples` forward passes: the model
    an attacker who knows the randomness differentiates (EOT)."""

    def __init__(self, model, samples):
        super().__init__()
        self.model = model
        self.samples = int(samples)

    def forward(self, x):
        total = self.model(x).float()
        for _ in range(self.samples - 1):
            total = total + self.model(x).float()
        return total / self.samples


def is_stochastic(module, x):
    """Whether `module`'s eval-mode logits differ between two passes on the frames x
    (numpy [N, 2, L]). The caller's random streams are left as they were."""
    device = model_device.of(module)
    x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
    was_training = getattr(module, "training", False)
    module.eval()
    try:
        with model_device.fork_rng(device), torch.no_grad():
            return not torch.equal(module(x), module(x))
    finally:
        module.train(was_training)
