"""attacks/library.py: ART's APGD-CE, APGD-DLR and Square behind the attacks.Attack call
shape: budgets held exactly, no clipping, a closed form on a linear model, APGD against
our PGD, Square's black box against a gradient mask, seeding."""
import json
import logging
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gnuradio.shapft import attacks
from gnuradio.shapft.attacks import library
from gnuradio.shapft.core import budget
from gnuradio.shapft.core.recording import to_model_input

import shapft_testing

logging.getLogger("art").setLevel(logging.ERROR)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
torch.set_num_threads(1)

LENGTH = 32
CLASSES = 11
METHODS = ("apgd-ce", "apgd-dlr", "square")
FAST = {"apgd-ce": {"max_iter": 10}, "apgd-dlr": {"max_iter": 10, "top_k": 2}, "square": {"max_iter": 30}}


def conv_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv1d(2, 8, 5, padding=2), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * LENGTH, CLASSES)).eval()


def linear_model(classes, seed, bias=False):
    """logits = W x (flattened), W standard normal."""
    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * LENGTH, classes, bias=bias))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(classes, 2 * LENGTH, generator=generator))
    return model.eval()


class Rounded(nn.Module):
    """A gradient mask: the input rounded to a grid of step q (torch.round has zero
    gradient everywhere), then the inner model."""

    def __init__(self, inner, q):
        super().__init__()
        self.inner, self.q = inner, q

    def forward(self, x):
        return self.inner(torch.round(x / self.q) * self.q)


class _NoBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("backward called on a black-box model")


