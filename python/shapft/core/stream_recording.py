"""Stream recordings as SigMF (docs/formats.md): a continuous capture at any sample
rate, as a radio or `shapft record` delivers it, not frames.

The data file is cf32_le samples; annotations (optional) mark segments with
`core:label` (a class name) and `shapft:snr_db`, which `sigmf_source` turns into the
`label` and `snr_db` tags that classifier_sink scores against. Any valid cf32_le SigMF
recording reads, whoever wrote it.
"""
import dataclasses
import json
from pathlib import Path

import numpy as np
import sigmf
from sigmf import keys as sk
from sigmf.error import SigMFError

from . import artifacts
from .recording import SHAPFT_EXTENSION, _quiet_sigmf, paths

DATATYPE = "cf32_le"


@dataclasses.dataclass
class StreamInfo:
    """What a stream recording's metadata says."""
    meta_path: Path
    data_path: Path
    sample_rate: float
    length: int                 # samples in the data file
    segments: list              # (sample_start, sample_count, label or None, snr_db or nan), by start
    info: dict                  # the `shapft:*` global fields, without the prefix


def write(base, samples, sample_rate, segments, description, info=None, overwrite=False):
    """Write complex `samples` at `sample_rate` Hz as a SigMF pair at `base`, with one
    annotation per segment (dicts with sample_start, sample_count, label, snr_db).
    Validated by the sigmf library; reproducible bytes (no timestamps); atomic."""
    meta_path, data_path = paths(base)
    if not overwrite and (meta_path.exists() or data_path.exists()):
        raise FileExistsError(f"{meta_path} exists; pass --force to overwrite it")
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    global_info = {
        sk.DATATYPE_KEY: DATATYPE,
        sk.SAMPLE_RATE_KEY: float(sample_rate),
        sk.VERSION_KEY: sigmf.__specification__,
        sk.DESCRIPTION_KEY: description,
        sk.RECORDER_KEY: "gr-shapft",
        sk.EXTENSIONS_KEY: [dict(SHAPFT_EXTENSION)],
    }
    global_info.update({f"shapft:{k}": v for k, v in (info or {}).items()})
    annotations = [{sk.SAMPLE_START_KEY: int(s["sample_start"]), sk.SAMPLE_COUNT_KEY: int(s["sample_count"]),
                    sk.LABEL_KEY: s["label"], "shapft:snr_db": float(s["snr_db"])} for s in segments]
    metadata = {"global": global_info, "captures": [{sk.SAMPLE_START_KEY: 0}], "annotations": annotations}
    with artifacts.atomic_paths(data_path, meta_path) as (tmp_data, tmp_meta):
        np.asarray(samples, dtype="<c8").tofile(tmp_data)
        handle = sigmf.SigMFFile(metadata=metadata, data_file=tmp_data)
        handle.validate()
        ordered = handle.ordered_metadata()
        ordered["global"].pop(sk.DATASET_KEY, None)
        tmp_meta.write_text(json.dumps(ordered, indent=2) + "\n")
    return meta_path


def read_info(base, parameter="recording"):
    """The metadata of a stream recording (its base name, meta or data path), checked (schema, datatype, data size; the
    data's hash is not read: recordings can be large). Problems are ValueErrors (or
    FileNotFoundError) naming `parameter`."""
    meta_path, data_path = paths(base)
    if not meta_path.is_file():
        raise FileNotFoundError(f"{parameter}: no SigMF recording at {meta_path}")
    if not data_path.is_file():
        raise FileNotFoundError(f"{parameter}: {meta_path}: its data file {data_path.name} is missing")
    try:
        with _quiet_sigmf():
            handle = sigmf.fromfile(str(meta_path), skip_checksum=True)
            handle.validate()
    except (SigMFError, ValueError, json.JSONDecodeError) as err:
        raise ValueError(f"{parameter}: {meta_path}: not a valid SigMF recording ({err})") from None
    datatype = handle.get_global_field(sk.DATATYPE_KEY)
    if datatype != DATATYPE:
        raise ValueError(f"{parameter}: {meta_path}: datatype {datatype!r}; gr-shapft reads {DATATYPE}")
    sample_rate = handle.get_global_field(sk.SAMPLE_RATE_KEY)
    if not sample_rate or sample_rate <= 0:
        raise ValueError(f"{parameter}: {meta_path}: no positive core:sample_rate")
    size = data_path.stat().st_size
    length, remainder = divmod(size, np.dtype("<c8").itemsize)
    if remainder:
        raise ValueError(f"{parameter}: {data_path}: {size} bytes, not a whole number of 8-byte samples")
    segments = []
    for a in handle.get_annotations():
        start = int(a[sk.SAMPLE_START_KEY])
        count = int(a.get(sk.SAMPLE_COUNT_KEY, length - start))
        segments.append((start, count, a.get(sk.LABEL_KEY), float(a.get("shapft:snr_db", np.nan))))
    info = {k.split(":", 1)[1]: v for k, v in handle.get_global_info().items() if k.startswith("shapft:")}
    return StreamInfo(meta_path, data_path, float(sample_rate), int(length), sorted(segments), info)


def samples(info):
    """The recording's samples, memory-mapped (read-only, complex64)."""
    if info.length == 0:
        return np.zeros(0, dtype=np.complex64)
    return np.memmap(info.data_path, dtype="<c8", mode="r", shape=(info.length,))
