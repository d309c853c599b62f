"""CSV export of members (all, filtered, a list or a segment), streamed in id order.

Memory stays flat: members are read in keyset chunks, and each chunk's values,
practices, tags and lists come from one query per table. Every cell is formula-safe.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.orm import Session

from cop_mail.audience.csv_io import csv_lines
from cop_mail.models import (
    ListMembership,
    MailingList,
    Member,
    Practice,
    Tag,
    Value,
    member_practices,
    member_tags,
    member_values,
)

CHUNK = 2000
SEPARATOR = "; "
EXPORT_HEADER = (
    "email",
    "name",
    "preferred_name",
    "status",
    "locale",
    "timezone",
    "location",
    "joined_at",
    "last_engaged_at",
    "connections_count",
    "values",
    "practices",
    "tags",
    "lists",
    "attributes",
)
_COLUMNS = (
    Member.id,
    Member.email,
    Member.name,
    Member.preferred_name,
    Member.status,
    Member.locale,
    Member.timezone,
    Member.location,
    Member.joined_at,
    Member.last_engaged_at,
    Member.connections_count,
    Member.attributes,
)
_TERMS = (
    (member_values, member_values.c.value_id, Value),
    (member_practices, member_practices.c.practice_id, Practice),
    (member_tags, member_tags.c.tag_id, Tag),
)


def _names_by_member(session: Session, ids: list[int]) -> list[dict[int, list[str]]]:
    found: list[dict[int, list[str]]] = []
    for table, column, model in _TERMS:
        statement = (
            select(table.c.member_id, model.name)
            .join(model, model.id == column)
            .where(table.c.member_id.in_(ids))
            .order_by(model.name)
        )
        found.append(_group(session.execute(statement).all()))
    lists = (
        select(ListMembership.member_id, MailingList.name)
        .join(MailingList, MailingList.id == ListMembership.list_id)
        .where(ListMembership.member_id.in_(ids), ListMembership.status == "subscribed")
        .order_by(MailingList.name)
    )
    found.append(_group(session.execute(lists).all()))
    return found


def _group(pairs: Any) -> dict[int, list[str]]:
    grouped: dict[int, list[str]] = {}
    for member_id, name in pairs:
        grouped.setdefault(member_id, []).append(name)
    return grouped


def _iso(moment: Any) -> str:
    return moment.isoformat(timespec="seconds") if moment else ""


def export_rows(session: Session, condition: ColumnElement[bool] | None = None) -> Iterator[list[Any]]:
    """Rows in EXPORT_HEADER order for every member matching `condition` (all members when None)."""
    last_id = 0
    where = condition if condition is not None else true()
    while True:
        statement = select(*_COLUMNS).where(where, Member.id > last_id).order_by(Member.id).limit(CHUNK)
        rows = session.execute(statement).all()
        if not rows:
            return
        last_id = rows[-1].id
        values, practices, tags, lists = _names_by_member(session, [row.id for row in rows])
        for row in rows:
            yield [
                row.email, row.name, row.preferred_name, row.status, row.locale, row.timezone, row.location,
                _iso(row.joined_at), _iso(row.last_engaged_at), row.connections_count,
                SEPARATOR.join(values.get(row.id, [])), SEPARATOR.join(practices.get(row.id, [])),
                SEPARATOR.join(tags.get(row.id, [])), SEPARATOR.join(lists.get(row.id, [])),
                json.dumps(row.attributes, ensure_ascii=False, sort_keys=True) if row.attributes else "",
            ]  # fmt: skip


def export_csv(session: Session, condition: ColumnElement[bool] | None = None) -> Iterator[str]:
    """Formula-safe CSV text in chunks, ready to stream."""
    return csv_lines(EXPORT_HEADER, export_rows(session, condition))
