"""Figures of the robustness leaderboard (`shapft robustness`, leaderboard.json rows):
robust accuracy against the budget, and against SNR at one budget; one line per model."""
import numpy as np

from .style import new_figure, save_figure


def _by_model(rows):
    models = {}
    for row in rows:
        models.setdefault(row["model"], []).append(row)
    return models


def robust_vs_psr(rows, path, title="Robust accuracy vs budget"):
    """Robust accuracy (the L-inf cascade) against PSR dB, its 95 % bootstrap interval as
    error bars; each model's clean accuracy as a hollow marker left of its first budget."""
    figure = new_figure()
    axes = figure.add_subplot()
    for name, model_rows in _by_model(rows).items():
        model_rows = sorted(model_rows, key=lambda r: r["psr_db"])
        psrs = np.array([r["psr_db"] for r in model_rows])
        accuracy = 100 * np.array([r["robust_accuracy"] for r in model_rows])
        low = 100 * np.array([r["ci95"][0] for r in model_rows])
        high = 100 * np.array([r["ci95"][1] for r in model_rows])
        line = axes.errorbar(psrs, accuracy, yerr=[accuracy - low, high - accuracy], marker="o", markersize=4,
                             capsize=3, label=name)
        axes.plot([psrs[0] - 2], [100 * model_rows[0]["clean_accuracy"]], marker="o", markerfacecolor="none",
                  color=line.lines[0].get_color())
    axes.set(xlabel="perturbation-to-signal ratio (dB)", ylabel="robust accuracy (%)  [hollow: clean]",
             ylim=(0, 100), title=title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return save_figure(figure, path)


def robust_vs_snr(rows, psr_db, path, title=None):
    """Robust accuracy (the L-inf cascade) against SNR at budget psr_db, one line per model."""
    figure = new_figure()
    axes = figure.add_subplot()
    for name, model_rows in _by_model(rows).items():
        for row in model_rows:
            if row["psr_db"] != psr_db:
                continue
            points = sorted((float(snr), acc) for snr, acc in row["per_snr"].items() if acc is not None)
            if points:
                snrs, accs = zip(*points)
                axes.plot(snrs, 100 * np.asarray(accs), marker="o", markersize=3, label=name)
    axes.set(xlabel="SNR (dB)", ylabel="robust accuracy (%)", ylim=(0, 100),
             title=title or f"Robust accuracy vs SNR at PSR {psr_db:g} dB")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return save_figure(figure, path)
