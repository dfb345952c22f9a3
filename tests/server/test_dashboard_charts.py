"""The dashboard's SVG charts (server.dashboard.charts): y-axis ticks are distinct, nice
values that say what they mark, whatever the data (none, sub-millisecond, counts)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from promptctl.server.dashboard.charts import LEFT, Line, line_chart
from promptctl.server.dashboard.present import millis, number, percent, usd

START = datetime(2026, 11, 23, tzinfo=UTC)
END = START + timedelta(hours=1)
# The y axis's labels stand just left of the plot; the time axis's below it.
Y_LABEL = re.compile(
    f'<text class="axis" x="{LEFT - 4}" y="([\\d.]+)" text-anchor="end">([^<]*)</text>'
)


def y_axis(values: list[float], fmt, **options) -> list[tuple[float, str]]:
    """The (height, label) of each y tick of a chart of `values`, bottom first."""
    points = [(START + timedelta(minutes=i), v) for i, v in enumerate(values)]
    svg = line_chart("chart", [Line("v1 stable", False, points)], START, END, 60, fmt, **options)
    ticks = [(float(y), label) for y, label in Y_LABEL.findall(str(svg))]
    return sorted(ticks, reverse=True)


@pytest.mark.parametrize(
    ("values", "fmt"),
    [
        pytest.param([], millis, id="no calls, latency"),
        pytest.param([0.2, 0.4, 0.9], millis, id="sub-millisecond latency"),
        pytest.param([1.0, 2.5], millis, id="a few milliseconds"),
        pytest.param([], number, id="no calls, counts"),
        pytest.param([0.0004], percent, id="a tiny error rate"),
        pytest.param([0.00002], usd, id="a tiny cost"),
        pytest.param([1234.0], millis, id="a second and more"),
    ],
)
def test_y_labels_are_distinct(values, fmt):
    labels = [label for _, label in y_axis(values, fmt)]
    assert len(labels) >= 2
    assert len(set(labels)) == len(labels), labels


def test_sub_millisecond_latency_reads_zero_and_one_millisecond():
    assert [label for _, label in y_axis([0.2, 0.4, 0.9], millis)] == ["0 ms", "1 ms"]


def test_calls_are_counted_in_whole_numbers():
    labels = [label for _, label in y_axis([1.0], number, resolution=1)]
    assert labels == ["0", "1"]
    assert [label for _, label in y_axis([], number, resolution=1)] == ["0", "1"]
    assert [label for _, label in y_axis([7.0], number, resolution=1)] == ["0", "2", "4", "6", "8"]


def test_ticks_are_nice_steps_just_above_the_highest_value():
    assert [label for _, label in y_axis([1234.0], millis)] == [
        "0 ms", "500 ms", "1,000 ms", "1,500 ms",
    ]  # fmt: skip
    assert [label for _, label in y_axis([0.2], percent)] == [
        "0.0%", "5.0%", "10.0%", "15.0%", "20.0%",
    ]  # fmt: skip


def test_a_fixed_ceiling_keeps_its_top_tick():
    labels = [label for _, label in y_axis([0.3], number, ceiling=1.0)]
    assert labels[0] == "0"
    assert labels[-1] == "1"
    assert len(set(labels)) == len(labels)


def test_the_highest_point_is_drawn_inside_the_chart():
    svg = str(line_chart("c", [Line("a", False, [(START, 1234.0)])], START, END, 60, millis))
    top = min(float(y) for y, _ in Y_LABEL.findall(svg)) - 4  # labels sit 4 below their line
    [cy] = re.findall(r'<circle class="point" cx="[\d.]+" cy="([\d.]+)"', svg)
    assert float(cy) >= top
