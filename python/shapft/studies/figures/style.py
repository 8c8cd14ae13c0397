"""The one way figures are made here: a Figure on its own Agg canvas, never pyplot.

pyplot keeps global state and is not thread-safe (GNU Radio flowgraphs run threads),
and switching its backend would disturb a Qt flowgraph in the same process. Layout is
matplotlib's constrained layout; files are written atomically, in the format named
by the extension (.png, .pdf, .svg).
"""
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ...core import artifacts


def new_figure(width=6.4, height=4.2):
    """A Figure on an Agg canvas; pass it to save_figure when done."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure, path, dpi=120):
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with artifacts.atomic_path(path) as tmp:
        figure.savefig(tmp, format=fmt, dpi=dpi)
    return path
