"""The preference centre: streams, introduction cadence, values, practices, pause.

Reached by a signed link (cop_mail.audience.links); "manage by email" sends such a
link to an address typed into a form. Every change is recorded: stream changes as
consent (ConsentEvent), the rest as a MemberEvent on the member's timeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cop_mail.audience.consent import MemberEventKind, record_member_event
from cop_mail.audience.links import UNSUBSCRIBABLE
from cop_mail.audience.subscriptions import (
    SUBSCRIBED,
    join_list,
    memberships,
    subscribe_stream,
    unsubscribe_list,
    unsubscribe_stream,
)
from cop_mail.audience.suppression import STREAM_FLAGS, find_member_by_email, member_can_receive
from cop_mail.connect.topics import clean_topics, set_topics, topics_of
from cop_mail.db import utcnow
from cop_mail.models import MailingList, Member, MemberEvent, MemberStatus, Practice, Stream, Value
from cop_mail.models.connect import HelpTopicKind
from cop_mail.sending.transactional import TransactionalKind, queue_transactional

CADENCE_CHOICES = (2, 4, 8)  # weeks between introductions at most; None = no introductions
MAX_PAUSE_WEEKS = 52
MANAGE_LINKS_PER_HOUR = 3


class PreferenceError(ValueError):
    """A choice the form should not have allowed, said in plain words."""


@dataclass(frozen=True)
class Preferences:
    streams: dict[str, bool]
    intro_cadence_weeks: int | None
    value_ids: frozenset[int] = frozenset()
    practice_ids: frozenset[int] = frozenset()
    list_ids: frozenset[int] = frozenset()  # the public (or already joined) lists the member is on
    paused_until: datetime | None = None
    # Mentor introductions: what the member can help with, and what they would like help with.
    offers: tuple[str, ...] | None = None
    asks: tuple[str, ...] | None = None


@dataclass
class PreferenceChoices:
    """What the member may see and pick on the page."""

    values: list[Value] = field(default_factory=list)
    practices: list[Practice] = field(default_factory=list)
    lists: list[MailingList] = field(default_factory=list)


def current_preferences(session: Session, member: Member) -> Preferences:
    topics = topics_of(session, member.id)
    return Preferences(
        streams={str(stream): bool(getattr(member, STREAM_FLAGS[stream].key)) for stream in STREAM_FLAGS},
        intro_cadence_weeks=member.intro_cadence_weeks if member.wants_intros else None,
        value_ids=frozenset(v.id for v in member.values),
        practice_ids=frozenset(p.id for p in member.practices),
        list_ids=frozenset(lst.id for lst, m in memberships(session, member.id) if m.status == SUBSCRIBED),
        paused_until=member.paused_until if is_paused(member) else None,
        offers=tuple(topics.get(str(HelpTopicKind.OFFER), ())),
        asks=tuple(topics.get(str(HelpTopicKind.ASK), ())),
    )


def preference_choices(session: Session, member: Member) -> PreferenceChoices:
    joined = {lst.id for lst, _m in memberships(session, member.id)}
    lists = session.scalars(
        select(MailingList).where(MailingList.public.is_(True) | MailingList.id.in_(joined)).order_by(MailingList.name)
    )
    return PreferenceChoices(
        values=list(session.scalars(select(Value).order_by(Value.position, Value.name))),
        practices=list(session.scalars(select(Practice).order_by(Practice.name))),
        lists=list(lists),
    )


def is_paused(member: Member, now: datetime | None = None) -> bool:
    return member.paused_until is not None and member.paused_until > (now or utcnow())


def update_preferences(session: Session, member: Member, wanted: Preferences, *, ip: str | None = None) -> list[str]:
    """Apply the page's choices; returns what changed, in words for the confirmation message."""
    if member.status != MemberStatus.ACTIVE:
        raise PreferenceError("Preferences can only be changed while you are subscribed.")
    changed: list[str] = []
    streams = dict(wanted.streams)
    if wanted.intro_cadence_weeks is None:
        streams[str(Stream.INTROS)] = False
    elif wanted.intro_cadence_weeks not in CADENCE_CHOICES:
        raise PreferenceError("Choose introductions every 2, 4 or 8 weeks, or none.")
    for stream in UNSUBSCRIBABLE:
        on = streams.get(str(stream))
        if on is True and subscribe_stream(session, member.id, stream, ip=ip, source="preferences"):
            changed.append(f"{stream} on")
        elif on is False and unsubscribe_stream(session, member.id, stream, ip=ip, source="preferences"):
            changed.append(f"{stream} off")
    changed += _update_profile(session, member, wanted)
    changed += _update_lists(session, member, wanted.list_ids, ip)
    changed += _update_help_topics(session, member, wanted)
    return changed


