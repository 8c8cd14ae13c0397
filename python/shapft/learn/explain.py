"""SHAP values of frames by expected gradients (SHAP-FT paper, section III-C).

For a frame x, a background set and a class score f_c, the expected-gradients
attribution of input feature i is

    phi_i(x) = E_{x' ~ background, alpha ~ U(0, 1)} [ (x_i - x'_i) * df_c/dx_i (x' + alpha (x - x')) ]

estimated from `nsamples` (background row, alpha) draws per frame; its sum over the
features approaches f_c(x) - E[f_c(background)] (completeness).

Two engines compute it:

- `expected_gradients`, the vectorised engine: the interpolants of many frames are
  built as one tensor and go through ONE forward pass per batch, shared by every
  explained class, with one backward pass per explained class column. With the default
  `alphas="shap"` it makes exactly the draws `shap.GradientExplainer` makes for the
  same seed (see `shap_draws`), so the two engines agree to float precision.
- `shap_reference`, which calls `shap.GradientExplainer` itself: the reference.

Values are float64 shaped (N, 2, L, K): frame, I/Q, position, explained class column
(K = 11 for all classes; docs/formats.md). `save`/`load` read and write the
`.npz` of `shapft explain`.
"""
import dataclasses
import math
import warnings

import numpy as np
import torch

from ..core import artifacts
from ..models import device as model_device

OUTPUT_TRANSFORMS = ("logit", "softmax")
ALPHA_SCHEMES = ("shap", "stratified")
ENGINES = ("vectorised", "shap")
DEFAULT_BATCH_SIZE = 50  # interpolants per forward pass; small batches stay in cache
SHAP_BATCH_SIZE = 50  # shap.GradientExplainer's own default
NPZ_FORMAT = "shapft-shap-values/1"


@dataclasses.dataclass
class Draws:
    """What the estimator averages over, per frame j and sample k: the background row
    `background[j, k]` (int64 [N, nsamples]) and the interpolation point
    `alphas[j, k]` in [0, 1) (float64 [N, nsamples])."""
    background: np.ndarray
    alphas: np.ndarray


@dataclasses.dataclass
class ShapValues:
    """values: float64 [N, 2, L, K]; classes: int64 [N, K], the class explained in
    values[j, ..., c] is classes[j, c]; draws: the (background row, alpha) pairs used."""
    values: np.ndarray
    classes: np.ndarray
    draws: Draws


def shap_draws(n_frames, nsamples, n_background, seed):
    """The (background row, alpha) pairs `shap.GradientExplainer` (PyTorch) draws with rseed=seed.

    shap 0.49's `_PyTorchGradient.shap_values` calls `np.random.seed(rseed)` (again before
    each explained output, so every output sees the same draws), then for each frame j and
    each sample k in order calls `np.random.choice(n_background)`, then
    `np.random.uniform()`. Both consume 32-bit MT19937 words: `choice` takes words until
    (word & mask) < n_background, mask being the smallest 2^b - 1 >= n_background - 1 (no
    word at all when n_background == 1); `uniform` takes two words a, b and returns
    ((a >> 5) * 2^26 + (b >> 6)) / 2^53. Rejections make the pair boundaries a pointer
    chain through the word stream; it is resolved for all pairs at once by binary lifting
    instead of N * nsamples Python-level calls.
    """
    if n_background < 1 or n_background > 2**32:
        raise ValueError(f"n_background must be in 1..2^32, got {n_background}")
    count = n_frames * nsamples
    mask = (1 << (n_background - 1).bit_length()) - 1
    accept = n_background / (mask + 1)
    mean_words = 2 + (1 / accept if n_background > 1 else 0)
    n_words = int(count * mean_words + 8 * math.sqrt(count * (1 - accept)) / accept) + 64
    while True:
        # randint over the full uint32 range returns the raw generator words, one each
        words = np.random.RandomState(seed).randint(0, 2**32, size=n_words, dtype=np.uint32)
        words = words.astype(np.uint64)
        if n_background == 1:  # choice takes no word: "choice_at" is the word before the alpha's
            choice_at = np.arange(count, dtype=np.int64) * 2 - 1
        else:
            choice_at = _choice_positions(words & mask < n_background, count)
        if count == 0 or choice_at[-1] + 2 < n_words:
            break
        n_words *= 2
    rows = (words[choice_at] & mask).astype(np.int64) if n_background > 1 \
        else np.zeros(count, dtype=np.int64)
    high, low = words[choice_at + 1] >> np.uint64(5), words[choice_at + 2] >> np.uint64(6)
    alphas = (high.astype(np.float64) * 67108864.0 + low) / 9007199254740992.0
    return Draws(rows.reshape(n_frames, nsamples), alphas.reshape(n_frames, nsamples))


