"""Matplotlib helpers of the report: figures drawn off-screen with Agg, no global state touched.

    from neurospec.report.plots import draw, heatmap, ci_errors, colors
    def paint(fig):
        ax = fig.add_subplot()
        heatmap(fig, ax, [[0.1, None], [0.3, 0.4]], ["a", "b"], ["x", "y"], cmap="viridis", vmin=0, vmax=1)
    figure = draw("lss", "LSS", paint, size=(5, 4), alt="LSS heatmap")   # a content.Figure holding PNG bytes

No pyplot: each figure is a ``matplotlib.figure.Figure`` with its own Agg canvas, styled inside
``matplotlib.rc_context`` (restored on exit), so importing or running the report changes neither
the process's backend nor its rcParams.
"""

from __future__ import annotations

import io
import math
import struct
import textwrap
from typing import Callable, Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as MplFigure

from neurospec.report.content import Figure

DPI = 100
STYLE = {
    "font.size": 8.5, "axes.titlesize": 9.5, "axes.labelsize": 8.5, "xtick.labelsize": 8, "ytick.labelsize": 8,
    "legend.fontsize": 7.5, "figure.titlesize": 10.5, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": False, "figure.facecolor": "white", "axes.facecolor": "white", "savefig.facecolor": "white",
    "image.cmap": "viridis",
}
GREY = "#8c8c8c"
LIGHT = "#c9c9c9"
MISSING = "#ececec"


def draw(name: str, title: str, paint: Callable[[MplFigure], None], *, size: tuple[float, float], alt: str,
         caption: str = "") -> Figure:
    """Create a figure of ``size`` inches, let ``paint(fig)`` draw it, render it to PNG bytes."""
    width, height = max(2.5, min(size[0], 16.0)), max(2.0, min(size[1], 40.0))
    with matplotlib.rc_context(STYLE):
        fig = MplFigure(figsize=(width, height), dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        if title:
            fig.suptitle(textwrap.fill(title, width=max(40, int(width * 13))))
        paint(fig)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI)
    png = buffer.getvalue()
    pixels_w, pixels_h = struct.unpack(">II", png[16:24])  # the IHDR chunk
    return Figure(name, title, png, int(pixels_w), int(pixels_h), alt, caption)


def colors(n: int) -> list[tuple[float, float, float, float]]:
    """``n`` distinct colours: tab10, tab20, then evenly spaced over turbo."""
    if n <= 10:
        return [matplotlib.colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [matplotlib.colormaps["tab20"](i) for i in range(n)]
    return [matplotlib.colormaps["turbo"](x) for x in np.linspace(0.05, 0.95, n)]


def symmetric_limit(values: Sequence[Sequence[float | None]]) -> float:
    """The largest absolute finite value (a diverging colour scale runs from minus it to it); 1 when all are 0."""
    finite = [abs(v) for row in values for v in row if v is not None and math.isfinite(v)]
    return max(finite, default=0.0) or 1.0


def _text_color(rgba) -> str:
    red, green, blue = rgba[:3]
    return "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.55 else "white"


def heatmap(fig: MplFigure, ax, values: Sequence[Sequence[float | None]], rows: Sequence[str], columns: Sequence[str],
            *, cmap: str, vmin: float, vmax: float, annotate: bool | None = None,
            fmt: Callable[[float], str] = lambda v: f"{v:.2f}", colorbar: str | None = None,
            annotations: Sequence[Sequence[str]] | None = None, row_colors: Sequence[str] | None = None):
    """Draw a rows x columns heatmap on ``ax``; None cells are light grey. Returns the image.

    ``annotate`` None writes the values when the matrix is small enough to read them;
    ``annotations`` replaces the written text; ``row_colors`` colours the row labels.
    """
    data = np.ma.masked_invalid(np.array([[np.nan if v is None else float(v) for v in row] for row in values],
                                         dtype=float).reshape(len(rows), len(columns)))
    palette = matplotlib.colormaps[cmap].with_extremes(bad=MISSING)
    image = ax.imshow(data, cmap=palette, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(columns)), labels=list(columns))
    ax.set_yticks(range(len(rows)), labels=list(rows))
    if len(columns) > 4 or max((len(c) for c in columns), default=0) > 8:
        ax.tick_params(axis="x", labelrotation=45)
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right")
            tick.set_rotation_mode("anchor")
    ax.spines[:].set_visible(False)
    ax.set_xticks(np.arange(len(columns) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(rows) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=1)
    ax.tick_params(which="minor", length=0)
    if row_colors is not None:
        for tick, color in zip(ax.get_yticklabels(), row_colors):
            tick.set_color(color)
    if annotate is None:
        annotate = len(rows) * len(columns) <= 300 and len(columns) <= 24
    if annotate:
        norm = image.norm
        size = 7 if len(columns) <= 12 else 6
        for i in range(len(rows)):
            for j in range(len(columns)):
                value = data[i, j]
                if annotations is not None:
                    label = annotations[i][j]
                elif value is np.ma.masked:
                    continue
                else:
                    label = fmt(float(value))
                if not label:
                    continue
                color = "black" if value is np.ma.masked else _text_color(palette(norm(float(value))))
                ax.text(j, i, label, ha="center", va="center", fontsize=size, color=color)
    if colorbar is not None:
        fig.colorbar(image, ax=ax, label=colorbar, shrink=0.85, pad=0.02)
    return image


def ci_errors(values: Sequence[float | None], intervals: Sequence[tuple[float, float] | None]) -> np.ndarray:
    """A 2 x n ``yerr`` array (distances below and above) from [low, high] intervals; NaN where missing."""
    below, above = [], []
    for value, interval in zip(values, intervals):
        if value is None or interval is None:
            below.append(np.nan)
            above.append(np.nan)
        else:
            below.append(max(0.0, value - interval[0]))
            above.append(max(0.0, interval[1] - value))
    return np.array([below, above], dtype=float)


def bar_values(values: Sequence[float | None]) -> np.ndarray:
    """Bar heights with NaN (no bar) for missing values."""
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def rotate_labels(ax, labels: Sequence[str], limit: int = 6) -> None:
    """Tilt the x labels when there are many or they are long."""
    if len(labels) > limit or max((len(label) for label in labels), default=0) > 10:
        for tick in ax.get_xticklabels():
            tick.set_rotation(35)
            tick.set_horizontalalignment("right")
            tick.set_rotation_mode("anchor")


def grid_shape(panels: int, columns: int) -> tuple[int, int]:
    """(rows, columns) of a grid of ``panels`` small multiples, at most ``columns`` wide."""
    cols = max(1, min(columns, panels))
    return math.ceil(panels / cols), cols


def small_multiples(fig: MplFigure, panels: int, columns: int = 4, **subplots) -> tuple[np.ndarray, list]:
    """The grid of ``grid_shape(panels, columns)`` subplots and its first ``panels`` axes; the rest hidden."""
    grid = fig.subplots(*grid_shape(panels, columns), squeeze=False, **subplots)
    for ax in grid.flat[panels:]:
        ax.set_visible(False)
    return grid, list(grid.flat[:panels])
