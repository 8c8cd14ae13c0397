"""The SHAP-FT paper's figures, from our own runs (Fig. 4 to 7)."""
import numpy as np

from ...core.radioml import CLASSES
from .style import new_figure, save_figure


def shapley_sums(sums_by_eps, path):
    """Fig. 4: per attack level, the 128 summed Shapley values, negative points marked.
    sums_by_eps: {eps: (sums [L], negative positions)}."""
    levels = sorted(sums_by_eps)
    fig = new_figure(9, 1.9 * len(levels))
    axes = fig.subplots(len(levels), 1, sharex=True, squeeze=False)
    for ax, eps in zip(axes[:, 0], levels):
        sums, negative = sums_by_eps[eps]
        positions = np.arange(len(sums))
        ax.bar(positions, sums, width=0.9, color="tab:blue")
        ax.plot(negative, np.asarray(sums)[negative], "v", color="tab:red", ms=4, label="negative point")
        ax.axhline(0, color="black", lw=0.6)
        ax.set_ylabel("sum of\nShapley values", fontsize=8)
        ax.set_title(f"FGSM eps {eps:g}: m = {len(negative)} negative points", fontsize=9, loc="left")
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("sample position in the frame")
    return save_figure(fig, path)


def _heatmap(ax, matrix, title, fmt):
    image = ax.imshow(matrix, cmap="viridis")
    ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=90, fontsize=7)
    ax.set_yticks(range(len(CLASSES)), CLASSES, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    for (i, j), value in np.ndenumerate(matrix):
        if value:
            ax.text(j, i, fmt(value), ha="center", va="center", fontsize=5, color="white")
    return image


def shapley_heatmap_and_confusion(labels, predicted, shap_predicted, path, eps):
    """Fig. 5: sum of Shapley values (of the predicted class) of the frames in each
    (true, predicted) cell, beside the confusion matrix of the same frames."""
    n = len(CLASSES)
    heat = np.zeros((n, n))
    np.add.at(heat, (labels, predicted), shap_predicted.reshape(len(labels), -1).sum(axis=1))
    confusion = np.zeros((n, n), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    fig = new_figure(12, 5.4)
    axes = fig.subplots(1, 2)
    fig.colorbar(_heatmap(axes[0], heat, f"(a) summed Shapley values, tiny-adv, eps {eps:g}",
                          lambda v: f"{v:.2g}"), ax=axes[0], shrink=0.8)
    fig.colorbar(_heatmap(axes[1], confusion, "(b) confusion matrix of tiny-adv", str), ax=axes[1], shrink=0.8)
    return save_figure(fig, path)


def confusion_pair(first, second, titles, path):
    """Fig. 6: two row-normalised confusion matrices side by side."""
    fig = new_figure(12, 5.4)
    axes = fig.subplots(1, 2)
    for ax, confusion, title in zip(axes, (first, second), titles):
        confusion = np.asarray(confusion, dtype=float)
        rows = confusion.sum(axis=1, keepdims=True)
        image = _heatmap(ax, confusion / np.where(rows > 0, rows, 1), title, lambda v: f"{v:.2f}")
    fig.colorbar(image, ax=axes, shrink=0.8)
    return save_figure(fig, path)


def accuracy_vs_eps(series, path, title):
    """Fig. 7: accuracy against eps; series: {name: (eps list, mean list, std list, style)}."""
    fig = new_figure(7.5, 4.8)
    ax = fig.add_subplot()
    for name, (eps, mean, std, style) in series.items():
        ax.errorbar(eps, 100 * np.asarray(mean), yerr=100 * np.asarray(std), fmt=style, capsize=3,
                    label=name, lw=1.4, ms=5)
    ax.set_xlabel("FGSM eps (per I/Q component, unit-power frames)")
    ax.set_ylabel("accuracy on adv-data (%)")
    ax.set_title(title, fontsize=10, wrap=True)  # a long title wraps instead of being clipped
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    # PSR of each measured eps on a top axis (a continuous PSR scale crowds at small eps).
    levels = sorted({e for eps, *_ in series.values() for e in eps})
    secondary = ax.secondary_xaxis("top")
    secondary.set_xticks(levels, [f"{10 * np.log10(2 * e ** 2):.1f}" for e in levels], fontsize=7)
    secondary.set_xlabel("PSR (dB)", fontsize=8)
    return save_figure(fig, path)