def _choice_positions(accepted, count):
    """Positions of the accepted `choice` words of the first `count` (choice, uniform) pairs.

    Pair s starts at word start_s; its choice word is the first accepted word at or after
    start_s, and the next pair starts 3 words later. start_s = step^s(0), evaluated for
    every s together by composing step^(2^b) over the bits of s. Positions past the end of
    the stream come out as len(accepted) (the caller then draws more words).
    """
    n_words = len(accepted)
    positions = np.arange(n_words + 1)
    first_accepted = np.where(np.append(accepted, True), positions, n_words)
    first_accepted = np.minimum.accumulate(first_accepted[::-1])[::-1]   # at or after each word
    jump = np.minimum(first_accepted + 3, n_words)                       # n_words absorbs
    pairs = np.arange(count)
    start = np.zeros(count, dtype=np.int64)
    for bit in range(max(count - 1, 0).bit_length()):
        odd = (pairs >> bit) & 1 == 1
        start[odd] = jump[start[odd]]
        jump = jump[jump]
    return first_accepted[start]


def draw(n_frames, nsamples, n_background, seed, alphas="shap"):
    """The estimator's draws. "shap": shap's own (`shap_draws`). "stratified": the same
    background rows, and sample k's alpha moved into the k-th of nsamples equal strata of
    [0, 1): alpha = (k + u) / nsamples with u shap's uniform, which covers the path evenly
    and lowers the variance for a given nsamples."""
    if alphas not in ALPHA_SCHEMES:
        raise ValueError(f"alphas must be one of {', '.join(ALPHA_SCHEMES)}, got {alphas!r}")
    draws = shap_draws(n_frames, nsamples, n_background, seed)
    if alphas == "stratified":
        draws.alphas = (np.arange(nsamples) + draws.alphas) / nsamples
    return draws


class Scores(torch.nn.Module):
    """The explained score of a classifier: its logits, or their softmax.

    A plain nn.Module around the (possibly TorchScript) model, which is what
    shap.GradientExplainer takes."""

    def __init__(self, model, output="softmax"):
        super().__init__()
        if output not in OUTPUT_TRANSFORMS:
            raise ValueError(f"output must be one of {', '.join(OUTPUT_TRANSFORMS)}, got {output!r}")
        self.model = model
        self.softmax = output == "softmax"

    def forward(self, x):
        logits = self.model(x)
        return torch.softmax(logits, dim=1) if self.softmax else logits


def predicted_classes(model, frames, batch_size=DEFAULT_BATCH_SIZE):
    """argmax of the model's logits per frame (int64 [N])."""
    model.eval()
    frames = _as_tensor(frames, "frames", model_device.of(model))
    with torch.no_grad():
        return torch.cat([model(chunk).argmax(dim=1) for chunk in frames.split(batch_size)]).cpu().numpy()


