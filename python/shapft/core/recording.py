"""Frame recordings as SigMF (docs/formats.md).

A recording is one `.sigmf-data` of cf32_le frames back to back and a `.sigmf-meta`
with one annotation per frame (`core:sample_start`, `core:sample_count`, `core:label`
= class name, `shapft:snr_db`). Files of one split share a base name:
`DIR/<split>.sigmf-meta` + `DIR/<split>.sigmf-data`.
"""
import contextlib
import dataclasses
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import sigmf
from sigmf import keys as sk
from sigmf.error import SigMFError

from . import artifacts
from .radioml import CLASSES, SAMPLE_RATE_HZ

SHAPFT_EXTENSION = {"name": "shapft", "version": "1.0.0", "optional": True}
META_SUFFIX = ".sigmf-meta"
DATA_SUFFIX = ".sigmf-data"


@dataclasses.dataclass
class Recording:
    """Frames with their labels and SNRs.

    frames: complex64 [N, L]; labels: int64 [N] indices into CLASSES;
    snr_db: float32 [N]; info: the recording's `shapft:*` global fields
    (without the namespace prefix), e.g. how it was generated or attacked.
    """
    frames: np.ndarray
    labels: np.ndarray
    snr_db: np.ndarray
    info: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.frames = np.ascontiguousarray(self.frames, dtype=np.complex64)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.snr_db = np.asarray(self.snr_db, dtype=np.float32)
        if self.frames.ndim != 2:
            raise ValueError(f"frames must be shaped [N, L], got {self.frames.shape}")
        n = len(self.frames)
        if self.labels.shape != (n,) or self.snr_db.shape != (n,):
            raise ValueError(f"{n} frames need {n} labels and SNRs, got {self.labels.shape} "
                             f"and {self.snr_db.shape}")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(CLASSES)):
            raise ValueError("labels must index CLASSES (0..10)")

    def __len__(self):
        return len(self.frames)

    @property
    def frame_length(self):
        return self.frames.shape[1]

    def model_input(self):
        """float32 [N, 2, L], I then Q: what every model takes."""
        return to_model_input(self.frames)

    def subset(self, index):
        return Recording(self.frames[index], self.labels[index], self.snr_db[index], dict(self.info))


# --- invalid frames: one rule for the blocks (blocks/runtime.py) and every command ------

INVALID_REASONS = ("nan", "inf", "zero")
INVALID_FRAME_POLICIES = ("skip", "error")
_REASON_TEXT = {"nan": "NaN samples", "inf": "infinite samples", "zero": "all samples zero"}


def frame_validity(frames):
    """(valid: bool per frame; {index: 'nan', 'inf' or 'zero'} for the others).

    One pass computes each frame's energy: NaN or Inf when a sample is, 0 when all
    are 0. Overflow (|x| > 1e19) or underflow (|x| < 1e-23) can flag a good frame
    there, so flagged frames get the exact test, which also names the reason."""
    samples = np.ascontiguousarray(frames, dtype=np.complex64).view(np.float32)
    energy = np.einsum("ij,ij->i", samples, samples)
    valid = np.isfinite(energy) & (energy > 0)
    reasons = {}
    for i in np.flatnonzero(~valid):
        frame = frames[i]
        if np.isnan(frame).any():
            reasons[int(i)] = "nan"
        elif np.isinf(frame).any():
            reasons[int(i)] = "inf"
        elif not frame.any():
            reasons[int(i)] = "zero"
        else:
            valid[i] = True
    return valid, reasons


