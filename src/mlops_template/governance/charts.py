"""The audit pack's charts, drawn two ways from one description: mermaid for the Markdown pack
(GitHub renders it, as it does the pull-request report's) and inline SVG for the HTML pack.

Why not plotly (installed): a self-contained plotly page inlines plotly.js, 4.6 MB per pack;
the bento carries the pack, and the serving image is within 5 MB of its size budget (40 % of
`bentoml containerize`). The charts needed here are bars and lines over a few categories, a
few dozen lines of SVG with no script at all, which also cannot fail in a reader's browser.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Literal

from mlops_template.review.report import xychart_start

BLUE, GREY, ORANGE = "#1f77b4", "#9e9e9e", "#ff7f0e"
WIDTH = 640


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    kind: Literal["bar", "line"]
    values: tuple[float, ...]
    colour: str


@dataclass(frozen=True, slots=True)
class Chart:
    """Bars and lines over categories (or over evenly spaced points of `x_range`)."""

    title: str
    categories: tuple[str, ...]
    series: tuple[Series, ...]
    y_label: str
    y_range: tuple[float, float]
    x_label: str = ""
    x_range: tuple[float, float] | None = None  # numbers instead of named categories
    horizontal: bool = False  # categories down the side (long names: features)

    def mermaid(self) -> str:
        palette = ", ".join(s.colour for s in self.series)
        lo, hi = self.y_range
        if self.x_range is not None:
            x_axis = f'    x-axis "{self.x_label}" {self.x_range[0]:g} --> {self.x_range[1]:g}'
        else:
            x_axis = "    x-axis [" + ", ".join(f'"{_quote(c)}"' for c in self.categories) + "]"
        lines = [
            *xychart_start(palette),
            "xychart-beta horizontal" if self.horizontal else "xychart-beta",
            f'    title "{_quote(self.title)}"',
            x_axis,
            f'    y-axis "{_quote(self.y_label)}" {lo:.4g} --> {hi:.4g}',
            *[
                f"    {s.kind} [" + ", ".join(f"{v:.4f}" for v in s.values) + "]"
                for s in self.series
            ],
            "```",
        ]
        return "\n".join(lines)

    def svg(self) -> str:
        return _horizontal(self) if self.horizontal else _vertical(self)

    @property
    def size(self) -> int:
        return max(len(s.values) for s in self.series) if self.series else 0


def _quote(text: str) -> str:
    return text.replace('"', "'")


def _text(x: float, y: float, text: str, anchor: str = "middle", size: int = 11) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}">'
        f"{escape(text)}</text>"
    )


def _labels(chart: Chart) -> list[str]:
    if chart.x_range is None:
        return list(chart.categories)
    lo, hi, n = chart.x_range[0], chart.x_range[1], chart.size
    return [f"{lo + (hi - lo) * i / max(n - 1, 1):.2f}" for i in range(n)]


def _legend(chart: Chart, y: float) -> list[str]:
    out, x = [], 60.0
    for s in chart.series:
        out.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{s.colour}"/>')
        out.append(_text(x + 14, y, s.name, anchor="start"))
        x += 24 + 7 * len(s.name)
    return out


def _frame(chart: Chart, height: float, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{WIDTH}" height="{height:.0f}" '
        f'viewBox="0 0 {WIDTH} {height:.0f}"><title>{escape(chart.title)}</title>'
        + _text(WIDTH / 2, 18, chart.title, size=13)
        + "".join(body)
        + "</svg>"
    )


def _vertical(chart: Chart) -> str:
    height, left, right, top, bottom = 330.0, 60.0, WIDTH - 20.0, 36.0, 250.0
    lo, hi = chart.y_range
    labels = _labels(chart)
    n = max(len(labels), 1)
    slot = (right - left) / n

    def y(v: float) -> float:
        return bottom - (min(max(v, lo), hi) - lo) / ((hi - lo) or 1.0) * (bottom - top)

    body = [f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#444"/>']
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        body.append(
            f'<line x1="{left}" y1="{y(v):.1f}" x2="{right}" y2="{y(v):.1f}" stroke="#ddd"/>'
        )
        body.append(_text(left - 6, y(v) + 4, f"{v:.3g}", anchor="end"))
    step = -(-n // 11)  # at most 11 labels
    for i, label in enumerate(labels):
        if i % step == 0:
            body.append(_text(left + slot * (i + 0.5), bottom + 16, label))
    bars = [s for s in chart.series if s.kind == "bar"]
    width = slot * 0.7 / max(len(bars), 1)
    for b, s in enumerate(bars):
        for i, v in enumerate(s.values):
            x = left + slot * i + slot * 0.15 + b * width
            body.append(
                f'<rect x="{x:.1f}" y="{y(v):.1f}" width="{width:.1f}" '
                f'height="{bottom - y(v):.1f}" fill="{s.colour}"/>'
            )
    for s in (s for s in chart.series if s.kind == "line"):
        points = " ".join(
            f"{left + slot * (i + 0.5):.1f},{y(v):.1f}" for i, v in enumerate(s.values)
        )
        body.append(
            f'<polyline points="{points}" fill="none" stroke="{s.colour}" stroke-width="2"/>'
        )
    body.append(_text((left + right) / 2, bottom + 34, chart.x_label))
    body.append(
        f'<text x="14" y="{(top + bottom) / 2:.1f}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 14 {(top + bottom) / 2:.1f})">{escape(chart.y_label)}</text>'
    )
    return _frame(chart, height, body + _legend(chart, height - 14))


def _horizontal(chart: Chart) -> str:
    row, left, right, top = 22.0, 190.0, WIDTH - 30.0, 36.0
    labels = _labels(chart)
    bottom = top + row * max(len(labels), 1)
    height = bottom + 60
    lo, hi = chart.y_range

    def x(v: float) -> float:
        return left + (min(max(v, lo), hi) - lo) / ((hi - lo) or 1.0) * (right - left)

    body = [
        f'<line x1="{x(max(lo, 0.0)):.1f}" y1="{top}" x2="{x(max(lo, 0.0)):.1f}" '
        f'y2="{bottom}" stroke="#444"/>'
    ]
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        body.append(
            f'<line x1="{x(v):.1f}" y1="{top}" x2="{x(v):.1f}" y2="{bottom}" stroke="#ddd"/>'
        )
        body.append(_text(x(v), bottom + 14, f"{v:.3f}"))
    for i, label in enumerate(labels):
        body.append(_text(left - 6, top + row * (i + 0.65), label, anchor="end"))
    bars = [s for s in chart.series if s.kind == "bar"]
    height_bar = row * 0.7 / max(len(bars), 1)
    zero = x(max(lo, 0.0))
    for b, s in enumerate(bars):
        for i, v in enumerate(s.values):
            y = top + row * i + row * 0.15 + b * height_bar
            start, end = sorted((zero, x(v)))
            body.append(
                f'<rect x="{start:.1f}" y="{y:.1f}" width="{end - start:.1f}" '
                f'height="{height_bar:.1f}" fill="{s.colour}"/>'
            )
    for s in (s for s in chart.series if s.kind == "line"):
        points = " ".join(f"{x(v):.1f},{top + row * (i + 0.5):.1f}" for i, v in enumerate(s.values))
        body.append(
            f'<polyline points="{points}" fill="none" stroke="{s.colour}" stroke-width="2"/>'
        )
    body.append(_text((left + right) / 2, bottom + 30, chart.y_label))
    return _frame(chart, height, body + _legend(chart, height - 8))
