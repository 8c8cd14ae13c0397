"""The field's standard parameter-free attacks, from the maintained implementation in
IBM's Adversarial Robustness Toolbox (ART, pinned 1.20.1), behind the attacks.Attack
call shape:

    attack = library.make("apgd-ce", model, eps=0.05)   # or psr_db=-23, norm="l2"
    x_adv = attack(x, labels)                           # float32 [B, 2, L] tensors

APGD-CE   AutoProjectedGradientDescent, cross-entropy loss (Croce & Hein 2020).
APGD-DLR  AutoAttack's APGD-T: the same APGD on the targeted DLR loss, towards each
          frame's top_k highest-scoring wrong classes in turn.
Square    SquareAttack, score-based black box: forward passes only (Andriushchenko
          et al. 2020), so gradient masking does not stop it.
C&W-L2    CarliniL2Method (Carlini & Wagner 2017), the minimum-distortion L2 attack,
          run at a budget: its result is projected onto the L2 ball of eps.

How ART is run on radio frames:
- The model is handed to ART's PyTorchClassifier (CrossEntropyLoss, clip_values None
  for APGD, channels_first, device_type 'cpu') inside a thin torch module that is
  hidden from ART: ART never moves, retrains or zero-grads the model; the module runs
  it on the input's device in eval mode (the model's mode is restored afterwards) and
  under `precision`, and returns float32 logits on the CPU where ART works in numpy.
- APGD clips to clip_values only when they are not None (three places in 1.20.1), so
  with None nothing is clipped.
- SquareAttack 1.20.1 indexes clip_values unconditionally and only takes images
  [N, C, H, W]. Height 1 breaks its square sampling (randint(0, H - side) needs
  side < H), its first square (side ~ sqrt(p_init H W)) must fit in both H and W, so
  with p_init 0.8 only near-square images work, the L2 version also needs H // 5 >= 2
  and an odd side below H, and no square ever starts where it would reach the last row
  or column. So each frame becomes a 2-channel S x S image: I and Q are the channels,
  the samples fill rows of S - 1 consecutive samples in the top-left (S-1) x (S-1)
  block that squares can reach, and the rest is zero padding the model never sees
  (square_side: S = 13 for L-inf and 14 for L2 at L = 128). A square then covers the
  same runs of consecutive samples in I and Q, with its own sign per channel, as
  Square treats colour channels. clip_values is (-inf, inf): np.clip with infinite
  bounds is the identity, so nothing is clipped.
- Every result is projected back onto the eps ball around x in float64 and rounded to
  float32 towards x, so |x_adv - x| <= eps (L-inf per component) or ||x_adv - x|| <= eps
  (L2 per frame) holds exactly, not just to float32 rounding.
- ART draws from numpy's and Python's global random state. Each call seeds those (and
  torch's CPU generator) from a stream started at `seed` and restores them afterwards:
  the same seed and the same calls give the same perturbations, and the caller's random
  streams are untouched. (Not thread-safe: ART's state is global.)
- The model's parameters are set requires_grad=False for the call (restored after):
  ART's backward would otherwise write into their .grad.
- CarliniL2Method optimises in tanh space over a box: clip_values, or with None the
  batch's own range [min(x), max(x)]. That range is kept (a frame's samples stay within
  the batch's extremes, several times the perturbation's size at any PSR we use).
- ART asks the model again for logits it has just computed (APGD for the loss at the
  point of its last gradient, and the reverse; Square for every point at every
  iteration); _Logits answers those from memory, with the same numbers for a
  deterministic model.

Known differences from the reference implementations (ART 1.20.1):
- APGD keeps a frame's final iterate only if it breaks the frame, and otherwise returns
  the frame's random start (AutoAttack keeps any breaking iterate); a targeted run
  counts a frame broken only when it reaches the target.
- ART's loss_type 'difference_logits_ratio' run targeted (as ART's AutoAttack does) is
  flat wherever the target ranks third, so APGD-DLR uses AutoAttack's targeted DLR loss
  by default (APGDDLR explains; loss='art' keeps ART's).
- L2 Square sizes a new square with `delta_new /= norm * sqrt(budget)` where the
  reference multiplies by sqrt(budget) (square_attack.py, L2 branch), so its L2 updates
  are mis-scaled (0/0 candidates come out nan and are rejected): L2 Square is weaker
  than published; L-inf Square follows the reference.
"""
import collections
import contextlib
import importlib.metadata
import math
import random
import warnings