class BlackBox(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(_NoBackward.apply(x))


def frames(n, seed, length=LENGTH):
    return torch.from_numpy(to_model_input(shapft_testing.random_frames(n, length, seed)))


def predictions(model, x):
    with torch.no_grad():
        return model(x).argmax(dim=1)


def accuracy(model, x, labels):
    return float((predictions(model, x) == labels).float().mean())


def assert_in_ball(x, x_adv, eps, norm):
    step = x_adv.numpy().astype(np.float64) - x.numpy().astype(np.float64)
    if norm == "linf":
        assert np.abs(step).max() <= eps
    else:
        assert np.sqrt((step ** 2).sum(axis=(1, 2))).max() <= eps


@pytest.fixture(scope="module")
def model():
    return conv_model()


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("method", METHODS)
def test_stays_in_its_ball_and_never_clips(model, method, norm):
    # far outside [0, 1] and mostly negative: a clamp to pixels would show at once
    x = frames(12, seed=1) * 10 - 5
    labels = predictions(model, x)
    eps = 0.5 if norm == "linf" else 4.0
    attack = library.make(method, model, eps=eps, norm=norm, frame_length=LENGTH, **FAST[method])
    x_adv = attack(x, labels)
    assert x_adv.dtype == torch.float32 and x_adv.shape == x.shape
    assert_in_ball(x, x_adv, eps, norm)
    assert (x_adv != x).any()
    assert x_adv.min() < -20 and x_adv.max() > 10 and (x_adv < 0).float().mean() > 0.5
    assert accuracy(model, x_adv, labels) < 1


@pytest.mark.parametrize("method", METHODS)
def test_zero_budget_changes_nothing(model, method):
    x = frames(4, seed=2)
    attack = library.make(method, model, eps=0, frame_length=LENGTH, **FAST[method])
    assert torch.equal(attack(x, predictions(model, x)), x)
    assert attack.info()["psr_db"] is None


def test_apgd_ce_reaches_the_closed_form_optimum_of_a_linear_model():
    """Two classes, logits W x: the best L-inf attack is -eps sign(w_y - w_other), which
    lowers the margin by eps ||w_y - w_other||_1, so exactly the frames whose margin is
    below that flip, and they flip at that vertex."""
    model = linear_model(2, seed=3)
    x = frames(64, seed=3) * 3 - 1
    with torch.no_grad():
        logits = model(x)
    labels = logits.argmax(dim=1)
    rows = torch.arange(len(x))
    weights = model[1].weight.detach()
    dw = weights[labels] - weights[1 - labels]
    margin = logits[rows, labels] - logits[rows, 1 - labels]
    eps = 0.2
    reach = eps * dw.abs().sum(dim=1)
    clear = (margin / reach - 1).abs() > 0.01  # leave float ties out
    should_flip = margin < reach
    assert 10 <= int(should_flip.sum()) <= 54 and int(clear.sum()) >= 60

    x_adv = library.APGDCE(model, eps=eps, frame_length=LENGTH, max_iter=20)(x, labels)
    flipped = predictions(model, x_adv) != labels
    assert torch.equal(flipped[clear], should_flip[clear])
    optimum = x - eps * torch.sign(dw).view(-1, 2, LENGTH)
    assert torch.allclose(x_adv[flipped], optimum[flipped], atol=1e-5)


def trained_model():
    """A small convnet fitted for a few steps to 11 tones in noise (test accuracy ~ 1)."""
    train = shapft_testing.tone_recording(20, [10], seed=1, length=LENGTH)
    x, y = torch.from_numpy(train.model_input()), torch.from_numpy(np.asarray(train.labels, dtype=np.int64))
    model = conv_model(seed=0).train()
    optimiser = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(60):
        optimiser.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimiser.step()
    return model.eval()


def test_apgd_is_at_least_as_strong_as_pgd():
    model = trained_model()
    test = shapft_testing.tone_recording(6, [10], seed=2, length=LENGTH)
    x, labels = torch.from_numpy(test.model_input()), torch.from_numpy(np.asarray(test.labels, dtype=np.int64))
    assert accuracy(model, x, labels) > 0.9
    eps = 0.08
    pgd = accuracy(model, attacks.PGD(model, eps=eps, steps=20)(x, labels), labels)
    apgd_ce = accuracy(model, library.APGDCE(model, eps=eps, frame_length=LENGTH, max_iter=50)(x, labels), labels)
    apgd_dlr = accuracy(model, library.APGDDLR(model, eps=eps, frame_length=LENGTH, max_iter=30)(x, labels), labels)
    assert 0.1 < pgd < 0.9  # a budget where the comparison means something
    tolerance = 2 / len(x)
    assert apgd_ce <= pgd + tolerance and apgd_dlr <= pgd + tolerance


def test_apgd_dlr_tries_targets_best_first_and_keeps_the_first_success():
    """A frame keeps the first run that breaks it, so with one seed the frames top_k=1
    breaks are broken identically with top_k=3; frames the labels already call wrong,
    and unbroken ones, come back unchanged."""
    model = linear_model(CLASSES, seed=5)
    x = frames(40, seed=5)
    labels = predictions(model, x)
    labels[:4] = (labels[:4] + 1) % CLASSES  # misclassified already

    def run(top_k):
        x_adv = library.APGDDLR(model, eps=0.03, frame_length=LENGTH, max_iter=20, top_k=top_k)(x, labels)
        assert_in_ball(x, x_adv, 0.03, "linf")
        broken = predictions(model, x_adv) != labels
        assert torch.equal(x_adv[:4], x[:4]) and torch.equal(x_adv[~broken], x[~broken])
        return x_adv, broken[4:]
    one, broken_one = run(1)
    three, broken_three = run(3)
    assert 5 <= int(broken_one.sum()) < 36
    assert (broken_three | ~broken_one).all()
    assert torch.equal(one[4:][broken_one], three[4:][broken_one])


def decoy_model():
    """Four classes, logits W x + b, where the runner-up (class 1) is a decoy: its
    weights differ from class 0's by 0.01 per component, so no small budget reaches it,
    while class 2, ranked third, differs by a whole random vector and is in reach."""
    generator = torch.Generator().manual_seed(8)
    n = 2 * LENGTH
    w0, v = torch.randn(n, generator=generator), torch.randn(n, generator=generator)
    weight = torch.stack([w0, w0 + 0.01 * torch.sign(torch.randn(n, generator=generator)), w0 + v, w0 - v])
    model = nn.Sequential(nn.Flatten(), nn.Linear(n, 4)).eval()
    with torch.no_grad():
        model[1].weight.copy_(weight)
        model[1].bias.copy_(torch.tensor([0.0, -0.5, -2.0, -100.0]))
    return model, weight


def test_apgd_dlr_gets_past_a_decoy_runner_up():
    """Only the second target breaks these frames: top_k=1 breaks none, top_k=2 all of
    them. ART's own DLR loss finds fewer: its second target ranks third, where that loss
    is flat (see the next test), and only the random start can move it."""
    eps = 0.1
    model, weight = decoy_model()
    x = frames(200, seed=8)
    with torch.no_grad():
        z = model(x)
    reach = eps * (weight - weight[0]).abs().sum(dim=1)  # the largest logit gain over class 0
    keep = (z[:, 0] > z[:, 1]) & (z[:, 1] > z[:, 2]) & (z[:, 0] - z[:, 1] > 1.2 * reach[1]) \
        & (z[:, 0] - z[:, 2] < 0.7 * reach[2])
    x = x[keep]
    labels = torch.zeros(len(x), dtype=torch.long)
    assert len(x) >= 30

    def broken(top_k, loss="autoattack"):
        attack = library.APGDDLR(model, eps=eps, frame_length=LENGTH, max_iter=20, top_k=top_k, loss=loss)
        return float((predictions(model, attack(x, labels)) != labels).float().mean())
    assert broken(1) == 0
    assert broken(2) == 1
    assert broken(2, loss="art") < 0.75


def test_art_dlr_loss_lands_on_its_targets():
    """loss='art' is ART's targeted run: success means reaching the target, so every
    frame it breaks sits in one of its top_k classes."""
    model = linear_model(CLASSES, seed=5)
    x = frames(40, seed=5)
    with torch.no_grad():
        logits = model(x)
    labels = logits.argmax(dim=1)
    targets = logits.topk(3, dim=1).indices[:, 1:]
    x_adv = library.APGDDLR(model, eps=0.05, frame_length=LENGTH, max_iter=20, top_k=2, loss="art")(x, labels)
    adv_class = predictions(model, x_adv)
    broken = adv_class != labels
    assert int(broken.sum()) >= 10
    assert (targets[broken] == adv_class[broken, None]).any(dim=1).all()


def test_art_dlr_loss_is_flat_where_the_target_ranks_third():
    """Why loss='autoattack' is the default: ART's DLR with the target t in place of the
    true class is (z_1 - z_t) / (z_1 - z_3), identically 1 while t ranks third, so its
    gradient is zero there; AutoAttack's targeted DLR loss still points the way."""
    from art.attacks.evasion import AutoProjectedGradientDescent
    model = linear_model(CLASSES, seed=6)
    x = frames(8, seed=6)
    with torch.no_grad():
        logits = model(x)
    order = logits.argsort(dim=1, descending=True)
    third = order[:, 2].numpy()
    module = library._Logits(model, torch.device("cpu"), "fp32")
    apgd = AutoProjectedGradientDescent(library._classifier(module, (2, LENGTH), CLASSES), eps=0.1,
                                        targeted=True, loss_type="difference_logits_ratio", verbose=False)
    gradient = apgd.estimator.loss_gradient(x.numpy(), np.eye(CLASSES, dtype=np.float32)[third])
    assert not gradient.any()

    probe = x.clone().requires_grad_(True)
    loss = library.TargetedDLRLoss()
    loss.reduction = "none"
    labels = torch.from_numpy(library.targeted_dlr_labels(order[:, 0].numpy(), third, CLASSES))
    value = loss(model(probe), labels)
    value.sum().backward()
    assert (probe.grad.flatten(1).abs().sum(dim=1) > 0).all()
    # AutoAttack's formula by hand: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)
    ordered = logits.sort(dim=1, descending=True).values
    rows = torch.arange(len(x))
    expected = -(ordered[:, 0] - logits[rows, third]) / (ordered[:, 0] - (ordered[:, 2] + ordered[:, 3]) / 2)
    assert torch.allclose(value.detach(), expected, atol=1e-6)


def test_targeted_apgd_ce_moves_frames_to_their_targets():
    model = linear_model(CLASSES, seed=6)
    x = frames(16, seed=6)
    with torch.no_grad():
        targets = model(x).topk(3, dim=1).indices[:, 2]
    x_adv = library.APGDCE(model, eps=0.3, targeted=True, frame_length=LENGTH, max_iter=20)(x, targets)
    assert_in_ball(x, x_adv, 0.3, "linf")
    assert torch.equal(predictions(model, x_adv), targets)


def test_apgd_dlr_needs_four_classes_with_autoattacks_loss():
    x = frames(4, seed=7)
    model = linear_model(3, seed=7)
    with pytest.raises(ValueError, match="at least 4 classes"):
        library.APGDDLR(model, eps=0.1, frame_length=LENGTH, max_iter=5)(x, predictions(model, x))
    library.APGDDLR(model, eps=0.1, frame_length=LENGTH, max_iter=5, loss="art")(x, predictions(model, x))


def test_square_needs_only_forward_passes(model):
    black_box = BlackBox(model).eval()
    x = frames(24, seed=8)
    labels = predictions(model, x)
    with pytest.raises(RuntimeError, match="black-box"):
        attacks.FGSM(black_box, eps=0.1)(x, labels)
    x_adv = library.Square(black_box, eps=0.1, frame_length=LENGTH, max_iter=100)(x, labels)
    assert_in_ball(x, x_adv, 0.1, "linf")
    assert accuracy(model, x_adv, labels) < 0.75


def test_gradient_mask_stops_apgd_but_not_square():
    """A model that rounds its input to a fine grid has zero gradient everywhere: APGD
    only gets its random start, no better than noise; Square, which never asks for a
    gradient, still finds the adversarial vertices. The leaderboard relies on this
    contrast to flag gradient masking."""
    inner = linear_model(CLASSES, seed=4, bias=True)
    model = Rounded(inner, q=0.02).eval()
    x = frames(64, seed=4)
    labels = predictions(model, x)
    probe = x.clone().requires_grad_(True)
    F.cross_entropy(model(probe), labels).backward()
    assert not probe.grad.any()

    eps = 0.1
    noise = accuracy(model, attacks.PGD(model, eps=eps, steps=0)(x, labels), labels)
    apgd = accuracy(model, library.APGDCE(model, eps=eps, frame_length=LENGTH, max_iter=20)(x, labels), labels)
    square = accuracy(model, library.Square(model, eps=eps, frame_length=LENGTH, max_iter=100)(x, labels), labels)
    unmasked = accuracy(inner, library.APGDCE(inner, eps=eps, frame_length=LENGTH, max_iter=20)(x, labels), labels)
    assert noise > 0.85 and apgd > 0.85  # the mask holds against gradients
    assert unmasked < 0.4  # what the gradients would have found
    assert square < apgd - 0.4


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_frames(model, method):
    x = frames(8, seed=9)
    labels = predictions(model, x)

    def run(seed):
        return library.make(method, model, eps=0.3, seed=seed, frame_length=LENGTH, **FAST[method])(x, labels)
    first = run(3)
    assert torch.equal(first, run(3))
    if method != "apgd-dlr":  # frames DLR does not break come back unchanged under any seed
        assert not torch.equal(first, run(4))


def test_leaves_the_caller_state_alone():
    """The global random streams, the model's mode, its parameters' requires_grad flags
    and their .grad are as they were."""
    model = conv_model(seed=1).train()
    x = frames(6, seed=10)
    model(x).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model[0].bias.requires_grad_(False)
    def draw():
        return np.random.rand(), random.random(), torch.rand(1).item()

    def seed():
        np.random.seed(11)
        random.seed(11)
        torch.manual_seed(11)
    seed()
    for method in METHODS:
        library.make(method, model, eps=0.1, frame_length=LENGTH, **FAST[method])(x)
    drawn = draw()
    seed()
    assert drawn == draw()
    assert model.training
    assert [p.requires_grad for p in model.parameters()] == [True, False, True, True]
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))


