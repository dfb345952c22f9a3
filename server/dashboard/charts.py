"""Line charts drawn on the server as inline SVG: no script, no library, readable offline.

One chart per metric, one line per version and variant (canaries dashed), one circle per
point with a <title> the browser shows on hover. A step with no calls breaks the line
rather than drawing a slope through missing data. Every label is escaped here, since the
markup reaches the template already built.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 560, 180
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 10, 24
PALETTE_SIZE = 8  # classes line-0 .. line-7 in dashboard.css


@dataclass(frozen=True)
class Line:
    """One series to draw: its name, whether it is a canary, and its (time, value) points."""

    name: str
    canary: bool
    points: Sequence[tuple[datetime, float]]


def _nice_steps(least: float) -> Iterator[float]:
    """1, 2 and 5 times the powers of ten, from the first at or above `least` upward."""
    power = 10.0 ** math.floor(math.log10(least))
    while True:
        for factor in (1, 2, 5):
            if factor * power >= least * (1 - 1e-9):
                yield factor * power
        power *= 10


def _y_ticks(
    highest: float, fmt: Callable[[float], str], ceiling: float | None, resolution: float
) -> list[float]:
    """The y axis's ticks, from 0 up to the chart's top.

    The step is the smallest nice one (1, 2 or 5 times a power of ten) that reaches the
    highest value (or `ceiling`) in at most four steps, is no finer than `resolution`
    (1 for counts), and that `fmt` labels distinctly: sub-millisecond latencies read
    "0 ms, 1 ms", not "0 ms, 0 ms, 1 ms, 1 ms, 1 ms". An empty chart reads 0 to one step.
    """
    top = ceiling if ceiling is not None else highest
    if top <= 0:
        top = 1.0
    ticks: list[float] = []
    for tries, step in enumerate(_nice_steps(max(top / 4, resolution))):
        count = max(1, math.ceil(top / step - 1e-9))
        ticks = [step * i for i in range(count + 1)]
        labels = [fmt(t) for t in ticks]
        if len(set(labels)) == len(labels) or tries > 30:
            break
    return ticks


@lru_cache(maxsize=4096)
def _when(moment: datetime) -> str:
    """A point's time in its hover title (the page's charts share their points' times)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _time_label(moment: datetime, span: float) -> str:
    moment = moment.astimezone(UTC)
    if span <= 2 * 86400:
        return moment.strftime("%H:%M")
    return moment.strftime("%m-%d")


def line_chart(
    title: str,
    lines: Sequence[Line],
    start: datetime,
    end: datetime,
    step: float,
    fmt: Callable[[float], str],
    *,
    ceiling: float | None = None,
    resolution: float = 0.0,
) -> Markup:
    """Return an <svg> charting `lines` over [start, end); values labelled with `fmt`, the
    y axis up to `ceiling` when given, its ticks no closer than `resolution`."""
    drawn = [line for line in lines if line.points]
    t0, t1 = start.timestamp(), end.timestamp()
    span = max(t1 - t0, 1.0)
    highest = max((v for line in drawn for _, v in line.points), default=0.0)
    ticks = _y_ticks(highest, fmt, ceiling, resolution)
    top = ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(moment: datetime) -> float:
        return LEFT + (moment.timestamp() + step / 2 - t0) / span * plot_w

    def y(value: float) -> float:
        return TOP + plot_h - (value / top) * plot_h if top else TOP + plot_h

    label = escape(title)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{label}" data-points="{sum(len(line.points) for line in drawn)}">',
        f"<title>{label}</title>",
    ]
    for value in ticks:
        gy = y(value)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{gy:.1f}" y2="{gy:.1f}"/>'
        )
        parts.append(
            f'<text class="axis" x="{LEFT - 4}" y="{gy + 4:.1f}" '
            f'text-anchor="end">{escape(fmt(value))}</text>'
        )
    for i in range(5):
        moment = datetime.fromtimestamp(t0 + span * i / 4, UTC)
        gx = LEFT + plot_w * i / 4
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"
        parts.append(
            f'<text class="axis" x="{gx:.1f}" y="{HEIGHT - 6}" '
            f'text-anchor="{anchor}">{_time_label(moment, span)}</text>'
        )
    if not drawn:
        parts.append(
            f'<text class="empty" x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" '
            'text-anchor="middle">no calls in this range</text>'
        )
    for index, line in enumerate(drawn):
        css = f"line-{index % PALETTE_SIZE}" + (" canary" if line.canary else "")
        name = escape(line.name)
        parts.append(f'<g class="{css}" data-series="{name}">')
        coordinates = [(f"{x(moment):.1f}", f"{y(value):.1f}") for moment, value in line.points]
        segment: list[str] = []
        previous: datetime | None = None
        for (moment, _), (cx, cy) in zip(line.points, coordinates, strict=True):
            if previous is not None and moment.timestamp() - previous.timestamp() > step * 1.5:
                if len(segment) > 1:
                    parts.append(f'<polyline points="{" ".join(segment)}"/>')
                segment = []
            segment.append(f"{cx},{cy}")
            previous = moment
        if len(segment) > 1:
            parts.append(f'<polyline points="{" ".join(segment)}"/>')
        for (moment, value), (cx, cy) in zip(line.points, coordinates, strict=True):
            parts.append(
                f'<circle class="point" cx="{cx}" cy="{cy}" r="2.5">'
                f"<title>{name} · {_when(moment)} · {escape(fmt(value))}</title></circle>"
            )
        parts.append("</g>")
    parts.append("</svg>")
    return Markup("".join(parts))
