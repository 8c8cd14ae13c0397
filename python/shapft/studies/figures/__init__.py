"""Figures for reports: accuracy vs SNR, confusion matrices, training curves.

Every figure in this package is built with new_figure and written with save_figure
(style.py): object API on an Agg canvas, no pyplot.
"""
import numpy as np
from matplotlib.ticker import MaxNLocator

from .style import new_figure, save_figure

__all__ = ["new_figure", "save_figure", "accuracy_vs_snr", "confusion_matrix", "training_curves"]


def accuracy_vs_snr(curves, path, title="Accuracy vs SNR"):
    """One line per entry of `curves`: name -> per-SNR accuracies ({"-20": 0.1, ...},
    as in evaluation.accuracy_report's "per_snr") or a whole report carrying "per_snr"."""
    figure = new_figure()
    axes = figure.add_subplot()
    for name, per_snr in curves.items():
        per_snr = per_snr.get("per_snr", per_snr)
        points = sorted((float(snr), acc) for snr, acc in per_snr.items() if acc is not None)
        if points:
            snrs, accs = zip(*points)
            axes.plot(snrs, 100 * np.asarray(accs), marker="o", markersize=3, label=name)
    axes.set(xlabel="SNR (dB)", ylabel="accuracy (%)", ylim=(0, 100), title=title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return save_figure(figure, path)


def confusion_matrix(confusion, classes, path, title="Confusion matrix", normalise=True):
    """Heat map of counts[true][predicted]; normalise shows each true class's row as
    fractions (rows without frames stay zero)."""
    counts = np.asarray(confusion, dtype=np.float64)
    values = counts
    if normalise:
        totals = counts.sum(axis=1, keepdims=True)
        values = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    figure = new_figure(6.4, 5.6)
    axes = figure.add_subplot()
    image = axes.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalise else None)
    figure.colorbar(image, ax=axes, shrink=0.8)
    ticks = np.arange(len(classes))
    axes.set_xticks(ticks, classes, rotation=60, ha="right", fontsize="small")
    axes.set_yticks(ticks, classes, fontsize="small")
    axes.set(xlabel="predicted", ylabel="true", title=title)
    threshold = values.max() / 2 if values.size else 0
    for (i, j), value in np.ndenumerate(values):
        if value:
            text = f"{value:.2f}" if normalise else f"{int(value)}"
            axes.text(j, i, text, ha="center", va="center", fontsize=6,
                      color="white" if value > threshold else "black")
    return save_figure(figure, path)


def training_curves(history, path, title="Training"):
    """Loss and accuracy per epoch, train and validation, from training.TrainResult.history;
    a dashed line marks the best epoch (lowest validation loss)."""
    epochs = [h["epoch"] for h in history]
    figure = new_figure(9, 3.6)
    loss_axes, acc_axes = figure.subplots(1, 2)
    for key, axes, scale in (("loss", loss_axes, 1), ("acc", acc_axes, 100)):
        for split in ("train", "val"):
            values = [h[f"{split}_{key}"] for h in history]
            if any(v is not None for v in values):
                axes.plot(epochs, [np.nan if v is None else scale * v for v in values], label=split)
        axes.set(xlabel="epoch", ylabel="accuracy (%)" if key == "acc" else "cross-entropy")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
    if history:
        best = min(history, key=lambda h: h["val_loss"])["epoch"]
        for axes in (loss_axes, acc_axes):
            axes.axvline(best, color="grey", linestyle="--", linewidth=0.8)
        loss_axes.legend(fontsize="small")
    figure.suptitle(title)
    return save_figure(figure, path)
