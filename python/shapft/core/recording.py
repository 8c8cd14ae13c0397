"""Frame recordings as SigMF (docs/formats.md).

A recording is one `.sigmf-data` of cf32_le frames back to back and a `.sigmf-meta`
with one annotation per frame (`core:sample_start`, `core:sample_count`, `core:label`
= class name, `shapft:snr_db`). Files of one split share a base name:
`DIR/<split>.sigmf-meta` + `DIR/<split>.sigmf-data`.
"""
import dataclasses
import json
import os
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

    The data file is renamed into place before the meta file, so a meta file on
    disk always describes a complete data file. The output is byte-for-byte
    reproducible: no timestamps are recorded.
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
    with artifacts.atomic_path(data_path) as tmp_data:
        recording.frames.astype("<c8").tofile(tmp_data)
        handle = sigmf.SigMFFile(metadata=metadata, data_file=tmp_data)  # fills core:sha512
        handle.validate()
        ordered = handle.ordered_metadata()
        ordered["global"].pop(sk.DATASET_KEY, None)  # names the temporary file; the pair needs none
        meta_text = json.dumps(ordered, indent=2) + "\n"
    artifacts.write_bytes(meta_path, meta_text.encode())
    return meta_path


def read(base):
    """Read and check a recording: sigmf parses it and verifies `core:sha512`; every
    annotation must cover exactly one frame, in order, with a known class."""
    meta_path, data_path = paths(base)
    if not meta_path.exists():
        raise FileNotFoundError(f"no SigMF recording at {meta_path}")
    try:
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
