"""Signing up, confirming and unsubscribing, per list and per stream.

Outcomes of a signup, whatever the address's history (the visitor always sees the
same thank-you page for the list, so the form never reveals who is a member):

- new address, single opt-in list: an active member on the list at once.
- new address, double opt-in list: a pending member; a confirmation email (7-day link
  to a page with a confirm button) is queued.
- suppressed, bounced, complained or erased address: nothing is sent and no member is
  created (a bounced or complained member's timeline notes the attempt).
- pending member signing up again: a fresh confirmation email.
- unsubscribed member: a fresh confirmation email, even for a single opt-in list;
  only the person holding the mailbox can press its button.
- active member already on the list: nothing happens.
- active or pending member joining another list: as for a new address, except that
  the form's name, values and practices are only applied once the address is confirmed
  (anybody can type somebody else's address into a form).
- more than CONFIRMATIONS_PER_HOUR confirmation emails to one address: no more are sent.

`sign_up_and_commit` commits (retrying a lost race on a new address); then the caller
enqueues the confirmation (SignupResult.delivery_id) with
cop_mail.sending.transactional.enqueue_transactional.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cop_mail.audience.consent import ConsentKind, MemberEventKind, record_consent, record_member_event
from cop_mail.audience.links import ALL_STREAMS, UNSUBSCRIBABLE, ConfirmLink
from cop_mail.audience.suppression import STREAM_FLAGS, is_suppressed, normalise_email
from cop_mail.db import utcnow
from cop_mail.integrations import events
from cop_mail.journeys.triggers import member_joined_list
from cop_mail.models import (
    CampaignKind,
    ConsentEvent,
    ListMembership,
    MailingList,
    Member,
    MemberStatus,
    OptIn,
    Practice,
    Stream,
    Value,
)
from cop_mail.sending.transactional import TransactionalKind, queue_transactional

CONFIRMATIONS_PER_HOUR = 3
# Statuses for which a signup is refused without telling the visitor.
REFUSED_STATUSES = frozenset({MemberStatus.BOUNCED, MemberStatus.COMPLAINED, MemberStatus.ERASED})

SUBSCRIBED = "subscribed"
PENDING = "pending"
UNSUBSCRIBED = "unsubscribed"

_STREAM_FOR_KIND = {
    CampaignKind.NEWSLETTER: Stream.NEWSLETTERS,
    CampaignKind.INTRO: Stream.INTROS,
    CampaignKind.ROUNDUP: Stream.ROUNDUPS,
    CampaignKind.STORY_PROMPT: Stream.ROUNDUPS,
    CampaignKind.RESOURCE_DIGEST: Stream.RESOURCES,
    CampaignKind.TRANSACTIONAL: Stream.TRANSACTIONAL,
}


class SignupOutcome(StrEnum):
    SUBSCRIBED = "subscribed"
    CONFIRMATION_SENT = "confirmation_sent"
    CONFIRMATION_THROTTLED = "confirmation_throttled"
    ALREADY_SUBSCRIBED = "already_subscribed"
    REFUSED = "refused"


class ConfirmOutcome(StrEnum):
    CONFIRMED = "confirmed"
    ALREADY_CONFIRMED = "already_confirmed"
    WITHDRAWN = "withdrawn"  # the member unsubscribed after asking: the old link no longer subscribes
    NOT_POSSIBLE = "not_possible"  # suppressed, bounced, complained, erased, or the list is gone
    INVALID = "invalid"  # the ids in the link do not match a signup request


class SubscriptionError(ValueError):
    """A request the member can fix, with the reason in plain words."""


@dataclass(frozen=True)
class SignupRequest:
    email: str
    name: str = ""
    value_ids: tuple[int, ...] = ()
    practice_ids: tuple[int, ...] = ()
    ip: str | None = None
    source: str = "form"


@dataclass(frozen=True)
class SignupResult:
    outcome: SignupOutcome
    list_id: int
    member_id: int | None = None
    delivery_id: int | None = None  # the confirmation email to enqueue after commit


def stream_for_campaign_kind(kind: CampaignKind | str) -> Stream:
    return _STREAM_FOR_KIND[CampaignKind(kind)]


def form_wording(mailing_list: MailingList) -> str:
    """The consent wording shown next to the form's button, and recorded with the consent."""
    return mailing_list.form_wording.strip() or (
        f"Yes, send me the emails of the list \u201c{mailing_list.name}\u201d. "
        "I can unsubscribe at any time with the link in every email."
    )


