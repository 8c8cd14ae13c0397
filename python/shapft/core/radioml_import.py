"""Read a user's own copy of RadioML 2016.10a or 2018.01a into our convention.

- RML2016.10a: `RML2016.10a_dict.pkl`, a (Python 2) pickle of a dict
  {(modulation, snr): float32 [N, 2, 128]}. It is read with an unpickler that only
  admits the numpy objects that make up arrays, so a crafted file cannot run code.
- RML2018.01a: HDF5 with `X` float32 [N, 1024, 2], `Y` one-hot [N, 24], `Z` SNR [N, 1].
  Its classes that have an RML2016.10a counterpart are kept (mapping below) and each
  1024-sample frame is cut into eight 128-sample frames; frames of other classes are
  counted and reported, not silently dropped. The file (20 GB for the full dataset) is
  streamed: read in chunks of rows, each row's frames appended to its split's
  recording, so memory holds a chunk and a few numbers per row, never the file.
  The split draws source rows, not frames: the eight frames cut from one capture stay
  in one split, so no capture is in both the training and the test data.

Every frame is rescaled to unit average power (RadioML divided by the sum of
magnitudes, about 100x smaller than our scale).
"""
import contextlib
import dataclasses
import io
import pickle
from pathlib import Path

import numpy as np

from .radioml import CLASSES, FRAME_LENGTH
from . import splits
from .recording import Recording

CHUNK_ROWS = 4096   # RML2018.01a rows read at a time (32 MiB of X)

# RML2018.01a's class order in the HDF5 file's one-hot Y: the order of the dataset's
# paper (O'Shea et al., "Over-the-Air Deep Learning Based Radio Signal Classification",
# 2018). The classes.txt shipped with the download lists another order, which users
# found does not match the signals (radioML/dataset issue #25); it is available as
# RML2018_CLASSES_TXT for files that were relabelled with it.
RML2018_CLASSES = ("OOK", "4ASK", "8ASK", "BPSK", "QPSK", "8PSK", "16PSK", "32PSK", "16APSK",
                   "32APSK", "64APSK", "128APSK", "16QAM", "32QAM", "64QAM", "128QAM", "256QAM",
                   "AM-SSB-WC", "AM-SSB-SC", "AM-DSB-WC", "AM-DSB-SC", "FM", "GMSK", "OQPSK")
RML2018_CLASSES_TXT = ("32PSK", "16APSK", "32QAM", "FM", "GMSK", "32APSK", "OQPSK", "8ASK", "BPSK",
                       "8PSK", "AM-SSB-SC", "4ASK", "16PSK", "64APSK", "128QAM", "128APSK",
                       "AM-DSB-SC", "AM-SSB-WC", "64QAM", "QPSK", "256QAM", "AM-DSB-WC", "OOK", "16QAM")
RML2018_TO_2016 = {"BPSK": "BPSK", "QPSK": "QPSK", "8PSK": "8PSK", "16QAM": "QAM16",
                   "64QAM": "QAM64", "4ASK": "PAM4", "GMSK": "GFSK", "FM": "WBFM",
                   "AM-DSB-WC": "AM-DSB", "AM-SSB-SC": "AM-SSB"}

_ARRAY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("_codecs", "encode"),   # how Python 3 writes raw array bytes into a protocol-2 pickle
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ARRAY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: "
                                     "a RadioML pickle holds only numpy arrays")


def normalise_power(frames):
    """Scale each complex frame to unit average power; all-zero frames stay zero."""
    power = np.mean(np.abs(frames) ** 2, axis=1, keepdims=True)
    return (frames / np.sqrt(np.where(power > 0, power, 1.0))).astype(np.complex64)