@dataclasses.dataclass
class FrameCheck:
    """Which frames of a recording were kept and which were invalid (frame_validity)."""
    total: int
    kept: np.ndarray     # int64 indices of the valid frames, ascending
    reasons: dict        # {index: 'nan' | 'inf' | 'zero'} of the invalid frames

    @classmethod
    def from_indices(cls, indices, total=None, kept=()):
        """The FrameCheck of an `invalid_frame_indices` object ({reason: [indices]})."""
        reasons = {int(i): reason for reason, found in indices.items() for i in found}
        kept = np.asarray(kept, dtype=np.int64)
        return cls(len(kept) + len(reasons) if total is None else total, kept, reasons)

    @property
    def invalid(self):
        return len(self.reasons)

    def counts(self):
        """{'nan': n, 'inf': n, 'zero': n}: the `frames_invalid` of results files."""
        return {reason: sum(r == reason for r in self.reasons.values()) for reason in INVALID_REASONS}

    def indices(self):
        """{'nan': [indices], 'inf': [...], 'zero': [...]}: the `invalid_frame_indices`."""
        return {reason: sorted(i for i, r in self.reasons.items() if r == reason)
                for reason in INVALID_REASONS}

    def as_json(self):
        return {"frames_invalid": self.counts(), "invalid_frame_indices": self.indices()}

    def describe(self, what="skipped"):
        """'2 invalid frames skipped (nan 1, inf 0, zero 1: frames 3, 9)'; '' when none."""
        if not self.reasons:
            return ""
        counts = ", ".join(f"{reason} {count}" for reason, count in self.counts().items())
        shown = sorted(self.reasons)
        listed = ", ".join(map(str, shown[:10])) + (", ..." if len(shown) > 10 else "")
        plural = "s" if len(shown) > 1 else ""
        return f"{len(shown)} invalid frame{plural} {what} ({counts}: frame{plural} {listed})"


def check_frames(rec, policy="skip", source="recording"):
    """The valid frames of `rec` and the FrameCheck that says which were left out.

    Frames with a NaN or infinite sample, or with every sample zero, are invalid (the
    rule the blocks apply). policy "skip" leaves them out; "error" refuses the first one
    with its index. A recording without any valid frame is refused either way. `source`
    names the input in errors (e.g. "--data REC")."""
    if policy not in INVALID_FRAME_POLICIES:
        raise ValueError(f"--invalid-frames must be one of {', '.join(INVALID_FRAME_POLICIES)}, "
                         f"got {policy!r}")
    valid, reasons = frame_validity(rec.frames)
    check = FrameCheck(len(rec), np.flatnonzero(valid).astype(np.int64), reasons)
    if reasons and policy == "error":
        first = min(reasons)
        more = f" ({check.invalid} invalid frames in all)" if check.invalid > 1 else ""
        raise ValueError(f"{source}: frame {first} is invalid, {_REASON_TEXT[reasons[first]]}{more}; "
                         "--invalid-frames skip leaves such frames out")
    if len(rec) and not len(check.kept):
        raise ValueError(f"{source}: all {len(rec)} frames are invalid "
                         f"({', '.join(f'{k} {v}' for k, v in check.counts().items())})")
    return (rec if not reasons else rec.subset(check.kept)), check


def condition(rec):
    """How a recording's frames were made, for reports: 'clean', or 'as recorded (FGSM
    eps 0.05 (PSR -23.0 dB), untargeted, against cnn_lstm.pt)' for an attacked one."""
    attack = rec.info.get("attack")
    if not isinstance(attack, dict) or "method" not in attack or "eps" not in attack:
        return "clean"
    from . import budget
    norm = attack.get("norm", "linf")
    text = f"{attack['method'].upper()} {budget.describe(attack['eps'], norm, rec.frame_length)}"
    if "targeted" in attack:
        text += ", targeted" if attack["targeted"] else ", untargeted"
    if attack.get("model"):
        text += f", against {Path(attack['model']).name}"
    return f"as recorded ({text})"


def to_model_input(frames):
    # One pass over the samples (I/Q pairs transposed into rows), not one per component.
    frames = np.ascontiguousarray(frames, dtype=np.complex64)
    n, length = frames.shape
    return np.ascontiguousarray(frames.view(np.float32).reshape(n, length, 2).transpose(0, 2, 1))