def find_public_list(session: Session, slug: str) -> MailingList | None:
    return session.scalar(select(MailingList).where(MailingList.slug == slug, MailingList.public.is_(True)))


def find_membership(session: Session, member_id: int, list_id: int) -> ListMembership | None:
    return session.scalar(
        select(ListMembership).where(ListMembership.member_id == member_id, ListMembership.list_id == list_id)
    )


def sign_up(session: Session, mailing_list: MailingList, request: SignupRequest) -> SignupResult:
    """Handle one signup form; raises SubscriptionError for an address the visitor must correct."""
    try:
        email = normalise_email(request.email)
    except ValueError as exc:
        raise SubscriptionError(f"That email address does not look right: {exc}") from exc
    if len(request.name) > 200:
        raise SubscriptionError("That name is too long (at most 200 characters).")
    if is_suppressed(session, email):
        return SignupResult(SignupOutcome.REFUSED, mailing_list.id)
    member = session.scalar(select(Member).where(Member.email == email))
    if member is None:
        return _sign_up_new(session, mailing_list, request, _create_member(session, mailing_list, request, email))
    if member.status in REFUSED_STATUSES:
        record_member_event(session, member.id, MemberEventKind.SIGNUP_REFUSED, list_id=mailing_list.id)
        return SignupResult(SignupOutcome.REFUSED, mailing_list.id, member.id)
    membership = find_membership(session, member.id, mailing_list.id)
    if member.status == MemberStatus.ACTIVE and membership is not None and membership.status == SUBSCRIBED:
        return SignupResult(SignupOutcome.ALREADY_SUBSCRIBED, mailing_list.id, member.id)
    if mailing_list.opt_in == OptIn.DOUBLE or member.status == MemberStatus.UNSUBSCRIBED:
        return _request_confirmation(session, mailing_list, member, request)
    _subscribe(session, mailing_list, member, membership, request, confirmed=False)
    return SignupResult(SignupOutcome.SUBSCRIBED, mailing_list.id, member.id)


def sign_up_and_commit(session: Session, list_id: int, request: SignupRequest) -> SignupResult:
    """`sign_up` and commit. Two signups of one new address at the same moment both insert it;
    the one that loses the race starts again and finds the member the other one created."""
    for attempt in (1, 2):
        mailing_list = session.get(MailingList, list_id)
        if mailing_list is None:
            raise LookupError(f"list {list_id} does not exist")
        try:
            result = sign_up(session, mailing_list, request)
            session.commit()
            return result
        except IntegrityError:
            session.rollback()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _create_member(session: Session, mailing_list: MailingList, request: SignupRequest, email: str) -> Member:
    """A new member from the form: pending until confirmed on a double opt-in list."""
    member = Member(
        email=email,
        name=request.name.strip(),
        status=MemberStatus.PENDING if mailing_list.opt_in == OptIn.DOUBLE else MemberStatus.ACTIVE,
        attributes={},
    )
    member.values = _existing(session, Value, request.value_ids)
    member.practices = _existing(session, Practice, request.practice_ids)
    session.add(member)
    session.flush()
    return member


def _sign_up_new(session: Session, mailing_list: MailingList, request: SignupRequest, member: Member) -> SignupResult:
    if mailing_list.opt_in == OptIn.DOUBLE:
        return _request_confirmation(session, mailing_list, member, request)
    _subscribe(session, mailing_list, member, None, request, confirmed=False)
    return SignupResult(SignupOutcome.SUBSCRIBED, mailing_list.id, member.id)


