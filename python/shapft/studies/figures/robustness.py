"""Figures of the robustness leaderboard (`shapft robustness`, leaderboard.json rows):
robust accuracy against the budget, and against SNR at one budget; one line per model."""
import numpy as np

from .style import new_figure, save_figure


MARKERS = "osD^v<>ph*"


def _by_model(rows):
    models = {}
    for row in rows:
        models.setdefault(row["model"], []).append(row)
    return models


def _styles(names):
    """{model: (colour, marker)}, distinct for up to 20 models (matplotlib's default
    cycle repeats after 10): tab20's colours and a marker cycle of another length."""
    from matplotlib import colormaps
    colours = colormaps["tab10" if len(names) <= 10 else "tab20"].colors
    return {name: (colours[i % len(colours)], MARKERS[i % len(MARKERS)]) for i, name in enumerate(names)}


def robust_vs_psr(rows, path, title="Robust accuracy vs budget"):
    """Robust accuracy (the L-inf cascade) against PSR dB, its 95 % bootstrap interval as
    error bars; each model's clean accuracy as a hollow marker left of its first budget."""
    figure = new_figure(width=9.0)   # room for the legend beside the plot
    axes = figure.add_subplot()
    models = _by_model(rows)
    styles = _styles(list(models))
    for name, model_rows in models.items():
        colour, marker = styles[name]
        model_rows = sorted(model_rows, key=lambda r: r["psr_db"])
        psrs = np.array([r["psr_db"] for r in model_rows])
        accuracy = 100 * np.array([r["robust_accuracy"] for r in model_rows])
        low = 100 * np.array([r["ci95"][0] for r in model_rows])
        high = 100 * np.array([r["ci95"][1] for r in model_rows])
        axes.errorbar(psrs, accuracy, yerr=[accuracy - low, high - accuracy], marker=marker, markersize=4,
                      capsize=3, label=name, color=colour)
        axes.plot([psrs[0] - 2], [100 * model_rows[0]["clean_accuracy"]], marker=marker, markerfacecolor="none",
                  color=colour)
    top = max(100 * row["clean_accuracy"] for row in rows)
    axes.set(xlabel="perturbation-to-signal ratio (dB)", ylabel="robust accuracy (%)  [hollow: clean]",
             ylim=(0, min(100, 10 * np.ceil(top / 10 + 0.5))), title=title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    return save_figure(figure, path)


def robust_vs_snr(rows, psr_db, path, title=None):
    """Robust accuracy (the L-inf cascade) against SNR at budget psr_db, one line per model."""
    figure = new_figure(width=9.0)   # room for the legend beside the plot
    axes = figure.add_subplot()
    models = _by_model(rows)
    styles = _styles(list(models))
    for name, model_rows in models.items():
        colour, marker = styles[name]
        for row in model_rows:
            if row["psr_db"] != psr_db:
                continue
            points = sorted((float(snr), acc) for snr, acc in row["per_snr"].items() if acc is not None)
            if points:
                snrs, accs = zip(*points)
                axes.plot(snrs, 100 * np.asarray(accs), marker=marker, markersize=3, label=name, color=colour)
    axes.set(xlabel="SNR (dB)", ylabel="robust accuracy (%)", ylim=(0, 100),
             title=title or f"Robust accuracy vs SNR at PSR {psr_db:g} dB")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    return save_figure(figure, path)
