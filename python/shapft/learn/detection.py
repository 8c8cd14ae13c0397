"""Attack detection (SHAP-AFT's first stage): train a detector (models.detector) that
tells frames attacked against a classifier from clean ones, calibrate its false-alarm
rate, score frames, and measure it (ROC AUC, true-positive rate at a false-alarm rate).

Training frames: every clean frame once as itself (label 0) and once attacked
(label 1), by an attack and a PSR drawn per frame from TRAIN_ATTACKS x TRAIN_PSRS,
crafted against the protected classifier with the frame's true class. The detector
never sees universal perturbations or the detector-aware attack in training: those
measure how it generalises.
"""
import numpy as np
import torch

from .. import attacks
from ..models import detector as detector_models
from ..models import device as model_device
from ..models import masked
from ..models import precision as model_precision
from . import training

TRAIN_ATTACKS = ("fgsm", "pgd")
TRAIN_PSRS = (-30.0, -25.0, -20.0, -15.0)
PGD_STEPS = 10
FALSE_ALARM_RATE = 0.05


def detector_config(seed=0, epochs=30, patience=5):
    return training.TrainConfig(epochs=epochs, batch_size=256, lr=1e-3, patience=patience, seed=seed)


def attacked_copies(classifier, x, labels, seed=0, methods=TRAIN_ATTACKS, psrs=TRAIN_PSRS,
                    steps=PGD_STEPS, precision="fp32", batch_size=256, progress=False):
    """Each frame of x [N, 2, L] attacked once against `classifier`: (frames [N, 2, L],
    method index [N], PSR [N]), the method and PSR drawn per frame from `seed`."""
    x = np.asarray(x, dtype=np.float32)
    generator = np.random.default_rng([seed, 0xDE7EC7])
    method_of = generator.integers(len(methods), size=len(x))
    psr_of = np.asarray(psrs, dtype=np.float64)[generator.integers(len(psrs), size=len(x))]
    out = np.empty_like(x)
    groups = [(m, psr) for m in range(len(methods)) for psr in psrs]
    if progress:
        from tqdm import tqdm
        groups = tqdm(groups, desc="attacked training frames", unit="attack")
    for m, psr in groups:
        index = np.flatnonzero((method_of == m) & (psr_of == psr))
        options = {"steps": steps} if methods[m] in ("bim", "pgd") else {}
        attack = attacks.make(methods[m], classifier, psr_db=psr, seed=seed + m, frame_length=x.shape[2],
                              precision=precision, **options)
        out[index] = attacks.attack_array(attack, x[index], labels[index], batch_size=batch_size)
    return out, method_of, psr_of


def labelled(clean, attacked):
    """(frames, labels): clean frames labelled 0, then the attacked ones labelled 1."""
    return (np.concatenate([clean, attacked]),
            np.concatenate([np.zeros(len(clean), np.int64), np.ones(len(attacked), np.int64)]))


def train(loaded, train_xy, val_xy, features="statistics", seed=0, epochs=30, patience=5,
          precision="fp32", progress=True, checkpoint_path=None):
    """A detector of `features` protecting the LoadedModel `loaded` (on full-length frames,
    through its mask if it carries one), trained on (frames, 0 clean / 1 attacked) pairs,
    on the classifier's device: (models.detector.AttackDetector, learn.training.TrainResult)."""
    classifier, _ = masked.full_frame_classifier(loaded)
    torch.manual_seed(seed)   # the detector's initialisation
    detector = detector_models.AttackDetector(classifier, len(loaded.classes), features)
    detector.to(model_device.of(classifier))
    result = training.fit(detector, train_xy, val_xy, detector_config(seed, epochs, patience),
                          checkpoint_path=checkpoint_path, progress=progress, precision=precision)
    return detector.eval(), result


def scores(scorer, x, batch_size=1024, precision="fp32"):
    """Scores float64 [N] of frames x [N, 2, L] from `scorer` (frames -> scores [N]), on its device."""
    device = model_device.of(scorer)
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    out = []
    with torch.no_grad(), model_precision.autocast(precision, device.type):
        for start in range(0, len(x), batch_size):
            out.append(scorer(x[start:start + batch_size].to(device)).float().cpu())
    return torch.cat(out).double().numpy() if out else np.zeros(0)


def roc(clean_scores, attacked_scores, false_alarm_rate=FALSE_ALARM_RATE):
    """ROC of scores of clean frames (negatives) and attacked ones (positives): AUC, and
    the true-positive rate at the threshold that `false_alarm_rate` of these clean
    frames exceed (how the block decides)."""
    from sklearn.metrics import roc_auc_score
    clean_scores, attacked_scores = np.asarray(clean_scores), np.asarray(attacked_scores)
    truth = np.concatenate([np.zeros(len(clean_scores)), np.ones(len(attacked_scores))])
    threshold = float(np.quantile(clean_scores, 1.0 - false_alarm_rate))
    return {"auc": float(roc_auc_score(truth, np.concatenate([clean_scores, attacked_scores]))),
            "tpr": float(np.mean(attacked_scores > threshold)),
            "false_alarm_rate": false_alarm_rate, "threshold": threshold,
            "clean_frames": int(len(clean_scores)), "attacked_frames": int(len(attacked_scores))}


def roc_curve(clean_scores, attacked_scores):
    """(false-positive rates, true-positive rates) of the ROC, for plots."""
    from sklearn.metrics import roc_curve as sklearn_roc_curve
    truth = np.concatenate([np.zeros(len(clean_scores)), np.ones(len(attacked_scores))])
    fpr, tpr, _ = sklearn_roc_curve(truth, np.concatenate([clean_scores, attacked_scores]))
    return fpr, tpr
