"""Universal perturbation files (docs/formats.md): a `.npz` without pickles holding
`format`, the perturbation float32 [2, L] and its `info` JSON (at least the budget it
keeps: `norm` and `eps`). `shapft uap` writes them, the fgsm_injector block's method
'uap' adds them to a stream, and GNU Radio Companion sizes that block's ports from them,
so this module needs numpy only.
"""
import dataclasses
import json
import math
import zipfile

import numpy as np

from .. import __version__
from . import artifacts, budget

FORMAT = "shapft-uap/1"
METHOD = "uap"
_BUDGET_SLACK = 1e-6      # what load() allows a hand-written file beyond its eps (float32 rounding)


@dataclasses.dataclass(frozen=True)
class Universal:
    """A universal perturbation as the injector adds it: the array, its file's info,
    and whether each frame gets it at a random circular shift."""
    perturbation: np.ndarray   # float32 [2, L]
    info: dict
    random_shift: bool = False
    name = METHOD

    @property
    def norm(self):
        return self.info["norm"]

    @property
    def eps(self):
        return float(self.info["eps"])

    @property
    def frame_length(self):
        return self.perturbation.shape[1]

    @property
    def psr_db(self):
        return budget.eps_to_psr_db(self.eps, self.norm, self.frame_length)

    def describe(self):
        """'UAP (linf) eps 0.05 (PSR -23.0 dB), computed over random shifts, added at a
        random shift per frame' (the shift parts only when they apply)."""
        parts = [f"UAP ({self.norm}) {budget.describe(self.eps, self.norm, self.frame_length)}"]
        if self.info.get("random_shift"):
            parts.append("computed over random shifts")
        if self.random_shift:
            parts.append("added at a random shift per frame")
        return ", ".join(parts)


def save(path, perturbation, info):
    """Write a perturbation [2, L] and its info (a JSON-serialisable dict with at least
    `norm` and `eps`, the budget it keeps) as a `.npz`, atomically (docs/formats.md).
    `method`, `psr_db`, `frame_length` and `shapft_version` are filled in; returns the
    info as written."""
    perturbation = np.asarray(perturbation, dtype=np.float32)
    if not isinstance(info, dict):
        raise ValueError(f"info: must be a dict, got {type(info).__name__}")
    info = dict(info)
    _check(perturbation, info, "perturbation")
    psr_db = budget.eps_to_psr_db(float(info["eps"]), info["norm"], perturbation.shape[1])
    info.update(method=METHOD, psr_db=psr_db if math.isfinite(psr_db) else None,
                frame_length=perturbation.shape[1], shapft_version=__version__)
    try:
        text = json.dumps(info, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"info: not JSON-serialisable ({err})") from None
    with artifacts.atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, format=np.asarray(FORMAT), perturbation=perturbation, info=np.asarray(text))
    return info


def load(path):
    """(perturbation float32 [2, L], info dict) from a file save() wrote; a ValueError
    naming the path for anything else (FileNotFoundError when there is no file)."""
    try:
        npz = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"perturbation file {path}: not a .npz perturbation file ({err})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):   # a bare .npy array
        raise ValueError(f"perturbation file {path}: a .npy array, not a .npz perturbation file")
    try:
        with npz:
            content = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"perturbation file {path}: cannot be read ({err})") from None
    missing = [name for name in ("format", "perturbation", "info") if name not in content]
    if missing:
        raise ValueError(f"perturbation file {path}: lacks {', '.join(missing)}")
    if content["format"].shape != () or content["format"].item() != FORMAT:
        raise ValueError(f"perturbation file {path}: format {content['format']!r}, expected {FORMAT}")
    try:
        info = json.loads(str(content["info"].item()))
    except ValueError as err:
        raise ValueError(f"perturbation file {path}: info is not JSON ({err})") from None
    perturbation = content["perturbation"]
    if perturbation.dtype != np.float32:
        raise ValueError(f"perturbation file {path}: perturbation is {perturbation.dtype}, expected float32")
    _check(perturbation, info, f"perturbation file {path}", slack=_BUDGET_SLACK)
    return perturbation, info


def _check(perturbation, info, source, slack=0.0):
    """Refuse a perturbation that is not finite [2, L], or info without a valid budget
    that the perturbation keeps (up to `slack`, relative)."""
    if perturbation.ndim != 2 or perturbation.shape[0] != 2 or perturbation.shape[1] < 1:
        raise ValueError(f"{source}: shaped {perturbation.shape}, expected [2, L]")
    if not np.isfinite(perturbation).all():
        raise ValueError(f"{source}: has non-finite values")
    if not isinstance(info, dict):
        raise ValueError(f"{source}: info must be a JSON object, got {type(info).__name__}")
    if info.get("norm") not in budget.NORMS:
        raise ValueError(f"{source}: info norm {info.get('norm')!r} is not one of {', '.join(budget.NORMS)}")
    eps = info.get("eps")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"{source}: info eps {eps!r} is not a finite number >= 0")
    values = perturbation.astype(np.float64)
    size = np.abs(values).max() if info["norm"] == "linf" else np.sqrt(np.sum(values ** 2))
    if size > eps * (1 + slack):
        raise ValueError(f"{source}: its {info['norm']} size {size:.6g} exceeds its eps {eps:g}")