def read_rml2016a(path):
    with open(path, "rb") as f:
        try:
            data = _ArrayOnlyUnpickler(io.BufferedReader(f), encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, ValueError) as err:
            raise ValueError(f"{path}: not a RadioML 2016.10a pickle ({err})") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected a dict {{(modulation, snr): array}}, got {type(data).__name__}")
    frames, labels, snrs = [], [], []
    for key in sorted(data, key=lambda k: (str(k[0]), k[1]) if isinstance(k, tuple) and len(k) == 2 else ("", 0)):
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ValueError(f"{path}: key {key!r} is not a (modulation, snr) pair")
        name, snr = key
        name = name.decode() if isinstance(name, bytes) else str(name)
        if name not in CLASSES:
            raise ValueError(f"{path}: unknown modulation {name!r}; expected one of {', '.join(CLASSES)}")
        array = np.asarray(data[key])
        if array.ndim != 3 or array.shape[1:] != (2, FRAME_LENGTH):
            raise ValueError(f"{path}: array for {key!r} has shape {array.shape}; "
                             f"expected [N, 2, {FRAME_LENGTH}]")
        frames.append(array[:, 0, :] + 1j * array[:, 1, :])
        labels.append(np.full(len(array), CLASSES.index(name)))
        snrs.append(np.full(len(array), float(snr)))
    recording = Recording(normalise_power(np.concatenate(frames)), np.concatenate(labels),
                          np.concatenate(snrs))
    return recording, {"source": "RML2016.10a", "frames_in": len(recording), "skipped": {}}


def split(recording, fractions, seed):
    """Stratified random split by (class, SNR) into len(fractions) recordings."""
    parts = splits.stratified_split(recording.labels, recording.snr_db, fractions, np.random.default_rng(seed))
    return [recording.subset(part) for part in parts]


FORMATS = ("auto", "rml2016a", "rml2018a")
SPLITS = ("train", "val", "test")


def detect_format(path):
    """'rml2016a' (a pickle) or 'rml2018a' (an HDF5 file), from the file's first bytes."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "rml2018a"
    if head[:1] == b"\x80" or head[:1] in (b"(", b"}"):
        return "rml2016a"
    raise ValueError(f"{path}: neither a pickle nor an HDF5 file; give --format")


@dataclasses.dataclass
class Written:
    """One split's recording as imported: its frames, and the classes and SNRs among them."""
    frames: int
    classes: list       # class indices, ascending
    snrs: list          # SNRs in dB, ascending


@dataclasses.dataclass
class Imported:
    out: Path
    parts: dict       # split name -> Written, or None where its fraction left it empty
    report: dict      # what the reader found: source, frames_in, skipped classes
    frames: int       # frames kept (of known classes)


def import_file(source, out, fmt="auto", fractions=(0.6, 0.2, 0.2), class_order="paper", seed=0, force=False,
                chunk_rows=CHUNK_ROWS, progress=False):
    """Convert a RadioML file into OUT/train, OUT/val and OUT/test SigMF recordings, split
    at random by (class, SNR) with `fractions`: RML2016.10a's frames, RML2018.01a's
    source rows (each row's eight frames in one split), the latter streamed chunk_rows
    rows at a time (a progress bar when `progress`)."""
    from . import artifacts, recording
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if len(fractions) != len(SPLITS):
        raise ValueError(f"--split {fractions}: expected three fractions (train, val, test)")
    if int(chunk_rows) != chunk_rows or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be an integer >= 1, got {chunk_rows!r}")
    source = artifacts.existing_file(source, "input")
    out = artifacts.writable_dir(out, force=force, expect=[f"{s}{recording.META_SUFFIX}" for s in SPLITS])
    fmt = detect_format(source) if fmt == "auto" else fmt
    if fmt == "rml2018a":
        order = RML2018_CLASSES if class_order == "paper" else RML2018_CLASSES_TXT
        return _import_rml2018a(source, out, order, fractions, seed, force, int(chunk_rows), progress)
    data, report = read_rml2016a(source)
    parts = {}
    for name, part in zip(SPLITS, split(data, fractions, seed)):
        if len(part) == 0:
            parts[name] = None
            continue
        part.info = _import_info(report["source"], source, name, fractions, seed)
        recording.write(out / name, part, _description(report["source"], name), overwrite=force)
        parts[name] = Written(len(part), np.unique(part.labels).tolist(), np.unique(part.snr_db).tolist())
    return Imported(out, parts, report, len(data))


def _import_info(source_name, path, split_name, fractions, seed):
    return {"import": {"source": source_name, "file": path.name, "split": split_name,
                       "fractions": list(fractions), "seed": seed}}


def _description(source_name, split_name):
    return f"{source_name} ({split_name} split), rescaled to unit power"


