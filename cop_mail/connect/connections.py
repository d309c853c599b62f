"""Connections: the edges of the community's web, from introductions or entered by coordinators.

Stored once per pair with the smaller member id first, so "A knows B" and "B knows A" are one
row. Members.connections_count is kept in step here, in the same transaction, because segments
and matching read it instead of counting edges.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Table, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from cop_mail.audience.consent import record_member_event
from cop_mail.db import is_postgres, utcnow
from cop_mail.integrations import events
from cop_mail.journeys.triggers import connection_made
from cop_mail.models import Connection, ConnectionHow, Member


class ConnectionRefused(ValueError):
    """A connection that cannot be recorded; the message says why in plain words."""


def ordered(a: int, b: int) -> tuple[int, int]:
    if a == b:
        raise ConnectionRefused("a member cannot be connected to themselves")
    return (a, b) if a < b else (b, a)


def find_connection(session: Session, a: int, b: int) -> Connection | None:
    low, high = ordered(a, b)
    return session.scalar(select(Connection).where(Connection.member_a_id == low, Connection.member_b_id == high))


def record_connection(
    session: Session,
    a: int,
    b: int,
    how: ConnectionHow | str,
    *,
    began_at: datetime | None = None,
    intro_id: int | None = None,
    created_by: str = "system",
    note: str = "",
) -> bool:
    """Record that a and b know each other; True if this is a new connection (idempotent)."""
    low, high = ordered(a, b)
    found = session.scalars(select(Member.id).where(Member.id.in_([low, high]))).all()
    if len(found) != 2:
        raise ConnectionRefused("both members must exist")
    now = utcnow()
    table = cast(Table, Connection.__table__)
    insert = pg_insert(table) if is_postgres(session) else sqlite_insert(table)
    statement = (
        insert.values(
            member_a_id=low,
            member_b_id=high,
            began_at=began_at or now,
            how=str(ConnectionHow(how)),
            intro_id=intro_id,
            note=note,
            created_by=created_by,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["member_a_id", "member_b_id"])
        .returning(table.c.id)
    )
    inserted = session.execute(statement).first()
    if inserted is None:
        return False
    session.execute(
        update(Member)
        .where(Member.id.in_([low, high]))
        .values(connections_count=Member.connections_count + 1)
        .execution_options(synchronize_session="fetch")
    )
    for member_id, other in ((low, high), (high, low)):
        record_member_event(session, member_id, "connection_made", other_id=other, how=str(how), intro_id=intro_id)
    events.emit_connection_made(session, inserted[0])
    connection_made(session, low, high)
    return True


def connections_of(session: Session, member_id: int) -> list[Connection]:
    return list(
        session.scalars(
            select(Connection)
            .where(or_(Connection.member_a_id == member_id, Connection.member_b_id == member_id))
            .order_by(Connection.began_at)
        )
    )
