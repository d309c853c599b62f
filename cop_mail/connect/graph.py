"""The community map's data: who is connected to whom, the core and the periphery, and how the web grows.

Read with a few Core queries (member tuples, value holdings, connection pairs) and summed in
Python: a community of 100,000 members and as many connections is a few hundred milliseconds.
The drawing (map_svg) takes at most MAX_NODES members: every connected member, most connected
first, then the newest members with no connection.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cop_mail.connect import workflow
from cop_mail.db import utcnow
from cop_mail.models import Connection, Member, MemberStatus, Value, member_values

MAX_NODES = 800
MAX_EDGES = 4000
NEWCOMER_DAYS = 90
MONTHS = 12
NO_VALUE = "No value named"
NO_VALUE_COLOUR = "#9aa5b1"
# Shapes tell values apart without colour; they are assigned by how widely each value is held.
SHAPES = ("circle", "square", "triangle", "diamond", "hexagon", "star", "triangle-down", "cross")


class Band:
    CORE = "core"
    MIDDLE = "middle"
    PERIPHERY = "periphery"  # one connection
    ISOLATED = "isolated"  # no connection yet

    ORDER = (CORE, MIDDLE, PERIPHERY, ISOLATED)


@dataclass(frozen=True)
class ValueKey:
    name: str
    colour: str
    shape: str
    members: int


@dataclass(frozen=True)
class Node:
    member_id: int
    name: str
    degree: int
    band: str
    value: str
    joined_at: datetime


@dataclass(frozen=True)
class Edge:
    a: int
    b: int
    how: str
    began_at: datetime


@dataclass(frozen=True)
class Waiting:
    intro_id: int
    accepted: str
    waiting_on: str
    invited_at: datetime | None


@dataclass
class CommunityMap:
    members: int
    connections: int
    nodes: list[Node]
    edges: list[Edge]
    values: list[ValueKey]
    bands: dict[str, int]  # members in each band, over everyone (not only those drawn)
    core_min_degree: int
    isolated: list[Node]  # the newest members with no connection (up to 100)
    per_month: list[tuple[str, int]]
    newcomers: int
    newcomers_connected: int
    waiting: list[Waiting] = field(default_factory=list)

    @property
    def newcomer_share(self) -> float | None:
        return None if not self.newcomers else self.newcomers_connected / self.newcomers

    @property
    def value_keys(self) -> dict[str, ValueKey]:
        return {v.name: v for v in self.values}


def community_map(session: Session, now: datetime | None = None) -> CommunityMap:
    now = now or utcnow()
    members = session.execute(
        select(Member.id, Member.preferred_name, Member.name, Member.email, Member.joined_at).where(
            Member.status == MemberStatus.ACTIVE
        )
    ).all()
    names = {m.id: m.preferred_name or m.name or m.email.split("@", 1)[0] for m in members}
    joined = {m.id: m.joined_at for m in members}
    pairs = session.execute(
        select(Connection.member_a_id, Connection.member_b_id, Connection.how, Connection.began_at)
    ).all()
    degree: Counter[int] = Counter()
    first: dict[int, datetime] = {}
    for a, b, _how, began in pairs:
        for member_id in (a, b):
            if member_id in names:
                degree[member_id] += 1
                first[member_id] = min(first.get(member_id, began), began)
    values, held = _values(session, names)
    core_min = core_threshold(degree.values())
    nodes = {
        member_id: Node(
            member_id,
            names[member_id],
            degree[member_id],
            band_of(degree[member_id], core_min),
            held.get(member_id, NO_VALUE),
            joined[member_id],
        )
        for member_id in names
    }
    drawn = _drawn(nodes)
    drawn_ids = {n.member_id for n in drawn}
    edges = [Edge(a, b, how, began) for a, b, how, began in pairs if a in drawn_ids and b in drawn_ids][:MAX_EDGES]
    cohort = [i for i, at in joined.items() if at >= now - timedelta(days=NEWCOMER_DAYS)]
    connected = [i for i in cohort if i in first and first[i] <= joined[i] + timedelta(days=NEWCOMER_DAYS)]
    isolated = sorted(
        (n for n in nodes.values() if n.degree == 0), key=lambda n: (n.joined_at, n.member_id), reverse=True
    )
    return CommunityMap(
        members=len(nodes),
        connections=len(pairs),
        nodes=drawn,
        edges=edges,
        values=values,
        bands=dict(Counter(n.band for n in nodes.values())),
        core_min_degree=core_min,
        isolated=isolated[:100],
        per_month=per_month([began for *_, began in pairs], now),
        newcomers=len(cohort),
        newcomers_connected=len(connected),
        waiting=_waiting(session, names),
    )


def core_threshold(degrees: Iterable[int]) -> int:
    """Members with at least this many connections form the core: the top tenth, and never under 3."""
    connected = sorted(d for d in degrees if d > 0)
    if not connected:
        return 3
    return max(3, connected[int(0.9 * (len(connected) - 1))])


def band_of(degree: int, core_min: int) -> str:
    if degree == 0:
        return Band.ISOLATED
    if degree == 1:
        return Band.PERIPHERY
    return Band.CORE if degree >= core_min else Band.MIDDLE


def _values(session: Session, names: dict[int, str]) -> tuple[list[ValueKey], dict[int, str]]:
    """Each member's colour is the most widely held of their values, so the map has few colours."""
    colours = {name: colour for name, colour in session.execute(select(Value.name, Value.colour))}
    holdings: dict[int, list[str]] = defaultdict(list)
    rows = session.execute(
        select(member_values.c.member_id, Value.name).join(Value, Value.id == member_values.c.value_id)
    )
    for member_id, value in rows:
        if member_id in names:
            holdings[member_id].append(value)
    counts = Counter(v for vs in holdings.values() for v in vs)
    rank = {name: i for i, (name, _) in enumerate(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))}
    held = {m: min(vs, key=lambda v: rank[v]) for m, vs in holdings.items()}
    shown = Counter(held.values())
    keys = [
        ValueKey(name, colours.get(name, NO_VALUE_COLOUR), SHAPES[min(rank[name], len(SHAPES) - 1)], shown[name])
        for name in sorted(shown, key=lambda n: rank[n])
    ]
    without = len(names) - len(held)
    if without:
        keys.append(ValueKey(NO_VALUE, NO_VALUE_COLOUR, "ring", without))
    return keys, held


def _drawn(nodes: dict[int, Node]) -> list[Node]:
    connected = sorted((n for n in nodes.values() if n.degree), key=lambda n: (-n.degree, n.member_id))
    alone = sorted((n for n in nodes.values() if not n.degree), key=lambda n: (n.joined_at, n.member_id), reverse=True)
    return (connected + alone)[:MAX_NODES]


def per_month(moments: list[datetime], now: datetime, months: int = MONTHS) -> list[tuple[str, int]]:
    """Connections begun in each of the last `months` calendar months (UTC), oldest first, zeros kept."""
    counts = Counter(f"{m:%Y-%m}" for m in moments)
    labels = []
    year, month = now.year, now.month
    for _ in range(months):
        labels.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return [(label, counts.get(label, 0)) for label in reversed(labels)]


def _waiting(session: Session, names: dict[int, str]) -> list[Waiting]:
    found = []
    for intro in workflow.waiting_on_one_side(session):
        yes, no = (
            (intro.member_a_id, intro.member_b_id)
            if intro.a_answer == "accept"
            else (intro.member_b_id, intro.member_a_id)
        )
        found.append(
            Waiting(intro.id, names.get(yes, f"member {yes}"), names.get(no, f"member {no}"), intro.invited_at)
        )
    return found
