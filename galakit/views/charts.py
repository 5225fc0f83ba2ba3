"""Line charts described once (``Panel``: titled curves) and drawn two ways: with matplotlib (``draw_panel``, for
figures, PNGs and slides) or as a small SVG string (``panel_svg``, for a live view in the browser).

The live dashboard redraws while learners train on the same cores: matplotlib takes ~0.3 s for its six panels
here, the SVG ~10 ms, and the browser draws it. Both draw exactly the same points.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.ticker import LogLocator, MaxNLocator

DASHES = {"-": "", "--": "5,3", ":": "1.5,2", "-.": "6,2,1.5,2"}  # matplotlib line style → SVG stroke-dasharray


@dataclass
class Curve:
    """One line (``style`` a matplotlib line style) or, with ``style="o"``, hollow markers; x and y of one length."""

    x: np.ndarray
    y: np.ndarray
    color: object = "0.3"
    style: str = "-"
    label: str | None = None
    width: float = 1.0


@dataclass
class Panel:
    """A chart: its curves, axis labels, a linear or log y axis, and the text it shows when it has no data."""

    title: str
    curves: list[Curve] = field(default_factory=list)
    xlabel: str = ""
    ylabel: str = ""
    log_y: bool = False
    empty: str = "no data yet"
    legend: list[tuple[str, str, object]] | None = None  # (label, style, colour) entries instead of the curves'

    def drawn(self) -> list[Curve]:
        """The curves with points to draw (on a log axis: positive values only)."""
        out = []
        for c in self.curves:
            x, y = np.asarray(c.x, dtype=float), np.asarray(c.y, dtype=float)
            keep = np.isfinite(x) & np.isfinite(y) & ((y > 0) if self.log_y else True)
            if keep.any():
                out.append(Curve(x[keep], y[keep], c.color, c.style, c.label, c.width))
        return out


def draw_panel(ax: Axes, panel: Panel) -> Axes:
    """``panel`` on matplotlib axes."""
    curves = panel.drawn()
    for c in curves:
        if c.style == "o":
            ax.plot(c.x, c.y, "o", mfc="none", mec=c.color, ms=5, ls="none", label=c.label)
        else:
            ax.plot(c.x, c.y, color=c.color, ls=c.style, lw=c.width, label=c.label)
    ax.set_title(panel.title, fontsize=9)
    ax.set_xlabel(panel.xlabel, fontsize=8)
    ax.set_ylabel(panel.ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    if not curves:
        ax.text(0.5, 0.5, panel.empty, ha="center", va="center", transform=ax.transAxes, color="0.5", fontsize=8)
        return ax
    if panel.log_y:
        ax.set_yscale("log")
    if panel.legend:
        handles = [ax.plot([], [], color=color, ls=style, lw=1)[0] for _, style, color in panel.legend]
        ax.legend(handles, [label for label, _, _ in panel.legend], fontsize=7)
    elif any(c.label for c in curves):
        ax.legend(fontsize=7)
    return ax


def panel_svg(panel: Panel, width: int = 320, height: int = 200) -> str:
    """``panel`` as an inline SVG chart (``<svg class="galakit-chart">``; each curve a ``polyline`` or circles
    with ``class="galakit-series"`` and ``data-points`` = its number of points)."""
    left, right, top, bottom = 46, 8, 18, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [f'<svg class="galakit-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="9">',
             f'<text x="{width / 2}" y="11" text-anchor="middle" font-size="10">{html.escape(panel.title)}</text>',
             f'<text x="{left + plot_w / 2}" y="{height - 3}" text-anchor="middle" fill="#555">'
             f'{html.escape(panel.xlabel)}</text>',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>']
    curves = panel.drawn()
    if not curves:
        parts.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" fill="#888">'
                     f'{html.escape(panel.empty)}</text></svg>')
        return "".join(parts)
    xs = np.concatenate([c.x for c in curves])
    ys = np.concatenate([c.y for c in curves])
    x_ticks, (x0, x1) = _ticks(xs.min(), xs.max(), log=False)
    y_ticks, (y0, y1) = _ticks(ys.min(), ys.max(), log=panel.log_y)

    def to_px(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        fy = (np.log10(y) - np.log10(y0)) / (np.log10(y1) - np.log10(y0)) if panel.log_y else (y - y0) / (y1 - y0)
        return left + (x - x0) / (x1 - x0) * plot_w, top + (1 - fy) * plot_h

    for t in x_ticks:
        px, _ = to_px(np.array([t]), np.array([y1]))
        parts.append(f'<text x="{px[0]:.1f}" y="{top + plot_h + 10}" text-anchor="middle">{_number(t)}</text>')
    for t in y_ticks:
        _, py = to_px(np.array([x0]), np.array([t]))
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{py[0]:.1f}" y2="{py[0]:.1f}" stroke="#eee"/>'
                     f'<text x="{left - 3}" y="{py[0] + 3:.1f}" text-anchor="end">{_number(t)}</text>')
    for c in curves:
        px, py = to_px(c.x, c.y)
        color = to_hex(c.color)
        if c.style == "o":
            dots = "".join(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.5"/>' for a, b in zip(px, py, strict=True))
            parts.append(f'<g class="galakit-series" data-points="{len(px)}" fill="none" stroke="{color}">'
                         f'{dots}</g>')
        else:
            points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py, strict=True))
            parts.append(f'<polyline class="galakit-series" data-points="{len(px)}" points="{points}" fill="none" '
                         f'stroke="{color}" stroke-width="{c.width}" stroke-dasharray="{DASHES.get(c.style, "")}"/>')
    parts.append(_svg_legend(panel, curves, left + 4, top + 4))
    parts.append("</svg>")
    return "".join(parts)


def _svg_legend(panel: Panel, curves: list[Curve], x: float, y: float) -> str:
    entries = panel.legend or [(c.label, c.style, c.color) for c in curves if c.label]
    out = []
    for i, (label, style, color) in enumerate(entries):
        yy = y + 4 + 10 * i
        mark = (f'<circle cx="{x + 6}" cy="{yy}" r="2.5" fill="none" stroke="{to_hex(color)}"/>' if style == "o" else
                f'<line x1="{x}" x2="{x + 12}" y1="{yy}" y2="{yy}" stroke="{to_hex(color)}" '
                f'stroke-dasharray="{DASHES.get(style, "")}"/>')
        out.append(f'{mark}<text x="{x + 15}" y="{yy + 3}" fill="#333">{html.escape(label)}</text>')
    return "".join(out)


def _ticks(lo: float, hi: float, log: bool) -> tuple[np.ndarray, tuple[float, float]]:
    """About five round tick values inside [lo, hi], and the axis range (the data's, widened when flat)."""
    if hi <= lo:
        lo, hi = (lo / 2, lo * 2) if log else (lo - 1, hi + 1)
    locator = LogLocator(numticks=5) if log else MaxNLocator(5)
    ticks = np.asarray(locator.tick_values(lo, hi))
    return ticks[(ticks >= lo) & (ticks <= hi)], (lo, hi)


def _number(v: float) -> str:
    """A tick label: 0.001 as 1e-03, 2000 as 2k, 3000000 as 3M."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{suffix}"
    return f"{v:.0e}" if v and abs(v) < 1e-2 else f"{v:.3g}"
