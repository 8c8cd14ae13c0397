"""Frame recordings as SigMF (docs/formats.md).

A recording is one `.sigmf-data` of cf32_le frames back to back and a `.sigmf-meta`
whose annotations each cover a run of consecutive frames of one class and SNR
(`core:sample_start`, `core:sample_count` = k frames of `shapft:frame_length`
samples, `core:label` = class name, `shapft:snr_db`); recordings written with one
annotation per frame read the same. Files of one split share a base name:
`DIR/<split>.sigmf-meta` + `DIR/<split>.sigmf-data`.

`read` loads every frame (a Recording). `open_frames` checks the data file in one
streamed pass and then reads frames a batch at a time (a FrameFile), so a recording of
any size is trained on, evaluated or attacked in bounded memory; both answer
`batch(index)` with model input. `writer` writes a recording as its frames come.
"""
import contextlib
import dataclasses
import hashlib
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

    def read_frames(self, index):
        """complex64 [n, L]: the frames at `index` (integer indices)."""
        return self.frames[np.asarray(index, dtype=np.int64)]

    def batch(self, index):
        """float32 [n, 2, L]: model input of the frames at `index` (as FrameFile.batch)."""
        return to_model_input(self.read_frames(index))

    def validity(self):
        """frame_validity of the frames."""
        return frame_validity(self.frames)


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
    """The valid frames of `rec` (a Recording or a FrameFile, which answers from the pass
    that opened it) and the FrameCheck that says which were left out.

    Frames with a NaN or infinite sample, or with every sample zero, are invalid (the
    rule the blocks apply). policy "skip" leaves them out; "error" refuses the first one
    with its index. A recording without any valid frame is refused either way. `source`
    names the input in errors (e.g. "--data REC")."""
    if policy not in INVALID_FRAME_POLICIES:
        raise ValueError(f"--invalid-frames must be one of {', '.join(INVALID_FRAME_POLICIES)}, "
                         f"got {policy!r}")
    valid, reasons = rec.validity()
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
    """Write `recording` as a SigMF pair at `base` (see `writer`); returns the meta path."""
    with writer(base, recording.frame_length, description, recording.info, overwrite) as out:
        out.append(recording.frames, recording.labels, recording.snr_db)
    return out.meta_path


@contextlib.contextmanager
def writer(base, frame_length, description, info=None, overwrite=False):
    """A new recording at `base`, written as its frames come: yields a FrameWriter whose
    `append(frames, labels, snr_db)` adds frames to the data file; its `info` (the
    `shapft:*` global fields) may be changed until the block ends.

    On leaving the block the metadata is written, one annotation per run of frames of
    one class and SNR, checked by the sigmf library, and the pair renamed into place
    together (data, then meta; Ctrl-C waits for both). An exception in the block
    leaves the old pair, or none, never a mixed pair or a lone data file. The output
    is byte-for-byte reproducible: no timestamps are recorded.
    """
    meta_path, data_path = paths(base)
    if not overwrite and (meta_path.exists() or data_path.exists()):
        raise FileExistsError(f"{meta_path} exists; pass --force to overwrite it")
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(meta_path.parent, os.W_OK):
        raise PermissionError(f"output directory {meta_path.parent} is not writable")
    with artifacts.atomic_paths(data_path, meta_path) as (tmp_data, tmp_meta):
        with open(tmp_data, "wb") as data_file:
            out = FrameWriter(data_file, frame_length, meta_path, info)
            yield out
        tmp_meta.write_text(out.metadata_text(description))