def expected_gradients(model, background, frames, outputs="all", nsamples=200, seed=0,
                       output="softmax", alphas="shap", batch_size=DEFAULT_BATCH_SIZE, progress=False):
    """Expected-gradients SHAP values of `frames`, vectorised.

    model: takes float32 [B, 2, L], returns logits [B, C] (put in eval mode, as shap does).
    background, frames: float32 [M, 2, L] and [N, 2, L] (numpy or torch).
    outputs: which class scores to explain: "all" (K = C, in class order), "predicted"
      (each frame's argmax, K = 1), a 1-D sequence of class indices (the same for every
      frame), or an int array [N, K] of class indices per frame (e.g. `labels[:, None]`
      for the true class: what the negative-point mask needs).
    output: the score whose gradient is taken: "softmax" (the paper's: its Keras network
      ends in a softmax layer, so shap explained probabilities) or "logit".
    alphas: "shap" (shap's draws exactly) or "stratified" (see `draw`).
    batch_size: interpolants per forward pass; memory grows with it.

    Every batch of interpolants goes through one forward pass; each explained class column
    then costs one backward pass (a per-frame selection is one column whatever the class).
    The passes run on the model's device; the float64 sums are kept on the CPU.
    """
    device = model_device.of(model)
    background, frames = _as_tensor(background, "background", device), _as_tensor(frames, "frames", device)
    if background.shape[1:] != frames.shape[1:]:
        raise ValueError(f"frames are shaped {tuple(frames.shape[1:])} but the background is "
                         f"shaped {tuple(background.shape[1:])}")
    if nsamples < 1:
        raise ValueError(f"nsamples must be >= 1, got {nsamples}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    scores = Scores(model, output).eval()
    classes = _explained_classes(model, outputs, background, frames)
    draws = draw(len(frames), nsamples, len(background), seed, alphas)

    frame_of = torch.arange(len(frames)).repeat_interleave(nsamples)
    rows = torch.from_numpy(draws.background.reshape(-1)).to(device)
    alpha = torch.from_numpy(draws.alphas.reshape(-1)).to(device)
    classes_t = torch.from_numpy(classes).to(device)
    sums = torch.zeros((len(frames), classes.shape[1]) + tuple(frames.shape[1:]), dtype=torch.float64)
    count = len(frame_of)
    with _progress_bar(count, progress, "expected gradients", "interpolants") as bar:
        for start in range(0, count, batch_size):
            batch = slice(start, min(start + batch_size, count))
            on_device = frame_of[batch].to(device)
            frame, base = frames[on_device], background[rows[batch]]
            a = alpha[batch].view(-1, 1, 1)
            # shap's float32 arithmetic: t * x + (1 - t) * x', (1 - t) taken in float64
            interpolants = (a.float() * frame + (1 - a).float() * base).requires_grad_()
            delta = (frame - base).cpu().double()   # float64 on the CPU: not every device has it
            score = scores(interpolants)
            for column in range(classes.shape[1]):
                chosen = score.gather(1, classes_t[on_device, column].unsqueeze(1)).sum()
                grad, = torch.autograd.grad(chosen, interpolants,
                                            retain_graph=column + 1 < classes.shape[1])
                sums[:, column].index_add_(0, frame_of[batch], grad.cpu().double() * delta)
            bar.update(batch.stop - batch.start)
    values = (sums / nsamples).permute(0, 2, 3, 1).contiguous().numpy()
    return ShapValues(values, classes, draws)


def shap_reference(model, background, frames, nsamples=200, seed=0, output="softmax", outputs="all",
                   batch_size=SHAP_BATCH_SIZE, progress=False):
    """The same estimate from `shap.GradientExplainer` itself (the reference engine).

    outputs as in `expected_gradients`. shap explains either all outputs or, with
    ranked_outputs, each frame's top ones, so "predicted" uses ranked_outputs=1 and any
    other selection is cut from shap's all-output result (costing all C outputs)."""
    with warnings.catch_warnings():  # shap's plotting colour maps warn about matplotlib on import
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap

    device = model_device.of(model)
    background, frames = _as_tensor(background, "background", device), _as_tensor(frames, "frames", device)
    if background.shape[1:] != frames.shape[1:]:
        raise ValueError(f"frames are shaped {tuple(frames.shape[1:])} but the background is "
                         f"shaped {tuple(background.shape[1:])}")
    model.eval()  # as shap's explainer does, before the checks below run the model
    classes = _explained_classes(model, outputs, background, frames)
    n_classes = _class_count(model, background)
    ranked = isinstance(outputs, str) and outputs == "predicted"
    # one bar step per forward call: the explainer's check on the background (and, ranking,
    # its scoring of the frames), then per explained output, frame and batch of samples
    explained = 1 if ranked else n_classes
    calls = (2 if ranked else 1) + explained * len(frames) * math.ceil(nsamples / batch_size)
    with _progress_bar(calls, progress, "shap.GradientExplainer", "batches") as bar:
        explainer = shap.GradientExplainer(_Counted(Scores(model, output), bar), background,
                                           batch_size=batch_size)
        if ranked:
            values, ranks = explainer.shap_values(frames, nsamples=nsamples, ranked_outputs=1,
                                                  rseed=seed)
            if not np.array_equal(np.asarray(ranks), classes):
                raise RuntimeError("shap's top-ranked outputs differ from the model's argmax")
        else:
            values = explainer.shap_values(frames, nsamples=nsamples, rseed=seed)
            values = np.take_along_axis(values, classes[:, None, None, :], axis=3)
    return ShapValues(np.asarray(values, dtype=np.float64), classes,
                      shap_draws(len(frames), nsamples, len(background), seed))


class _Counted(torch.nn.Module):
    """Advances a progress bar on every forward call (shap has no progress reporting)."""

    def __init__(self, model, bar):
        super().__init__()
        self.model = model
        self.bar = bar

    def forward(self, x):
        self.bar.update(1)
        return self.model(x)


def _progress_bar(total, enabled, description, unit):
    from tqdm import tqdm
    return tqdm(total=total, disable=not enabled, desc=description, unit=f" {unit}",
                unit_scale=True, dynamic_ncols=True)


def _as_tensor(array, name, device):
    """float32 frames [N, 2, L] on `device` from numpy or torch; a bad shape names `name`."""
    tensor = torch.as_tensor(np.asarray(array, dtype=np.float32)) if not torch.is_tensor(array) \
        else array.detach().float()
    tensor = tensor.to(device)
    if tensor.ndim != 3 or tensor.shape[1] != 2:
        raise ValueError(f"{name} must be shaped [N, 2, L], got {tuple(tensor.shape)}")
    if len(tensor) == 0:
        raise ValueError(f"{name} is empty")
    return tensor.contiguous()


def _class_count(model, background):
    with torch.no_grad():
        return int(model(background[:1]).shape[1])


def _explained_classes(model, outputs, background, frames):
    """The int64 [N, K] class matrix an `outputs` argument stands for."""
    n_classes, n_frames = _class_count(model, background), len(frames)
    if isinstance(outputs, str):
        if outputs == "all":
            return np.tile(np.arange(n_classes), (n_frames, 1))
        if outputs == "predicted":
            return predicted_classes(model, frames)[:, None]
        raise ValueError(f"outputs must be 'all', 'predicted' or class indices, got {outputs!r}")
    classes = np.asarray(outputs)
    if classes.ndim == 1:
        classes = np.tile(classes, (n_frames, 1))
    if classes.ndim != 2 or classes.shape[0] != n_frames or classes.shape[1] < 1:
        raise ValueError(f"outputs must list class indices or be shaped [N={n_frames}, K], "
                         f"got shape {np.asarray(outputs).shape}")
    if not np.issubdtype(classes.dtype, np.integer) or classes.min() < 0 or classes.max() >= n_classes:
        raise ValueError(f"outputs must be class indices in 0..{n_classes - 1}, "
                         f"got {np.unique(classes)[:8]}")
    return classes.astype(np.int64)


# --- the .npz of `shapft explain` ----------------------------------------------------------

NPZ_ARRAYS = {
    "shap_values": "float64 [N, 2, L, K]: frame, I/Q, position, explained class column",
    "frame_indices": "int64 [N]: the explained frames' indices in the data recording",
    "background_indices": "int64 [M]: the background frames' indices in the background recording",
    "output_classes": "int64 [N, K]: the class explained in shap_values[j, ..., c]",
    "labels": "int64 [N]: the explained frames' true classes",
    "predicted": "int64 [N]: the model's argmax on the explained frames",
    "class_names": "str [C]: the model's classes",
    "draw_background": "int64 [N, nsamples]: per draw, a row of background_indices",
    "draw_alphas": "float64 [N, nsamples]: per draw, the interpolation point",
    "invalid_indices": "int64 [S]: data frames not explained, invalid (NaN, Inf or all zero)",
    "invalid_reasons": "str [S]: why each was invalid: nan, inf or zero",
    "background_invalid_indices": "int64 [T]: background frames never drawn, invalid",
    "background_invalid_reasons": "str [T]: why each was invalid",
}
# Absent from files written before invalid frames were recorded: read as empty.
NPZ_OPTIONAL_ARRAYS = ("invalid_indices", "invalid_reasons", "background_invalid_indices",
                       "background_invalid_reasons")
NPZ_FIELDS = ("format", "engine", "outputs", "output", "alphas", "nsamples", "seed",
              "model_sha256", "data_sha256", "background_sha256")


def save(path, result, *, frame_indices, background_indices, labels, predicted, class_names,
         engine, outputs, output, alphas, nsamples, seed, model_sha256, data_sha256,
         background_sha256, invalid=None, background_invalid=None):
    """Write a ShapValues and its provenance as `.npz`, atomically (keys: NPZ_ARRAYS, NPZ_FIELDS).
    data_sha256/background_sha256 are the sha256 of the recordings' .sigmf-data files;
    invalid/background_invalid ({index: 'nan' | 'inf' | 'zero'}) the frames of each
    recording left out as invalid."""
    n_frames = len(result.values)
    invalid, background_invalid = dict(invalid or {}), dict(background_invalid or {})
    arrays = {
        "shap_values": result.values,
        "frame_indices": np.asarray(frame_indices, dtype=np.int64),
        "background_indices": np.asarray(background_indices, dtype=np.int64),
        "output_classes": result.classes,
        "labels": np.asarray(labels, dtype=np.int64),
        "predicted": np.asarray(predicted, dtype=np.int64),
        "class_names": np.asarray(class_names, dtype=str),
        "draw_background": result.draws.background,
        "draw_alphas": result.draws.alphas,
        "invalid_indices": np.asarray(sorted(invalid), dtype=np.int64),
        "invalid_reasons": np.asarray([invalid[i] for i in sorted(invalid)], dtype=str),
        "background_invalid_indices": np.asarray(sorted(background_invalid), dtype=np.int64),
        "background_invalid_reasons": np.asarray([background_invalid[i] for i in sorted(background_invalid)],
                                                 dtype=str),
    }
    for name in ("frame_indices", "labels", "predicted"):
        if arrays[name].shape != (n_frames,):
            raise ValueError(f"{name} must have one entry per explained frame ({n_frames}), "
                             f"got shape {arrays[name].shape}")
    fields = {"format": NPZ_FORMAT, "engine": engine, "outputs": outputs, "output": output,
              "alphas": alphas, "nsamples": int(nsamples), "seed": int(seed),
              "model_sha256": model_sha256, "data_sha256": data_sha256,
              "background_sha256": background_sha256}
    with artifacts.atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays, **{name: np.asarray(value) for name, value in fields.items()})
    return path


