"""Server-side SVG charts for the admin: line and area over time, bars, stacked bars, a funnel.

Every chart reads without colour: series differ by fill pattern, line dash and marker shape,
and carry direct labels; each SVG has a <title> and <desc>, and every chart comes with the
same figures as a data table for screen readers and for copying. The output depends only on
the input (no random ids, fixed number formatting), so a page renders the same twice and
tests can compare it. No JavaScript.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 560
HEIGHT = 250
INK = "#1d2321"
MUTED = "#4f5b57"
GRID = "#d5dcd9"
FONT = 'font-family="system-ui, -apple-system, \'Segoe UI\', sans-serif" font-size="13"'
MAX_X_LABELS = 8
MAX_MARKERS = 40
CHAR_WIDTH = 7.5  # average width of a character at the charts' font size, for layout
_CHART_ID = re.compile(r"[a-z][a-z0-9-]{0,60}")


@dataclass(frozen=True)
class Style:
    """How one series looks: every field alone tells it apart, so colour is never the only cue."""

    colour: str
    pattern: str
    marker: str
    dash: str


# Colours keep at least 3:1 contrast on white (WCAG 1.4.11 for graphics).
STYLES = (
    Style("#1f5f8b", "solid", "circle", ""),
    Style("#a34f00", "hatch", "square", "7 3"),
    Style("#2f6f4f", "dots", "triangle", "2 3"),
    Style("#7a3e9d", "cross", "diamond", "9 3 2 3"),
    Style("#a4262c", "vlines", "bar", "4 4"),
    Style("#4f5b57", "hlines", "ring", "12 4"),
)


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[float, ...]

    @classmethod
    def of(cls, name: str, values: Sequence[float]) -> Series:
        return cls(name, tuple(values))


@dataclass(frozen=True)
class Chart:
    """An SVG and the table that says the same thing."""

    chart_id: str
    title: str
    desc: str
    svg: Markup
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    empty: bool = False
    empty_message: str = ""  # what to say instead of an empty picture


# --- formatting --------------------------------------------------------------------------


def fmt(value: float) -> str:
    """A figure for people: thousands separated, at most one decimal."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def _n(value: float) -> str:
    """A coordinate: two decimals at most, no trailing zeros, never '-0'."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _markup(parts: list[str]) -> Markup:
    # Safe by construction: every piece of caller text went through _attr (escaped); the rest is ours.
    return Markup("".join(parts))  # noqa: S704


def _attr(text: str) -> str:
    return str(escape(text))


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def nice_ceiling(top: float) -> tuple[float, float]:
    """A round axis maximum and tick step for data up to `top` (about four to six ticks)."""
    if top <= 0:
        return 1.0, 1.0
    raw = top / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if step < 1:
        step = 1.0
    return step * math.ceil(top / step), step


# --- SVG pieces --------------------------------------------------------------------------


def _pattern(chart_id: str, index: int, style: Style) -> str:
    pid = f"{chart_id}-p{index}"
    head = f'<pattern id="{pid}" width="8" height="8" patternUnits="userSpaceOnUse">'
    base = f'<rect width="8" height="8" fill="{style.colour}"/>'
    overlay = {
        "solid": "",
        "hatch": '<path d="M-2 2l4-4M0 8l8-8M6 10l4-4" stroke="#fff" stroke-width="1.6"/>',
        "dots": '<circle cx="4" cy="4" r="1.7" fill="#fff"/>',
        "cross": '<path d="M0 0l8 8M8 0l-8 8" stroke="#fff" stroke-width="1.2"/>',
        "vlines": '<path d="M4 0v8" stroke="#fff" stroke-width="1.6"/>',
        "hlines": '<path d="M0 4h8" stroke="#fff" stroke-width="1.6"/>',
    }[style.pattern]
    return head + base + overlay + "</pattern>"


def _defs(chart_id: str, count: int) -> str:
    return "<defs>" + "".join(_pattern(chart_id, i, STYLES[i % len(STYLES)]) for i in range(count)) + "</defs>"


def _fill(chart_id: str, index: int) -> str:
    return f"url(#{chart_id}-p{index})"


def _marker(style: Style, x: float, y: float, tip: str, size: float = 4.5) -> str:
    """A point drawn as the series' own shape, with its figure as a tooltip."""
    colour, title = style.colour, f"<title>{_attr(tip)}</title>"
    cx, cy = _n(x), _n(y)
    if style.marker == "circle":
        return f'<circle cx="{cx}" cy="{cy}" r="{_n(size)}" fill="{colour}">{title}</circle>'
    if style.marker == "ring":
        ring = f'fill="#fff" stroke="{colour}" stroke-width="2"'
        return f'<circle cx="{cx}" cy="{cy}" r="{_n(size)}" {ring}>{title}</circle>'
    if style.marker == "square":
        s = size * 0.9
        return (
            f'<rect x="{_n(x - s)}" y="{_n(y - s)}" width="{_n(2 * s)}" height="{_n(2 * s)}" fill="{colour}">'
            f"{title}</rect>"
        )
    points = {
        "triangle": [(x, y - size * 1.2), (x + size * 1.1, y + size * 0.8), (x - size * 1.1, y + size * 0.8)],
        "diamond": [(x, y - size * 1.3), (x + size, y), (x, y + size * 1.3), (x - size, y)],
        "bar": [(x - size, y - 2), (x + size, y - 2), (x + size, y + 2), (x - size, y + 2)],
    }[style.marker]
    path = " ".join(f"{_n(px)},{_n(py)}" for px, py in points)
    return f'<polygon points="{path}" fill="{colour}">{title}</polygon>'