def from_model_input(x):
    x = np.asarray(x, dtype=np.float32)
    frames = np.empty((x.shape[0], x.shape[2]), np.complex64)
    frames.real, frames.imag = x[:, 0], x[:, 1]  # no complex128 intermediate
    return frames


def paths(base):
    """(meta, data) paths of a recording given its base path, meta or data path."""
    base = str(base)
    for suffix in (META_SUFFIX, DATA_SUFFIX):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return Path(base + META_SUFFIX), Path(base + DATA_SUFFIX)


def exists(base):
    meta, data = paths(base)
    return meta.exists() or data.exists()


def write(base, recording, description, overwrite=False):
    """Write `recording` as a SigMF pair at `base`, validated by the sigmf library.

    Both files are written beside their places first, then renamed into place
    together (data, then meta; Ctrl-C waits for both), so an interrupt leaves the
    new pair or the old one, never a mixed pair or a lone data file. The output is
    byte-for-byte reproducible: no timestamps are recorded.
    """
    meta_path, data_path = paths(base)
    if not overwrite and (meta_path.exists() or data_path.exists()):
        raise FileExistsError(f"{meta_path} exists; pass --force to overwrite it")
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(meta_path.parent, os.W_OK):
        raise PermissionError(f"output directory {meta_path.parent} is not writable")
    length = recording.frame_length
    global_info = {
        sk.DATATYPE_KEY: "cf32_le",
        sk.SAMPLE_RATE_KEY: SAMPLE_RATE_HZ,
        sk.VERSION_KEY: sigmf.__specification__,
        sk.DESCRIPTION_KEY: description,
        sk.RECORDER_KEY: "gr-shapft",
        sk.EXTENSIONS_KEY: [dict(SHAPFT_EXTENSION)],
        "shapft:frame_length": length,
        "shapft:classes": list(CLASSES),
    }
    global_info.update({f"shapft:{k}": v for k, v in recording.info.items()})
    annotations = [
        {sk.SAMPLE_START_KEY: i * length, sk.SAMPLE_COUNT_KEY: length,
         sk.LABEL_KEY: CLASSES[label], "shapft:snr_db": float(snr)}
        for i, (label, snr) in enumerate(zip(recording.labels.tolist(), recording.snr_db.tolist()))
    ]
    metadata = {"global": global_info, "captures": [{sk.SAMPLE_START_KEY: 0}],
                "annotations": annotations}
    with artifacts.atomic_paths(data_path, meta_path) as (tmp_data, tmp_meta):
        recording.frames.astype("<c8").tofile(tmp_data)
        handle = sigmf.SigMFFile(metadata=metadata, data_file=tmp_data)  # fills core:sha512
        handle.validate()
        ordered = handle.ordered_metadata()
        ordered["global"].pop(sk.DATASET_KEY, None)  # names the temporary file; the pair needs none
        tmp_meta.write_text(json.dumps(ordered, indent=2) + "\n")
    return meta_path