def load(path):
    """Read and check an explain `.npz`: a dict of its arrays (NPZ_ARRAYS) and fields
    (NPZ_FIELDS, as Python str/int)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            content = {name: npz[name] for name in npz.files}
    except (OSError, ValueError) as err:
        raise ValueError(f"SHAP values file {path}: cannot be read ({err})") from None
    for name in NPZ_OPTIONAL_ARRAYS:
        if name not in content:
            content[name] = np.zeros(0, dtype=np.int64 if name.endswith("indices") else str)
    missing = [name for name in (*NPZ_ARRAYS, *NPZ_FIELDS) if name not in content]
    if missing:
        raise ValueError(f"SHAP values file {path}: lacks {', '.join(missing)}")
    for name in NPZ_FIELDS:
        content[name] = content[name].item()
    if content["format"] != NPZ_FORMAT:
        raise ValueError(f"SHAP values file {path}: format {content['format']!r}, expected {NPZ_FORMAT}")
    values = content["shap_values"]
    n_frames = len(content["frame_indices"])
    if values.ndim != 4 or values.shape[0] != n_frames or values.shape[1] != 2 \
            or content["output_classes"].shape != (n_frames, values.shape[3]):
        raise ValueError(f"SHAP values file {path}: shap_values shaped {values.shape} does not fit "
                         f"{n_frames} frames and output_classes {content['output_classes'].shape}")
    return content