def _open_svg(chart_id: str, title: str, desc: str, width: int, height: int) -> str:
    if not _CHART_ID.fullmatch(chart_id):
        raise ValueError(f"chart id {chart_id!r}: use lower-case letters, digits and dashes")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart-svg" role="img" focusable="false" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" preserveAspectRatio="xMinYMin meet" {FONT}>'
        f'<title id="{chart_id}-title">{_attr(title)}</title><desc id="{chart_id}-desc">{_attr(desc)}</desc>'
        f'<rect width="{width}" height="{height}" fill="#fff"/>'
    )


def _empty_message(width: int, height: int, message: str) -> str:
    return (
        f'<text x="{_n(width / 2)}" y="{_n(height / 2)}" text-anchor="middle" fill="{MUTED}" font-size="14">'
        f"{_attr(message)}</text>"
    )


@dataclass(frozen=True)
class _Plot:
    """The plotting area inside the margins and the value scale."""

    left: float
    top: float
    width: float
    height: float
    top_value: float
    step: float

    def y(self, value: float) -> float:
        return self.top + self.height - (value / self.top_value) * self.height

    @property
    def bottom(self) -> float:
        return self.top + self.height


def _y_axis(plot: _Plot) -> str:
    parts = []
    ticks = int(round(plot.top_value / plot.step))
    for i in range(ticks + 1):
        value = plot.step * i
        y = plot.y(value)
        parts.append(
            f'<line x1="{_n(plot.left)}" x2="{_n(plot.left + plot.width)}" y1="{_n(y)}" y2="{_n(y)}" '
            f'stroke="{GRID}" stroke-width="1"/>'
            f'<text x="{_n(plot.left - 6)}" y="{_n(y + 4)}" text-anchor="end" fill="{MUTED}">{fmt(value)}</text>'
        )
    return '<g aria-hidden="true">' + "".join(parts) + "</g>"


