"""The attention budget: at most N emails to one member per rolling window of D days, across streams.

The community sets it (`cop_mail.community`: budget_max_emails, 0 = no cap; budget_window_days;
budget_over per stream). The rule, for one message of stream S to one member:

- Counted: the member's deliveries sent (or being transmitted) within the window, of every kind
  except answers to the member's own actions (ANSWER_KINDS: a subscription confirmation, a manage
  link, the joint introduction both asked for). A coordinator's message sent by a journey counts.
- Ahead: the member's mail waiting right now (queued, deferred, held, or claimed but not yet
  transmitted, in a campaign that is sending) that goes first: a stream higher in
  `community.PRIORITY`, or the same stream from an earlier campaign. Answers are never ahead.
- Over budget when counted + ahead >= cap. Then, by the stream's setting: defer holds the row
  (status `held`) until `next_attempt_at`, the moment the oldest counted send leaves the window (at
  least a minute ahead; a whole window ahead when only waiting mail fills it), where it is checked
  again; drop ends it (status `dropped`). `last_error` says which in plain words, so nothing is
  silently lost.
- Transactional mail is never held or dropped, but it counts; answers neither count nor wait.

Campaign batches check their members together: the claim returns the cap with each row (so an
uncapped send costs no query at all), and a capped batch costs two queries (the settings and one
grouped count over the batch's members) plus one bulk write of the held and dropped rows.
Introduction emails, sent one at a time, check one member the same way (`cop_mail.connect.mail`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, case, func, or_, select, update
from sqlalchemy.orm import Session

from cop_mail import community
from cop_mail.community import CommunityPrefs, OverBudget
from cop_mail.db import utcnow
from cop_mail.models import Campaign, CampaignKind, CampaignStatus, Delivery, DeliveryStatus, Stream
from cop_mail.sending import claims
from cop_mail.sending.audience import STREAM_FOR_KIND

D = DeliveryStatus
# Transactional kinds (Campaign.content["template"]) that answer something the member just did.
ANSWER_KINDS = frozenset({"confirm_subscription", "manage_link", "intro_joint"})
# Introduction emails recorded as transactional messages but belonging to the intros stream
# (a reminder is stored as an invitation; see cop_mail.connect.mail.STORED_KINDS).
INTRO_KINDS = frozenset({"intro_invite", "intro_followup"})
SOONEST = timedelta(minutes=1)
WAITING = (D.QUEUED, D.DEFERRED, D.HELD)
TRANSMITTED = (D.SENT, D.SENDING, D.UNCERTAIN)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the budget decided for one member's message that may not go now."""

    member_id: int
    status: DeliveryStatus  # HELD or DROPPED
    until: datetime | None  # when a held message is checked again
    reason: str


def rank(stream: Stream | str) -> int:
    """Position in the priority order, 0 first."""
    return community.PRIORITY.index(Stream(stream))


def stream_of(kind: str, template: str | None = None) -> Stream:
    """The stream a campaign's mail belongs to, for the budget."""
    if kind == CampaignKind.TRANSACTIONAL and template in INTRO_KINDS:
        return Stream.INTROS
    return STREAM_FOR_KIND[CampaignKind(kind)]


def is_answer(kind: str, template: str | None) -> bool:
    return kind == CampaignKind.TRANSACTIONAL and template in ANSWER_KINDS


def _template() -> ColumnElement[str]:
    return Campaign.content["template"].as_string()


def _answer_clause() -> ColumnElement[bool]:
    return and_(Campaign.kind == CampaignKind.TRANSACTIONAL, _template().in_(sorted(ANSWER_KINDS)))


def _rank_expression() -> ColumnElement[int]:
    """The priority rank of a delivery's campaign, in SQL (mirrors `stream_of`)."""
    by_kind = [(Campaign.kind == str(kind), rank(stream)) for kind, stream in STREAM_FOR_KIND.items()]
    intro_mail = and_(Campaign.kind == CampaignKind.TRANSACTIONAL, _template().in_(sorted(INTRO_KINDS)))
    return case((intro_mail, rank(Stream.INTROS)), *by_kind, else_=len(community.PRIORITY))


def load_prefs(db: Session | Connection) -> CommunityPrefs:
    if isinstance(db, Session):
        return community.load(db)
    with Session(bind=db) as session:
        return community.load(session)


def check(
    db: Session | Connection,
    prefs: CommunityPrefs,
    *,
    campaign_id: int,
    stream: Stream | str,
    member_ids: Iterable[int],
    now: datetime | None = None,
) -> dict[int, Verdict]:
    """Verdicts for the members whose message of `stream` in `campaign_id` may not go now (one query).

    Members missing from the result are within their budget.
    """
    stream = Stream(stream)
    ids = sorted(set(member_ids))
    if not prefs.budget_enabled or stream is Stream.TRANSACTIONAL or not ids:
        return {}
    now = now or utcnow()
    window = timedelta(days=prefs.budget_window_days)
    verdicts = {}
    for member_id, sent, oldest, ahead in db.execute(_usage(campaign_id, rank(stream), ids, now - window)):
        sent, ahead = int(sent or 0), int(ahead or 0)
        if sent + ahead >= prefs.budget_max_emails:
            verdicts[member_id] = _verdict(prefs, stream, member_id, sent, ahead, oldest, now)
    return verdicts


