"""Write RadioML-2016.10a-style SigMF datasets with the GNU Radio channel-model source.

Presets (frames per class and SNR, 11 classes x 20 SNRs from -20 to 18 dB):
  tiny      tiny-train (35: 7700 frames), tiny-test (330 frames: 30 per class,
            SNRs spread over the grid) and adv-data (30: 6600 frames): the SHAP-FT
            paper's three sets
  small     train 120, val 40, test 40 (44000 frames in all)
  rml2016a  train 600, val 200, test 200 (220000 frames: RadioML 2016.10a's size)

Each split is OUT/<split>.sigmf-meta + OUT/<split>.sigmf-data. The same seed gives
the same bytes.
"""
import time

import numpy as np

from . import common


def add_arguments(parser):
    parser.add_argument("--preset", required=True, choices=["tiny", "small", "rml2016a"],
                        help="which splits and sizes to write (see above)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    common.add_seed(parser, default=1)
    parser.add_argument("--force", action="store_true", help="overwrite existing recordings")
    parser.add_argument("--workers", type=int, default=2,
                        help="processes running flowgraphs in parallel (default 2)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args):
    from .. import generate
    out = common.writable_dir(args.out)
    if args.workers < 1:
        raise common.CommandError(f"--workers must be >= 1, got {args.workers}")
    start = time.perf_counter()
    written = generate.generate_preset(args.preset, out, args.seed, force=args.force,
                                       workers=args.workers, progress=not args.quiet)
    elapsed = time.perf_counter() - start
    print(f"preset {args.preset}, seed {args.seed}: {elapsed:.1f} s")
    for split, recording in written.items():
        power = np.mean(np.abs(recording.frames) ** 2, axis=1)
        counts = np.bincount(recording.labels, minlength=11)
        print(f"  {out / split}.sigmf-meta: {len(recording)} frames, "
              f"{len(np.unique(recording.snr_db))} SNRs, {counts.min()}-{counts.max()} per class, "
              f"frame power {power.min():.4f}..{power.max():.4f}")
