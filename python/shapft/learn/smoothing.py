"""Randomized smoothing (Cohen, Rosenfeld & Kolter, "Certified adversarial robustness via
randomized smoothing", arXiv 1902.02918): the smoothed classifier g(x) = the class a base
classifier f most often returns for x + N(0, sigma^2 I), its prediction with abstention
(PREDICT) and its certified L2 radius (CERTIFY), and the noise-augmented training loss
that makes a base classifier work under that noise.

Noise levels and radii are in our units: sigma is the standard deviation of each I and Q
component, so the noise has power 2 sigma^2 per complex sample, the PSR of an
L-infinity budget sigma (core.budget); a radius R bounds the L2 norm of a perturbation
over the frame [2, L], PSR 10 log10(R^2 / L).
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

from ..core import budget
from ..models import device as model_device
from ..models import precision as model_precision

ABSTAIN = -1


def sigma_from_psr_db(psr_db):
    """The per-component noise standard deviation of a noise-to-signal ratio in dB. A ratio
    that gives no usable noise level (not finite, or beyond what a float holds either way)
    is a ValueError, which the caller prefixes with its option's name."""
    try:
        sigma = budget.psr_db_to_eps(psr_db, "linf") if math.isfinite(psr_db) else math.nan
    except OverflowError:
        sigma = math.inf
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"must give a noise level > 0 that a float holds, got {psr_db!r} dB")
    return sigma


def radius_psr_db(radius, frame_length):
    """The PSR (dB) of an L2 perturbation of norm `radius` over a frame of frame_length samples."""
    return budget.eps_to_psr_db(radius, "l2", frame_length)


def class_counts(model, x, sigma, n, num_classes, generator, batch_size=1000, precision="fp32"):
    """counts [N, C] (numpy): how often `model` returns each class for n noisy copies of
    each frame of x (float32 tensor [N, 2, L]), on the model's device; the noise drawn
    from `generator` (a CPU torch.Generator) and moved there."""
    device = model_device.of(model)
    counts = torch.zeros(len(x), num_classes, dtype=torch.long)
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        with torch.no_grad(), model_precision.autocast(precision, device.type):
            for i, frame in enumerate(x.to(device)):
                left = n
                while left:
                    k = min(left, batch_size)
                    noise = (torch.randn((k, *frame.shape), generator=generator) * sigma).to(device)
                    predicted = model(frame.unsqueeze(0) + noise).float().argmax(dim=1)
                    counts[i] += torch.bincount(predicted, minlength=num_classes).cpu()
                    left -= k
    finally:
        model.train(was_training)
    return counts.numpy()


def lower_confidence_bound(successes, trials, alpha):
    """One-sided (1 - alpha) Clopper-Pearson lower bound of a binomial proportion."""
    from scipy import stats   # here: classifier_sink imports this module, and scipy.stats takes ~1 s
    successes = np.asarray(successes)
    bound = stats.beta.ppf(alpha, successes, trials - successes + 1)
    return np.where(successes > 0, bound, 0.0)


def predict(model, x, sigma, n, num_classes, alpha=0.001, seed=0, batch_size=1000, precision="fp32"):
    """PREDICT: the smoothed class of each frame of x, or ABSTAIN where the top class does
    not beat the runner-up with a two-sided binomial test at level alpha. int64 [N]."""
    generator = torch.Generator().manual_seed(seed)
    return predict_from_counts(class_counts(model, x, sigma, n, num_classes, generator, batch_size, precision),
                               alpha)


def predict_from_counts(counts, alpha=0.001):
    """PREDICT's decision from class counts [N, C] (class_counts): the top class, or
    ABSTAIN where it does not beat the runner-up in a two-sided binomial test at alpha."""
    from scipy import stats
    counts = np.asarray(counts)
    top2 = np.argsort(-counts, axis=1, kind="stable")[:, :2]
    n_a = counts[np.arange(len(counts)), top2[:, 0]]
    n_b = counts[np.arange(len(counts)), top2[:, 1]]
    p_values = np.array([stats.binomtest(int(a), int(a + b), 0.5).pvalue if a + b else 1.0
                         for a, b in zip(n_a, n_b)])
    return np.where(p_values <= alpha, top2[:, 0], ABSTAIN)