@pytest.mark.parametrize("length", [8, 32, 100, 128])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_square_runs_on_any_frame_length(norm, length):
    """ART's largest square comes first: one iteration shows the image shape works."""
    side = library.square_side(length, norm)
    layout = library.SquareLayout(length, side)
    x = frames(3, seed=12, length=length)
    images = layout.images(x.numpy())
    assert images.shape == (3, 2, side, side)
    assert np.array_equal(layout.frames(images), x.numpy())
    assert not images[:, :, -1].any() and not images[:, :, :, -1].any()  # squares never reach these
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * length, CLASSES)).eval()
    eps = 0.1 if norm == "linf" else 1.0
    x_adv = library.Square(model, eps=eps, norm=norm, frame_length=length, max_iter=1)(x, predictions(model, x))
    assert_in_ball(x, x_adv, eps, norm)


def test_square_sides_for_radioml_frames():
    assert library.square_side(128, "linf") == 13  # 12 x 12 reachable block, 16 padding cells
    assert library.square_side(128, "l2") == 14    # 13 would make L2's first square 13 wide


def test_on_a_project_model_with_an_lstm():
    """gnuradio.shapft's CNN-LSTM on 128-sample frames, in bf16-free fp32."""
    model = shapft_testing.small_cnn_lstm(seed=0).eval()
    x = frames(6, seed=13, length=128)
    labels = predictions(model, x)
    eps = budget.psr_db_to_eps(-20)
    for method in METHODS:
        attack = library.make(method, model, psr_db=-20, **FAST[method])
        assert attack.eps == pytest.approx(eps)
        x_adv = attack(x, labels)
        assert_in_ball(x, x_adv, attack.eps, "linf")
        assert attack.describe().startswith(f"{method.upper()} eps {eps:g} (PSR -20.0 dB), untargeted")