def _request_confirmation(
    session: Session, mailing_list: MailingList, member: Member, request: SignupRequest
) -> SignupResult:
    since = utcnow() - timedelta(hours=1)
    recent = session.scalar(
        select(func.count(ConsentEvent.id)).where(
            ConsentEvent.member_id == member.id,
            ConsentEvent.kind == ConsentKind.SIGNUP_REQUESTED,
            ConsentEvent.created_at >= since,
        )
    )
    if (recent or 0) >= CONFIRMATIONS_PER_HOUR:
        return SignupResult(SignupOutcome.CONFIRMATION_THROTTLED, mailing_list.id, member.id)
    if find_membership(session, member.id, mailing_list.id) is None:
        session.add(ListMembership(list_id=mailing_list.id, member_id=member.id, status=PENDING, source=request.source))
    event = record_consent(
        session,
        member.id,
        ConsentKind.SIGNUP_REQUESTED,
        list_id=mailing_list.id,
        wording=form_wording(mailing_list),
        ip=request.ip,
        source=request.source,
        name=request.name.strip(),
        values=[v.id for v in _existing(session, Value, request.value_ids)],
        practices=[p.id for p in _existing(session, Practice, request.practice_ids)],
    )
    delivery_id = queue_transactional(
        session,
        TransactionalKind.CONFIRM_SUBSCRIPTION,
        member.id,
        {"list_id": mailing_list.id, "request_id": event.id},
    )
    return SignupResult(SignupOutcome.CONFIRMATION_SENT, mailing_list.id, member.id, delivery_id)


def _subscribe(
    session: Session,
    mailing_list: MailingList,
    member: Member,
    membership: ListMembership | None,
    request: SignupRequest,
    *,
    confirmed: bool,
) -> None:
    now = utcnow()
    if membership is None:
        membership = ListMembership(list_id=mailing_list.id, member_id=member.id, source=request.source)
        session.add(membership)
    membership.status = SUBSCRIBED
    membership.unsubscribed_at = None
    if confirmed:
        membership.confirmed_at = now
    if member.status == MemberStatus.PENDING:
        member.status = MemberStatus.ACTIVE
    record_consent(
        session,
        member.id,
        ConsentKind.SUBSCRIBED,
        list_id=mailing_list.id,
        wording=form_wording(mailing_list),
        ip=request.ip,
        source=request.source,
    )
    session.flush()
    events.emit_member_subscribed(session, member.id, list_id=mailing_list.id, source=request.source)
    member_joined_list(session, member.id, mailing_list.id, source=request.source)


def _existing(session: Session, model: type[Value] | type[Practice], ids: Iterable[int]) -> list:
    wanted = {int(i) for i in ids}
    if not wanted:
        return []
    return list(session.scalars(select(model).where(model.id.in_(wanted)).order_by(model.id)))


def confirm_subscription(session: Session, link: ConfirmLink, *, ip: str | None = None) -> ConfirmOutcome:
    """The confirm button: record time, IP and the wording the member agreed to."""
    member = session.get(Member, link.member_id)
    request = session.get(ConsentEvent, link.request_id)
    if (
        member is None
        or request is None
        or request.member_id != member.id
        or request.kind != ConsentKind.SIGNUP_REQUESTED
        or request.list_id != link.list_id
    ):
        return ConfirmOutcome.INVALID
    mailing_list = session.get(MailingList, link.list_id)
    if mailing_list is None or member.status in REFUSED_STATUSES or is_suppressed(session, member.email):
        return ConfirmOutcome.NOT_POSSIBLE
    membership = find_membership(session, member.id, mailing_list.id)
    if request.detail.get("confirmed_at"):
        if member.status == MemberStatus.ACTIVE and membership is not None and membership.status == SUBSCRIBED:
            return ConfirmOutcome.ALREADY_CONFIRMED
        return ConfirmOutcome.WITHDRAWN
    if _withdrawn_since(session, member.id, mailing_list.id, request.id):
        return ConfirmOutcome.WITHDRAWN
    _apply_confirmation(session, member, mailing_list, membership, request, ip)
    return ConfirmOutcome.CONFIRMED


