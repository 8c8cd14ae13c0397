"""A classifier smoothed with Gaussian noise as one differentiable module: the soft
smoothed classifier of Salman et al. ("Provably robust deep learning via adversarially
trained smoothed classifiers", arXiv 1906.04584), log of the mean softmax of a base
classifier over noisy copies of each frame. Stochastic (fresh noise every pass), so the
robustness leaderboard attacks it with expectation over transformation (EOT).

Cohen et al.'s hard smoothed classifier (majority vote with abstention, certified
radii) is learn.smoothing and classifier_sink's smoothing option; this one is what an
attacker who knows the smoothing differentiates, and it runs wherever a model file does.
"""
import math

import torch
from torch import nn


class SmoothedClassifier(nn.Module):
    """log(mean over `samples` draws of softmax(base(x + N(0, sigma^2 I)))): [B, C]
    log-probabilities, which are logits of the mean-softmax distribution. The noise comes
    from torch's global generator, on the input's device."""

    def __init__(self, base: nn.Module, sigma: float, samples: int):
        super().__init__()
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
        if int(samples) != samples or samples < 1:
            raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
        self.base = base
        # Buffers, not plain attributes: they are part of the model's state, so two
        # files that smooth alike compare equal and two that do not differ
        # (the leaderboard keys its cache on the graph and the state).
        self.register_buffer("sigma", torch.tensor(float(sigma)))
        self.register_buffer("samples", torch.tensor(int(samples)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        samples = int(self.samples)
        copies = x.repeat(samples, 1, 1)   # draw-major: copies[k * batch + i] is frame i
        noisy = copies + self.sigma * torch.randn_like(copies)
        log_p = torch.log_softmax(self.base(noisy).float(), dim=1)
        return torch.logsumexp(log_p.view(samples, batch, -1), dim=0) - math.log(samples)