def _usage(campaign_id: int, mine: int, member_ids: Sequence[int], since: datetime) -> Any:
    """Per member: (member_id, counted sends, the oldest of them, waiting mail ahead of this message)."""
    sent_time = func.coalesce(Delivery.sent_at, Delivery.data_sent_at)
    counted = and_(Delivery.status.in_([str(s) for s in TRANSMITTED]), sent_time >= since)
    not_transmitted = or_(
        Delivery.status.in_([str(s) for s in WAITING]),
        and_(Delivery.status == D.SENDING, Delivery.data_sent_at.is_(None)),
    )
    position = _rank_expression()
    ahead = and_(
        not_transmitted,
        Campaign.status == CampaignStatus.SENDING,
        or_(position < mine, and_(position == mine, Campaign.id < campaign_id)),
    )
    return (
        select(
            Delivery.member_id,
            func.sum(case((counted, 1), else_=0)),
            func.min(case((counted, sent_time), else_=None)),
            func.sum(case((ahead, 1), else_=0)),
        )
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(
            Delivery.member_id.in_(list(member_ids)),
            Delivery.campaign_id != campaign_id,
            ~_answer_clause(),
            or_(counted, not_transmitted),
        )
        .group_by(Delivery.member_id)
    )


def _verdict(
    prefs: CommunityPrefs, stream: Stream, member_id: int, sent: int, ahead: int, oldest: Any, now: datetime
) -> Verdict:
    window = timedelta(days=prefs.budget_window_days)
    if prefs.budget_over.get(stream.value, OverBudget.DEFER) == OverBudget.DROP:
        return Verdict(member_id, D.DROPPED, None, describe(prefs, sent, ahead, None))
    # A slot frees when the oldest counted send leaves the window; the check then runs again.
    frees = _aware(oldest) + window if sent and oldest is not None else now + window
    until = max(frees, now + SOONEST)
    return Verdict(member_id, D.HELD, until, describe(prefs, sent, ahead, until))


def _aware(value: Any) -> datetime:
    """min() over a CASE comes back as a string on SQLite: read it as the UTC time it is."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=utcnow().tzinfo)


def describe(prefs: CommunityPrefs, sent: int, ahead: int, until: datetime | None) -> str:
    """The plain reason written on the delivery row (kept short: the member timeline shows 120 characters)."""
    cap, days = prefs.budget_max_emails, prefs.budget_window_days
    head = f"Attention budget ({cap} email{'s' if cap != 1 else ''} per {_days(days)}): {sent} already sent"
    if ahead:
        head += f", {ahead} more important waiting"
    if until is None:
        return f"{head}; dropped (this stream's setting)"
    return f"{head}; held until {format_when(until)}"


def _days(days: int) -> str:
    return "day" if days == 1 else f"{days} days"


def format_when(moment: datetime) -> str:
    return moment.strftime("%d %b %Y %H:%M UTC").lstrip("0")


# --- campaign batches ------------------------------------------------------------------------


@dataclass
class BatchOutcome:
    rows: list[claims.ClaimedRow]  # the rows that may go now
    held: int = 0
    dropped: int = 0


def within_budget(
    conn: Connection, campaign_id: int, kind: str, token: str, rows: Sequence[claims.ClaimedRow]
) -> BatchOutcome:
    """Hold or drop a claimed batch's rows over their member's budget; the rest may go on.

    The claim says whether a cap is set (`ClaimedRow.budget_cap`), so without one nothing is asked.
    """
    if not rows or not rows[0].budget_cap or kind == CampaignKind.TRANSACTIONAL:
        return BatchOutcome(list(rows))
    prefs = load_prefs(conn)
    members = [row.member_id for row in rows if row.member_id is not None]
    verdicts = check(conn, prefs, campaign_id=campaign_id, stream=stream_of(kind), member_ids=members)
    if conn.in_transaction():
        conn.commit()
    if not verdicts:
        return BatchOutcome(list(rows))
    over = [(row.delivery_id, verdicts[row.member_id]) for row in rows if row.member_id in verdicts]
    claims.record_budget(conn, token, [(delivery_id, v.status, v.until, v.reason) for delivery_id, v in over])
    kept = [row for row in rows if row.member_id not in verdicts]
    held = sum(1 for _, v in over if v.status == D.HELD)
    return BatchOutcome(kept, held=held, dropped=len(over) - held)


# --- settings changes and reports ------------------------------------------------------------


def release_held(session: Session, now: datetime | None = None) -> int:
    """Make every held message due now, so it is checked against a changed budget at the next pass."""
    now = now or utcnow()
    result = session.execute(
        update(Delivery)
        .where(Delivery.status == D.HELD, Delivery.next_attempt_at > now)
        .values(next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class CampaignBudget:
    held: int
    next_window: datetime | None  # the earliest time a held message is checked again
    dropped: int


def campaign_summary(session: Session, campaign_id: int) -> CampaignBudget:
    """How much of a campaign the attention budget holds back or dropped (one query)."""
    rows = session.execute(
        select(Delivery.status, func.count(), func.min(Delivery.next_attempt_at))
        .where(Delivery.campaign_id == campaign_id, Delivery.status.in_([str(D.HELD), str(D.DROPPED)]))
        .group_by(Delivery.status)
    ).all()
    found = {status: (int(count), first) for status, count, first in rows}
    held, first = found.get(str(D.HELD), (0, None))
    return CampaignBudget(held=held, next_window=first, dropped=found.get(str(D.DROPPED), (0, None))[0])
