"""Attack detectors: networks that tell attacked frames from clean ones, each holding
the classifier it protects, frozen.

FEATURES name what the detector looks at:

- statistics: Kokalj-Filipovic & Miller's cues ("Adversarial examples in RF deep
  learning: detection of the attack and its physical robustness", arXiv 1902.06044):
  the frame's peak-to-average power ratio and mean power, and the classifier's softmax
  statistics (top probability, entropy, top-two logit margin), into a logistic
  regression;
- logits: a small MLP on the classifier's log-softmax;
- frames: a small 1-D CNN on the frame itself;
- frames+logits: both, joined before the output layer.

AttackDetector returns two logits (clean, attacked) for training with the classifiers'
loop (learn.training.fit); Scorer wraps it for export: one score per frame, the logit
of "attacked" (core.detector_file).
"""
import torch
import torch.nn.functional as F
from torch import nn

FEATURES = ("statistics", "logits", "frames", "frames+logits")
STATISTICS = ("log_papr", "log_power", "top_probability", "entropy", "margin")
CNN_CHANNELS = 32
MLP_UNITS = 64


class FrameCnn(nn.Module):
    """Three convolutions and global average and max pooling: [N, 2, L] -> [N, 2 * channels]."""

    def __init__(self, channels: int = CNN_CHANNELS):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv1d(2, channels, 7, padding=3), nn.BatchNorm1d(channels), nn.ReLU(),
            nn.Conv1d(channels, channels, 5, padding=2), nn.BatchNorm1d(channels), nn.ReLU(),
            nn.Conv1d(channels, channels, 3, padding=1), nn.BatchNorm1d(channels), nn.ReLU())
        self.width = 2 * channels

    def forward(self, x):
        h = self.layers(x)
        return torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)


def frame_statistics(x, logits):
    """[N, 5] STATISTICS of frames x [N, 2, L] and the classifier's logits [N, C]."""
    power = x.pow(2).sum(dim=1)                      # instantaneous power per sample
    mean_power = power.mean(dim=1).clamp_min(1e-12)
    papr = power.amax(dim=1) / mean_power
    log_p = F.log_softmax(logits.float(), dim=1)
    p = log_p.exp()
    top2 = logits.float().topk(2, dim=1).values
    return torch.stack([papr.log(), mean_power.log(), p.amax(dim=1), -(p * log_p).sum(dim=1),
                        top2[:, 0] - top2[:, 1]], dim=1)


class AttackDetector(nn.Module):
    """Two logits (clean, attacked) per frame [N, 2, L] from `features` (FEATURES) of the
    frame and of `classifier` (any module frames -> logits [N, C]; frozen, always in
    eval mode: the detector never changes what it protects)."""

    def __init__(self, classifier, num_classes: int, features: str = "statistics"):
        super().__init__()
        if features not in FEATURES:
            raise ValueError(f"features: {features!r} is not one of {', '.join(FEATURES)}")
        self.features = features
        self.classifier = classifier
        for parameter in self.classifier.parameters():
            parameter.requires_grad_(False)
        self.uses_frames = "frames" in features
        self.uses_logits = features in ("logits", "frames+logits")
        self.uses_statistics = features == "statistics"
        self.cnn = FrameCnn() if self.uses_frames else nn.Identity()
        width = self.cnn.width if self.uses_frames else 0
        if self.uses_statistics:
            # BatchNorm without affine: the statistics standardised, then a logistic regression
            self.statistics_norm = nn.BatchNorm1d(len(STATISTICS), affine=False)
            width += len(STATISTICS)
        else:
            self.statistics_norm = nn.Identity()
        if self.uses_logits:
            self.logits_mlp = nn.Sequential(nn.Linear(num_classes, MLP_UNITS), nn.ReLU())
            width += MLP_UNITS
        else:
            self.logits_mlp = nn.Identity()
        self.head = nn.Linear(width, 2) if self.uses_statistics else nn.Sequential(
            nn.Linear(width, MLP_UNITS), nn.ReLU(), nn.Linear(MLP_UNITS, 2))

    def train(self, mode: bool = True):
        super().train(mode)
        self.classifier.eval()
        return self

    def forward(self, x):
        parts = []
        if self.uses_frames:
            parts.append(self.cnn(x))
        if self.uses_statistics or self.uses_logits:
            logits = self.classifier(x).float()
            if self.uses_statistics:
                parts.append(self.statistics_norm(frame_statistics(x, logits)))
            if self.uses_logits:
                parts.append(self.logits_mlp(F.log_softmax(logits, dim=1)))
        return self.head(torch.cat(parts, dim=1))


class Scorer(nn.Module):
    """An AttackDetector as exported: frames [N, 2, L] -> scores [N], the logit of
    'attacked' (log p(attacked) - log p(clean))."""

    def __init__(self, detector: AttackDetector):
        super().__init__()
        self.detector = detector

    def forward(self, x):
        logits = self.detector(x).float()
        return logits[:, 1] - logits[:, 0]
