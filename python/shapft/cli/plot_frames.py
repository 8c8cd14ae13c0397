"""Plot one frame per class, time domain (I and Q) beside its constellation, like the
RadioML papers' figures: what the channel-model source produces (default) or what a
recording holds (--data).
"""
import numpy as np

from . import common


def add_arguments(parser):
    parser.add_argument("--out", required=True, metavar="PNG", help="output image")
    parser.add_argument("--snr", type=float, default=18.0,
                        help="SNR in dB of the frames drawn from the source (default 18)")
    parser.add_argument("--data", metavar="REC", help="plot frames of this recording instead "
                        "(the highest-SNR frame of each class)")
    common.add_seed(parser, default=1)


def _frames_from_source(snr_db, seed):
    from ..blocks.channel_model_source import channel_model_source
    from ..core.radioml import CLASSES
    from ..studies.generate import collect
    frames, labels = collect(channel_model_source(CLASSES, [snr_db], num_frames=len(CLASSES), seed=seed))
    return {name: frames[labels.index(name)] for name in CLASSES}, f"channel-model source, SNR {snr_db:g} dB"


def _frames_from_recording(path):
    from ..core import recording
    from ..core.radioml import CLASSES
    data = recording.read(path)
    chosen = {}
    for index, name in enumerate(CLASSES):
        members = np.flatnonzero(data.labels == index)
        if len(members):
            chosen[name] = data.frames[members[np.argmax(data.snr_db[members])]]
    return chosen, str(path)


def plot(frames, title, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ..core import artifacts
    rows = (len(frames) + 1) // 2
    fig, axes = plt.subplots(rows, 4, figsize=(13, 2.1 * rows),
                             gridspec_kw={"width_ratios": [2.4, 1, 2.4, 1]})
    for ax in axes.flat:
        ax.set_visible(False)
    for slot, (name, frame) in enumerate(frames.items()):
        time_ax, iq_ax = axes[slot // 2, 2 * (slot % 2)], axes[slot // 2, 2 * (slot % 2) + 1]
        time_ax.set_visible(True)
        iq_ax.set_visible(True)
        time_ax.plot(frame.real, lw=1, label="I")
        time_ax.plot(frame.imag, lw=1, label="Q")
        time_ax.set_title(name, fontsize=10, loc="left")
        time_ax.set_xlim(0, len(frame) - 1)
        iq_ax.plot(frame.real, frame.imag, ".", ms=2.5)
        limit = 1.1 * np.max(np.abs(frame))
        iq_ax.set_xlim(-limit, limit)
        iq_ax.set_ylim(-limit, limit)
        iq_ax.set_aspect("equal")
        iq_ax.tick_params(labelsize=7)
        time_ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"One 128-sample frame per class (unit average power): {title}")
    fig.tight_layout()
    with artifacts.atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def run(args):
    from ..core import artifacts
    if args.data:
        frames, title = _frames_from_recording(artifacts.existing_file(args.data, "--data"))
    else:
        frames, title = _frames_from_source(args.snr, args.seed)
    plot(frames, title, args.out)
    print(f"wrote {args.out}")
