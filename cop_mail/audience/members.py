"""The member directory: search, filters, sorting and keyset pagination that stay fast at
100,000 members, one member's timeline, and coordinator edits to a profile."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, func, literal, or_, select, true, tuple_
from sqlalchemy.orm import Session

from cop_mail.audience import segments
from cop_mail.audience.importer import parse_locale, timezone_names
from cop_mail.audience.suppression import on_lists_clause
from cop_mail.db import UTCDateTime
from cop_mail.models import (
    Campaign,
    ConsentEvent,
    Delivery,
    ListMembership,
    MailingList,
    Member,
    MemberEvent,
    MemberStatus,
    Practice,
    Tag,
    Value,
    member_values,
)

PAGE_SIZE = 50
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)
# Sort keys; never-engaged members sort as the oldest engagement.
SORTS: dict[str, Any] = {
    "joined": Member.joined_at,
    "email": Member.email,
    "name": Member.name,
    "engaged": func.coalesce(Member.last_engaged_at, literal(_NEVER, UTCDateTime())),
    "connections": Member.connections_count,
}
SORT_LABELS = {
    "joined": "Joined",
    "email": "Email",
    "name": "Name",
    "engaged": "Last engaged",
    "connections": "Connections",
}
LIST_COLUMNS = (
    Member.id,
    Member.email,
    Member.name,
    Member.preferred_name,
    Member.status,
    Member.location,
    Member.joined_at,
    Member.last_engaged_at,
    Member.connections_count,
)


class MemberNotFound(LookupError):
    pass


class MemberEditError(ValueError):
    pass


@dataclass(frozen=True)
class MemberFilter:
    search: str = ""
    status: str = ""
    list_id: int | None = None
    value_id: int | None = None
    segment_id: int | None = None


@dataclass
class MemberPage:
    rows: list[Row[Any]]
    total: int
    next_cursor: str | None = None
    prev_cursor: str | None = None


def filter_condition(session: Session, filters: MemberFilter) -> ColumnElement[bool]:
    """One SQL condition for the directory's search box and filters."""
    parts: list[ColumnElement[bool]] = []
    text = " ".join(filters.search.split()).lower()
    if text:
        # Addresses are stored lower-cased; names are compared lower-cased too.
        parts.append(
            or_(
                Member.email.contains(text, autoescape=True),
                func.lower(Member.name).contains(text, autoescape=True),
                func.lower(Member.preferred_name).contains(text, autoescape=True),
            )
        )
    if filters.status:
        parts.append(Member.status == filters.status)
    if filters.list_id is not None:
        parts.append(on_lists_clause([filters.list_id]))
    if filters.value_id is not None:
        parts.append(
            select(member_values.c.member_id)
            .where(member_values.c.member_id == Member.id, member_values.c.value_id == filters.value_id)
            .exists()
        )
    if filters.segment_id is not None:
        segment = segments.get_segment(session, filters.segment_id)
        parts.append(segments.compile_rules(segment.rules))
    return and_(*parts) if parts else true()


def _encode_cursor(direction: str, value: Any, member_id: int) -> str:
    kind = "t" if isinstance(value, datetime) else "v"
    payload = [kind, value.isoformat() if isinstance(value, datetime) else value, member_id]
    return direction + base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> tuple[str, Any, int] | None:
    """A malformed cursor (edited by hand) just means the first page."""
    if not cursor or cursor[0] not in "np":
        return None
    try:
        text = cursor[1:]
        kind, value, member_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if kind == "t":
            value = datetime.fromisoformat(value)
        return cursor[0], value, int(member_id)
    except (ValueError, TypeError, binascii.Error):
        return None


def search_members(
    session: Session,
    filters: MemberFilter = MemberFilter(),  # noqa: B008 - frozen dataclass, safe as a default
    sort: str = "joined",
    descending: bool = True,
    cursor: str | None = None,
    size: int = PAGE_SIZE,
) -> MemberPage:
    """One page of the directory. Keyset pagination on (sort key, id): every page costs the same,
    however deep, and rows added meanwhile never shift a page."""
    key = SORTS.get(sort, SORTS["joined"])
    condition = filter_condition(session, filters)
    total = session.scalar(select(func.count()).select_from(Member).where(condition)) or 0
    position = _decode_cursor(cursor)
    backwards = position is not None and position[0] == "p"
    ascending = descending == backwards  # reading backwards flips the order, then the rows
    statement = select(*LIST_COLUMNS, key.label("sort_key")).where(condition)
    if position is not None:
        boundary = tuple_(key, Member.id)
        after = tuple_(literal(position[1], key.type), literal(position[2]))
        statement = statement.where(boundary > after if ascending else boundary < after)
    orders = (key.asc(), Member.id.asc()) if ascending else (key.desc(), Member.id.desc())
    rows = list(session.execute(statement.order_by(*orders).limit(size + 1)).all())
    more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
    page = MemberPage(rows, total)
    if rows:
        first, last = rows[0], rows[-1]
        if more or backwards:
            page.next_cursor = _encode_cursor("n", last.sort_key, last.id)
        if position is not None and (more or not backwards):
            page.prev_cursor = _encode_cursor("p", first.sort_key, first.id)
    return page


def find_member_id(session: Session, email: str) -> int | None:
    return session.scalar(select(Member.id).where(Member.email == email.strip().lower()))


def get_member(session: Session, member_id: int) -> Member:
    member = session.get(Member, member_id)
    if member is None:
        raise MemberNotFound(f"member #{member_id} does not exist")
    return member


# --- timeline -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # email, event, consent, list
    title: str
    detail: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)


def _words(kind: str) -> str:
    text = kind.replace("_", " ").replace(".", " ").strip()
    return text[:1].upper() + text[1:]


