"""Supervised training with Adam, early stopping on validation loss and resumable
checkpoints: the SHAP-FT paper's recipe (Adam 1e-3, batch 200, up to 200 epochs) and
the loop every other trainer (SHAP-FT fine-tuning, AT-FGSM, PGD-AT, distillation)
reuses through `loss_fn`.

The loss hook: `loss_fn(model, x, y)` is called once per batch with the model in
train mode and returns the batch's scalar loss, or `(loss, logits)` to have training
accuracy reported (logits on whatever inputs the loss used, e.g. adversarial ones).
A loss that crafts adversarial examples inside may simply call an `attacks.Attack`:
attacks craft in eval mode and restore train mode before returning, so the update
runs in train mode. Validation is clean cross-entropy in eval mode, the early-stopping
criterion; with a RobustSelection the criterion is instead the accuracy on fixed
validation frames under PGD (the model kept is the most robust one).

In a process group (learn.distributed: `torchrun ... shapft train`) the processes train
one model, each on its shard of every batch, their gradients combined; every process
takes the same steps and early-stopping decisions, and only rank 0 writes checkpoints.
"""
import copy
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..core import artifacts
from ..models import device as model_device
from ..models import precision as model_precision
from . import distributed

CHECKPOINT_FORMAT = "shapft-checkpoint/1"


