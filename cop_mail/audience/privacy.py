"""GDPR: export one member's data as JSON, and erase a member.

Export: named sections (profile, lists, consents, events, deliveries, inbound mail),
then every other table that points at the member (introductions, stories,
connections... as they are added), so a new table is exported without touching this
module. A package can give its table a better section with `export_section`.

Erasure: the address is replaced by `erased-<id>@invalid`, names, location and
attributes are cleared, event details and IPs scrubbed, raw inbound mail dropped,
and the address's hash stays on the suppression list so no import or signup brings
it back. Rows keep their ids, so counts and other members' histories stay whole.
A table that points at members without a registered eraser (`register_eraser`) is
treated as its own foreign key says a deletion of the member would be: ON DELETE
CASCADE rows (a member's own stories) are deleted, ON DELETE SET NULL references are
cleared. A table declaring neither must register an eraser; the tests check that.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, delete, func, or_, select, update
from sqlalchemy.orm import Session

from cop_mail.audience.consent import ConsentKind, record_consent
from cop_mail.audience.suppression import SuppressionReason, suppress
from cop_mail.db import Base, utcnow
from cop_mail.models import (
    Campaign,
    ConsentEvent,
    Delivery,
    InboundMessage,
    ListMembership,
    MailingList,
    Member,
    MemberEvent,
    MemberStatus,
)

EXPORT_FORMAT = "cop-mail member export, version 1"
ERASED_DOMAIN = "invalid"

Section = Callable[[Session, Member], Any]
Eraser = Callable[[Session, Member, str], None]  # (session, member, the address before erasure)

_SECTIONS: dict[str, Section] = {}
_SECTION_TABLES: set[str] = set()
_ERASERS: list[Eraser] = []
_ERASED_TABLES: set[str] = set()


def export_section(name: str, tables: Iterable[str] = ()) -> Callable[[Section], Section]:
    """Register a named export section; `tables` are then left out of the generic part."""

    def register(function: Section) -> Section:
        _SECTIONS[name] = function
        _SECTION_TABLES.update(tables)
        return function

    return register


def register_eraser(tables: Iterable[str], function: Eraser) -> Eraser:
    """Declare how rows of `tables` that point at a member are erased or anonymised."""
    _ERASERS.append(function)
    _ERASED_TABLES.update(tables)
    return function


class MemberGone(LookupError):
    pass


# --- export ------------------------------------------------------------------------------


def export_member(session: Session, member_id: int) -> dict[str, Any]:
    member = session.get(Member, member_id)
    if member is None:
        raise MemberGone(f"member {member_id} does not exist")
    data: dict[str, Any] = {"format": EXPORT_FORMAT, "exported_at": utcnow().isoformat(), "member_id": member.id}
    for name, section in _SECTIONS.items():
        data[name] = section(session, member)
    data["other"] = {
        table.name: rows
        for table in _member_tables()
        if table.name not in _SECTION_TABLES
        if (rows := _rows_pointing_at(session, table, member.id))
    }
    return data


def plain(value: Any) -> Any:
    """A JSON-ready copy of a column value."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(raw).decode("ascii")}
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _columns(row: Any, table: Any, skip: Iterable[str] = ()) -> dict[str, Any]:
    return {column.name: plain(getattr(row, column.key)) for column in table.columns if column.name not in skip}


def _member_tables() -> list[Table]:
    """Every table with a foreign key to members.id, other than members itself."""
    return [
        table
        for table in Base.metadata.sorted_tables
        if table.name != "members" and any(fk.column.table.name == "members" for fk in table.foreign_keys)
    ]


def _rows_pointing_at(session: Session, table: Table, member_id: int) -> list[dict[str, Any]]:
    columns = [fk.parent for fk in _to_members(table)]
    rows = session.execute(select(table).where(or_(*(column == member_id for column in columns)))).mappings()
    return [{key: plain(value) for key, value in row.items()} for row in rows]


@export_section("profile", tables=("member_values", "member_practices", "member_tags"))
def _profile(session: Session, member: Member) -> dict[str, Any]:
    profile = _columns(member, Member.__table__)
    profile["values"] = [v.name for v in member.values]
    profile["practices"] = [p.name for p in member.practices]
    profile["tags"] = [t.name for t in member.tags]
    return profile


@export_section("lists", tables=("list_memberships",))
def _lists(session: Session, member: Member) -> list[dict[str, Any]]:
    rows = session.execute(
        select(ListMembership, MailingList.name)
        .join(MailingList, MailingList.id == ListMembership.list_id)
        .where(ListMembership.member_id == member.id)
        .order_by(ListMembership.id)
    )
    return [{"list": name, **_columns(m, ListMembership.__table__, skip=("member_id",))} for m, name in rows]


@export_section("consents", tables=("consent_events",))
def _consents(session: Session, member: Member) -> list[dict[str, Any]]:
    rows = session.scalars(select(ConsentEvent).where(ConsentEvent.member_id == member.id).order_by(ConsentEvent.id))
    return [_columns(e, ConsentEvent.__table__, skip=("member_id",)) for e in rows]


@export_section("events", tables=("member_events",))
def _events(session: Session, member: Member) -> list[dict[str, Any]]:
    rows = session.scalars(select(MemberEvent).where(MemberEvent.member_id == member.id).order_by(MemberEvent.id))
    return [_columns(e, MemberEvent.__table__, skip=("member_id",)) for e in rows]


