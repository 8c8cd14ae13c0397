"""attacks.py against independent references: IBM's Adversarial Robustness Toolbox
(ART) on the same model and inputs, and closed forms on a linear model."""
import logging
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from gnuradio.shapft import attacks
from gnuradio.shapft.learn import metrics

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from art.attacks.evasion import BasicIterativeMethod, FastGradientMethod, ProjectedGradientDescent
    from art.attacks.evasion.projected_gradient_descent import projected_gradient_descent_pytorch
    from art.estimators.classification import PyTorchClassifier

logging.getLogger("art").setLevel(logging.ERROR)
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.* is deprecated:DeprecationWarning")
torch.set_num_threads(1)

LENGTH = 32
CLASSES = 11
BATCH = 16  # a power of two: ART's mean loss and our summed loss differ by an exact scale


def small_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 8, 5, padding=2), nn.Tanh(), nn.Flatten(),
                          nn.Linear(8 * LENGTH, CLASSES))
    return model.eval()


@pytest.fixture(scope="module")
def model():
    return small_model()


@pytest.fixture(scope="module")
def inputs():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, 2, LENGTH, generator=generator) * 0.7
    labels = torch.randint(0, CLASSES, (BATCH,), generator=generator)
    return x, labels


def art_classifier(model):
    return PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=(2, LENGTH),
                             nb_classes=CLASSES, clip_values=None)


@pytest.mark.parametrize("targeted", [False, True])
def test_fgsm_matches_art_to_float_precision(model, inputs, targeted):
    x, labels = inputs
    ours = attacks.FGSM(model, eps=0.05, targeted=targeted)(x, labels).numpy()
    art = FastGradientMethod(art_classifier(model), norm=np.inf, eps=0.05, targeted=targeted,
                             batch_size=BATCH).generate(x.numpy(), y=labels.numpy())
    np.testing.assert_array_equal(np.sign(ours - x.numpy()), np.sign(art - x.numpy()))
    np.testing.assert_allclose(ours, art, rtol=0, atol=1e-7)


@pytest.mark.parametrize("targeted", [False, True])
def test_fgm_l2_matches_art(model, inputs, targeted):
    x, labels = inputs
    ours = attacks.FGM(model, eps=0.8, targeted=targeted, frame_length=LENGTH)(x, labels).numpy()
    art = FastGradientMethod(art_classifier(model), norm=2, eps=0.8, targeted=targeted,
                             batch_size=BATCH).generate(x.numpy(), y=labels.numpy())
    np.testing.assert_allclose(ours, art, rtol=0, atol=1e-6)
    norms = np.linalg.norm((ours - x.numpy()).reshape(BATCH, -1), axis=1)
    np.testing.assert_allclose(norms, 0.8, rtol=1e-5)


@pytest.mark.parametrize("targeted", [False, True])
def test_bim_matches_art(model, inputs, targeted):
    x, labels = inputs
    ours = attacks.BIM(model, eps=0.1, steps=7, alpha=0.03, targeted=targeted)(x, labels).numpy()
    art = BasicIterativeMethod(art_classifier(model), eps=0.1, eps_step=0.03, max_iter=7,
                               targeted=targeted, batch_size=BATCH, verbose=False
                               ).generate(x.numpy(), y=labels.numpy())
    np.testing.assert_allclose(ours, art, rtol=0, atol=1e-6)
    assert np.abs(ours - x.numpy()).max() <= 0.1 + 1e-6


def test_pgd_matches_art_from_the_same_random_start(model, inputs, monkeypatch):
    x, labels = inputs
    # PGD with 0 steps returns its random start; give ART the same start point.
    start = attacks.PGD(model, eps=0.1, steps=0, seed=5)(x, labels) - x
    assert 0.09 < start.abs().max() <= 0.1 and start.abs().mean() > 0.04   # uniform in the ball
    monkeypatch.setattr(projected_gradient_descent_pytorch, "random_sphere",
                        lambda n, m, eps, norm: start.reshape(n, m).numpy())
    ours = attacks.PGD(model, eps=0.1, steps=6, alpha=0.02, seed=5)(x, labels).numpy()
    art = ProjectedGradientDescent(art_classifier(model), norm=np.inf, eps=0.1, eps_step=0.02, max_iter=6,
                                   num_random_init=1, batch_size=BATCH, verbose=False
                                   ).generate(x.numpy(), y=labels.numpy())
    np.testing.assert_allclose(ours, art, rtol=0, atol=1e-6)
    other_seed = attacks.PGD(model, eps=0.1, steps=6, alpha=0.02, seed=6)(x, labels).numpy()
    assert np.abs(other_seed - ours).max() > 1e-3


class TwoClassLinear(nn.Module):
    """logits = (w.x, -w.x): the CE gradient for label 0 is -2 p1 w, for label 1 +2 p0 w."""
    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        score = (x * self.w).sum(dim=(1, 2))
        return torch.stack([score, -score], dim=1)