def certify(model, x, sigma, n0, n, num_classes, alpha=0.001, seed=0, batch_size=1000, precision="fp32"):
    """CERTIFY: (class [N] or ABSTAIN, certified L2 radius [N], 0 where abstaining): the
    class chosen on n0 noisy copies, its probability bounded below from n fresh ones,
    radius sigma * Phi^-1(lower bound) where the bound exceeds 1/2."""
    from scipy import stats
    generator = torch.Generator().manual_seed(seed)
    selection = class_counts(model, x, sigma, n0, num_classes, generator, batch_size, precision)
    chosen = selection.argmax(axis=1)
    counts = class_counts(model, x, sigma, n, num_classes, generator, batch_size, precision)
    p_lower = lower_confidence_bound(counts[np.arange(len(counts)), chosen], n, alpha)
    certified = p_lower > 0.5
    radius = np.where(certified, sigma * stats.norm.ppf(np.clip(p_lower, 0.5, 1.0)), 0.0)
    return np.where(certified, chosen, ABSTAIN), radius


def certified_accuracy(predicted, radius, labels, radii):
    """The fraction of frames certified correct at each radius of `radii` (L2)."""
    correct = np.asarray(predicted) == np.asarray(labels)
    return [float(np.mean(correct & (np.asarray(radius) >= r))) for r in radii]


class GaussianNoiseLoss:
    """Training loss of a base classifier for smoothing: cross-entropy on frames with
    N(0, sigma^2) added, fresh noise every batch (Cohen et al.'s training)."""
    method = "gaussian_noise"

    def __init__(self, sigma, seed=0):
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
        self.sigma = float(sigma)
        self._generator = torch.Generator().manual_seed(int(seed))

    def __call__(self, model, x, y):
        noise = torch.randn(x.shape, generator=self._generator).to(x.device) * self.sigma
        logits = model(x + noise)
        return F.cross_entropy(logits.float(), y), logits

    def info(self):
        return {"method": self.method, "sigma": self.sigma, "psr_db": budget.eps_to_psr_db(self.sigma)}


def write_smoothed_model(loaded, out, psr_db, samples, command):
    """Write the model file `out`: the model file `loaded` (core.model_file.LoadedModel,
    behind its deletion when it carries a mask) smoothed with noise of psr_db over
    `samples` draws per pass (models.smoothed.SmoothedClassifier), made by `command`.
    Its metadata is the base's with arch 'smoothed(<base arch>)', full frames in, no
    mask, its own provenance and training, and a `smoothing` record naming the base
    (with the base's mask, provenance and training). Returns the metadata written."""
    from ..core import model_file
    from ..models import masked
    from ..models.smoothed import SmoothedClassifier
    base, frame_length = masked.full_frame_classifier(loaded)
    sigma = sigma_from_psr_db(psr_db)
    module = SmoothedClassifier(base, sigma, samples)
    smoothing = {"method": "gaussian, soft (log mean softmax)", "psr_db": float(psr_db), "sigma": sigma,
                 "samples": int(samples), "base": str(loaded.path), "base_sha256": loaded.sha256,
                 "base_mask": loaded.mask, "base_provenance": loaded.metadata.get("provenance"),
                 "base_training": loaded.metadata.get("training")}
    metadata = dict(loaded.metadata, arch=f"smoothed({loaded.arch})", frame_length=int(frame_length), mask=None,
                    output="log mean softmax over noisy copies [B, C] (logits of the smoothed distribution)",
                    provenance={"command": command, "base_sha256": loaded.sha256},
                    training={"method": "randomized smoothing (no training)"}, smoothing=smoothing)
    model_file.save(module, out, metadata)
    return metadata