def read(base):
    """Read and check a recording: the data file's size must match the annotations,
    sigmf parses it and verifies `core:sha512`; every annotation must cover exactly one
    frame, in order, with a known class."""
    meta_path, data_path = paths(base)
    if Path(str(base)).is_dir():
        raise IsADirectoryError(f"{base}: is a directory; give a .sigmf-meta recording")
    if not meta_path.exists():
        raise FileNotFoundError(f"no SigMF recording at {meta_path}")
    if not data_path.is_file():
        raise FileNotFoundError(f"{meta_path}: its data file {data_path.name} is missing")
    _check_data_size(meta_path, data_path)
    try:
        with _quiet_sigmf():
            handle = sigmf.fromfile(str(meta_path))
            handle.validate()
    except (SigMFError, ValueError, json.JSONDecodeError) as err:
        raise ValueError(f"{meta_path}: not a valid SigMF recording ({err})") from None
    datatype = handle.get_global_field(sk.DATATYPE_KEY)
    if datatype != "cf32_le":
        raise ValueError(f"{meta_path}: datatype {datatype!r}, expected cf32_le")
    annotations = handle.get_annotations()
    if not annotations:
        raise ValueError(f"{meta_path}: no frame annotations")
    length = int(annotations[0][sk.SAMPLE_COUNT_KEY])
    starts = np.array([a[sk.SAMPLE_START_KEY] for a in annotations])
    counts = np.array([a.get(sk.SAMPLE_COUNT_KEY, -1) for a in annotations])
    if np.any(counts != length) or np.any(starts != np.arange(len(annotations)) * length):
        raise ValueError(f"{meta_path}: annotations must be back-to-back frames of {length} samples")
    try:
        labels = np.array([CLASSES.index(a[sk.LABEL_KEY]) for a in annotations])
    except (KeyError, ValueError):
        raise ValueError(f"{meta_path}: every annotation needs a core:label from {CLASSES}") from None
    snr = np.array([a.get("shapft:snr_db", np.nan) for a in annotations], dtype=np.float32)
    samples = np.fromfile(data_path, dtype="<c8")
    if samples.size != len(annotations) * length:
        raise ValueError(f"{data_path}: {samples.size} samples, annotations describe "
                         f"{len(annotations) * length}")
    info = {k.split(":", 1)[1]: v for k, v in handle.get_global_info().items()
            if k.startswith("shapft:") and k not in ("shapft:frame_length", "shapft:classes")}
    return Recording(samples.reshape(-1, length), labels, snr, info)


def _check_data_size(meta_path, data_path):
    """Compare the data file's size with what the annotations describe, before sigmf's
    checks: a truncated file would otherwise be reported as a hash mismatch. Metadata
    this cannot parse is left for sigmf to report."""
    try:
        annotations = json.loads(meta_path.read_text()).get("annotations") or []
        described = max(int(a[sk.SAMPLE_START_KEY]) + int(a[sk.SAMPLE_COUNT_KEY]) for a in annotations)
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError):
        return
    size = data_path.stat().st_size
    samples, remainder = divmod(size, np.dtype("<c8").itemsize)
    if samples < described:
        raise ValueError(f"{data_path}: truncated: {samples} samples, annotations describe {described}")
    if remainder:
        raise ValueError(f"{data_path}: {size} bytes, not a whole number of 8-byte cf32_le samples")
    if samples > described:
        raise ValueError(f"{data_path}: {samples} samples, annotations describe {described}")


@contextlib.contextmanager
def _quiet_sigmf():
    # sigmf warns (warnings and its loggers) before it raises; we report the problem ourselves
    loggers = [logging.getLogger("sigmf")] + [logging.getLogger(name) for name in
                                               list(logging.root.manager.loggerDict)
                                               if name.startswith("sigmf.")]
    disabled = [logger.disabled for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.disabled = True
        try:
            yield
        finally:
            for logger, was in zip(loggers, disabled):
                logger.disabled = was


def data_sha256(base):
    """sha256 of a recording's .sigmf-data (provenance of models and masks)."""
    return artifacts.sha256_file(paths(base)[1])


def read_splits(data_dir, required=("train", "val", "test"), optional=(), option="--data"):
    """The named splits of a dataset directory (DIR/<split>.sigmf-meta) and their
    provenance digests: ({split: Recording}, {split: {path, meta_sha256, data_sha256}}).
    A missing required split, or splits of different frame lengths, is a ValueError."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise NotADirectoryError(f"{option} {data_dir}: not a directory")
    splits, digests = {}, {}
    for name in (*required, *optional):
        meta, data = paths(data_dir / name)
        if not meta.exists():
            if name in optional:
                continue
            raise FileNotFoundError(f"{option} {data_dir}: no {meta.name} (need {', '.join(required)} splits)")
        splits[name] = read(meta)
        digests[name] = {"path": str(meta), "meta_sha256": artifacts.sha256_file(meta),
                         "data_sha256": artifacts.sha256_file(data)}
    lengths = {name: split.frame_length for name, split in splits.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{option} {data_dir}: splits have different frame lengths {lengths}")
    return splits, digests