import numpy as np
import torch
from torch import nn

from . import Attack, by_name
from ..core import budget
from ..core.radioml import FRAME_LENGTH
from ..models import precision as precision_module

ART_DISTRIBUTION = "adversarial-robustness-toolbox"
# rows _Logits remembers per frame attacked: Square asks for a point again after at most
# three calls' worth of rows (predict all, margins of the unbroken, their candidates)
REMEMBERED = 4


def art_version():
    try:
        return importlib.metadata.version(ART_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


class _Logits(nn.Module):
    """ART's view of the model: frames [N, 2, L] (or Square's images [N, 2, S, S]) in,
    float32 CPU logits out. The model is kept out of the module tree on purpose.

    ART asks again for what it has just computed: APGD for the loss at the point whose
    gradient it just took and then for the gradient at the point whose loss it just
    took; Square for the margins of the points it has just predicted, and for every
    point again at each iteration. So the module remembers the logits of the last
    `remember` rows it computed, per grad mode (a forward pass in grad mode can differ
    from one under no_grad in the last bits), and answers a call whose rows are all known
    without a forward pass; and a call in grad mode keeps its graph, so a gradient asked
    next on the same input reuses that forward pass (_Replay). A deterministic model
    gives the numbers a forward pass would, up to the last bits that a forward pass in a
    batch of another size can change; a stochastic one answers a repeated question with
    its first draw."""

    def __init__(self, model, device, precision, layout=None, remember=0):
        super().__init__()
        self.__dict__["target"] = model
        self.device = device
        self.precision = precision
        self.layout = layout
        self.remember = int(remember)
        self._known = collections.OrderedDict()   # (grad mode, row bytes) -> logits, least recent first
        self._recorded = None                     # (leaf, logits) of the last forward pass in grad mode

    def forward(self, x):
        if x.requires_grad:   # loss_gradient
            recorded, self._recorded = self._recorded, None
            if recorded is not None and torch.equal(recorded[0].detach(), x.detach()):
                return _Replay.apply(x, recorded)
            logits = self._logits(x)
            self._store(self._keys(x), logits)
            return logits
        keys = self._keys(x)
        known = [self._known.get(key) for key in keys]
        if known and all(row is not None for row in known):
            for key in keys:
                self._known.move_to_end(key)
            return torch.stack(known)
        if torch.is_grad_enabled():   # compute_loss: the gradient at this point is likely asked next
            leaf = x.detach().clone().requires_grad_(True)
            logits = self._logits(leaf)
            self._recorded = (leaf, logits)
            logits = logits.detach()
        else:
            logits = self._logits(x)
        self._store(keys, logits)
        return logits

    def _logits(self, x):
        if self.layout is not None:
            x = self.layout.frames(x)
        x = x.to(self.device, torch.float32)
        with precision_module.autocast(self.precision, self.device.type):
            logits = self.target(x)
        return logits.float().cpu()

    def _keys(self, x):
        if not self.remember:
            return []
        grad_mode = torch.is_grad_enabled()
        return [(grad_mode, row.tobytes()) for row in x.detach().cpu().contiguous().numpy()]

    def _store(self, keys, logits):
        for key, row in zip(keys, logits.detach()):
            self._known[key] = row
            self._known.move_to_end(key)
        while len(self._known) > self.remember:
            self._known.popitem(last=False)


class _Replay(torch.autograd.Function):
    """The logits of a recorded forward pass (leaf, logits) on the same input, whose
    backward runs through that pass's graph."""

    @staticmethod
    def forward(ctx, x, recorded):
        ctx.recorded = recorded
        return recorded[1].detach().clone()

    @staticmethod
    def backward(ctx, grad):
        leaf, logits = ctx.recorded
        return torch.autograd.grad(logits, leaf, grad)[0], None


def _classifier(module, input_shape, nb_classes, clip_values=None, loss=None):
    from art.estimators.classification import PyTorchClassifier
    loss = nn.CrossEntropyLoss() if loss is None else loss
    return PyTorchClassifier(model=module, loss=loss, input_shape=tuple(input_shape),
                             nb_classes=int(nb_classes), clip_values=clip_values, channels_first=True,
                             device_type="cpu")


@contextlib.contextmanager
def _seeded(seed):
    """numpy's, Python's and torch's CPU global random state seeded, restored on exit."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        with torch.random.fork_rng(devices=[]):
            np.random.seed(seed)
            random.seed(seed)
            torch.default_generator.manual_seed(seed)
            yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


@contextlib.contextmanager
def _input_gradients_only(model):
    params = [p for p in model.parameters() if p.requires_grad] if isinstance(model, nn.Module) else []
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def contain(x, x_adv, eps, norm):
    """x_adv projected onto the eps ball around x (numpy [N, 2, L]) in float64, rounded
    to float32 towards x: each component moves no further than the projected step, so
    the budget holds exactly."""
    x = np.asarray(x, dtype=np.float32)
    x64 = x.astype(np.float64)
    step = np.asarray(x_adv, dtype=np.float64).reshape(x.shape) - x64
    if not np.isfinite(step).all():
        raise RuntimeError("the attack returned non-finite samples")
    if norm == "linf":
        step = np.clip(step, -eps, eps)
    else:
        norms = np.sqrt(np.sum(step ** 2, axis=tuple(range(1, step.ndim)), keepdims=True))
        over = norms > eps
        scale = np.ones_like(norms)
        scale[over] = eps / norms[over] * (1 - 1e-12)  # the margin absorbs the norm's own rounding
        step = step * scale
    out = (x64 + step).astype(np.float32)
    for _ in range(4):
        over = np.abs(out.astype(np.float64) - x64) > np.abs(step)
        if not over.any():
            break
        out[over] = np.nextafter(out[over], x[over])
    return out


class LibraryAttack(Attack):
    """An ART attack with attacks.Attack's budget, call shape and seeding. norm is
    'linf' (eps per real component) or 'l2' (eps per frame [2, L]); batch_size is ART's
    batch for its attack loop and predictions."""
    norm = "linf"
    info_fields = ("library", "batch_size")

    def __init__(self, model, eps=None, psr_db=None, targeted=False, seed=0,
                 frame_length=FRAME_LENGTH, precision="fp32", norm="linf", batch_size=256):
        budget._check_norm(norm)
        self.norm = norm
        super().__init__(model, eps, psr_db, targeted, seed, frame_length, precision)
        self.batch_size = _count(batch_size, "batch_size")
        self._seeds = np.random.default_rng(self.seed)

    @property
    def library(self):
        return f"{ART_DISTRIBUTION} {art_version()}"

    def _perturb(self, x, labels):
        x_np = np.ascontiguousarray(x.cpu().numpy(), dtype=np.float32)
        y_np = labels.cpu().numpy().astype(np.int64)
        call_seed = int(self._seeds.integers(2 ** 32))
        with _seeded(call_seed), _input_gradients_only(self.model), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            x_adv = self._run(x_np, y_np, x.device)
        return torch.from_numpy(contain(x_np, x_adv, self.eps, self.norm)).to(x.device)

    def _run(self, x, labels, device):
        """Adversarial frames (numpy, any float dtype) for numpy x [N, 2, L] and labels [N]."""
        raise NotImplementedError

    def _art_norm(self):
        return np.inf if self.norm == "linf" else 2


class APGDCE(LibraryAttack):
    """ART's AutoProjectedGradientDescent on the cross-entropy loss: max_iter steps with
    momentum and a step size halved where progress stalls, from nb_random_init random
    starts in the ball (ART always starts at a random point). eps_step is the initial
    step, 2 eps by default as in Croce & Hein (ART's own default is a fixed 0.1)."""
    name = "apgd-ce"
    info_fields = LibraryAttack.info_fields + ("max_iter", "nb_random_init", "eps_step")

    def __init__(self, model, eps=None, psr_db=None, targeted=False, seed=0,
                 frame_length=FRAME_LENGTH, precision="fp32", norm="linf", batch_size=256,
                 max_iter=100, nb_random_init=1, eps_step=None):
        super().__init__(model, eps, psr_db, targeted, seed, frame_length, precision, norm, batch_size)
        self.max_iter = _count(max_iter, "max_iter")
        self.nb_random_init = _count(nb_random_init, "nb_random_init")
        if eps_step is not None and not (math.isfinite(eps_step) and eps_step > 0):
            raise ValueError(f"eps_step must be a finite number > 0, got {eps_step!r}")
        self.eps_step = 2.0 * self.eps if eps_step is None else float(eps_step)

    def _details(self):
        return [self.norm, f"{self.max_iter} iterations", _counted(self.nb_random_init, "restart")]

    def _apgd(self, x, device, targeted, loss_type="cross_entropy", loss=None):
        """ART's APGD on `loss_type`, or on the classifier's own `loss` (loss_type None),
        and the clean logits of x."""
        from art.attacks.evasion import AutoProjectedGradientDescent
        module = _Logits(self.model, device, self.precision, remember=REMEMBERED * len(x))
        with torch.no_grad():
            logits = module(torch.from_numpy(x)).numpy()
        classifier = _classifier(module, x.shape[1:], logits.shape[1], loss=loss)
        attack = AutoProjectedGradientDescent(
            classifier, norm=self._art_norm(), eps=self.eps, eps_step=self.eps_step, max_iter=self.max_iter,
            targeted=targeted, nb_random_init=self.nb_random_init, batch_size=self.batch_size,
            loss_type=None if loss is not None else loss_type, verbose=False)
        return attack, logits

    def _run(self, x, labels, device):
        attack, _ = self._apgd(x, device, self.targeted)
        return attack.generate(x, labels)


class TargetedDLRLoss(nn.Module):
    """AutoAttack's targeted DLR loss (Croce & Hein 2020), which APGD-T maximises while
    counting any misclassification as success: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2),
    z sorted logits pi. ART hands a loss one label array, so each row carries the true
    class y as +1 and the target t as -1 (targeted_dlr_labels): ART's untargeted APGD
    (ascent; success when argmax != y) then runs exactly APGD-T. Needs 4 classes."""

    def __init__(self):
        super().__init__()
        self.reduction = "mean"  # ART sets it per call

    def forward(self, logits, labels):
        labels = torch.as_tensor(labels, device=logits.device)
        true, target = labels.argmax(dim=1), labels.argmin(dim=1)
        rows = torch.arange(len(logits), device=logits.device)
        ordered = logits.sort(dim=1).values
        scale = ordered[:, -1] - 0.5 * (ordered[:, -3] + ordered[:, -4]) + 1e-12
        loss = -(logits[rows, true] - logits[rows, target]) / scale
        if self.reduction == "mean":
            return loss.mean()
        return loss.sum() if self.reduction == "sum" else loss


def targeted_dlr_labels(true, targets, nb_classes):
    """Rows of +1 at the true class and -1 at the target, for TargetedDLRLoss."""
    labels = np.zeros((len(true), nb_classes), dtype=np.float32)
    rows = np.arange(len(true))
    labels[rows, true] = 1
    labels[rows, targets] = -1
    return labels


class APGDDLR(APGDCE):
    """AutoAttack's APGD-T on ART's AutoProjectedGradientDescent: each frame is attacked
    with the targeted DLR loss towards its top_k highest-scoring wrong classes (on the
    clean frame) in turn until a run misclassifies it; its result is that first
    successful example, and frames no run breaks, or already misclassified, come back
    unchanged. top_k is 3, not AutoAttack's 9: over 11 classes 9 would cost 9 APGD runs
    per frame, and a modulation classifier's confusions concentrate on a few neighbours
    (QAM16/QAM64, 8PSK/QPSK, AM-DSB/WBFM), the classes its clean logits already rank
    next. Untargeted only: the targets are its own (APGDCE takes targets).

    loss 'autoattack' (default): TargetedDLRLoss, success = misclassified, as AutoAttack.
    loss 'art': ART's loss_type 'difference_logits_ratio' run targeted=True, as ART's
    own AutoAttack does: the untargeted DLR with the target in place of the true class,
    -(z_t - z_i) / (z_1 - z_3), success = reaching the target. Wherever the target
    ranks third that loss is (z_1 - z_t) / (z_1 - z_t) = 1, flat, with zero gradient,
    so the run stalls there, and the second-best wrong class starts there. Kept to
    compare with ART as shipped; needs 3 classes."""
    name = "apgd-dlr"
    info_fields = APGDCE.info_fields + ("top_k", "loss")
    LOSSES = ("autoattack", "art")

    def __init__(self, model, eps=None, psr_db=None, targeted=False, seed=0,
                 frame_length=FRAME_LENGTH, precision="fp32", norm="linf", batch_size=256,
                 max_iter=100, nb_random_init=1, eps_step=None, top_k=3, loss="autoattack"):
        if targeted:
            raise ValueError("APGD-DLR picks its own targets (untargeted only); "
                             "use apgd-ce with targeted=True for given targets")
        super().__init__(model, eps, psr_db, targeted, seed, frame_length, precision, norm, batch_size,
                         max_iter, nb_random_init, eps_step)
        self.top_k = _count(top_k, "top_k")
        if loss not in self.LOSSES:
            raise ValueError(f"loss must be one of {', '.join(self.LOSSES)}, got {loss!r}")
        self.loss = loss

    def _details(self):
        return [*super()._details(), f"{self.loss} DLR loss", f"top {self.top_k} targets"]

    def _run(self, x, labels, device):
        if self.loss == "art":
            attack, logits = self._apgd(x, device, True, loss_type="difference_logits_ratio")
        else:
            attack, logits = self._apgd(x, device, False, loss=TargetedDLRLoss())
        needed = 3 if self.loss == "art" else 4
        if logits.shape[1] < needed:
            raise ValueError(f"APGD-DLR ({self.loss} loss) needs at least {needed} classes, "
                             f"the model has {logits.shape[1]}")
        ranked = np.argsort(-logits, axis=1, kind="stable")
        wrong = ranked[ranked != labels[:, None]].reshape(len(x), -1)
        x_adv = x.copy()
        broken = logits.argmax(axis=1) != labels
        for target in wrong[:, :self.top_k].T:
            todo = np.flatnonzero(~broken)
            if len(todo) == 0:
                break
            if self.loss == "art":
                out = attack.generate(x[todo], target[todo])
            else:
                out = attack.generate(x[todo], targeted_dlr_labels(labels[todo], target[todo], logits.shape[1]))
            hit = attack.estimator.predict(out, batch_size=self.batch_size).argmax(axis=1) != labels[todo]
            x_adv[todo[hit]] = out[hit]
            broken[todo[hit]] = True
        return x_adv


def square_side(length, norm="linf", p_init=0.8):
    """The side S of the 2 x S x S images that frames of `length` samples become for
    ART's SquareAttack: the smallest S whose reachable (S-1) x (S-1) block holds the
    frame and on which ART can place its squares."""
    side = math.isqrt(int(length) - 1) + 2
    while not _square_fits(side, norm, p_init):
        side += 1
    return side


def _square_fits(side, norm, p_init):
    # ART's formulas for its first (largest) square; later squares shrink to 1 (L-inf) or 3 (L2)
    tile = int(round(math.sqrt(p_init * side * side)))
    if norm == "linf":
        return max(tile, 1) < side
    tile = max(tile, 3)
    tile += tile % 2 == 0
    return side // 5 >= 2 and tile < side


class SquareLayout:
    """Frames [N, 2, L] <-> images [N, 2, S, S]: rows of S - 1 consecutive samples from
    the top left, zeros elsewhere (numpy for images, torch or numpy back to frames)."""

    def __init__(self, length, side):
        self.length, self.side = int(length), int(side)
        self.width = self.side - 1
        self.rows = -(-self.length // self.width)
        if self.rows > self.width:
            raise ValueError(f"{self.length} samples do not fit a {self.side} x {self.side} image")

    def images(self, x):
        n, channels = x.shape[:2]
        rows = np.zeros((n, channels, self.rows * self.width), dtype=np.float32)
        rows[:, :, :self.length] = x
        images = np.zeros((n, channels, self.side, self.side), dtype=np.float32)
        images[:, :, :self.rows, :self.width] = rows.reshape(n, channels, self.rows, self.width)
        return images

    def frames(self, images):
        block = images[:, :, :self.rows, :self.width]
        if isinstance(block, torch.Tensor):
            return block.flatten(2)[:, :, :self.length]
        return block.reshape(block.shape[0], block.shape[1], -1)[:, :, :self.length]


class Square(LibraryAttack):
    """ART's SquareAttack: random search over square-shaped updates at the ball's
    vertices (L-inf) or surface (L2) that keeps an update when it lowers the margin
    (true logit - best other logit), max_iter iterations (each a forward pass of the
    unbroken frames) per restart. p_init is the first square's share of the image, 0.8
    as AutoAttack (whose Square runs 5000 iterations). Untargeted only. Frames become
    2 x S x S images (square_side, SquareLayout) so ART's square sampling works on
    them."""
    name = "square"
    info_fields = LibraryAttack.info_fields + ("max_iter", "p_init", "nb_restarts", "image_side")

    def __init__(self, model, eps=None, psr_db=None, targeted=False, seed=0,
                 frame_length=FRAME_LENGTH, precision="fp32", norm="linf", batch_size=256,
                 max_iter=1000, p_init=0.8, nb_restarts=1):
        if targeted:
            raise ValueError("Square is untargeted only (ART's SquareAttack has no targeted mode)")
        super().__init__(model, eps, psr_db, targeted, seed, frame_length, precision, norm, batch_size)
        self.max_iter = _count(max_iter, "max_iter")
        self.nb_restarts = _count(nb_restarts, "nb_restarts")
        if not 0 < p_init < 1:
            raise ValueError(f"p_init must be in (0, 1), got {p_init!r}")
        self.p_init = float(p_init)

    @property
    def image_side(self):
        return square_side(self.frame_length, self.norm, self.p_init)

    def _details(self):
        return [self.norm, f"{self.max_iter} iterations", f"p_init {self.p_init:g}",
                _counted(self.nb_restarts, "restart")]

    def _run(self, x, labels, device):
        from art.attacks.evasion import SquareAttack
        layout = SquareLayout(x.shape[-1], square_side(x.shape[-1], self.norm, self.p_init))
        module = _Logits(self.model, device, self.precision, layout, remember=REMEMBERED * len(x))
        images = layout.images(x)
        with torch.no_grad():
            nb_classes = module(torch.from_numpy(images[:1])).shape[1]
        classifier = _classifier(module, images.shape[1:], nb_classes, clip_values=(-np.inf, np.inf))
        attack = SquareAttack(classifier, norm=self._art_norm(), max_iter=self.max_iter, eps=self.eps,
                              p_init=self.p_init, nb_restarts=self.nb_restarts, batch_size=self.batch_size,
                              verbose=False)
        # L2: ART's 0/0 candidates (module docstring) give nan losses, which it rejects
        with np.errstate(divide="ignore", invalid="ignore"):
            images = attack.generate(images, labels)
        return layout.frames(images)


def _count(value, name):
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _counted(count, noun):
    """'1 restart', '3 restarts'."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


class CarliniL2(LibraryAttack):
    """ART's CarliniL2Method: for binary_search_steps values of the trade-off constant
    (from initial_const), max_iter Adam-like steps on the L2 distortion plus the margin
    loss (confidence); the smallest successful perturbation is kept, then projected onto
    the L2 ball of eps (norm is always l2)."""
    name = "cw-l2"
    info_fields = LibraryAttack.info_fields + ("confidence", "learning_rate", "binary_search_steps", "max_iter",
                                               "initial_const")

    def __init__(self, model, eps=None, psr_db=None, targeted=False, seed=0,
                 frame_length=FRAME_LENGTH, precision="fp32", norm="l2", batch_size=256,
                 confidence=0.0, learning_rate=0.05, binary_search_steps=5, max_iter=10, initial_const=0.1):
        if norm != "l2":
            raise ValueError(f"norm: C&W-L2 bounds the L2 norm, not {norm!r}")
        super().__init__(model, eps, psr_db, targeted, seed, frame_length, precision, norm, batch_size)
        self.confidence = float(confidence)
        self.learning_rate = float(learning_rate)
        self.binary_search_steps = _count(binary_search_steps, "binary_search_steps")
        self.max_iter = _count(max_iter, "max_iter")
        self.initial_const = float(initial_const)

    def _details(self):
        return [f"{self.binary_search_steps} x {self.max_iter} iterations"]

    def _run(self, x, labels, device):
        from art.attacks.evasion import CarliniL2Method
        module = _Logits(self.model, device, self.precision)
        classifier = _classifier(module, x.shape[1:], _nb_classes(module, x))
        attack = CarliniL2Method(classifier, confidence=self.confidence, targeted=self.targeted,
                                 learning_rate=self.learning_rate, binary_search_steps=self.binary_search_steps,
                                 max_iter=self.max_iter, initial_const=self.initial_const,
                                 batch_size=self.batch_size, verbose=False)
        return attack.generate(x, np.eye(classifier.nb_classes, dtype=np.float32)[labels])


def _nb_classes(module, x):
    with torch.no_grad():
        return int(module(torch.from_numpy(x[:1])).shape[1])


LIBRARY_METHODS = {cls.name: cls for cls in (APGDCE, APGDDLR, Square, CarliniL2)}


def make(method, model, eps=None, psr_db=None, **kwargs):
    """A library attack by name (apgd-ce, apgd-dlr, square, cw-l2); kwargs go to its constructor
    (targeted, seed, frame_length, precision, norm, batch_size; max_iter; nb_random_init,
    eps_step for APGD; top_k for apgd-dlr; p_init, nb_restarts for square)."""
    return by_name(LIBRARY_METHODS, method, "library attack")(model, eps=eps, psr_db=psr_db, **kwargs)