def _withdrawn_since(session: Session, member_id: int, list_id: int, request_id: int) -> bool:
    withdrawal = select(ConsentEvent.id).where(
        ConsentEvent.member_id == member_id,
        ConsentEvent.id > request_id,
        (ConsentEvent.kind == ConsentKind.UNSUBSCRIBED_ALL)
        | ((ConsentEvent.kind == ConsentKind.LIST_UNSUBSCRIBED) & (ConsentEvent.list_id == list_id)),
    )
    return session.scalar(withdrawal.limit(1)) is not None


def _apply_confirmation(
    session: Session,
    member: Member,
    mailing_list: MailingList,
    membership: ListMembership | None,
    request: ConsentEvent,
    ip: str | None,
) -> None:
    now = utcnow()
    returning = member.status == MemberStatus.UNSUBSCRIBED
    if membership is None:
        membership = ListMembership(list_id=mailing_list.id, member_id=member.id, source="confirm")
        session.add(membership)
    membership.status = SUBSCRIBED
    membership.confirmed_at = now
    membership.unsubscribed_at = None
    member.status = MemberStatus.ACTIVE
    # What the form asked for is applied only now that the address has proved it is theirs.
    if request.detail.get("name") and not member.name:
        member.name = str(request.detail["name"])[:200]
    _add_missing(member.values, _existing(session, Value, request.detail.get("values", [])))
    _add_missing(member.practices, _existing(session, Practice, request.detail.get("practices", [])))
    request.detail = {**request.detail, "confirmed_at": now.isoformat()}
    record_consent(
        session,
        member.id,
        ConsentKind.CONFIRMED,
        list_id=mailing_list.id,
        wording=request.wording,
        ip=ip,
        request_id=request.id,
        requested_at=request.created_at.isoformat(),
        requested_ip=request.ip,
        returning=returning,
    )
    events.emit_member_subscribed(session, member.id, list_id=mailing_list.id, source="confirm")
    member_joined_list(session, member.id, mailing_list.id, source="confirm")


def _add_missing(current: list, extra: list) -> None:
    known = {item.id for item in current}
    current.extend(item for item in extra if item.id not in known)


def unsubscribe_stream(
    session: Session,
    member_id: int,
    stream: Stream | str,
    *,
    ip: str | None = None,
    source: str = "link",
    campaign_id: int | None = None,
) -> bool:
    """Turn one stream off (idempotent). Returns True when something changed."""
    if str(stream) == ALL_STREAMS:
        return unsubscribe_all(session, member_id, ip=ip, source=source, campaign_id=campaign_id)
    flag = _stream_attribute(stream)
    member = _get_member(session, member_id)
    if not getattr(member, flag):
        return False
    setattr(member, flag, False)
    record_consent(
        session, member.id, ConsentKind.STREAM_OFF, stream=str(stream), ip=ip, source=source, campaign_id=campaign_id
    )
    events.emit_member_unsubscribed(session, member.id, stream=str(stream), source=source)
    return True


def subscribe_stream(
    session: Session, member_id: int, stream: Stream | str, *, ip: str | None = None, source: str = "preferences"
) -> bool:
    """Turn one stream back on; only from a signed link, which proves the address is theirs."""
    flag = _stream_attribute(stream)
    member = _get_member(session, member_id)
    if getattr(member, flag):
        return False
    setattr(member, flag, True)
    record_consent(session, member.id, ConsentKind.STREAM_ON, stream=str(stream), ip=ip, source=source)
    return True


def unsubscribe_all(
    session: Session, member_id: int, *, ip: str | None = None, source: str = "link", campaign_id: int | None = None
) -> bool:
    """Everything: no more mail of any stream or list. Bounced or erased members stay as they are."""
    member = _get_member(session, member_id)
    if member.status in (MemberStatus.UNSUBSCRIBED, *REFUSED_STATUSES):
        return False
    now = utcnow()
    left = []
    for membership in session.scalars(
        select(ListMembership).where(ListMembership.member_id == member.id, ListMembership.status != UNSUBSCRIBED)
    ):
        membership.status = UNSUBSCRIBED
        membership.unsubscribed_at = now
        left.append(membership.list_id)
    previous = member.status
    member.status = MemberStatus.UNSUBSCRIBED
    record_consent(
        session,
        member.id,
        ConsentKind.UNSUBSCRIBED_ALL,
        ip=ip,
        source=source,
        campaign_id=campaign_id,
        lists=left,
        previous_status=previous,
    )
    events.emit_member_unsubscribed(session, member.id, everything=True, source=source)
    return True