def test_closed_form_on_a_linear_model():
    w = torch.randn(2, LENGTH, generator=torch.Generator().manual_seed(2))
    model = TwoClassLinear(w)
    x = torch.randn(4, 2, LENGTH, generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([0, 1, 0, 1])
    direction = torch.where(labels == 0, -1.0, 1.0).view(-1, 1, 1)   # away from the label
    fgsm = attacks.FGSM(model, eps=0.05)(x, labels)
    torch.testing.assert_close(fgsm, x + direction * 0.05 * torch.sign(w), rtol=0, atol=1e-7)
    # the score moves by exactly eps * ||w||_1 towards the other class
    score_change = (model(fgsm) - model(x))[:, 0].detach()
    torch.testing.assert_close(score_change, direction.view(-1) * 0.05 * w.abs().sum(), rtol=1e-5, atol=1e-5)
    fgm = attacks.FGM(model, eps=0.5, frame_length=LENGTH)(x, labels)
    torch.testing.assert_close(fgm, x + direction * 0.5 * w / w.norm(), rtol=0, atol=1e-6)
    # targeted at the label itself: the opposite direction
    towards = attacks.FGSM(model, eps=0.05, targeted=True)(x, labels)
    torch.testing.assert_close(towards, x - direction * 0.05 * torch.sign(w), rtol=0, atol=1e-7)


def cross_entropy(model, x, labels):
    with torch.no_grad():
        return nn.functional.cross_entropy(model(x), labels, reduction="none")


@pytest.mark.parametrize("method", ["fgsm", "fgm", "bim", "pgd"])
def test_untargeted_raises_and_targeted_lowers_the_loss(model, inputs, method):
    x, labels = inputs
    eps = 0.3 if method == "fgm" else 0.02
    targets = (labels + 3) % CLASSES
    away = attacks.make(method, model, eps=eps, frame_length=LENGTH)(x, labels)
    towards = attacks.make(method, model, eps=eps, frame_length=LENGTH, targeted=True)(x, targets)
    assert torch.all(cross_entropy(model, away, labels) > cross_entropy(model, x, labels))
    assert torch.all(cross_entropy(model, towards, targets) < cross_entropy(model, x, targets))


def test_labels_none_means_the_models_predictions(model, inputs):
    x, labels = inputs
    predicted = model(x).argmax(dim=1)
    assert not torch.equal(predicted, labels)   # otherwise this test proves nothing
    fgsm = attacks.FGSM(model, eps=0.05)
    torch.testing.assert_close(fgsm(x, None), fgsm(x, predicted), rtol=0, atol=0)
    assert not torch.equal(fgsm(x, None), fgsm(x, labels))
    with pytest.raises(ValueError, match="target labels"):
        attacks.FGSM(model, eps=0.05, targeted=True)(x, None)


def test_psr_and_eps_describe_the_same_budget(model, inputs):
    x, labels = inputs
    x = x / x.pow(2).sum(dim=1, keepdim=True).mean(dim=2, keepdim=True).sqrt()   # unit power frames
    fgsm = attacks.make("fgsm", model, psr_db=-23.0)
    assert fgsm.eps == pytest.approx(math.sqrt(10 ** -2.3 / 2))
    assert attacks.make("fgsm", model, eps=0.05).psr_db == pytest.approx(10 * math.log10(2 * 0.05 ** 2))
    fgm = attacks.make("fgm", model, psr_db=-20.0, frame_length=LENGTH)
    assert fgm.eps == pytest.approx(math.sqrt(0.01 * LENGTH))
    for attack in (fgsm, fgm):
        measured = metrics.measured_psr_db(x.numpy(), attack(x, labels).numpy())
        assert measured == pytest.approx(attack.psr_db, abs=1e-3)
    assert "PSR -23.0 dB" in fgsm.describe() and fgsm.info()["psr_db"] == pytest.approx(-23.0)


def test_seeded_runs_are_deterministic(model, inputs):
    x, labels = inputs
    first = attacks.PGD(model, eps=0.05, seed=9)
    second = attacks.PGD(model, eps=0.05, seed=9)
    torch.testing.assert_close(first(x, labels), second(x, labels), rtol=0, atol=0)
    torch.testing.assert_close(first(x, labels), second(x, labels), rtol=0, atol=0)


@pytest.mark.parametrize("method", ["fgsm", "fgm", "bim", "pgd"])
def test_bad_budgets_are_refused(model, method):
    with pytest.raises(ValueError, match="eps must be"):
        attacks.make(method, model, eps=-0.01)
    with pytest.raises(ValueError, match="exactly one"):
        attacks.make(method, model, eps=0.1, psr_db=-20)
    with pytest.raises(ValueError, match="exactly one"):
        attacks.make(method, model)


def test_bad_arguments_are_refused(model, inputs):
    x, labels = inputs
    with pytest.raises(ValueError, match="unknown attack method 'cw'"):
        attacks.make("cw", model, eps=0.1)
    with pytest.raises(ValueError, match="steps"):
        attacks.BIM(model, eps=0.1, steps=0)
    with pytest.raises(ValueError, match=r"\[B, 2, L\]"):
        attacks.FGSM(model, eps=0.1)(x[:, :1], labels)
    with pytest.raises(ValueError, match="labels must be shaped"):
        attacks.FGSM(model, eps=0.1)(x, labels[:3])


def test_eps_zero_returns_the_input(model, inputs):
    x, labels = inputs
    for method in attacks.METHODS:
        torch.testing.assert_close(attacks.make(method, model, eps=0)(x, labels), x, rtol=0, atol=0)


def test_model_mode_and_parameters_are_left_alone(inputs):
    x, labels = inputs
    model = nn.Sequential(nn.Conv1d(2, 4, 3), nn.BatchNorm1d(4), nn.Flatten(), nn.Linear(4 * (LENGTH - 2), CLASSES))
    model.train()
    running_mean = model[1].running_mean.clone()
    attacks.PGD(model, eps=0.05, steps=3)(x, labels)
    assert model.training                                        # mode restored
    torch.testing.assert_close(model[1].running_mean, running_mean)   # crafted in eval mode
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_torchscript_models_and_batched_arrays(model, inputs):
    x, labels = inputs
    scripted = torch.jit.script(model)
    direct = attacks.FGSM(model, eps=0.05)(x, labels).numpy()
    batched = attacks.attack_array(attacks.FGSM(scripted, eps=0.05), x.numpy(), labels.numpy(), batch_size=5)
    np.testing.assert_allclose(batched, direct, rtol=0, atol=1e-7)
