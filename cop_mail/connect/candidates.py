"""Members -> matching Candidates, and the pairs a round must not repeat, with Core queries.

Everything is read as tuples in a handful of queries over the round's audience (one per kind of
detail), never as ORM objects per member: a round over 10,000 members loads in well under a second.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Select, Table, and_, not_, or_, select
from sqlalchemy.orm import Session

from cop_mail.audience.segments import audience_query
from cop_mail.audience.suppression import receivable_clause
from cop_mail.connect.matching import Candidate
from cop_mail.models import (
    Connection,
    HelpTopic,
    HelpTopicKind,
    Intro,
    IntroStatus,
    Member,
    Practice,
    Stream,
    Value,
    member_practices,
    member_values,
)


def audience_ids(session: Session, segment_id: int | None, now: datetime) -> Select[Any]:
    """Member ids a round may draw from: the segment (or everyone), taking part in introductions."""
    if segment_id is None:
        return select(Member.id).where(receivable_clause(Stream.INTROS, now=now))
    return audience_query(session, segment_ids=[segment_id], stream=Stream.INTROS, now=now)


def load_candidates(session: Session, ids: Select[Any] | Iterable[int], now: datetime) -> list[Candidate]:
    wanted = ids if isinstance(ids, Select) else list(ids)
    members = session.execute(
        select(
            Member.id,
            Member.preferred_name,
            Member.name,
            Member.email,
            Member.joined_at,
            Member.connections_count,
            Member.last_engaged_at,
            Member.locale,
            Member.location,
            Member.timezone,
            Member.wants_intros,
            Member.intro_cadence_weeks,
            Member.last_introduced_at,
            Member.paused_until,
        ).where(Member.id.in_(wanted))
    ).all()
    values = _names(session, member_values, "value_id", Value, wanted)
    practices = _names(session, member_practices, "practice_id", Practice, wanted)
    offers, asks = _topics(session, wanted)
    return [
        Candidate(
            member_id=row.id,
            name=row.preferred_name or row.name or row.email.split("@", 1)[0],
            joined_at=row.joined_at,
            values=frozenset(values.get(row.id, ())),
            practices=frozenset(practices.get(row.id, ())),
            connections=row.connections_count,
            last_action_at=row.last_engaged_at,
            locale=row.locale,
            location=row.location,
            tz_offset_minutes=tz_offset_minutes(row.timezone, now),
            cadence_weeks=row.intro_cadence_weeks if row.wants_intros else None,
            last_intro_at=row.last_introduced_at,
            paused_until=row.paused_until,
            offers=frozenset(offers.get(row.id, ())),
            asks=frozenset(asks.get(row.id, ())),
        )
        for row in members
    ]


def _names(
    session: Session, table: Table, column: str, model: type[Value] | type[Practice], wanted: Any
) -> dict[int, list[str]]:
    found: dict[int, list[str]] = defaultdict(list)
    rows = session.execute(
        select(table.c.member_id, model.name)
        .join(model, model.id == table.c[column])
        .where(table.c.member_id.in_(wanted))
    )
    for member_id, name in rows:
        found[member_id].append(name)
    return found


def _topics(session: Session, wanted: Any) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    offers: dict[int, list[str]] = defaultdict(list)
    asks: dict[int, list[str]] = defaultdict(list)
    rows = session.execute(
        select(HelpTopic.member_id, HelpTopic.kind, HelpTopic.topic).where(HelpTopic.member_id.in_(wanted))
    )
    for member_id, kind, topic in rows:
        (offers if kind == HelpTopicKind.OFFER else asks)[member_id].append(topic)
    return offers, asks


def tz_offset_minutes(name: str | None, now: datetime) -> int | None:
    return _offset(name or "", now.replace(minute=0, second=0, microsecond=0))


@cache
def _offset(name: str, hour: datetime) -> int | None:
    try:
        offset = hour.astimezone(ZoneInfo(name)).utcoffset() if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return None if offset is None else int(offset.total_seconds() // 60)


def past_pairs(
    session: Session, *, exclude_round_id: int | None = None, member_id: int | None = None
) -> set[frozenset[int]]:
    """Every pair ever proposed or introduced (except this round's own open proposals), and every
    connection; only those including `member_id` when it is given."""
    statement = select(Intro.member_a_id, Intro.member_b_id)
    connections = select(Connection.member_a_id, Connection.member_b_id)
    if exclude_round_id is not None:
        statement = statement.where(
            not_(and_(Intro.round_id == exclude_round_id, Intro.status == IntroStatus.PROPOSED))
        )
    if member_id is not None:
        statement = statement.where(or_(Intro.member_a_id == member_id, Intro.member_b_id == member_id))
        connections = connections.where(or_(Connection.member_a_id == member_id, Connection.member_b_id == member_id))
    pairs = {frozenset(row) for row in session.execute(statement)}
    pairs.update(frozenset(row) for row in session.execute(connections))
    return pairs
