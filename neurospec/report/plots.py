"""Matplotlib helpers of the report: figures drawn off-screen, as SVG for the page and 200-dpi PNG for download.

    from neurospec.report.plots import draw, heatmap, ci_errors, colors
    def paint(fig):
        ax = fig.add_subplot()
        heatmap(fig, ax, [[0.1, None], [0.3, 0.4]], ["a", "b"], ["x", "y"], cmap="viridis", vmin=0, vmax=1)
    figure = draw("lss", "LSS", paint, size=(5, 4), alt="LSS heatmap")   # a content.Figure: SVG and PNG bytes

No pyplot: each figure is a ``matplotlib.figure.Figure`` with its own Agg canvas, styled inside
``matplotlib.rc_context`` (restored on exit), so importing or running the report changes neither
the process's backend nor its rcParams. A figure is saved with a tight bounding box (nothing drawn is
cut off) after its title was wrapped to the figure's width; the page shows it at :data:`PX_PER_INCH`.
"""

from __future__ import annotations

import io
import math
import re
import struct
import textwrap
from typing import Callable, Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize, SymLogNorm
from matplotlib.figure import Figure as MplFigure
from matplotlib.text import Text

from neurospec.report.content import Figure

PNG_DPI = 200  # the PNG files written beside the page, for slides and papers
PX_PER_INCH = 112  # CSS pixels per figure inch on the page: 8.5 pt figure text shows at about 13 px
PAD_INCHES = 0.06
STYLE = {
    "font.size": 8.5, "axes.titlesize": 9.5, "axes.labelsize": 8.5, "xtick.labelsize": 8, "ytick.labelsize": 8,
    "legend.fontsize": 7.5, "figure.titlesize": 10.5, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": False, "figure.facecolor": "white", "axes.facecolor": "white", "savefig.facecolor": "white",
    "image.cmap": "viridis", "svg.hashsalt": "neurospec-report", "svg.fonttype": "path",
}
GREY = "#8c8c8c"
LIGHT = "#c9c9c9"
MISSING = "#ececec"
_SVG_PREAMBLE = re.compile(r"<!DOCTYPE[^>]*>\s*|<metadata>.*?</metadata>\s*", flags=re.S)
_SVG_SIZE = re.compile(r'<svg[^>]*?width="([0-9.]+)pt" height="([0-9.]+)pt"')


def draw(name: str, title: str, paint: Callable[[MplFigure], None], *, size: tuple[float, float], alt: str,
         caption: str = "") -> Figure:
    """Create a figure of ``size`` inches, let ``paint(fig)`` draw it, render it to SVG and to PNG bytes."""
    width, height = max(2.5, min(size[0], 16.0)), max(2.0, min(size[1], 40.0))
    with matplotlib.rc_context(STYLE):
        fig = MplFigure(figsize=(width, height), dpi=100, layout="constrained")
        FigureCanvasAgg(fig)
        heading = fig.suptitle(title) if title else None
        paint(fig)
        if heading is not None:
            fit_title(fig, heading)
        svg = _save(fig, "svg")
        png = _save(fig, "png")
    found = _SVG_SIZE.search(svg.decode("utf-8"))
    width_pt, height_pt = (float(found.group(1)), float(found.group(2))) if found else (width * 72, height * 72)
    return Figure(name, title, png, round(width_pt / 72 * PX_PER_INCH), round(height_pt / 72 * PX_PER_INCH), alt,
                  caption, svg=svg)