class FrameWriter:
    """The data file of a recording being written (`writer`), and what its metadata
    will say: the runs of frames of one class and SNR, and the data's sha512."""

    def __init__(self, data_file, frame_length, meta_path, info=None):
        if int(frame_length) != frame_length or frame_length < 1:
            raise ValueError(f"frame_length must be an integer >= 1, got {frame_length!r}")
        self.data_file, self.frame_length, self.meta_path = data_file, int(frame_length), meta_path
        self.data_path = paths(meta_path)[1]   # where the data file goes when the recording is published
        self.info = dict(info or {})
        self.frames = 0
        self.runs = []                    # [class index, snr_db, frames] of consecutive frames
        self._sha512 = hashlib.sha512()

    def append(self, frames, labels, snr_db):
        """Add complex frames [n, L] with their class indices [n] and SNRs [n] (dB)."""
        frames = np.ascontiguousarray(frames, dtype="<c8")
        labels = np.asarray(labels, dtype=np.int64)
        snr_db = np.asarray(snr_db, dtype=np.float32)
        n = len(frames)
        if frames.ndim != 2 or frames.shape[1] != self.frame_length:
            raise ValueError(f"frames must be shaped [N, {self.frame_length}], got {frames.shape}")
        if labels.shape != (n,) or snr_db.shape != (n,):
            raise ValueError(f"{n} frames need {n} labels and SNRs, got {labels.shape} and {snr_db.shape}")
        if n == 0:
            return
        if labels.min() < 0 or labels.max() >= len(CLASSES):
            raise ValueError("labels must index CLASSES (0..10)")
        data = memoryview(frames.reshape(-1).view(np.uint8))
        try:
            self.data_file.write(data)
        except OSError as err:   # e.g. a full disk: say which recording failed
            raise type(err)(err.errno, f"cannot write {self.data_path}: {err.strerror}") from None
        self._sha512.update(data)
        self.frames += n
        same = (labels[1:] == labels[:-1]) & _same_snr(snr_db[1:], snr_db[:-1])
        starts = np.flatnonzero(np.concatenate(([True], ~same)))
        for start, count in zip(starts.tolist(), np.diff(np.append(starts, n)).tolist()):
            label, snr = int(labels[start]), float(snr_db[start])
            if self.runs and self.runs[-1][0] == label and _same_snr(self.runs[-1][1], snr):
                self.runs[-1][2] += count
            else:
                self.runs.append([label, snr, count])

    def metadata_text(self, description):
        """The .sigmf-meta of the frames appended, as JSON text (schema-checked by sigmf)."""
        global_info = {
            sk.DATATYPE_KEY: "cf32_le",
            sk.SAMPLE_RATE_KEY: SAMPLE_RATE_HZ,
            sk.VERSION_KEY: sigmf.__specification__,
            sk.DESCRIPTION_KEY: description,
            sk.RECORDER_KEY: "gr-shapft",
            sk.EXTENSIONS_KEY: [dict(SHAPFT_EXTENSION)],
            sk.SHA512_KEY: self._sha512.hexdigest(),
            "shapft:frame_length": self.frame_length,
            "shapft:classes": list(CLASSES),
        }
        global_info.update({f"shapft:{k}": v for k, v in self.info.items()})
        annotations, start = [], 0
        for label, snr, count in self.runs:
            annotations.append({sk.SAMPLE_START_KEY: start * self.frame_length,
                                sk.SAMPLE_COUNT_KEY: count * self.frame_length,
                                sk.LABEL_KEY: CLASSES[label], "shapft:snr_db": snr})
            start += count
        handle = sigmf.SigMFFile(metadata={"global": global_info, "captures": [{sk.SAMPLE_START_KEY: 0}],
                                           "annotations": annotations})
        handle.validate()
        return json.dumps(handle.ordered_metadata(), indent=2) + "\n"


def _same_snr(a, b):
    """Elementwise: equal SNRs, a missing (NaN) one equal to another missing one."""
    return (a == b) | (np.isnan(a) & np.isnan(b))


@dataclasses.dataclass
class _Layout:
    """What a recording's metadata says, checked against its data file's size."""
    meta_path: Path
    data_path: Path
    frame_length: int
    labels: np.ndarray       # int64 [N]
    snr_db: np.ndarray       # float32 [N]
    info: dict
    sha512: str              # core:sha512, or None when the metadata has none

    @property
    def frame_bytes(self):
        return self.frame_length * np.dtype("<c8").itemsize


