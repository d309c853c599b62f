"""The community map drawing: a deterministic layout, readable without colour, safe to inline."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from cop_mail.connect import graph, map_svg
from cop_mail.connect.graph import Band, CommunityMap, Edge, Node, ValueKey

NOW = datetime(2026, 11, 30, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def parse_svg(text: str) -> ET.Element:
    return ET.fromstring(text)  # noqa: S314 - our own drawing, parsed to prove it is well formed


def community(extra_isolated: int = 0) -> CommunityMap:
    nodes = [
        Node(1, "Hana <Hub>", 4, Band.CORE, "Care", NOW),
        Node(2, "Mo", 2, Band.MIDDLE, "Care", NOW),
        Node(3, "Mira", 2, Band.MIDDLE, "Reciprocity", NOW),
        Node(4, "Nia", 1, Band.PERIPHERY, "Reciprocity", NOW),
        Node(5, "Olu & co", 0, Band.ISOLATED, graph.NO_VALUE, NOW),
    ] + [Node(100 + i, f"Quiet {i}", 0, Band.ISOLATED, "Care", NOW) for i in range(extra_isolated)]
    edges = [
        Edge(1, 2, "introduction", NOW),
        Edge(1, 3, "introduction", NOW),
        Edge(2, 3, "other", NOW),
        Edge(1, 4, "coordinator", NOW),
    ]
    values = [
        ValueKey("Care", "#2f6f4f", "circle", 2 + extra_isolated),
        ValueKey("Reciprocity", "#b35c00", "square", 2),
        ValueKey(graph.NO_VALUE, graph.NO_VALUE_COLOUR, "ring", 1),
    ]
    bands = {Band.CORE: 1, Band.MIDDLE: 2, Band.PERIPHERY: 1, Band.ISOLATED: 1 + extra_isolated}
    return CommunityMap(
        members=len(nodes),
        connections=4,
        nodes=nodes,
        edges=edges,
        values=values,
        bands=bands,
        core_min_degree=3,
        isolated=[],
        per_month=[],
        newcomers=0,
        newcomers_connected=0,
    )


def test_the_svg_is_well_formed_and_every_member_has_a_title():
    root = parse_svg(map_svg.render(community()))
    assert root.get("role") == "img" and root.get("aria-labelledby") == "map-title map-desc"
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert titles[0] == "Community map"
    assert "Hana <Hub>: 4 connections, core, Care" in titles  # escaped in the file, read back as text
    assert "Olu & co: 0 connections, no connection yet, No value named" in titles
    assert len(root.findall(f".//{SVG}g[@class='edges']/{SVG}line")) == 4
    desc = root.find(f"{SVG}desc").text
    assert desc.startswith("5 members and 4 connections: 1 core, 2 connected, 1 periphery (one connection)")


def test_names_cannot_inject_markup():
    svg = map_svg.render(community())
    assert "<Hub>" not in svg and "&lt;Hub&gt;" in svg and "Olu &amp; co" in svg


def test_values_are_told_apart_by_shape_as_well_as_colour():
    root = parse_svg(map_svg.render(community()))
    nodes = root.find(f".//{SVG}g[@class='nodes']")
    marks = [next(iter(g.findall("*")[1:])) for g in nodes]
    tags = [m.tag.removeprefix(SVG) for m in marks]
    assert tags == ["circle", "circle", "rect", "rect", "circle"]
    # The member with no value is an unfilled ring, not a grey circle like the others.
    assert marks[-1].get("fill") == "#ffffff"
    legend = "".join(root.find(f".//{SVG}g[@class='legend']").itertext())
    assert "Care (2 members)" in legend and "Rings, from the centre" in legend


def test_the_layout_is_deterministic_and_puts_the_core_in_the_middle():
    data = community()
    order = {v.name: i for i, v in enumerate(data.values)}
    first = map_svg.layout(data.nodes, order)
    assert first == map_svg.layout(list(reversed(data.nodes)), order)
    assert first[1] == (map_svg.CENTRE, map_svg.CENTRE)

    def distance(member_id: int) -> float:
        x, y = first[member_id]
        return ((x - map_svg.CENTRE) ** 2 + (y - map_svg.CENTRE) ** 2) ** 0.5

    assert distance(1) < distance(2) < distance(4) < distance(5)


def test_a_crowded_ring_spills_onto_a_wider_one_without_overlaps():
    data = community(extra_isolated=400)
    positions = map_svg.layout(data.nodes, {v.name: i for i, v in enumerate(data.values)})
    points = list(positions.values())
    assert len(set(points)) == len(points)
    outer = max(((x - map_svg.CENTRE) ** 2 + (y - map_svg.CENTRE) ** 2) ** 0.5 for x, y in points)
    assert outer > map_svg.RING_RADIUS[Band.ISOLATED] + map_svg.RING_STEP / 2
    parse_svg(map_svg.render(data))


def test_every_shape_draws_valid_svg():
    for kind in (*graph.SHAPES, "ring"):
        element = parse_svg(
            f'<svg xmlns="http://www.w3.org/2000/svg">{map_svg.shape(kind, 10, 10, 5, "#123456")}</svg>'
        )
        assert len(element) == 1


def test_bands_and_the_core_threshold():
    assert graph.core_threshold([]) == 3
    assert graph.core_threshold([0, 1, 1, 2, 2, 3, 9, 12]) == 9
    assert [graph.band_of(d, 4) for d in (0, 1, 2, 4)] == ["isolated", "periphery", "middle", "core"]


def test_connections_per_month_keeps_empty_months():
    moments = [
        datetime(2026, 11, 2, tzinfo=UTC),
        datetime(2026, 11, 30, tzinfo=UTC),
        datetime(2026, 1, 5, tzinfo=UTC),
        datetime(2025, 1, 5, tzinfo=UTC),
    ]
    months = graph.per_month(moments, NOW)
    assert months[0] == ("2025-12", 0) and months[1] == ("2026-01", 1) and months[-1] == ("2026-11", 2)
    assert len(months) == 12
