"""Draw the community map as SVG on the server: a deterministic layout of concentric rings.

The core sits in the middle, then members with a few connections, then the periphery (one
connection), and members with no connection on the outer ring. Within a ring, members are
grouped by their value so each value forms an arc. Colour shows the value and the shape shows
it again, so the map reads without colour; each node has a <title> for screen readers and
tooltips, and the page carries a table with the same facts.
"""

from __future__ import annotations

import math
from html import escape

from cop_mail.connect.graph import NO_VALUE_COLOUR, Band, CommunityMap, Node

SIZE = 760
CENTRE = SIZE / 2
SPACING = 13.0  # pixels between neighbours on a ring
RING_RADIUS = {Band.CORE: 70.0, Band.MIDDLE: 170.0, Band.PERIPHERY: 262.0, Band.ISOLATED: 340.0}
RING_STEP = 14.0  # an overfull ring continues on a slightly larger one
LEGEND_HEIGHT = 22
BAND_WORDS = {
    Band.CORE: "Core",
    Band.MIDDLE: "Connected",
    Band.PERIPHERY: "Periphery (one connection)",
    Band.ISOLATED: "No connection yet",
}


def layout(nodes: list[Node], order: dict[str, int]) -> dict[int, tuple[float, float]]:
    """Member id -> (x, y). The same nodes always land in the same places."""
    positions: dict[int, tuple[float, float]] = {}
    for band in Band.ORDER:
        ring = sorted(
            (n for n in nodes if n.band == band), key=lambda n: (order.get(n.value, 99), -n.degree, n.member_id)
        )
        if band == Band.CORE and len(ring) == 1:
            positions[ring[0].member_id] = (CENTRE, CENTRE)
            continue
        positions.update(_ring(ring, RING_RADIUS[band]))
    return positions


def _ring(ring: list[Node], radius: float) -> dict[int, tuple[float, float]]:
    placed: dict[int, tuple[float, float]] = {}
    start = 0
    while start < len(ring):
        capacity = max(1, int(2 * math.pi * radius / SPACING))
        chunk = ring[start : start + capacity]
        for i, node in enumerate(chunk):
            angle = -math.pi / 2 + 2 * math.pi * i / len(chunk)
            placed[node.member_id] = (
                round(CENTRE + radius * math.cos(angle), 1),
                round(CENTRE + radius * math.sin(angle), 1),
            )
        start += capacity
        radius += RING_STEP
    return placed


def node_radius(degree: int) -> float:
    return round(4.0 + min(degree, 12) * 0.5, 1)


def shape(kind: str, x: float, y: float, r: float, fill: str) -> str:
    """One marker; every shape has the same visual weight so none looks more important."""
    style = f'fill="{escape(fill)}" stroke="#1f2933" stroke-width="1"'
    if kind == "square":
        s = r * 1.6
        return f'<rect x="{x - s / 2:.1f}" y="{y - s / 2:.1f}" width="{s:.1f}" height="{s:.1f}" {style}/>'
    if kind in ("triangle", "triangle-down", "diamond", "hexagon", "star", "cross"):
        return f'<polygon points="{_points(kind, x, y, r)}" {style}/>'
    if kind == "ring":
        return f'<circle cx="{x}" cy="{y}" r="{r:.1f}" fill="#ffffff" stroke="#52606d" stroke-width="2"/>'
    return f'<circle cx="{x}" cy="{y}" r="{r:.1f}" {style}/>'


