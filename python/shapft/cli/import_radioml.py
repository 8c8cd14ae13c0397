"""Convert your own copy of RadioML into gr-shapft's SigMF convention.

Formats (detected from the file, or given with --format):
  rml2016a  RML2016.10a_dict.pkl: a pickle of {(modulation, snr): float32 [N, 2, 128]}
            (read with an unpickler that admits only numpy arrays)
  rml2018a  GOLD_XYZ_OSC.0001_1024.hdf5: X [N, 1024, 2], Y one-hot [N, 24], Z [N, 1].
            Classes with an RML2016.10a counterpart are kept (BPSK, QPSK, 8PSK, 16QAM ->
            QAM16, 64QAM -> QAM64, 4ASK -> PAM4, GMSK -> GFSK, FM -> WBFM, AM-DSB-WC ->
            AM-DSB, AM-SSB-SC -> AM-SSB), each 1024-sample frame is cut into eight of 128;
            the other classes are counted and reported.

Every frame is rescaled to unit average power. The data is split at random,
stratified by class and SNR, into OUT/train, OUT/val and OUT/test (--split).
RML2018.01a is split by source row: the eight frames cut from one capture stay in one
split, so no capture is in two. An RML2018.01a file is streamed (read a chunk of rows at
a time, each split's recording written as it goes): memory stays bounded whatever its size.
"""
from . import common
from ..core.radioml import CLASSES


def add_arguments(parser):
    parser.add_argument("input", help="RML2016.10a_dict.pkl or an RML2018.01a .hdf5 file")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--format", choices=["auto", "rml2016a", "rml2018a"], default="auto",
                        help="the file's format (default auto: detected from its first bytes)")
    parser.add_argument("--split", default="0.6,0.2,0.2", metavar="TRAIN,VAL,TEST",
                        help="fractions of each (class, SNR) for train, val and test (default 0.6,0.2,0.2); "
                             "RML2018.01a is split by source row, a capture's eight frames in one split")
    parser.add_argument("--class-order", choices=["paper", "classes-txt"], default="paper",
                        help="RML2018.01a only: how to read Y's columns (default: the dataset paper's order)")
    common.add_seed(parser)
    parser.add_argument("--force", action="store_true", help="overwrite existing recordings")
    common.add_quiet(parser)


def run(args):
    from ..core import radioml_import, recording
    try:
        fractions = [float(v) for v in args.split.split(",")]
    except ValueError:
        raise common.CommandError(f"--split {args.split!r}: expected three numbers like 0.6,0.2,0.2") from None
    done = radioml_import.import_file(args.input, args.out, fmt=args.format, fractions=fractions,
                                      class_order=args.class_order, seed=args.seed, force=args.force,
                                      progress=not args.quiet)
    for name, part in done.parts.items():
        if part is None:
            print(f"  {name}: no frames at fraction {fractions[list(done.parts).index(name)]:g}, not written")
            continue
        classes = ", ".join(CLASSES[i] for i in part.classes)
        print(f"  {recording.paths(done.out / name)[0]}: {part.frames} frames, "
              f"{len(part.snrs)} SNRs, classes {classes}")
    report = done.report
    print(f"{report['source']}: {report['frames_in']} frames read, {done.frames} frames written")
    for name, count in report["skipped"].items():
        print(f"  skipped {count} frames of {name} (no RML2016.10a counterpart)")