def _detail(data: dict[str, Any] | None) -> str:
    return ", ".join(
        f"{_words(str(key)).lower()}: {value}" for key, value in (data or {}).items() if value not in ("", None)
    )


def _delivery_entries(session: Session, member_id: int, limit: int) -> list[TimelineEntry]:
    statement = (
        select(
            Delivery.status, Delivery.created_at, Delivery.sent_at, Delivery.last_error, Campaign.name, Campaign.subject
        )
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(Delivery.member_id == member_id)
        .order_by(Delivery.created_at.desc())
        .limit(limit)
    )
    return [
        TimelineEntry(
            sent or created,
            "email",
            f"Email: {subject or name}",
            f"{status}" + (f" ({error[:120]})" if error and status != "sent" else ""),
        )
        for status, created, sent, error, name, subject in session.execute(statement)
    ]


def _event_entries(session: Session, member_id: int, limit: int) -> list[TimelineEntry]:
    statement = (
        select(MemberEvent)
        .where(MemberEvent.member_id == member_id)
        .order_by(MemberEvent.created_at.desc())
        .limit(limit)
    )
    return [
        TimelineEntry(event.created_at, "event", _words(event.kind), _detail(event.detail))
        for event in session.scalars(statement)
    ]


def _consent_entries(session: Session, member_id: int, limit: int) -> list[TimelineEntry]:
    statement = (
        select(ConsentEvent, MailingList.name)
        .outerjoin(MailingList, MailingList.id == ConsentEvent.list_id)
        .where(ConsentEvent.member_id == member_id)
        .order_by(ConsentEvent.created_at.desc())
        .limit(limit)
    )
    entries = []
    for event, list_name in session.execute(statement):
        scope = " · ".join(part for part in (list_name, event.stream) if part)
        detail = "; ".join(part for part in (event.wording, f"from {event.ip}" if event.ip else "") if part)
        entries.append(
            TimelineEntry(event.created_at, "consent", _words(event.kind) + (f" ({scope})" if scope else ""), detail)
        )
    return entries


def _membership_entries(session: Session, member_id: int) -> list[TimelineEntry]:
    statement = (
        select(ListMembership, MailingList.name)
        .join(MailingList, MailingList.id == ListMembership.list_id)
        .where(ListMembership.member_id == member_id)
    )
    entries = []
    for membership, list_name in session.execute(statement):
        source = f"source: {membership.source}" if membership.source else ""
        entries.append(TimelineEntry(membership.created_at, "list", f"Joined list {list_name}", source))
        if membership.confirmed_at:
            entries.append(TimelineEntry(membership.confirmed_at, "list", f"Confirmed list {list_name}"))
        if membership.unsubscribed_at:
            entries.append(TimelineEntry(membership.unsubscribed_at, "list", f"Left list {list_name}"))
    return entries


def member_timeline(session: Session, member_id: int, limit: int = 200) -> list[TimelineEntry]:
    """Newest first: emails received, replies, intros, stories and other events, consent and lists."""
    member = get_member(session, member_id)
    entries = [TimelineEntry(member.joined_at, "event", "Joined the community")]
    entries += _delivery_entries(session, member_id, limit)
    entries += _event_entries(session, member_id, limit)
    entries += _consent_entries(session, member_id, limit)
    entries += _membership_entries(session, member_id)
    return sorted(entries, key=lambda entry: entry.at, reverse=True)[:limit]


def memberships(session: Session, member_id: int) -> list[tuple[ListMembership, str]]:
    statement = (
        select(ListMembership, MailingList.name)
        .join(MailingList, MailingList.id == ListMembership.list_id)
        .where(ListMembership.member_id == member_id)
        .order_by(MailingList.name)
    )
    return [(membership, name) for membership, name in session.execute(statement).all()]


# --- coordinator edits ----------------------------------------------------------------------


def update_profile(session: Session, member: Member, form: dict[str, str]) -> list[str]:
    """Apply the profile form; returns the names of the fields that changed. Raises MemberEditError."""
    changes: dict[str, Any] = {}
    for name in ("name", "preferred_name", "location"):
        if name in form:
            changes[name] = " ".join(form[name].split())[:200]
    if form.get("locale", "").strip():
        locale = parse_locale(form["locale"])
        if locale is None:
            raise MemberEditError("Write the language as a code such as en, pt or pt-BR.")
        changes["locale"] = locale
    if form.get("timezone", "").strip():
        zone = timezone_names().get(form["timezone"].strip().lower())
        if zone is None:
            raise MemberEditError("Choose a time zone such as Europe/Lisbon or America/Bogota.")
        changes["timezone"] = zone
    changed = [name for name, value in changes.items() if getattr(member, name) != value]
    for name in changed:
        setattr(member, name, changes[name])
    return changed


def set_terms(
    session: Session, member: Member, value_ids: list[int], practice_ids: list[int], tag_names: list[str]
) -> None:
    """Replace the member's values, practices and tags (new tag names are created)."""
    member.values = list(session.scalars(select(Value).where(Value.id.in_(value_ids)))) if value_ids else []
    member.practices = (
        list(session.scalars(select(Practice).where(Practice.id.in_(practice_ids)))) if practice_ids else []
    )
    names = {" ".join(name.split())[:100] for name in tag_names if name.strip()}
    existing = {tag.name.lower(): tag for tag in session.scalars(select(Tag))}
    tags = []
    for name in sorted(names):
        tag = existing.get(name.lower())
        if tag is None:
            tag = Tag(name=name)
            session.add(tag)
            existing[name.lower()] = tag
        tags.append(tag)
    member.tags = tags


def status_counts(session: Session) -> dict[str, int]:
    counts = dict(session.execute(select(Member.status, func.count()).group_by(Member.status)).all())
    return {status.value: counts.get(status.value, 0) for status in MemberStatus}
