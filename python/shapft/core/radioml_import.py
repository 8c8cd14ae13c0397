"""Read a user's own copy of RadioML 2016.10a or 2018.01a into our convention.

- RML2016.10a: `RML2016.10a_dict.pkl`, a (Python 2) pickle of a dict
  {(modulation, snr): float32 [N, 2, 128]}. It is read with an unpickler that only
  admits the numpy objects that make up arrays, so a crafted file cannot run code.
- RML2018.01a: HDF5 with `X` float32 [N, 1024, 2], `Y` one-hot [N, 24], `Z` SNR [N, 1].
  Its classes that have an RML2016.10a counterpart are kept (mapping below) and each
  1024-sample frame is cut into eight 128-sample frames; frames of other classes are
  counted and reported, not silently dropped.

Every frame is rescaled to unit average power (RadioML divided by the sum of
magnitudes, about 100x smaller than our scale).
"""
import dataclasses
import io
import pickle
from pathlib import Path

import numpy as np

from .radioml import CLASSES, FRAME_LENGTH
from . import splits
from .recording import Recording

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


def read_rml2018a(path, class_order=RML2018_CLASSES):
    import h5py
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
        if z.shape[0] != n:
            raise ValueError(f"{path}: Z has {z.shape[0]} rows, X has {n}")
        class_ids = np.argmax(y[:], axis=1)
        snr = np.asarray(z[:]).reshape(n)
        names = np.array(class_order)[class_ids]
        keep = np.array([name in RML2018_TO_2016 for name in names])
        skipped = {name: int(np.sum(names == name)) for name in sorted(set(names[~keep]))}
        index = np.flatnonzero(keep)
        samples = x[index] if len(index) else np.zeros((0,) + x.shape[1:], np.float32)
    pieces = x.shape[1] // FRAME_LENGTH
    complex_frames = (samples[..., 0] + 1j * samples[..., 1]).reshape(-1, FRAME_LENGTH)
    labels = np.repeat([CLASSES.index(RML2018_TO_2016[name]) for name in names[index]], pieces)
    recording = Recording(normalise_power(complex_frames), labels, np.repeat(snr[index], pieces))
    return recording, {"source": "RML2018.01a", "frames_in": int(n), "cut_into": pieces,
                       "skipped": skipped}


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
class Imported:
    out: Path
    parts: dict       # split name -> Recording written, or None where its fraction left it empty
    report: dict      # what the reader found: source, frames_in, skipped classes
    frames: int       # frames kept (of known classes)


def import_file(source, out, fmt="auto", fractions=(0.6, 0.2, 0.2), class_order="paper", seed=0, force=False):
    """Convert a RadioML file into OUT/train, OUT/val and OUT/test SigMF recordings,
    split at random by (class, SNR) with `fractions`."""
    from . import artifacts, recording
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if len(fractions) != len(SPLITS):
        raise ValueError(f"--split {fractions}: expected three fractions (train, val, test)")
    source = artifacts.existing_file(source, "input")
    out = artifacts.writable_dir(out, force=force, expect=[f"{s}{recording.META_SUFFIX}" for s in SPLITS])
    fmt = detect_format(source) if fmt == "auto" else fmt
    if fmt == "rml2016a":
        data, report = read_rml2016a(source)
    else:
        order = RML2018_CLASSES if class_order == "paper" else RML2018_CLASSES_TXT
        data, report = read_rml2018a(source, order)
    if len(data) == 0:
        raise ValueError(f"{source}: no frames of a class we know")
    parts = {}
    for name, part in zip(SPLITS, split(data, fractions, seed)):
        if len(part) == 0:
            parts[name] = None
            continue
        part.info = {"import": {"source": report["source"], "file": source.name,
                                "split": name, "fractions": list(fractions), "seed": seed}}
        recording.write(out / name, part, f"{report['source']} ({name} split), rescaled to unit power",
                        overwrite=force)
        parts[name] = part
    return Imported(out, parts, report, len(data))