def _update_help_topics(session: Session, member: Member, wanted: Preferences) -> list[str]:
    current = topics_of(session, member.id)
    changed = []
    wanted_topics = (
        (HelpTopicKind.OFFER, wanted.offers, "help offered"),
        (HelpTopicKind.ASK, wanted.asks, "help asked for"),
    )
    for kind, topics, words in wanted_topics:
        if topics is None or clean_topics(topics) == current.get(str(kind), []):
            continue
        set_topics(session, member.id, kind, topics)
        record_member_event(session, member.id, "help_topics_changed", explicit=True, topic_kind=str(kind))
        changed.append(words)
    return changed


def _update_profile(session: Session, member: Member, wanted: Preferences) -> list[str]:
    before = {
        "intro_cadence_weeks": member.intro_cadence_weeks,
        "values": sorted(v.id for v in member.values),
        "practices": sorted(p.id for p in member.practices),
    }
    member.intro_cadence_weeks = wanted.intro_cadence_weeks
    member.values = list(session.scalars(select(Value).where(Value.id.in_(wanted.value_ids))))
    member.practices = list(session.scalars(select(Practice).where(Practice.id.in_(wanted.practice_ids))))
    after = {
        "intro_cadence_weeks": member.intro_cadence_weeks,
        "values": sorted(v.id for v in member.values),
        "practices": sorted(p.id for p in member.practices),
    }
    diff: dict[str, Any] = {key: {"from": before[key], "to": after[key]} for key in before if before[key] != after[key]}
    if diff:
        record_member_event(session, member.id, MemberEventKind.PREFERENCES_CHANGED, source="preferences", **diff)
    return [key.replace("_", " ") for key in diff]


def _update_lists(session: Session, member: Member, wanted: frozenset[int], ip: str | None) -> list[str]:
    choices = {lst.id: lst for lst in preference_choices(session, member).lists}
    current = {lst.id for lst, m in memberships(session, member.id) if m.status == SUBSCRIBED}
    changed = []
    for list_id, mailing_list in choices.items():
        if list_id in wanted and list_id not in current and join_list(session, member.id, list_id, ip=ip):
            changed.append(f"joined {mailing_list.name}")
        elif list_id not in wanted and list_id in current and unsubscribe_list(session, member.id, list_id, ip=ip):
            changed.append(f"left {mailing_list.name}")
    return changed


def pause(session: Session, member: Member, weeks: int, *, ip: str | None = None) -> datetime:
    """No mail of any stream until the date returned (confirmations and requested links still arrive)."""
    if not 1 <= weeks <= MAX_PAUSE_WEEKS:
        raise PreferenceError(f"A pause lasts from 1 to {MAX_PAUSE_WEEKS} weeks.")
    until = utcnow() + timedelta(weeks=weeks)
    member.paused_until = until
    record_member_event(session, member.id, MemberEventKind.PAUSED, weeks=weeks, until=until.isoformat(), ip=ip)
    return until


def resume(session: Session, member: Member, *, ip: str | None = None) -> bool:
    if member.paused_until is None:
        return False
    member.paused_until = None
    record_member_event(session, member.id, MemberEventKind.RESUMED, ip=ip)
    return True


def request_manage_link(session: Session, email: str, *, ip: str | None = None) -> int | None:
    """Queue a preference-centre link for an address typed into the "manage by email" form.

    Returns the delivery to enqueue after commit, or None when there is nobody to send
    it to; the page says the same thing in both cases.
    """
    member = find_member_by_email(session, email)
    if member is None or not member_can_receive(session, member.id, Stream.TRANSACTIONAL):
        return None
    # A form anybody can fill in must not become a way to flood somebody's inbox.
    recent = session.scalar(
        select(func.count(MemberEvent.id)).where(
            MemberEvent.member_id == member.id,
            MemberEvent.kind == MemberEventKind.MANAGE_LINK_REQUESTED,
            MemberEvent.created_at >= utcnow() - timedelta(hours=1),
        )
    )
    if (recent or 0) >= MANAGE_LINKS_PER_HOUR:
        return None
    record_member_event(session, member.id, MemberEventKind.MANAGE_LINK_REQUESTED, ip=ip)
    return queue_transactional(session, TransactionalKind.MANAGE_LINK, member.id, {})