def test_registry_make_info_and_refusals(model):
    assert set(library.LIBRARY_METHODS) == set(METHODS) | {"cw-l2"}
    assert isinstance(library.make("APGD-CE", model, eps=0.1), library.APGDCE)
    with pytest.raises(ValueError, match="unknown library attack"):
        library.make("autoattack", model, eps=0.1)
    with pytest.raises(ValueError, match="exactly one"):
        library.make("square", model, eps=0.1, psr_db=-20)
    with pytest.raises(ValueError, match="untargeted only"):
        library.Square(model, eps=0.1, targeted=True)
    with pytest.raises(ValueError, match="untargeted only"):
        library.APGDDLR(model, eps=0.1, targeted=True)
    with pytest.raises(ValueError, match="loss must be"):
        library.APGDDLR(model, eps=0.1, loss="cw")
    with pytest.raises(ValueError, match="unknown norm"):
        library.APGDCE(model, eps=0.1, norm="l1")
    with pytest.raises(ValueError, match="p_init"):
        library.Square(model, eps=0.1, p_init=1.0)
    with pytest.raises(ValueError, match="top_k"):
        library.APGDDLR(model, eps=0.1, top_k=0)
    l2 = library.make("apgd-ce", model, eps=2.0, norm="l2", frame_length=LENGTH)
    assert l2.psr_db == pytest.approx(budget.eps_to_psr_db(2.0, "l2", LENGTH))
    info = json.loads(json.dumps(library.make("apgd-dlr", model, eps=0.1).info()))
    assert info["method"] == "apgd-dlr" and info["top_k"] == 3 and info["eps_step"] == pytest.approx(0.2)
    assert info["library"] == "adversarial-robustness-toolbox 1.20.1"