def resubscribe(session: Session, member_id: int, *, ip: str | None = None, source: str = "preferences") -> bool:
    """Undo "unsubscribe from everything" from a signed link: the lists left then are joined again."""
    member = _get_member(session, member_id)
    if member.status != MemberStatus.UNSUBSCRIBED or is_suppressed(session, member.email):
        return False
    last = session.scalar(
        select(ConsentEvent)
        .where(ConsentEvent.member_id == member.id, ConsentEvent.kind == ConsentKind.UNSUBSCRIBED_ALL)
        .order_by(ConsentEvent.id.desc())
        .limit(1)
    )
    lists = [int(i) for i in (last.detail.get("lists", []) if last else [])]
    for membership in session.scalars(
        select(ListMembership).where(ListMembership.member_id == member.id, ListMembership.list_id.in_(lists))
    ):
        membership.status = SUBSCRIBED
        membership.unsubscribed_at = None
    member.status = MemberStatus.ACTIVE
    record_consent(session, member.id, ConsentKind.RESUBSCRIBED, ip=ip, source=source, lists=lists)
    events.emit_member_subscribed(session, member.id, source=source)
    return True


def unsubscribe_list(
    session: Session, member_id: int, list_id: int, *, ip: str | None = None, source: str = "preferences"
) -> bool:
    membership = find_membership(session, member_id, list_id)
    if membership is None or membership.status == UNSUBSCRIBED:
        return False
    membership.status = UNSUBSCRIBED
    membership.unsubscribed_at = utcnow()
    record_consent(session, member_id, ConsentKind.LIST_UNSUBSCRIBED, list_id=list_id, ip=ip, source=source)
    events.emit_member_unsubscribed(session, member_id, list_id=list_id, source=source)
    return True


def join_list(
    session: Session, member_id: int, list_id: int, *, ip: str | None = None, source: str = "preferences"
) -> bool:
    """Join a public list from a signed link (the address is proven, so no confirmation email)."""
    member = _get_member(session, member_id)
    mailing_list = session.get(MailingList, list_id)
    if mailing_list is None or member.status != MemberStatus.ACTIVE:
        return False
    membership = find_membership(session, member_id, list_id)
    if membership is not None and membership.status == SUBSCRIBED:
        return False
    if membership is None:
        membership = ListMembership(list_id=list_id, member_id=member_id, source=source)
        session.add(membership)
    membership.status = SUBSCRIBED
    membership.confirmed_at = utcnow()
    membership.unsubscribed_at = None
    record_consent(
        session,
        member_id,
        ConsentKind.SUBSCRIBED,
        list_id=list_id,
        wording=form_wording(mailing_list),
        ip=ip,
        source=source,
    )
    session.flush()
    events.emit_member_subscribed(session, member_id, list_id=list_id, source=source)
    member_joined_list(session, member_id, list_id, source=source)
    return True


def memberships(session: Session, member_id: int) -> list[tuple[MailingList, ListMembership]]:
    rows = session.execute(
        select(MailingList, ListMembership)
        .join(ListMembership, ListMembership.list_id == MailingList.id)
        .where(ListMembership.member_id == member_id)
        .order_by(MailingList.name)
    )
    return [(row[0], row[1]) for row in rows]


def _stream_attribute(stream: Stream | str) -> str:
    if str(stream) not in UNSUBSCRIBABLE:
        raise SubscriptionError(f"there is no {stream!r} stream to turn on or off")
    return STREAM_FLAGS[Stream(stream)].key


def _get_member(session: Session, member_id: int) -> Member:
    member = session.get(Member, member_id)
    if member is None:
        raise LookupError(f"member {member_id} does not exist")
    return member