def _x_labels(labels: Sequence[str], xs: Sequence[float], y: float) -> str:
    """At most MAX_X_LABELS labels, evenly thinned; the last one is kept when it has room."""
    every = max(1, math.ceil(len(labels) / MAX_X_LABELS))
    shown = list(range(0, len(labels), every))
    if shown[-1] != len(labels) - 1 and len(labels) - 1 - shown[-1] >= every / 2:
        shown.append(len(labels) - 1)
    # Long category names are shortened to the room between labels; the table has them in full.
    room = (xs[1] - xs[0]) * every if len(xs) > 1 else WIDTH
    limit = max(4, int(room / CHAR_WIDTH) - 1)
    parts = [
        f'<text x="{_n(xs[i])}" y="{_n(y)}" text-anchor="middle" fill="{MUTED}">'
        f"{_attr(_short(labels[i], limit))}</text>"
        for i in shown
    ]
    return '<g aria-hidden="true">' + "".join(parts) + "</g>"


def _spread(positions: list[tuple[float, int]], gap: float, low: float, high: float) -> dict[int, float]:
    """Move direct labels apart vertically so none overlaps; keeps their order and stays in [low, high]."""
    ordered = sorted(positions)
    ys = [min(max(y, low), high) for y, _ in ordered]
    for i in range(1, len(ys)):  # push down what sits too close to the label above
        ys[i] = max(ys[i], ys[i - 1] + gap)
    if ys:
        ys[-1] = min(ys[-1], high)
    for i in range(len(ys) - 2, -1, -1):  # then pull up what the bottom edge pushed back
        ys[i] = min(ys[i], ys[i + 1] - gap)
    return {key: y for y, (_, key) in zip(ys, ordered, strict=True)}


def _legend(chart_id: str, series: Sequence[Series], x: float, y: float, lines: bool) -> str:
    """Swatches with names, in series order, for charts without room for direct labels."""
    parts, cursor = [], x
    for i, item in enumerate(series):
        style = STYLES[i % len(STYLES)]
        if lines:
            parts.append(
                f'<line x1="{_n(cursor)}" x2="{_n(cursor + 22)}" y1="{_n(y)}" y2="{_n(y)}" stroke="{style.colour}" '
                f'stroke-width="2.5" stroke-dasharray="{style.dash}"/>' + _marker(style, cursor + 11, y, item.name)
            )
        else:
            parts.append(
                f'<rect x="{_n(cursor)}" y="{_n(y - 7)}" width="16" height="14" fill="{_fill(chart_id, i)}" '
                f'stroke="{INK}" stroke-width=".5"/>'
            )
        parts.append(f'<text x="{_n(cursor + 28)}" y="{_n(y + 4)}" fill="{INK}">{_attr(item.name)}</text>')
        cursor += 40 + 7 * len(item.name)
    return '<g class="legend">' + "".join(parts) + "</g>"


def _table(labels: Sequence[str], series: Sequence[Series]) -> tuple[tuple[str, ...], ...]:
    return tuple((label, *(fmt(item.values[i]) for item in series)) for i, label in enumerate(labels))


def _is_empty(series: Sequence[Series]) -> bool:
    return not series or all(not any(item.values) for item in series)


def _check(labels: Sequence[str], series: Sequence[Series]) -> None:
    for item in series:
        if len(item.values) != len(labels):
            raise ValueError(f"series {item.name!r} has {len(item.values)} values for {len(labels)} labels")


# --- charts ------------------------------------------------------------------------------


def line_chart(
    chart_id: str,
    title: str,
    desc: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    stacked_area: bool = False,
    end_label: str = "last",
    label_header: str = "",
    empty_message: str = "No data yet",
) -> Chart:
    """Values over time: lines with shaped markers, or stacked areas with patterns; labelled at the end
    with the last value (a level, such as members) or the total (a flow, such as replies per hour)."""
    _check(labels, series)
    empty = _is_empty(series) or not labels
    svg = [_open_svg(chart_id, title, desc, WIDTH, HEIGHT), _defs(chart_id, len(series))]
    if empty:
        svg.append(_empty_message(WIDTH, HEIGHT, empty_message))
    else:
        ends = [_end_text(item, end_label) for item in series]
        svg.append(_draw_lines(chart_id, labels, series, stacked_area, ends))
    svg.append("</svg>")
    columns = (label_header or "Period", *(item.name for item in series))
    rows = _table(labels, series)
    if stacked_area and series and labels:
        columns = (*columns, "Total")
        totals = [sum(item.values[i] for item in series) for i in range(len(labels))]
        rows = tuple((*row, fmt(totals[i])) for i, row in enumerate(rows))
    return Chart(chart_id, title, desc, _markup(svg), columns, rows, empty, empty_message)