def _points(kind: str, x: float, y: float, r: float) -> str:
    r *= 1.25
    if kind == "triangle":
        corners = [(0, -r), (r * 0.95, r * 0.7), (-r * 0.95, r * 0.7)]
    elif kind == "triangle-down":
        corners = [(0, r), (r * 0.95, -r * 0.7), (-r * 0.95, -r * 0.7)]
    elif kind == "diamond":
        corners = [(0, -r), (r, 0), (0, r), (-r, 0)]
    elif kind == "hexagon":
        corners = [(r * math.cos(a), r * math.sin(a)) for a in (math.pi / 3 * k for k in range(6))]
    elif kind == "star":
        corners = [
            (
                (r if k % 2 == 0 else r * 0.45) * math.cos(-math.pi / 2 + math.pi / 5 * k),
                (r if k % 2 == 0 else r * 0.45) * math.sin(-math.pi / 2 + math.pi / 5 * k),
            )
            for k in range(10)
        ]
    else:  # cross
        t = r * 0.35
        corners = [
            (-t, -r),
            (t, -r),
            (t, -t),
            (r, -t),
            (r, t),
            (t, t),
            (t, r),
            (-t, r),
            (-t, t),
            (-r, t),
            (-r, -t),
            (-t, -t),
        ]
    return " ".join(f"{x + dx:.1f},{y + dy:.1f}" for dx, dy in corners)


def render(data: CommunityMap) -> str:
    keys = data.value_keys
    order = {v.name: i for i, v in enumerate(data.values)}
    positions = layout(data.nodes, order)
    height = SIZE + LEGEND_HEIGHT * (len(data.values) + 2) + 20
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {SIZE} {height}" width="100%" role="img" '
        'aria-labelledby="map-title map-desc" class="community-map">',
        '<title id="map-title">Community map</title>',
        f'<desc id="map-desc">{escape(describe(data))}</desc>',
        '<rect width="100%" height="100%" fill="#ffffff"/>',
    ]
    parts += _guides(data)
    parts.append('<g class="edges" stroke="#7b8794" stroke-opacity="0.55" stroke-width="1">')
    for edge in data.edges:
        (x1, y1), (x2, y2) = positions[edge.a], positions[edge.b]
        parts.append(f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}"/>')
    parts.append('</g><g class="nodes">')
    for node in data.nodes:
        x, y = positions[node.member_id]
        key = keys.get(node.value)
        label = f"{node.name}: {_count(node.degree, 'connection')}, {BAND_WORDS[node.band].lower()}, {node.value}"
        marker = shape(
            key.shape if key else "circle", x, y, node_radius(node.degree), key.colour if key else NO_VALUE_COLOUR
        )
        parts.append(f"<g><title>{escape(label)}</title>{marker}</g>")
    parts.append("</g>")
    parts += _legend(data, SIZE + 10)
    parts.append("</svg>")
    return "\n".join(parts)


def _guides(data: CommunityMap) -> list[str]:
    """Dashed ring outlines with their names, so the rings read without the legend."""
    out = ['<g class="rings" fill="none" stroke="#cbd2d9" stroke-dasharray="4 4">']
    labels = []
    for band in Band.ORDER:
        if not data.bands.get(band):
            continue
        radius = RING_RADIUS[band]
        out.append(f'<circle cx="{CENTRE}" cy="{CENTRE}" r="{radius}"/>')
        labels.append(
            f'<text x="{CENTRE + 6}" y="{CENTRE - radius - 6}" font-size="12" fill="#52606d">'
            f"{escape(BAND_WORDS[band])}</text>"
        )
    out.append("</g>")
    return out + labels


def _legend(data: CommunityMap, top: float) -> list[str]:
    out = [f'<g class="legend" font-size="13" fill="#1f2933" transform="translate(16 {top})">']
    for i, value in enumerate(data.values):
        y = i * LEGEND_HEIGHT + 10
        out.append(shape(value.shape, 8, y, 6, value.colour))
        out.append(f'<text x="24" y="{y + 4}">{escape(value.name)} ({_count(value.members, "member")})</text>')
    y = len(data.values) * LEGEND_HEIGHT + 14
    out.append(
        f'<text x="0" y="{y}">Rings, from the centre: core ({data.core_min_degree}+ connections), '
        "connected, periphery (1), no connection yet. Larger markers have more connections.</text>"
    )
    out.append("</g>")
    return out


def describe(data: CommunityMap) -> str:
    bands = ", ".join(f"{data.bands.get(b, 0)} {BAND_WORDS[b].lower()}" for b in Band.ORDER)
    shown = "" if len(data.nodes) == data.members else f" The map shows {len(data.nodes)} of them."
    return f"{_count(data.members, 'member')} and {_count(data.connections, 'connection')}: {bands}.{shown}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
