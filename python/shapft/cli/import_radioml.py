"""Convert your own copy of RadioML into gr-shapft's SigMF convention.

Formats (detected from the file, or given with --format):
  rml2016a  RML2016.10a_dict.pkl: a pickle of {(modulation, snr): float32 [N, 2, 128]}
            (read with an unpickler that admits only numpy arrays)
  rml2018a  GOLD_XYZ_OSC.0001_1024.hdf5: X [N, 1024, 2], Y one-hot [N, 24], Z [N, 1].
            Classes with an RML2016.10a counterpart are kept (BPSK, QPSK, 8PSK, 16QAM ->
            QAM16, 64QAM -> QAM64, 4ASK -> PAM4, GMSK -> GFSK, FM -> WBFM, AM-DSB-WC ->
            AM-DSB, AM-SSB-SC -> AM-SSB), each 1024-sample frame is cut into eight of 128;
            the other classes are counted and reported.

Every frame is rescaled to unit average power. The frames are split at random,
stratified by class and SNR, into OUT/train, OUT/val and OUT/test (--split).
"""
from pathlib import Path

import numpy as np

from . import common
from ..core.radioml import CLASSES


def add_arguments(parser):
    parser.add_argument("input", help="RML2016.10a_dict.pkl or an RML2018.01a .hdf5 file")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--format", choices=["auto", "rml2016a", "rml2018a"], default="auto")
    parser.add_argument("--split", default="0.6,0.2,0.2", metavar="TRAIN,VAL,TEST",
                        help="fractions of each (class, SNR) for train, val and test (default 0.6,0.2,0.2)")
    parser.add_argument("--class-order", choices=["paper", "classes-txt"], default="paper",
                        help="RML2018.01a only: how to read Y's columns (default: the dataset paper's order)")
    common.add_seed(parser)
    parser.add_argument("--force", action="store_true", help="overwrite existing recordings")


def _detect(path):
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "rml2018a"
    if head[:1] == b"\x80" or head[:1] in (b"(", b"}"):
        return "rml2016a"
    raise common.CommandError(f"{path}: neither a pickle nor an HDF5 file; give --format")


def run(args):
    from ..core import artifacts, radioml_import, recording
    source = artifacts.existing_file(args.input, "input")
    try:
        fractions = [float(v) for v in args.split.split(",")]
    except ValueError:
        raise common.CommandError(f"--split {args.split!r}: expected three numbers like 0.6,0.2,0.2") from None
    if len(fractions) != 3:
        raise common.CommandError(f"--split {args.split!r}: expected three fractions (train, val, test)")
    splits = ("train", "val", "test")
    out = artifacts.writable_dir(args.out, force=args.force,
                              expect=[f"{s}{recording.META_SUFFIX}" for s in splits])
    fmt = _detect(source) if args.format == "auto" else args.format
    if fmt == "rml2016a":
        data, report = radioml_import.read_rml2016a(source)
    else:
        order = radioml_import.RML2018_CLASSES if args.class_order == "paper" else radioml_import.RML2018_CLASSES_TXT
        data, report = radioml_import.read_rml2018a(source, order)
    if len(data) == 0:
        raise common.CommandError(f"{source}: no frames of a class we know")
    parts = radioml_import.split(data, fractions, args.seed)
    for name, part in zip(splits, parts):
        if len(part) == 0:
            print(f"  {name}: no frames at fraction {fractions[splits.index(name)]:g}, not written")
            continue
        part.info = {"import": {"source": report["source"], "file": Path(source).name,
                                "split": name, "fractions": fractions, "seed": args.seed}}
        recording.write(out / name, part, f"{report['source']} ({name} split), rescaled to unit power",
                        overwrite=args.force)
        classes = ", ".join(CLASSES[i] for i in np.unique(part.labels))
        print(f"  {out / name}.sigmf-meta: {len(part)} frames, "
              f"{len(np.unique(part.snr_db))} SNRs, classes {classes}")
    print(f"{report['source']}: {report['frames_in']} frames read, {len(data)} frames written")
    for name, count in report["skipped"].items():
        print(f"  skipped {count} frames of {name} (no RML2016.10a counterpart)")
