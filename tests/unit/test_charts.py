"""Server-side SVG charts: well-formed, accessible, readable without colour, deterministic."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cop_mail import charts
from cop_mail.charts import Series

SVG = "{http://www.w3.org/2000/svg}"
LABELS = ["1 Jun", "8 Jun", "15 Jun", "22 Jun"]


def parse(chart: charts.Chart) -> ET.Element:
    return ET.fromstring(str(chart.svg))  # noqa: S314 (our own output, parsed to check it)


def texts(root: ET.Element) -> list[str]:
    return ["".join(node.itertext()) for node in root.iter(f"{SVG}text")]


def every_kind() -> list[charts.Chart]:
    two = [Series.of("Active", [3, 5, 8, 13]), Series.of("Pending", [1, 0, 2, 1])]
    return [
        charts.line_chart("c-line", "Lines", "Two lines", LABELS, two),
        charts.line_chart("c-area", "Areas", "Stacked", LABELS, two, stacked_area=True),
        charts.bar_chart("c-bar", "Bars", "One series", LABELS, two[:1]),
        charts.bar_chart("c-group", "Grouped", "Two series", LABELS, two),
        charts.stacked_bar_chart("c-stack", "Stacked", "Two series", LABELS, two),
        charts.hbar_chart("c-hbar", "Values", "Per value", ["Care", "Craft"], [Series.of("Members", [4, 2])]),
        charts.funnel_chart("c-funnel", "Funnel", "Stages", [("Planned", 100), ("Sent", 95), ("Replied", 7)]),
    ]


@pytest.mark.parametrize("chart", every_kind(), ids=lambda c: c.chart_id)
def test_every_chart_is_well_formed_and_labelled(chart):
    root = parse(chart)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None and title.text == chart.title and title.get("id") == f"{chart.chart_id}-title"
    assert desc is not None and desc.get("id") == f"{chart.chart_id}-desc"
    assert root.get("aria-labelledby") == f"{chart.chart_id}-title {chart.chart_id}-desc"
    assert "<script" not in str(chart.svg) and " on" not in re.sub(r'"[^"]*"', "", str(chart.svg))
    ids = [node.get("id") for node in root.iter() if node.get("id")]
    assert len(ids) == len(set(ids)) and all(i.startswith(chart.chart_id) for i in ids)
    assert not chart.empty and chart.rows


@pytest.mark.parametrize("chart", every_kind(), ids=lambda c: c.chart_id)
def test_charts_are_deterministic(chart):
    again = {c.chart_id: c for c in every_kind()}[chart.chart_id]
    assert again == chart


def test_series_differ_by_pattern_dash_and_marker_not_only_colour():
    assert len({s.pattern for s in charts.STYLES}) == len(charts.STYLES)
    assert len({s.marker for s in charts.STYLES}) == len(charts.STYLES)
    assert len({s.dash for s in charts.STYLES}) == len(charts.STYLES)
    root = parse(every_kind()[1])  # stacked areas
    patterns = [p for p in root.iter(f"{SVG}pattern")]
    assert len(patterns) == 2 and len(list(patterns[1])) > 1  # the second has an overlay on its fill
    fills = [p.get("fill") for p in root.iter(f"{SVG}polygon")]
    assert fills == ["url(#c-area-p0)", "url(#c-area-p1)"]


def test_lines_are_named_where_they_end():
    root = parse(every_kind()[0])
    labels = texts(root)
    assert "Active 13" in labels and "Pending 1" in labels
    shapes = {node.tag for node in root.iter() if node.find(f"{SVG}title") is not None and node.tag != f"{SVG}svg"}
    assert {f"{SVG}circle", f"{SVG}rect"} <= shapes  # circles for one series, squares for the other


def test_direct_labels_never_overlap():
    close = [Series.of(name, [10, 10, 10]) for name in ("One", "Two", "Three")]
    root = parse(charts.line_chart("c-close", "Close", "Equal lines", ["a", "b", "c"], close))
    group = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "direct-labels")
    ys = sorted(float(t.get("y")) for t in group.iter(f"{SVG}text"))
    assert all(b - a >= 14.9 for a, b in zip(ys, ys[1:], strict=False))


def test_bars_print_their_values_and_the_table_matches():
    chart = every_kind()[2]
    assert {"3", "5", "8", "13"} <= set(texts(parse(chart)))
    assert chart.columns == ("Period", "Active")
    assert chart.rows == (("1 Jun", "3"), ("8 Jun", "5"), ("15 Jun", "8"), ("22 Jun", "13"))


def test_stacked_tables_carry_totals():
    area, stack = every_kind()[1], every_kind()[4]
    assert area.columns[-1] == "Total" and area.rows[-1] == ("22 Jun", "13", "1", "14")
    assert stack.rows[0] == ("1 Jun", "3", "1", "4")
    assert "14" in texts(parse(stack))


def test_funnel_shows_counts_and_shares():
    chart = every_kind()[6]
    assert chart.rows == (("Planned", "100", "100.0 %"), ("Sent", "95", "95.0 %"), ("Replied", "7", "7.0 %"))
    assert any("95" in t and "95.0 %" in t for t in texts(parse(chart)))


@pytest.mark.parametrize(
    "chart",
    [
        charts.line_chart("e-1", "Nothing", "None", LABELS, [Series.of("A", [0, 0, 0, 0])]),
        charts.line_chart("e-2", "Nothing", "None", [], []),
        charts.bar_chart("e-3", "Nothing", "None", [], [Series.of("A", [])], empty_message="Nobody yet"),
        charts.hbar_chart("e-4", "Nothing", "None", [], [Series.of("A", [])]),
        charts.funnel_chart("e-5", "Nothing", "None", [("Planned", 0), ("Sent", 0)]),
        charts.funnel_chart("e-6", "Nothing", "None", []),
    ],
    ids=lambda c: c.chart_id,
)
def test_zero_data_draws_an_empty_state(chart):
    root = parse(chart)
    assert chart.empty
    assert any(t in ("No data yet", "Nobody yet") for t in texts(root))


def test_text_is_escaped():
    chart = charts.hbar_chart("c-esc", "<b>Values</b> & co", 'say "hi"', ["<script>x</script>"],
                              [Series.of("M", [1])])  # fmt: skip
    svg = str(chart.svg)
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&lt;b&gt;Values" in svg
    assert parse(chart).find(f"{SVG}title").text == "<b>Values</b> & co"


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="chart id"):
        charts.bar_chart('x" onload="alert(1)', "t", "d", ["a"], [Series.of("A", [1])])
    with pytest.raises(ValueError, match="2 labels"):
        charts.bar_chart("c-bad", "t", "d", ["a", "b"], [Series.of("A", [1])])


def test_nice_axis_tops():
    assert charts.nice_ceiling(0) == (1.0, 1.0)
    assert charts.nice_ceiling(3) == (3.0, 1.0)
    assert charts.nice_ceiling(97) == (100.0, 25.0)
    assert charts.nice_ceiling(100_000) == (100_000.0, 25_000.0)


def test_numbers_are_formatted_for_people():
    assert charts.fmt(1234567) == "1,234,567" and charts.fmt(2.0) == "2" and charts.fmt(0.25) == "0.2"


def test_many_labels_are_thinned():
    labels = [f"{h}h" for h in range(72)]
    chart = charts.line_chart("c-hours", "Hours", "72 hours", labels, [Series.of("Replies", [1] * 72)])
    shown = [t for t in texts(parse(chart)) if t.endswith("h") and t[:-1].isdigit()]
    assert 6 <= len(shown) <= charts.MAX_X_LABELS + 1 and shown[0] == "0h"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.integers(min_value=0, max_value=10**7), min_size=5, max_size=5), min_size=1, max_size=6),
    st.booleans(),
)
def test_any_figures_give_a_well_formed_chart(values, stacked):
    series = [Series.of(f"S{i}", v) for i, v in enumerate(values)]
    labels = [f"L{i}" for i in range(5)]
    for chart in (
        charts.line_chart("c-any", "Any", "Any", labels, series, stacked_area=stacked),
        charts.bar_chart("c-any", "Any", "Any", labels, series, stacked=stacked),
        charts.hbar_chart("c-any", "Any", "Any", labels, series),
    ):
        root = parse(chart)
        for node in (n for n in root.iter() if n is not root):
            for name in ("x", "y", "width", "height", "cx", "cy"):
                if node.get(name) is not None:
                    assert float(node.get(name)) >= -20, (name, node.get(name))
            if node.tag == f"{SVG}rect" and node.get("height"):
                assert float(node.get("height")) >= 0