@export_section("deliveries", tables=("deliveries",))
def _deliveries(session: Session, member: Member) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Delivery, Campaign.name, Campaign.kind, Campaign.subject)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(Delivery.member_id == member.id)
        .order_by(Delivery.id)
    )
    return [
        {"campaign": name, "kind": kind, "subject": subject, **_columns(d, Delivery.__table__, skip=("member_id",))}
        for d, name, kind, subject in rows
    ]


@export_section("inbound_messages", tables=("inbound_messages",))
def _inbound(session: Session, member: Member) -> list[dict[str, Any]]:
    rows = session.scalars(select(InboundMessage).where(InboundMessage.member_id == member.id))
    return [_columns(m, InboundMessage.__table__, skip=("member_id",)) for m in rows]


# --- erasure -----------------------------------------------------------------------------


def erase_member(session: Session, member_id: int, *, actor: str = "system") -> bool:
    """Remove or anonymise the member's personal data everywhere. Idempotent; the caller commits."""
    member = session.get(Member, member_id)
    if member is None:
        raise MemberGone(f"member {member_id} does not exist")
    if member.status == MemberStatus.ERASED and member.email.endswith(f"@{ERASED_DOMAIN}"):
        return False
    address = member.email
    suppress(session, address, SuppressionReason.ERASED)
    for eraser in _ERASERS:
        eraser(session, member, address)
    for table in _member_tables():
        if table.name not in _ERASED_TABLES:
            _erase_as_declared(session, table, member.id)
    _anonymise_member(member)
    record_consent(session, member.id, ConsentKind.ERASED, actor=actor)
    return True


def unhandled_member_tables() -> list[str]:
    """Tables pointing at members that neither an eraser nor their ON DELETE rule covers."""
    return sorted(
        table.name
        for table in _member_tables()
        if table.name not in _ERASED_TABLES
        and any(fk.ondelete is None or fk.ondelete.upper() not in ("CASCADE", "SET NULL") for fk in _to_members(table))
    )


def _to_members(table: Table) -> list[Any]:
    return [fk for fk in table.foreign_keys if fk.column.table.name == "members"]


def _erase_as_declared(session: Session, table: Table, member_id: int) -> None:
    for fk in _to_members(table):
        rule = (fk.ondelete or "").upper()
        if rule == "CASCADE":
            session.execute(delete(table).where(fk.parent == member_id))
        elif rule == "SET NULL":
            session.execute(update(table).where(fk.parent == member_id).values({fk.parent.name: None}))


def _anonymise_member(member: Member) -> None:
    member.email = f"erased-{member.id}@{ERASED_DOMAIN}"
    member.name = ""
    member.preferred_name = ""
    member.location = ""
    member.timezone = "UTC"
    member.locale = "en"
    member.attributes = {}
    member.status = MemberStatus.ERASED
    member.wants_newsletters = member.wants_intros = member.wants_roundups = member.wants_resources = False
    member.intro_cadence_weeks = None
    member.paused_until = None
    member.values = []
    member.practices = []
    member.tags = []


def _erase_audience(session: Session, member: Member, address: str) -> None:
    session.execute(delete(ListMembership).where(ListMembership.member_id == member.id))
    session.execute(update(ConsentEvent).where(ConsentEvent.member_id == member.id).values(ip=None, detail={}))
    session.execute(update(MemberEvent).where(MemberEvent.member_id == member.id).values(detail={}))


def _erase_deliveries(session: Session, member: Member, address: str) -> None:
    # SMTP replies often quote the address.
    session.execute(update(Delivery).where(Delivery.member_id == member.id).values(last_error=""))


def _erase_inbound(session: Session, member: Member, address: str) -> None:
    from_them = or_(InboundMessage.member_id == member.id, func.lower(InboundMessage.envelope_from) == address)
    session.execute(
        update(InboundMessage)
        .where(from_them)
        .values(raw=b"", size=0, envelope_from="", envelope_to=[], reason="erased with the member", message_id=None)
        .execution_options(synchronize_session=False)
    )


def _erase_introductions(session: Session, member: Member, address: str) -> None:
    """Introductions stay as anonymous facts (the other member keeps their history and
    connection count), minus every word about the pair; open ones are cancelled."""
    from cop_mail.connect.states import change_status
    from cop_mail.models import Connection, Intro, IntroStatus

    theirs = or_(Intro.member_a_id == member.id, Intro.member_b_id == member.id)
    still_open = (IntroStatus.PROPOSED, IntroStatus.INVITED, IntroStatus.ACCEPTED_A, IntroStatus.ACCEPTED_B)
    for intro in session.scalars(select(Intro).where(theirs, Intro.status.in_([str(s) for s in still_open]))):
        change_status(session, intro, IntroStatus.CANCELLED, "system", "a member left", closed_at=utcnow())
    session.execute(
        update(Intro)
        .where(theirs)
        .values(reason="", note="", closed_reason="", topics=[], shared_values=[])
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Connection)
        .where(or_(Connection.member_a_id == member.id, Connection.member_b_id == member.id))
        .values(note="")
        .execution_options(synchronize_session=False)
    )


register_eraser(("member_values", "member_practices", "member_tags"), lambda session, member, address: None)
register_eraser(("intros", "connections"), _erase_introductions)
register_eraser(("list_memberships", "consent_events", "member_events"), _erase_audience)
register_eraser(("deliveries",), _erase_deliveries)
register_eraser(("inbound_messages",), _erase_inbound)