def _end_text(item: Series, end_label: str) -> str:
    if end_label == "total":
        return f"{item.name}: {fmt(sum(item.values))} in all"
    return f"{item.name} {fmt(item.values[-1])}"


def _draw_lines(
    chart_id: str, labels: Sequence[str], series: Sequence[Series], stacked: bool, end_texts: list[str]
) -> str:
    count = len(labels)
    tops = (
        [sum(s.values[i] for s in series) for i in range(count)]
        if stacked
        else [max(s.values[i] for s in series) for i in range(count)]
    )
    top, step = nice_ceiling(max(tops))
    label_room = 30 + CHAR_WIDTH * max(len(text) for text in end_texts)
    plot = _Plot(48, 14, WIDTH - 48 - min(label_room, 230), HEIGHT - 14 - 34, top, step)
    xs = [plot.left + (plot.width * i / (count - 1) if count > 1 else plot.width / 2) for i in range(count)]
    parts = [_y_axis(plot), _x_labels(labels, xs, plot.bottom + 18)]
    lower = [0.0] * count
    ends: list[tuple[float, int]] = []
    for index, item in enumerate(series):
        style = STYLES[index % len(STYLES)]
        upper = [lower[i] + item.values[i] for i in range(count)] if stacked else list(item.values)
        line = " ".join(f"{_n(xs[i])},{_n(plot.y(upper[i]))}" for i in range(count))
        if stacked:
            back = " ".join(f"{_n(xs[i])},{_n(plot.y(lower[i]))}" for i in reversed(range(count)))
            parts.append(f'<polygon points="{line} {back}" fill="{_fill(chart_id, index)}" fill-opacity=".9"/>')
            ends.append((plot.y((lower[-1] + upper[-1]) / 2), index))
        else:
            ends.append((plot.y(upper[-1]), index))
        parts.append(
            f'<polyline points="{line}" fill="none" stroke="{INK if stacked else style.colour}" '
            f'stroke-width="{1 if stacked else 2.5}" stroke-dasharray="{"" if stacked else style.dash}"/>'
        )
        if not stacked:
            parts.extend(
                _marker(style, xs[i], plot.y(upper[i]), f"{item.name}, {labels[i]}: {fmt(item.values[i])}")
                for i in range(count)
                if count <= MAX_MARKERS or item.values[i]
            )
        lower = upper if stacked else lower
    parts.append(_direct_labels(chart_id, series, ends, plot, stacked, end_texts))
    return "".join(parts)


def _direct_labels(
    chart_id: str,
    series: Sequence[Series],
    ends: list[tuple[float, int]],
    plot: _Plot,
    stacked: bool,
    end_texts: list[str],
) -> str:
    placed = _spread(ends, 15, plot.top + 6, plot.bottom)
    x = plot.left + plot.width + 8
    parts = []
    for index, item in enumerate(series):
        style = STYLES[index % len(STYLES)]
        y = placed[index]
        swatch = (
            f'<rect x="{_n(x)}" y="{_n(y - 6)}" width="12" height="12" fill="{_fill(chart_id, index)}" '
            f'stroke="{INK}" stroke-width=".5"/>'
            if stacked
            else _marker(style, x + 6, y, item.name, 4)
        )
        text = end_texts[index]
        parts.append(swatch + f'<text x="{_n(x + 17)}" y="{_n(y + 4)}" fill="{INK}">{_attr(text)}</text>')
    return '<g class="direct-labels">' + "".join(parts) + "</g>"


