"""Plot one frame per class, time domain (I and Q) beside its constellation, like the
RadioML papers' figures: what the channel-model source produces (default) or what a
recording holds (--data).
"""
from . import common


def add_arguments(parser):
    parser.add_argument("--out", required=True, metavar="PNG", help="output image")
    parser.add_argument("--snr", type=float, default=18.0,
                        help="SNR in dB of the frames drawn from the source (default 18)")
    parser.add_argument("--data", metavar="REC", help="plot frames of this recording instead "
                        "(the highest-SNR frame of each class)")
    common.add_seed(parser, default=1)


def run(args):
    from ..core import artifacts
    from ..studies import generate
    from ..studies.figures import frames as frame_figures
    if args.data:
        frames, title = generate.recording_examples(artifacts.existing_file(args.data, "--data"))
    else:
        frames, title = generate.example_frames(args.snr, args.seed)
    frame_figures.frames_per_class(frames, title, args.out)
    print(f"wrote {args.out}")