def _read_layout(base):
    """Check a recording's metadata (the sigmf library's schema, cf32_le, annotations
    that cover back-to-back runs of whole frames of known classes) and its data file's
    size, without reading the data."""
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
            handle = sigmf.fromfile(str(meta_path), skip_checksum=True)   # the data is hashed streamed
            handle.validate()
    except (SigMFError, ValueError, json.JSONDecodeError) as err:
        raise ValueError(f"{meta_path}: not a valid SigMF recording ({err})") from None
    datatype = handle.get_global_field(sk.DATATYPE_KEY)
    if datatype != "cf32_le":
        raise ValueError(f"{meta_path}: datatype {datatype!r}, expected cf32_le")
    annotations = handle.get_annotations()
    if not annotations:
        raise ValueError(f"{meta_path}: no frame annotations")
    # recordings of other writers may lack shapft:frame_length: their first annotation is one frame
    length = handle.get_global_field("shapft:frame_length", annotations[0].get(sk.SAMPLE_COUNT_KEY))
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"{meta_path}: frame length {length!r} (shapft:frame_length, else the first "
                         "annotation's core:sample_count) is not an integer >= 1")
    starts = np.array([a[sk.SAMPLE_START_KEY] for a in annotations], dtype=np.int64)
    counts = np.array([a.get(sk.SAMPLE_COUNT_KEY, 0) for a in annotations], dtype=np.int64)
    runs, remainders = np.divmod(counts, length)
    if np.any(runs < 1) or np.any(remainders) or np.any(starts != np.cumsum(counts) - counts):
        raise ValueError(f"{meta_path}: annotations must cover back-to-back runs of whole frames of "
                         f"{length} samples")
    try:
        labels = np.array([CLASSES.index(a[sk.LABEL_KEY]) for a in annotations], dtype=np.int64)
    except (KeyError, ValueError):
        raise ValueError(f"{meta_path}: every annotation needs a core:label from {CLASSES}") from None
    snr = np.array([a.get("shapft:snr_db", np.nan) for a in annotations], dtype=np.float32)
    info = {k.split(":", 1)[1]: v for k, v in handle.get_global_info().items()
            if k.startswith("shapft:") and k not in ("shapft:frame_length", "shapft:classes")}
    return _Layout(meta_path, data_path, length, np.repeat(labels, runs), np.repeat(snr, runs), info,
                   handle.get_global_field(sk.SHA512_KEY))


def _check_sha512(layout, digest):
    if layout.sha512 is not None and digest != layout.sha512:
        raise ValueError(f"{layout.meta_path}: not a valid SigMF recording (its core:sha512 does not match "
                         f"{layout.data_path.name})")


def read(base):
    """Read and check a recording: the data file's size must match the annotations,
    sigmf checks the metadata's schema and the data must have its `core:sha512`;
    annotations must cover back-to-back runs of whole frames of a known class."""
    layout = _read_layout(base)
    samples = np.fromfile(layout.data_path, dtype="<c8")
    _check_sha512(layout, hashlib.sha512(memoryview(samples.view(np.uint8))).hexdigest())
    return Recording(samples.reshape(-1, layout.frame_length), layout.labels, layout.snr_db, layout.info)


SCAN_BYTES = 8 << 20   # open_frames's pass reads this much of the data file at a time


def open_frames(base, progress=False):
    """A recording whose frames stay in its data file: a FrameFile. The checks of `read`
    are made, the data's sha512 in one streamed pass that also finds the invalid
    frames (frame_validity) and the data's sha256 (provenance), holding SCAN_BYTES of it
    at a time; `progress` shows a bar for that pass."""
    layout = _read_layout(base)
    count, frame_bytes = len(layout.labels), layout.frame_bytes
    per_read = max(1, SCAN_BYTES // frame_bytes)
    sha512, sha256 = hashlib.sha512(), hashlib.sha256()
    reasons = {}
    buffer = np.empty((per_read, layout.frame_length), dtype=np.complex64)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=count * frame_bytes, desc=f"checking {layout.data_path.name}", unit="B",
                   unit_scale=True, dynamic_ncols=True, leave=False, delay=1.0)   # big files only
    try:
        with open(layout.data_path, "rb", buffering=0) as data_file:
            identity = _identity(os.fstat(data_file.fileno()))
            for start in range(0, count, per_read):
                frames = buffer[:min(per_read, count - start)]
                _read_into(data_file, frames, layout.data_path)
                data = memoryview(frames.reshape(-1).view(np.uint8))
                sha512.update(data)
                sha256.update(data)
                found = frame_validity(frames)[1]
                reasons.update((start + i, reason) for i, reason in found.items())
                if bar is not None:
                    bar.update(len(data))
    finally:
        if bar is not None:
            bar.close()
    _check_sha512(layout, sha512.hexdigest())
    return FrameFile(layout, np.arange(count, dtype=np.int64), sha256.hexdigest(), reasons, identity)