def bar_chart(
    chart_id: str,
    title: str,
    desc: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    stacked: bool = False,
    label_header: str = "",
    empty_message: str = "No data yet",
) -> Chart:
    """Vertical bars over categories or periods: grouped side by side, or stacked with a total on top."""
    _check(labels, series)
    empty = _is_empty(series) or not labels
    legend = len(series) > 1
    svg = [_open_svg(chart_id, title, desc, WIDTH, HEIGHT), _defs(chart_id, len(series))]
    if empty:
        svg.append(_empty_message(WIDTH, HEIGHT, empty_message))
    else:
        svg.append(_draw_bars(chart_id, labels, series, stacked, legend))
    svg.append("</svg>")
    columns = (label_header or "Period", *(item.name for item in series))
    rows = _table(labels, series)
    if stacked and len(series) > 1 and labels:
        columns = (*columns, "Total")
        rows = tuple((*row, fmt(sum(item.values[i] for item in series))) for i, row in enumerate(rows))
    return Chart(chart_id, title, desc, _markup(svg), columns, rows, empty, empty_message)


def stacked_bar_chart(
    chart_id: str, title: str, desc: str, labels: Sequence[str], series: Sequence[Series], **options: str
) -> Chart:
    return bar_chart(chart_id, title, desc, labels, series, stacked=True, **options)


def _draw_bars(chart_id: str, labels: Sequence[str], series: Sequence[Series], stacked: bool, legend: bool) -> str:
    count = len(labels)
    totals = [sum(s.values[i] for s in series) for i in range(count)]
    top, step = nice_ceiling(max(totals) if stacked else max(max(s.values) for s in series))
    header = 26 if legend else 0
    plot = _Plot(48, 18 + header, WIDTH - 48 - 12, HEIGHT - 18 - header - 34, top, step)
    slot = plot.width / count
    xs = [plot.left + slot * (i + 0.5) for i in range(count)]
    parts = [_y_axis(plot), _x_labels(labels, xs, plot.bottom + 18)]
    if legend:
        parts.append(_legend(chart_id, series, plot.left, 12, lines=False))
    groups = 1 if stacked else len(series)
    bar = max(2.0, min(48.0, slot * 0.7 / groups))
    show_values = count * groups <= 24
    for i in range(count):
        base = 0.0
        for index, item in enumerate(series):
            value = item.values[i]
            x = xs[i] - bar * groups / 2 + (0 if stacked else bar * index)
            y_top, y_bottom = plot.y(base + value), plot.y(base)
            tip = f"{labels[i]}, {item.name}: {fmt(value)}" if len(series) > 1 else f"{labels[i]}: {fmt(value)}"
            if value:
                parts.append(
                    f'<rect x="{_n(x)}" y="{_n(y_top)}" width="{_n(bar)}" height="{_n(y_bottom - y_top)}" '
                    f'fill="{_fill(chart_id, index)}" stroke="{INK}" stroke-width=".5">'
                    f"<title>{_attr(tip)}</title></rect>"
                )
            if show_values and not stacked and (value or len(series) == 1):  # grouped zeros would only clutter
                parts.append(
                    f'<text x="{_n(x + bar / 2)}" y="{_n(y_top - 4)}" text-anchor="middle" fill="{INK}">'
                    f"{fmt(value)}</text>"
                )
            base = base + value if stacked else 0.0
        if stacked and show_values:
            parts.append(
                f'<text x="{_n(xs[i])}" y="{_n(plot.y(totals[i]) - 4)}" text-anchor="middle" fill="{INK}" '
                f'font-weight="bold">{fmt(totals[i])}</text>'
            )
    return "".join(parts)


