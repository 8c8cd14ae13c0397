"""Figures of the distillation experiment (distill_results.json): accuracy against the
attack budget (FGM and PGD, PSR dB), accuracy against SNR (clean and under PGD at the
training budget), and the transferability heat map."""
import numpy as np

from .style import new_figure, save_figure


def _label(name):
    return name.replace("transformer_", "")


def accuracy_vs_budget(results, path, title="White-box accuracy vs budget"):
    """Two panels (FGM L2, PGD L-inf): accuracy against PSR dB, one line per model,
    its clean accuracy drawn at the left edge as a hollow marker."""
    figure = new_figure(10, 4.2)
    panels = dict(zip(("fgm", "pgd"), figure.subplots(1, 2, sharey=True)))
    for name, entry in results["models"].items():
        attacks = entry["whitebox"]["attacks"]
        for method, axes in panels.items():
            points = sorted((a["psr_db"], a["accuracy"]) for a in attacks if a["method"] == method)
            if len(points) < 2:
                continue
            psrs, accs = zip(*points)
            line, = axes.plot(psrs, 100 * np.asarray(accs), marker="o", markersize=4, label=_label(name))
            axes.plot([psrs[0] - 2], [100 * entry["whitebox"]["clean"]["accuracy"]], marker="o",
                      markerfacecolor="none", color=line.get_color())
    for method, axes in panels.items():
        norm = "L2" if method == "fgm" else "L-inf"
        axes.set(xlabel="perturbation-to-signal ratio (dB)", title=f"{method.upper()} ({norm})", ylim=(0, 100))
        axes.grid(alpha=0.3)
    panels["fgm"].set_ylabel("accuracy (%)  [hollow: clean]")
    panels["pgd"].legend(fontsize="small")
    figure.suptitle(title)
    return save_figure(figure, path)


def accuracy_vs_snr(results, path, attack_psr_db, title="Accuracy vs SNR"):
    """Two panels: clean, and under white-box PGD at attack_psr_db; one line per model."""
    figure = new_figure(10, 4.2)
    clean_axes, attacked_axes = figure.subplots(1, 2, sharey=True)
    for name, entry in results["models"].items():
        curves = [(clean_axes, entry["whitebox"]["clean"]["per_snr"])]
        for attack in entry["whitebox"]["attacks"]:
            if attack["method"] == "pgd" and abs(attack["psr_db"] - attack_psr_db) < 1e-6:
                curves.append((attacked_axes, attack["per_snr"]))
        for axes, per_snr in curves:
            points = sorted((float(s), a) for s, a in per_snr.items() if a is not None)
            if points:
                snrs, accs = zip(*points)
                axes.plot(snrs, 100 * np.asarray(accs), marker="o", markersize=3, label=_label(name))
    clean_axes.set(title="clean", xlabel="SNR (dB)", ylabel="accuracy (%)", ylim=(0, 100))
    attacked_axes.set(title=f"white-box PGD, PSR {attack_psr_db:g} dB", xlabel="SNR (dB)")
    for axes in (clean_axes, attacked_axes):
        axes.grid(alpha=0.3)
    clean_axes.legend(fontsize="small")
    figure.suptitle(title)
    return save_figure(figure, path)


def transfer_heatmap(transfer, path, title=None):
    """accuracy[source][target] as a heat map (rows: crafted on; columns: scored by)."""
    values = 100 * np.asarray(transfer["accuracy"], dtype=float)
    sources = [_label(s) for s in transfer["sources"]]
    targets = [_label(t) for t in transfer["targets"]]
    figure = new_figure(1.6 + 1.1 * len(targets), 1.4 + 0.6 * len(sources))
    axes = figure.add_subplot()
    image = axes.imshow(values, cmap="viridis", vmin=0, vmax=100)
    figure.colorbar(image, ax=axes, shrink=0.8, label="accuracy (%)")
    axes.set_xticks(np.arange(len(targets)), targets, rotation=30, ha="right", fontsize="small")
    axes.set_yticks(np.arange(len(sources)), sources, fontsize="small")
    axes.set(xlabel="scored by", ylabel="crafted against")
    for (i, j), value in np.ndenumerate(values):
        axes.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=7,
                  color="white" if value < 50 else "black")
    attack = transfer.get("attack", {})
    axes.set_title(title or f"Transferability: {attack.get('description', 'PGD')}", fontsize="medium")
    return save_figure(figure, path)