def _save(fig: MplFigure, kind: str) -> bytes:
    """The figure as ``kind`` (svg or png) bytes, cropped to what is drawn; an SVG without its DOCTYPE and metadata
    (nothing a browser could fetch, and the same bytes for the same figure)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=kind, dpi=PNG_DPI, bbox_inches="tight", pad_inches=PAD_INCHES,
                metadata={"Date": None} if kind == "svg" else {"Software": None})
    if kind == "png":
        return buffer.getvalue()
    return _SVG_PREAMBLE.sub("", buffer.getvalue().decode("utf-8")).encode("utf-8")


def png_size(png: bytes) -> tuple[int, int]:
    """``(width, height)`` in pixels of PNG bytes (the IHDR chunk)."""
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


def fit_title(fig: MplFigure, text: Text, margin: float = 0.97) -> None:
    """Wrap ``text`` (a title) onto as few lines as keep it within ``margin`` of the figure's width; an interval
    in brackets (``[0.07, 0.65]``) is never split."""
    title = re.sub(r"\[[^\]]*\]", lambda m: m.group(0).replace(" ", "\u00a0"), " ".join(text.get_text().split()))
    renderer = fig.canvas.get_renderer()
    limit = fig.bbox.width * margin
    for chars in range(len(title), 9, -1):
        text.set_text(textwrap.fill(title, width=chars, break_long_words=False))
        if text.get_window_extent(renderer).width <= limit:
            return
    text.set_text(textwrap.fill(title, width=10))


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
            *, cmap: str, vmin: float | None = None, vmax: float | None = None, norm: Normalize | None = None,
            annotate: bool | None = None, fmt: Callable[[float], str] = lambda v: f"{v:.2f}",
            colorbar: str | None = None, annotations: Sequence[Sequence[str]] | None = None,
            row_colors: Sequence[str] | None = None):
    """Draw a rows x columns heatmap on ``ax`` (vector cells); None cells are light grey. Returns the mesh.

    The colour scale is ``norm`` (e.g. :func:`change_scale`'s) or linear from ``vmin`` to ``vmax``.
    ``annotate`` None writes the values when the matrix is small enough to read them;
    ``annotations`` replaces the written text; ``row_colors`` colours the row labels.
    """
    data = np.ma.masked_invalid(np.array([[np.nan if v is None else float(v) for v in row] for row in values],
                                         dtype=float).reshape(len(rows), len(columns)))
    palette = matplotlib.colormaps[cmap].with_extremes(bad=MISSING)
    norm = norm if norm is not None else Normalize(vmin=vmin, vmax=vmax)
    mesh = ax.pcolormesh(np.arange(len(columns) + 1) - 0.5, np.arange(len(rows) + 1) - 0.5, data, cmap=palette,
                         norm=norm, edgecolors="white", linewidth=1)
    ax.set_xlim(-0.5, len(columns) - 0.5)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xticks(range(len(columns)), labels=list(columns))
    ax.set_yticks(range(len(rows)), labels=list(rows))
    if len(columns) > 4 or max((len(c) for c in columns), default=0) > 8:
        ax.tick_params(axis="x", labelrotation=45)
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right")
            tick.set_rotation_mode("anchor")
    ax.spines[:].set_visible(False)
    ax.tick_params(length=0)
    if row_colors is not None:
        for tick, color in zip(ax.get_yticklabels(), row_colors):
            tick.set_color(color)
    if annotate is None:
        annotate = len(rows) * len(columns) <= 300 and len(columns) <= 24
    if annotate:
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
        bar = fig.colorbar(mesh, ax=ax, label=colorbar, shrink=0.85, pad=0.02)
        if isinstance(norm, SymLogNorm):
            ticks = symlog_ticks(norm)
            bar.set_ticks(ticks, labels=[tick_text(t) for t in ticks])
            bar.minorticks_off()
    return mesh


def tick_text(value: float) -> str:
    """A colour-bar tick with its sign and two significant digits: ``+0.04``, ``\u22121``, ``+130,000``, ``+2.5e-5``."""
    if value == 0:
        return "0"
    size = float(f"{abs(value):.2g}")
    if 1e-3 <= size < 1e6:
        body = f"{size:,.0f}" if size >= 100 else f"{size:g}"
    else:
        mantissa, exponent = f"{size:.1e}".split("e")
        body = f"{mantissa}e{int(exponent)}"
    return ("+" if value > 0 else "\u2212") + body


def symlog_ticks(norm: SymLogNorm) -> list[float]:
    """Colour-bar ticks of a symmetric log scale: 0, the edges of its linear part, the powers of ten between them
    and the ends, and the ends themselves."""
    limit, linear = float(norm.vmax), float(norm.linthresh)
    powers = [10.0 ** k for k in range(math.ceil(math.log10(linear * 1.5)), math.floor(math.log10(limit)) + 1)
              if linear * 1.5 < 10.0 ** k < limit / 1.5]
    positive = [linear, *powers, limit]
    return [-v for v in reversed(positive)] + [0.0] + positive


def change_scale(values: Sequence[Sequence[float | None]]) -> tuple[Normalize, str]:
    """A diverging colour scale for changes, and the words saying which: ``(norm, "symmetric log colour scale,
    linear within ±0.05")``.

    Symmetric log (:class:`matplotlib.colors.SymLogNorm`, linear within the lower quartile of the non-zero
    magnitudes, rounded down to one digit) when the magnitudes span more than a factor of 5 above it, so one
    large cell does not wash out the others; otherwise linear. Both run from minus the largest magnitude to it.
    """
    limit = symmetric_limit(values)
    magnitudes = np.array([abs(v) for row in values for v in row if v is not None and math.isfinite(v) and v != 0])
    if magnitudes.size:
        quartile = float(np.quantile(magnitudes, 0.25))
        linear = 10 ** math.floor(math.log10(quartile))
        linear *= math.floor(quartile / linear)
        if limit / linear > 5:
            return (SymLogNorm(linthresh=linear, linscale=0.5, vmin=-limit, vmax=limit, base=10),
                    f"symmetric log colour scale, linear within \u00b1{linear:g}")
    return Normalize(vmin=-limit, vmax=limit), "linear colour scale"


def fixed_decimals(values: Sequence[Sequence[float | None]], digits: int = 3) -> int:
    """The decimals that show the largest magnitude of ``values`` with ``digits`` significant digits (0 to 4): one
    precision for every number written on a figure."""
    limit = symmetric_limit(values)
    return max(0, min(4, digits - 1 - math.floor(math.log10(limit))))


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


def offsets(count: int, span: float = 0.7) -> np.ndarray:
    """The horizontal offsets that put ``count`` series side by side within ``span`` of a category's width."""
    step = span / max(count, 1)
    return (np.arange(count) - (count - 1) / 2) * step


def dots(ax, x, values: Sequence[float | None], intervals: Sequence[tuple[float, float] | None] | None = None, *,
         color, marker: str = "o", label: str | None = None, hollow: bool = False):
    """Point estimates at ``x`` with their intervals as whiskers: a value of 0 is a dot at 0, never an empty bar;
    a missing value (None) is left out. Returns the errorbar container (for a legend)."""
    yerr = ci_errors(values, intervals) if intervals is not None else None
    return ax.errorbar(x, bar_values(values), yerr=yerr, fmt=marker, color=color, markersize=4.8,
                       markeredgecolor="black", markeredgewidth=0.5, markerfacecolor="white" if hollow else color,
                       ecolor=color, elinewidth=1.2, capsize=2.2, label=label)


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