def _identity(stat):
    """What tells a data file from one written over it: inode, size, modification time."""
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


class FrameFile:
    """A recording read from its data file as its frames are needed (`open_frames`).

    It has what a Recording has but the frames: labels, snr_db, info, frame_length,
    len(); `batch(index)` reads the frames at `index` as model input, float32 [n, 2, L],
    and `read_frames(index)` as complex64 [n, L]. A read sorts the frames it needs and
    reads each run of consecutive ones with one call into a fresh buffer: memory holds
    the batch, never the file (a memory map's pages would count in the process's
    resident memory once touched). `subset` is a FrameFile of some of the frames."""

    def __init__(self, layout, rows, data_sha256, reasons, identity):
        self._layout = layout
        self._identity = identity     # of the data file that was checked (_identity)
        self._reasons = reasons       # {frame of the file: 'nan' | 'inf' | 'zero'}
        self.rows = rows              # the frame of the file behind each frame of this FrameFile
        self.labels = layout.labels[rows]
        self.snr_db = layout.snr_db[rows]
        self.info = layout.info
        self.data_sha256 = data_sha256
        self.meta_path, self.data_path = layout.meta_path, layout.data_path

    def __len__(self):
        return len(self.rows)

    @property
    def frame_length(self):
        return self._layout.frame_length

    def subset(self, index):
        return FrameFile(self._layout, self.rows[index], self.data_sha256, self._reasons, self._identity)

    def validity(self):
        """frame_validity of the frames, from the pass that opened the file."""
        valid = np.ones(len(self), dtype=bool)
        invalid = np.flatnonzero(np.isin(self.rows, np.fromiter(self._reasons, dtype=np.int64)))
        valid[invalid] = False
        return valid, {int(i): self._reasons[int(self.rows[i])] for i in invalid}

    def read_frames(self, index):
        rows = self.rows[np.asarray(index, dtype=np.int64).reshape(-1)]
        order = None if np.all(rows[1:] >= rows[:-1]) else np.argsort(rows, kind="stable")
        ordered = rows if order is None else rows[order]
        frames = np.empty((len(rows), self.frame_length), dtype=np.complex64)
        if not len(rows):
            return frames
        firsts = np.flatnonzero(np.diff(ordered, prepend=-2) != 1)   # where a run of consecutive frames starts
        lasts = np.append(firsts[1:], len(rows))
        with open(self.data_path, "rb", buffering=0) as data_file:
            # the sha512 was checked when the file was opened: a file written over it since
            # (an import or attack with --force into the same place) must not be read as it
            if _identity(os.fstat(data_file.fileno())) != self._identity:
                raise ValueError(f"{self.data_path} changed on disk after it was opened and checked; "
                                 "run the command again")
            for first, last in zip(firsts.tolist(), lasts.tolist()):
                data_file.seek(int(ordered[first]) * self._layout.frame_bytes)
                _read_into(data_file, frames[first:last], self.data_path)
        if order is not None:
            frames[order] = frames.copy()
        return frames

    def batch(self, index):
        return to_model_input(self.read_frames(index))


def _read_into(data_file, frames, path):
    """Fill the contiguous array `frames` from the file's position on."""
    view = memoryview(frames.reshape(-1).view(np.uint8))
    done = 0
    while done < len(view):
        got = data_file.readinto(view[done:])
        if not got:
            raise ValueError(f"{path}: ends early; the file changed while it was read")
        done += got


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
    return _splits(data_dir, required, optional, option, lambda meta, data: (read(meta), artifacts.sha256_file(data)))


def open_splits(data_dir, required=("train", "val", "test"), optional=(), option="--data", progress=False):
    """read_splits with each split a FrameFile (open_frames): its frames stay on disk."""
    def opened(meta, data):
        frames = open_frames(meta, progress)
        return frames, frames.data_sha256
    return _splits(data_dir, required, optional, option, opened)


def _splits(data_dir, required, optional, option, load):
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
        splits[name], data_digest = load(meta, data)
        digests[name] = {"path": str(meta), "meta_sha256": artifacts.sha256_file(meta), "data_sha256": data_digest}
    lengths = {name: split.frame_length for name, split in splits.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{option} {data_dir}: splits have different frame lengths {lengths}")
    return splits, digests
