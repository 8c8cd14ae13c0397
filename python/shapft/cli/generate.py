"""Write RadioML-2016.10a-style SigMF datasets with the GNU Radio channel-model source.

Presets (frames per class and SNR, 11 classes x 20 SNRs from -20 to 18 dB):
  tiny      tiny-train (35: 7700 frames), tiny-test (330 frames: 30 per class,
            SNRs spread over the grid) and adv-data (30: 6600 frames): the SHAP-FT
            paper's three sets
  small     train 120, val 40, test 40 (44000 frames in all)
  rml2016a  train 600, val 200, test 200 (220000 frames: RadioML 2016.10a's size)
  custom    one recording OUT/<--name> with --frames per setting of --modulations
            and --snrs (e.g. --snrs=-10,0,10 or --snrs=0:18:6)

--snr-convention sets how each SNR sets the noise: physical (default), noise
amplitude 10^(-SNR/20), so frames have the SNR they are labelled with; radioml,
10^(-SNR/10) as RadioML 2016.10a's generator set it, for frames comparable with
published results on that dataset (their true SNR is twice the label in dB). The
labels keep the nominal SNR; the convention is recorded in shapft:generator.

Each split is OUT/<split>.sigmf-meta + OUT/<split>.sigmf-data. The same seed gives
the same bytes.
"""
import time

import numpy as np

from . import common
from ..core.radioml import CLASSES


def add_arguments(parser):
    parser.add_argument("--preset", required=True, choices=["tiny", "small", "rml2016a", "custom"],
                        help="which splits and sizes to write (see above)")
    parser.add_argument("--frames", type=int, help="custom: frames per class and SNR")
    parser.add_argument("--modulations", default=",".join(CLASSES),
                        help="custom: comma-separated class names (default: all 11)")
    parser.add_argument("--snrs", default="-20:18:2",
                        help="custom: SNRs in dB, a list a,b,c or a range start:stop:step (default -20:18:2)")
    parser.add_argument("--name", default="custom", help="custom: recording base name (default custom)")
    parser.add_argument("--snr-convention", choices=["physical", "radioml"], default="physical",
                        help="noise amplitude 10^(-SNR/20) (physical, default) or 10^(-SNR/10) "
                             "as RadioML 2016.10a's generator (radioml); see above")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    common.add_seed(parser, default=1)
    parser.add_argument("--force", action="store_true", help="overwrite existing recordings")
    parser.add_argument("--workers", type=int, default=2,
                        help="processes running flowgraphs in parallel (default 2)")
    common.add_quiet(parser)


def parse_snrs(text):
    """'a,b,c' or 'start:stop:step' (stop inclusive) -> list of floats."""
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if step <= 0:
                raise ValueError
            return [float(v) for v in np.arange(start, stop + step / 2, step)]
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise common.CommandError(f"--snrs {text!r}: expected a,b,c or start:stop:step with step > 0") from None


def run(args):
    from ..core import artifacts
    from ..studies import generate
    out = artifacts.writable_dir(args.out)
    if args.workers < 1:
        raise common.CommandError(f"--workers must be >= 1, got {args.workers}")
    start = time.perf_counter()
    if args.preset == "custom":
        modulations = [m.strip() for m in args.modulations.split(",") if m.strip()]
        written = generate.generate_custom(out, args.name, args.frames, modulations, parse_snrs(args.snrs),
                                           args.seed, force=args.force, workers=args.workers,
                                           progress=not args.quiet, snr_convention=args.snr_convention)
    else:
        written = generate.generate_preset(args.preset, out, args.seed, force=args.force,
                                           workers=args.workers, progress=not args.quiet,
                                           snr_convention=args.snr_convention)
    elapsed = time.perf_counter() - start
    print(f"preset {args.preset}, seed {args.seed}, SNR convention {args.snr_convention}: {elapsed:.1f} s")
    for split, recording in written.items():
        power = np.mean(np.abs(recording.frames) ** 2, axis=1)
        counts = np.bincount(recording.labels, minlength=len(CLASSES))
        print(f"  {out / split}.sigmf-meta: {len(recording)} frames, "
              f"{len(np.unique(recording.snr_db))} SNRs, {counts.min()}-{counts.max()} per class, "
              f"frame power {power.min():.4f}..{power.max():.4f}")