def test_attack_array_batches_a_library_attack(model):
    x = frames(10, seed=14).numpy()
    labels = predictions(model, torch.from_numpy(x)).numpy()
    out = attacks.attack_array(library.Square(model, eps=0.1, frame_length=LENGTH, max_iter=5), x, labels,
                               batch_size=4)
    assert out.dtype == np.float32 and out.shape == x.shape
    assert np.abs(out.astype(np.float64) - x).max() <= 0.1


def test_cw_l2_is_arts_carlini_wagner_projected_onto_the_ball(model):
    from art.attacks.evasion import CarliniL2Method
    from art.estimators.classification import PyTorchClassifier
    x = frames(8, seed=21)
    labels = predictions(model, x)
    eps = 2.0
    ours = library.make("cw-l2", model, eps=eps, norm="l2", frame_length=LENGTH, binary_search_steps=2,
                        max_iter=5)(x, labels)
    # the oracle: ART run directly on the same model (deterministic: no random start)
    classifier = PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                                   nb_classes=11, clip_values=None, channels_first=True, device_type="cpu")
    reference = CarliniL2Method(classifier, confidence=0.0, learning_rate=0.05, binary_search_steps=2, max_iter=5,
                                initial_const=0.1, batch_size=256, verbose=False).generate(
        x.numpy(), np.eye(11, dtype=np.float32)[labels.numpy()])
    expected = library.contain(x.numpy(), reference, eps, "l2")
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-5)
    assert_in_ball(x, ours, eps, "l2")
    assert accuracy(model, ours, labels) < 1.0           # it breaks frames
    with pytest.raises(ValueError, match="norm: C&W-L2 bounds the L2 norm"):
        library.make("cw-l2", model, eps=0.1, norm="linf")