def hbar_chart(
    chart_id: str,
    title: str,
    desc: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    label_header: str = "",
    empty_message: str = "No data yet",
) -> Chart:
    """Horizontal grouped bars for named categories (long names fit); each bar carries its figure."""
    _check(labels, series)
    empty = _is_empty(series) or not labels
    row_height = 10 + 16 * len(series)
    legend = 26 if len(series) > 1 else 0
    height = max(90, 10 + legend + row_height * len(labels) + 10)
    svg = [_open_svg(chart_id, title, desc, WIDTH, height), _defs(chart_id, len(series))]
    if empty:
        svg.append(_empty_message(WIDTH, height, empty_message))
    else:
        if legend:
            svg.append(_legend(chart_id, series, 140, 14, lines=False))
        top = max(max(s.values) for s in series) or 1
        left, room = 140.0, WIDTH - 140.0 - 100
        for row, label in enumerate(labels):
            y0 = 10 + legend + row * row_height
            svg.append(
                f'<text x="{_n(left - 8)}" y="{_n(y0 + row_height / 2 + 2)}" text-anchor="end" fill="{INK}">'
                f"<title>{_attr(label)}</title>{_attr(_short(label, 24))}</text>"
            )
            for index, item in enumerate(series):
                value, y = item.values[row], y0 + 4 + index * 16
                width = room * value / top
                if value:
                    svg.append(
                        f'<rect x="{_n(left)}" y="{_n(y)}" width="{_n(width)}" height="13" '
                        f'fill="{_fill(chart_id, index)}" stroke="{INK}" stroke-width=".5">'
                        f"<title>{_attr(f'{label}, {item.name}: {fmt(value)}')}</title></rect>"
                    )
                text = f"{item.name}: {fmt(value)}" if len(series) > 1 else fmt(value)
                svg.append(f'<text x="{_n(left + width + 5)}" y="{_n(y + 11)}" fill="{INK}">{_attr(text)}</text>')
    svg.append("</svg>")
    columns = (label_header or "Name", *(item.name for item in series))
    return Chart(chart_id, title, desc, _markup(svg), columns, _table(labels, series), empty, empty_message)


def funnel_chart(
    chart_id: str, title: str, desc: str, stages: Sequence[tuple[str, int]], *, empty_message: str = "No data yet"
) -> Chart:
    """Stages narrowing from the first: each bar centred, labelled with its count and share of the first."""
    first = stages[0][1] if stages else 0
    empty = first <= 0
    row_height = 34
    height = max(90, 12 + row_height * len(stages))
    svg = [_open_svg(chart_id, title, desc, WIDTH, height), _defs(chart_id, 1)]
    rows = []
    for name, value in stages:
        share = f"{100 * value / first:.1f} %" if first else "–"
        rows.append((name, fmt(value), share))
    if empty:
        svg.append(_empty_message(WIDTH, height, empty_message))
    else:
        left, room = 150.0, WIDTH - 150.0 - 130
        centre = left + room / 2
        for i, (name, value) in enumerate(stages):
            y = 8 + i * row_height
            width = max(2.0, room * value / first) if value else 0.0
            svg.append(
                f'<text x="{_n(left - 10)}" y="{_n(y + 18)}" text-anchor="end" fill="{INK}">{_attr(name)}</text>'
            )
            if width:
                svg.append(
                    f'<rect x="{_n(centre - width / 2)}" y="{_n(y + 2)}" width="{_n(width)}" height="24" '
                    f'fill="{_fill(chart_id, 0)}" stroke="{INK}" stroke-width=".5">'
                    f"<title>{_attr(f'{name}: {fmt(value)} ({rows[i][2]})')}</title></rect>"
                )
            svg.append(
                f'<text x="{_n(left + room + 10)}" y="{_n(y + 18)}" fill="{INK}">'
                f'{fmt(value)} <tspan fill="{MUTED}">({rows[i][2]})</tspan></text>'
            )
    svg.append("</svg>")
    return Chart(
        chart_id, title, desc, _markup(svg), ("Stage", "Messages", "Share of the first stage"),
        tuple(rows), empty, empty_message,
    )  # fmt: skip
