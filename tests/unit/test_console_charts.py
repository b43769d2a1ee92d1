"""Server-drawn SVG bar charts (connectors/console/charts.py)."""

from __future__ import annotations

import re

import pytest

from connectors.console.charts import bar_chart


def test_bars_are_scaled_to_the_largest_and_a_missing_value_draws_no_bar():
    svg = bar_chart([("2026-11-23", 10), ("2026-11-24", 5), ("2026-11-25", None)], title="Sesiones")
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', svg)]
    assert len(heights) == 2 and heights[0] == 2 * heights[1]


def test_labels_are_escaped_and_percentages_top_at_one_hundred():
    svg = bar_chart([("<b>x</b>", 0.5)], percent=True, title='"t"')
    assert "<b>" not in svg and "&lt;b&gt;" in svg
    assert "100%" in svg and "50.0%" in svg


def test_a_one_to_five_mean_is_drawn_on_a_scale_to_five():
    svg = bar_chart([("2026-W47", 4.0), ("2026-W48", None), ("2026-W49", 2.5)], scale_top=5, tick_chars=3)
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', svg)]
    assert len(heights) == 2 and heights[0] / heights[1] == pytest.approx(4.0 / 2.5)
    assert ">5<" in svg and ">2.5<" in svg  # the axis's top, the middle line
    assert "2026-W47: 4<" in svg and "W49" in svg