def _import_rml2018a(path, out, class_order, fractions, seed, force, chunk_rows, progress):
    """import_file for an RML2018.01a HDF5 file: Y and Z are read first (in chunks) to
    choose each row's split; then X, chunk by chunk, each kept row cut into frames
    appended to its split's recording (core.recording.writer)."""
    import h5py
    from . import recording
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not an HDF5 file ({err})") from None
    with h5:
        for key in ("X", "Y", "Z"):
            if key not in h5:
                raise ValueError(f"{path}: no dataset {key!r}; RML2018.01a has X, Y and Z")
        x, y, z = h5["X"], h5["Y"], h5["Z"]
        n = x.shape[0]
        if x.ndim != 3 or x.shape[2] != 2 or x.shape[1] % FRAME_LENGTH:
            raise ValueError(f"{path}: X has shape {x.shape}; expected [N, 1024, 2]")
        if y.shape != (n, len(class_order)):
            raise ValueError(f"{path}: Y has shape {y.shape}; expected ({n}, {len(class_order)}) one-hot")
        if z.shape not in ((n,), (n, 1)):
            raise ValueError(f"{path}: Z has shape {z.shape}; expected ({n}, 1)")
        chunks = [(start, min(start + chunk_rows, n)) for start in range(0, n, chunk_rows)]
        class_ids, snr = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.float32)
        for a, b in chunks:
            class_ids[a:b] = np.argmax(_rows(y, a, b, path), axis=1)
            snr[a:b] = _rows(z, a, b, path).reshape(-1)
        ours = np.array([CLASSES.index(RML2018_TO_2016[name]) if name in RML2018_TO_2016 else -1
                         for name in class_order])
        labels = ours[class_ids]          # -1 for the classes left out
        kept = np.flatnonzero(labels >= 0)
        rows_per_class = np.bincount(class_ids, minlength=len(class_order))
        skipped = dict(sorted((name, int(count)) for name, count, our in zip(class_order, rows_per_class, ours)
                              if our < 0 and count))
        if not len(kept):
            raise ValueError(f"{path}: no frames of a class we know")
        split_of_row = np.full(n, -1, dtype=np.int64)
        rows_of = splits.stratified_split(labels[kept], snr[kept], fractions, np.random.default_rng(seed))
        for index, rows in enumerate(rows_of):
            split_of_row[kept[rows]] = index
        pieces = x.shape[1] // FRAME_LENGTH
        report = {"source": "RML2018.01a", "frames_in": int(n), "cut_into": pieces, "skipped": skipped}
        parts = {name: None for name in SPLITS}
        with contextlib.ExitStack() as stack:
            writers = {}
            for index, (name, rows) in enumerate(zip(SPLITS, rows_of)):
                if len(rows):
                    writers[index] = stack.enter_context(recording.writer(
                        out / name, FRAME_LENGTH, _description(report["source"], name),
                        _import_info(report["source"], path, name, fractions, seed), overwrite=force))
            bar = None
            if progress:
                from tqdm import tqdm
                bar = stack.enter_context(tqdm(total=n, desc=f"importing {path.name}", unit="row",
                                               dynamic_ncols=True))
            for a, b in chunks:
                chunk_splits = split_of_row[a:b]
                if np.any(chunk_splits >= 0):
                    samples = _rows(x, a, b, path)
                    for index, writer in writers.items():
                        rows = np.flatnonzero(chunk_splits == index)
                        if len(rows):
                            part = samples[rows]
                            frames = (part[..., 0] + 1j * part[..., 1]).reshape(-1, FRAME_LENGTH)
                            writer.append(normalise_power(frames), np.repeat(labels[a + rows], pieces),
                                          np.repeat(snr[a + rows], pieces))
                if bar is not None:
                    bar.update(b - a)
    for index, rows in enumerate(rows_of):
        if len(rows):
            rows = kept[rows]
            parts[SPLITS[index]] = Written(len(rows) * pieces, np.unique(labels[rows]).tolist(),
                                           np.unique(snr[rows]).tolist())
    return Imported(out, parts, report, len(kept) * pieces)


def _rows(dataset, a, b, path):
    """Rows a..b-1 of an HDF5 dataset; a file that fails to read them is named."""
    try:
        return np.asarray(dataset[a:b])
    except OSError as err:
        raise ValueError(f"{path}: cannot read {dataset.name.lstrip('/')} rows {a}-{b - 1} ({err})") from None