@dataclasses.dataclass
class TrainConfig:
    epochs: int = 200
    batch_size: int = 200
    lr: float = 1e-3
    patience: int = 10          # epochs without a val-loss improvement before stopping
    min_delta: float = 0.0      # an improvement must lower val loss by more than this
    seed: int = 0

    def __post_init__(self):
        for name in ("epochs", "batch_size", "patience"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not self.min_delta >= 0:
            raise ValueError(f"min_delta must be >= 0, got {self.min_delta!r}")


@dataclasses.dataclass
class RobustSelection:
    """Early stopping and model selection on robust validation accuracy: the accuracy on
    `frames` validation frames (a fixed draw from `seed`) under PGD of `steps` steps at
    L-infinity budget `eps` from a fixed random start, higher better. A robust model's
    clean validation loss can rise while its robustness still improves (and the other way
    round), so adversarial training selects on this instead."""
    eps: float
    steps: int = 10
    frames: int = 1000
    seed: int = 0
    name = "val_robust_acc"

    def __post_init__(self):
        if not self.eps > 0:
            raise ValueError(f"eps must be > 0, got {self.eps!r}")
        for name in ("steps", "frames"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")

    def describe(self):
        return {"criterion": self.name, **dataclasses.asdict(self)}

    def score(self, model, frames, precision):
        """The robust accuracy of `model` (left in eval mode) on the fixed frames."""
        from .. import attacks
        from . import metrics
        order = torch.randperm(len(frames), generator=torch.Generator().manual_seed(self.seed))
        index = order[:self.frames].sort().values
        x, y = frames.read(index).numpy(), frames.labels[index].numpy()
        model.eval()
        attack = attacks.make("pgd", model, eps=self.eps, steps=self.steps, seed=self.seed,
                              frame_length=x.shape[-1], precision=precision)
        adversarial = attacks.attack_array(attack, x, y, batch_size=250)
        return metrics.model_accuracy(model, adversarial, y, precision=precision)


@dataclasses.dataclass
class TrainResult:
    history: list            # one dict per epoch: epoch, train_loss, train_acc, val_loss, val_acc, seconds
    best_epoch: int          # 1-based epoch whose weights the model now holds
    best_val_loss: float
    best_val_acc: float
    stopped_early: bool
    resumed_from: int        # epochs already done when fit started (0: fresh run)
    precision: str = "fp32"  # what the forward passes ran in (models.precision)
    device: str = "cpu"      # where it trained (models.device; rank 0's in a process group)
    world_size: int = 1      # processes that trained it together (learn.distributed)
    selection: dict = None   # RobustSelection.describe() when it chose the epoch, else None (val loss)
    best_score: float = None  # its robust validation accuracy at best_epoch

    @property
    def epochs_run(self):
        return len(self.history)

    @property
    def seconds(self):
        return float(sum(h["seconds"] for h in self.history))

    def summary(self):
        """JSON-serialisable summary for model metadata and reports."""
        return {"epochs_run": self.epochs_run, "best_epoch": self.best_epoch,
                "best_val_loss": self.best_val_loss, "best_val_acc": self.best_val_acc,
                "stopped_early": self.stopped_early, "seconds": round(self.seconds, 1),
                "precision": self.precision, "device": self.device, "world_size": self.world_size,
                **({"selection": self.selection, "best_val_robust_acc": self.best_score}
                   if self.selection else {})}


def cross_entropy_loss(model, x, y):
    logits = model(x).float()
    return F.cross_entropy(logits, y), logits


def fit(model, train_xy, val_xy, config=None, loss_fn=None, checkpoint_path=None, progress=True,
        precision="fp32", selection=None):
    """Train `model` in place on `train_xy`, early stopping on `val_xy`; return a
    TrainResult with the best-validation-loss weights restored. Each is a pair (x [N, 2, L]
    float32, y [N] class indices) of arrays or tensors, or a recording (core.recording:
    a Recording, or a FrameFile whose frames stay on disk) read a batch at a time through
    its `batch(index)` and `labels`: the same frames give the same training either way.

    With checkpoint_path, the state is saved atomically after every epoch and a run
    finds and continues it (same config required; epochs may be raised). Seeds
    torch's global RNG (dropout) from config.seed; shuffling uses its own generator.
    precision (models.precision): forward passes, the loss's own attacks included, run
    under bf16 autocast when it resolves to bf16; weights, gradients and the optimizer
    stay float32. It is not part of the checkpoint's identity: a run may resume in
    another precision. Training runs on the model's device (models.device): the frames
    stay on the CPU and go there a batch at a time; a run may resume on another device.
    In a process group (learn.distributed) the processes share every batch; a run may
    resume with another number of processes. selection (a RobustSelection): early stopping
    and the weights kept follow the robust validation accuracy instead of the validation
    loss (part of the checkpoint's identity).
    """
    config = config or TrainConfig()
    device = model_device.of(model)
    world = distributed.current()
    check_shares(config.batch_size, world.size)
    precision = model_precision.resolve(precision, device.type)
    loss_fn = loss_fn or cross_entropy_loss
    train, val = _frames(train_xy, "train_xy"), _frames(val_xy, "val_xy")
    if len(train) < 2 * world.size and world.size > 1:
        raise ValueError(f"train_xy: {len(train)} frames cannot be shared among {world.size} processes "
                         "(at least 2 each)")
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    shuffle = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    world.broadcast_weights(model)
    state = {"epoch": 0, "history": [], "best_state": copy.deepcopy(model.state_dict()),
             "best_epoch": 0, "best_val_loss": float("inf"), "best_val_acc": 0.0,
             "stale_epochs": 0, "stopped_early": False, "best_score": None,
             "selection": selection.describe() if selection else None}
    checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
    if checkpoint_path and checkpoint_path.exists():
        state = _load_checkpoint(checkpoint_path, model, optimizer, shuffle, config, state["selection"])
    world.check_same(state["epoch"], device, f"checkpoint {checkpoint_path}: the processes found different "
                     "checkpoints (every node must read the one rank 0 writes)")
    resumed_from = state["epoch"]

    progress = progress and world.main
    bar = _progress_bar(progress, desc="epochs", unit="epoch", initial=state["epoch"], total=config.epochs)
    last_epoch = state["epoch"] if state["stopped_early"] else config.epochs   # a finished run stays finished
    for epoch in range(state["epoch"], last_epoch):
        start = time.perf_counter()
        train_loss, train_acc = _train_epoch(model, train, optimizer, loss_fn, config.batch_size, shuffle,
                                             progress, precision, device, world)
        world.average_buffers(model)
        with model_precision.autocast(precision, device.type):
            val_loss, val_acc = _validate(model, val, config.batch_size, device, world)
        entry = {"epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc,
                 "val_loss": val_loss, "val_acc": val_acc}
        if selection:
            score = selection.score(model, val, precision)
            entry[selection.name] = score
            improved = state["best_score"] is None or score > state["best_score"] + config.min_delta
        else:
            score, improved = None, val_loss < state["best_val_loss"] - config.min_delta
        state["history"].append({**entry, "seconds": time.perf_counter() - start})
        if improved:
            state.update(best_state=copy.deepcopy(model.state_dict()), best_epoch=epoch + 1,
                         best_val_loss=val_loss, best_val_acc=val_acc, best_score=score, stale_epochs=0)
        else:
            state["stale_epochs"] += 1
            state["stopped_early"] = state["stale_epochs"] >= config.patience
        state["epoch"] = epoch + 1
        if checkpoint_path and world.main:
            _save_checkpoint(checkpoint_path, model, optimizer, shuffle, config, state)
        if bar is not None:
            bar.set_postfix(loss=f"{train_loss:.3f}", val_loss=f"{val_loss:.3f}",
                            val_acc=f"{val_acc:.3f}", best=state["best_epoch"], refresh=False)
            bar.update()
        if state["stopped_early"]:
            break
    if bar is not None:
        bar.close()

    model.load_state_dict(state["best_state"])
    return TrainResult(state["history"], state["best_epoch"], state["best_val_loss"],
                       state["best_val_acc"], state["stopped_early"], resumed_from, precision, str(device),
                       world.size, state["selection"], state["best_score"])


def check_shares(batch_size, processes):
    """Refuse a batch size too small to share among `processes`: each needs at least two
    frames of every batch (batch norm cannot normalise a single frame in train mode)."""
    if processes > 1 and batch_size < 2 * processes:
        raise ValueError(f"batch_size {batch_size} cannot be shared among {processes} processes: each needs "
                         f"at least 2 frames of every batch, {2 * processes} in all")


def _train_epoch(model, frames, optimizer, loss_fn, batch_size, shuffle, progress, precision, device, world):
    model.train()
    total_loss, correct, counted, seen = 0.0, 0, 0, 0
    batches = epoch_batches(len(frames), batch_size, shuffle, world.size)
    bar = _progress_bar(progress, desc="batches", unit="batch", total=len(batches), leave=False)
    for batch in batches:
        shard = world.shard(batch)   # a process reads only its own frames of the batch
        xb, yb = frames.read(shard).to(device), frames.labels[shard].to(device)
        # autocast per batch, never around an optimizer step: autocast keeps the bf16 copies
        # of the weights it casts until its outermost region ends, so within one region the
        # forward passes would keep using the weights of the first batch
        with model_precision.autocast(precision, device.type):
            out = loss_fn(model, xb, yb)
        loss, logits = out if isinstance(out, tuple) else (out, None)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        world.combine_gradients(model, len(shard), len(batch))
        optimizer.step()
        total_loss += float(loss.detach()) * len(shard)
        seen += len(shard)
        if logits is not None:
            correct += int((logits.detach().argmax(dim=1) == yb).sum())
            counted += len(shard)
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    total_loss, correct, counted, seen = world.sum([total_loss, correct, counted, seen], device)
    return total_loss / seen, (correct / counted if counted else None)


def epoch_batches(count, batch_size, shuffle, processes=1):
    """One epoch's batches: the frame indices 0..count-1 in the order the generator
    `shuffle` draws (torch.randperm), cut into batches of batch_size (_batches; for
    `processes` sharing every batch). Each epoch draws anew from the generator."""
    return _batches(torch.randperm(count, generator=shuffle), batch_size, 2 * processes)


def _batches(order, batch_size, smallest=2):
    """Index batches of `order`; a last batch of fewer than `smallest` frames joins the
    previous one (batch norm cannot normalise a single frame in train mode, and in a
    process group of N each process needs two frames of every batch: smallest 2 N)."""
    starts = list(range(0, len(order), batch_size))
    if len(starts) > 1 and len(order) - starts[-1] < smallest:
        starts.pop()
    bounds = starts[1:] + [len(order)]
    return [order[a:b] for a, b in zip(starts, bounds)]


@torch.no_grad()
def _validate(model, frames, batch_size, device, world):
    """(mean loss, accuracy) over the frames; in a process group each process scores
    every N-th frame and the sums are all-reduced: every process gets the same numbers."""
    model.eval()
    index = world.shard(torch.arange(len(frames)))
    total_loss, correct = 0.0, 0
    for start in range(0, len(index), batch_size):
        batch = index[start:start + batch_size]
        logits = model(frames.read(batch).to(device)).float()
        yb = frames.labels[batch].to(device)
        total_loss += float(F.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(dim=1) == yb).sum())
    total_loss, correct, count = world.sum([total_loss, correct, len(index)], device)
    return total_loss / count, correct / count


@dataclasses.dataclass
class _Frames:
    """Training frames as fit reads them: `read(index)` gives the frames at a tensor of
    indices as a float32 tensor [n, 2, L]; labels is a tensor [N]."""
    read: object
    labels: torch.Tensor

    def __len__(self):
        return len(self.labels)


def _frames(data, name):
    """_Frames of fit's `train_xy` or `val_xy`: a recording, or an (x, y) pair."""
    if hasattr(data, "batch"):
        labels = torch.as_tensor(np.asarray(data.labels), dtype=torch.long)
        if len(labels) == 0:
            raise ValueError(f"{name}: the recording has no frames")
        return _Frames(lambda index: torch.from_numpy(data.batch(index.numpy())), labels)
    x, y = _tensors(data, name)
    return _Frames(lambda index: x[index], y)


def _tensors(xy, name):
    try:
        x, y = xy
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (x, y)") from None
    x = torch.as_tensor(np.asarray(x, dtype=np.float32) if not torch.is_tensor(x) else x,
                        dtype=torch.float32)
    y = torch.as_tensor(np.asarray(y) if not torch.is_tensor(y) else y, dtype=torch.long)
    if x.ndim != 3 or x.shape[1] != 2 or y.shape != (len(x),) or len(x) == 0:
        raise ValueError(f"{name}: x must be [N, 2, L] and y [N] with N > 0, got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    return x, y


def _progress_bar(enabled, **kwargs):
    """A tqdm bar updated by hand, or None without progress output."""
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(dynamic_ncols=True, **kwargs)


# Checkpoints hold only tensors, dicts, lists and numbers, so they load with
# torch.load(weights_only=True): resuming never unpickles arbitrary objects.
def _save_checkpoint(path, model, optimizer, shuffle, config, state):
    checkpoint = {"format": CHECKPOINT_FORMAT, "config": dataclasses.asdict(config),
                  "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                  "rng": {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()},
                  **state}
    with artifacts.atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def _load_checkpoint(path, model, optimizer, shuffle, config, selection):
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for damaged archives
        raise ValueError(f"checkpoint {path} cannot be read ({str(err).splitlines()[0]})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {path} is not a gr-shapft training checkpoint")
    saved = dict(checkpoint["config"])
    wanted = dataclasses.asdict(config)
    saved.pop("epochs"), wanted.pop("epochs")  # more epochs may be asked of a resumed run
    if saved != wanted:
        changed = ", ".join(f"{k} {saved[k]!r} -> {wanted[k]!r}" for k in wanted if saved[k] != wanted[k])
        raise ValueError(f"checkpoint {path} was made with other settings ({changed}); "
                         "resume with the same settings or delete it")
    if checkpoint.get("selection") != selection:   # checkpoints before selection existed: None, val loss
        raise ValueError(f"checkpoint {path} was made selecting on {_criterion(checkpoint.get('selection'))}, "
                         f"not {_criterion(selection)}; resume with the same settings or delete it")
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as err:
        raise ValueError(f"checkpoint {path} does not fit this model ({str(err).splitlines()[0]})") from None
    optimizer.load_state_dict(checkpoint["optimizer"])
    torch.set_rng_state(checkpoint["rng"]["torch"])
    shuffle.set_state(checkpoint["rng"]["shuffle"])
    state = {k: checkpoint[k] for k in ("epoch", "history", "best_state", "best_epoch", "best_val_loss",
                                        "best_val_acc", "stale_epochs", "stopped_early")}
    return {**state, "best_score": checkpoint.get("best_score"), "selection": selection}


def _criterion(selection):
    return "the validation loss" if selection is None else f"robust validation accuracy {selection}"
