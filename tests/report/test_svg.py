"""The inline-SVG charts: ticks, scales, marks, labels, escaping and trace thinning."""

from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llenergymeasure.report.chart import chart
from llenergymeasure.report.svg import (
    Band,
    Rule,
    Scale,
    Series,
    downsample,
    format_number,
    nice_ticks,
)

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # our own output, parsed to prove it is well-formed


def _texts(root: ET.Element) -> list[str]:
    return ["".join(el.itertext()) for el in root.iter(f"{SVG}text")]


def _marks(root: ET.Element, tag: str) -> list[ET.Element]:
    return [el for el in root.iter(f"{SVG}{tag}") if "mark" in el.get("class", "").split()]


finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)


@given(finite, finite)
def test_ticks_cover_the_range_with_equal_round_steps(a: float, b: float) -> None:
    low, high = min(a, b), max(a, b)
    ticks = nice_ticks(low, high)
    assert 2 <= len(ticks) <= 12
    step = (ticks[-1] - ticks[0]) / (len(ticks) - 1)
    # float resolution at the ticks' magnitude bounds how equal the steps can be
    noise = 1e-6 * step + 1e-15 * max(abs(ticks[0]), abs(ticks[-1]))
    assert all(abs((b - a) - step) <= noise for a, b in itertools.pairwise(ticks))
    assert ticks[0] <= low + noise
    assert ticks[-1] >= high - noise
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m, rel_tol=noise / step) for m in (1, 2, 2.5, 5, 10))


def test_ticks_of_a_typical_range_are_the_obvious_ones() -> None:
    assert nice_ticks(0.0, 0.38) == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert nice_ticks(3.0, 3.0)[0] < 3.0 < nice_ticks(3.0, 3.0)[-1]


def test_nonfinite_tick_range_is_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        nice_ticks(0.0, math.inf)


@pytest.mark.parametrize(
    ("value", "step", "expected"),
    [
        (0.0, 0.1, "0"),
        (0.25, 0.25, "0.25"),
        (1500.0, 500.0, "1,500"),
        (2.5e-6, None, "2.5e-6"),
        (3.2e9, None, "3.2e9"),
        (0.3, 0.1, "0.3"),
    ],
)
def test_numbers_are_labelled_compactly(value: float, step: float | None, expected: str) -> None:
    assert format_number(value, step) == expected


def test_scales_map_the_domain_onto_the_pixels() -> None:
    linear = Scale(0.0, 10.0, 100.0, 300.0)
    assert (linear(0.0), linear(5.0), linear(10.0)) == (100.0, 200.0, 300.0)
    log = Scale(1.0, 100.0, 0.0, 200.0, log=True)
    assert log(10.0) == pytest.approx(100.0)
    flipped = Scale(0.0, 1.0, 250.0, 50.0)  # y grows upwards
    assert flipped(1.0) == 50.0


def test_a_chart_draws_every_point_with_labelled_axes() -> None:
    svg = chart(
        [Series("gpu:0", [0.0, 1.0, 2.0], [10.0, 30.0, 20.0]), Series("cpu:0", [0, 1], [5.0, 6])],
        title="Power",
        x_label="time (s)",
        y_label="power (W)",
    )
    root = _parse(svg)
    assert root.get("class") == "plot"
    assert len(_marks(root, "circle")) == 5
    assert len(_marks(root, "path")) == 2
    texts = _texts(root)
    assert {"Power", "time (s)", "power (W)", "gpu:0", "cpu:0"} <= set(texts)
    assert any(re.fullmatch(r"[0-9.,]+", t) for t in texts)  # numeric tick labels


def test_missing_values_break_the_line_and_draw_no_marker() -> None:
    svg = chart(
        [Series("s", [0, 1, 2, 3], [1.0, None, 2.0, 3.0])], title="t", x_label="x", y_label="y"
    )
    root = _parse(svg)
    (line,) = _marks(root, "path")
    assert line.get("d", "").count("M") == 2
    assert len(_marks(root, "circle")) == 3


def test_error_bars_bands_and_rules_are_drawn() -> None:
    svg = chart(
        [Series("mean", [1.0, 2.0], [5.0, 6.0], y_low=[4.0, 5.5], y_high=[6.0, 6.5])],
        title="t",
        x_label="x",
        y_label="y",
        bands=[Band(1.2, 1.5, "throttled", "#f00")],
        rules=[Rule(1.8, "window end")],
    )
    root = _parse(svg)
    errorbars = [el for el in root.iter(f"{SVG}path") if "errorbar" in el.get("class", "")]
    assert len(errorbars) == 2
    assert [el for el in root.iter(f"{SVG}rect") if el.get("class") == "band"]
    assert [el for el in root.iter(f"{SVG}line") if el.get("class") == "rule"]
    assert "throttled" in _texts(root)  # bands are in the legend


def test_categories_label_the_x_ticks() -> None:
    svg = chart(
        [Series("m", [0, 1], [3.0, 4.0])],
        title="t",
        x_label="engine",
        y_label="y",
        x_scale="category",
        categories=["transformers", "vllm"],
    )
    assert {"transformers", "vllm"} <= set(_texts(_parse(svg)))


def test_text_is_escaped() -> None:
    svg = chart([Series("<b>&", [0, 1], [1.0, 2.0])], title="a<script>", x_label="x", y_label="y")
    root = _parse(svg)  # would raise on unescaped markup
    assert "a<script>" in _texts(root)
    assert "<script>" not in svg


def test_a_chart_without_data_says_so_and_draws_no_mark() -> None:
    svg = chart(
        [Series("s", [0, 1], [None, None])],
        title="t",
        x_label="x",
        y_label="y",
        empty_note="no energy figure",
    )
    root = _parse(svg)
    assert "no energy figure" in _texts(root)
    assert not _marks(root, "circle") and not _marks(root, "path")


def test_log_axis_keeps_the_order_of_points() -> None:
    svg = chart(
        [Series("s", [1, 8, 64], [1.0, 2.0, 3.0])],
        title="t",
        x_label="x",
        y_label="y",
        x_scale="log",
        x_ticks=[1, 8, 64],
    )
    xs = [float(c.get("cx", "nan")) for c in _marks(_parse(svg), "circle")]
    assert xs == sorted(xs)
    assert xs[1] - xs[0] == pytest.approx(xs[2] - xs[1], abs=0.2)  # equal ratios, equal gaps


def test_downsample_keeps_the_extremes_within_the_budget() -> None:
    x = [i * 0.01 for i in range(10_000)]
    y: list[float | None] = [math.sin(v) for v in x]
    y[1234] = 50.0  # a spike a mean would flatten
    y[8765] = -40.0
    xs, ys = downsample(x, y, 600)
    assert len(xs) <= 600
    assert xs == sorted(xs)
    assert max(v for v in ys if v is not None) == 50.0
    assert min(v for v in ys if v is not None) == -40.0


def test_downsample_passes_short_traces_through_and_keeps_gaps() -> None:
    assert downsample([0.0, 1.0], [1.0, None], 10) == ([0.0, 1.0], [1.0, None])
    x = [float(i) for i in range(1000)]
    y: list[float | None] = [None if 400 <= i < 600 else 1.0 for i in range(1000)]
    _, ys = downsample(x, y, 100)
    assert None in ys


def test_downsample_needs_a_sensible_budget() -> None:
    with pytest.raises(ValueError, match="at least 4"):
        downsample([0.0], [1.0], 2)
