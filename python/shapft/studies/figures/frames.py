"""One frame per class, time domain (I and Q) beside its constellation, like the
RadioML papers' figures."""
import numpy as np

from ...core.radioml import FRAME_LENGTH
from .style import new_figure, save_figure


def frames_per_class(frames, title, path):
    """frames: {class name: complex frame}; two classes per row."""
    rows = (len(frames) + 1) // 2
    figure = new_figure(13, 2.1 * rows)
    axes = figure.subplots(rows, 4, squeeze=False, gridspec_kw={"width_ratios": [2.4, 1, 2.4, 1]})
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
    figure.suptitle(f"One {FRAME_LENGTH}-sample frame per class (unit average power): {title}")
    return save_figure(figure, path, dpi=110)
