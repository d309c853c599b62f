"""A campaign's life: draft -> scheduled -> sending <-> paused -> sent, plus cancelled and failed.

Every change is one conditional UPDATE (`WHERE status = <what we read>`), so a coordinator
pressing pause while a worker pauses for failures, or two schedulers starting the same
campaign, can never both win; each change is recorded with who made it and why.
Functions here never commit: the caller commits, then enqueues (see jobs.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cop_mail.db import utcnow
from cop_mail.models import Campaign, CampaignKind, CampaignStatus, CampaignStatusChange, Delivery, DeliveryStatus

S = CampaignStatus
TRANSITIONS: dict[str, frozenset[str]] = {
    S.DRAFT: frozenset({S.SCHEDULED, S.SENDING, S.CANCELLED}),
    S.SCHEDULED: frozenset({S.DRAFT, S.SENDING, S.CANCELLED}),
    S.SENDING: frozenset({S.PAUSED, S.SENT, S.CANCELLED, S.FAILED}),
    S.PAUSED: frozenset({S.SENDING, S.CANCELLED, S.FAILED}),
    # "Retry failed" reopens a finished campaign for the rows that can be retried.
    S.SENT: frozenset({S.SENDING}),
    S.FAILED: frozenset({S.SENDING, S.CANCELLED}),
    S.CANCELLED: frozenset(),
}
# Statuses in which workers may send the campaign's rows.
ACTIVE_STATUSES = frozenset({S.SENDING})
SYSTEM_ACTOR = "system"


class CampaignNotFound(LookupError):
    pass


class CampaignStateError(ValueError):
    """A change the campaign's status does not allow, or invalid campaign data; the message says why."""


def get_campaign(session: Session, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise CampaignNotFound(f"there is no campaign {campaign_id}")
    return campaign


def find_campaign(session: Session, campaign_id: int) -> Campaign | None:
    return session.get(Campaign, campaign_id)


def create_campaign(
    session: Session,
    *,
    name: str,
    kind: str,
    subject: str,
    actor: str,
    preheader: str = "",
    content: dict[str, Any] | None = None,
    list_ids: Sequence[int] = (),
    segment_ids: Sequence[int] = (),
    resend_uncertain: bool = False,
) -> Campaign:
    if not name.strip():
        raise CampaignStateError("give the campaign a name")
    try:
        kind = CampaignKind(kind)
    except ValueError as exc:
        raise CampaignStateError(f"unknown campaign kind {kind!r}") from exc
    campaign = Campaign(
        name=name.strip(),
        kind=str(kind),
        subject=_one_line(subject),
        preheader=_one_line(preheader),
        content=content or {},
        list_ids=[int(i) for i in list_ids],
        segment_ids=[int(i) for i in segment_ids],
        created_by=actor,
        resend_uncertain=resend_uncertain,
        status=S.DRAFT,
    )
    session.add(campaign)
    session.flush()
    return campaign


def _one_line(text: str) -> str:
    # Subjects travel in headers; line breaks are never meaningful there.
    return " ".join(text.split())


def change_status(
    session: Session,
    campaign_id: int,
    to: str,
    actor: str,
    reason: str = "",
    *,
    only_from: frozenset[str] | None = None,
    **values: Any,
) -> Campaign:
    """Move the campaign to `to` if its current status allows it (and is in `only_from`, when given);
    record who and why."""
    campaign = get_campaign(session, campaign_id)
    session.refresh(campaign)
    current = campaign.status
    if to not in TRANSITIONS[current] or (only_from is not None and current not in only_from):
        raise CampaignStateError(f"a {current} campaign cannot become {to}")
    now = utcnow()
    changes: dict[str, Any] = {"status": str(to), **values}
    if to == S.SENDING and campaign.started_at is None:
        changes["started_at"] = now
    if to in (S.SENT, S.CANCELLED, S.FAILED):
        changes["finished_at"] = now
    if to == S.PAUSED:
        changes["paused_reason"] = reason
    if to == S.SENDING:
        changes.update(paused_reason="", consecutive_failures=0)
    result = session.execute(
        update(Campaign).where(Campaign.id == campaign_id, Campaign.status == current).values(**changes)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise CampaignStateError("the campaign changed meanwhile; look again and retry")
    session.add(
        CampaignStatusChange(
            campaign_id=campaign_id, from_status=current, to_status=str(to), actor=actor, reason=reason, created_at=now
        )
    )
    session.flush()
    session.refresh(campaign)
    return campaign


def check_ready(campaign: Campaign) -> None:
    """What must hold before any member gets the campaign (subject and content: see pipeline.check_campaign)."""
    if not campaign.list_ids and not campaign.segment_ids:
        raise CampaignStateError("choose at least one list or segment")


def send_now(session: Session, campaign_id: int, actor: str) -> Campaign:
    check_ready(get_campaign(session, campaign_id))
    ready = frozenset({S.DRAFT, S.SCHEDULED})
    return change_status(session, campaign_id, S.SENDING, actor, "send now", only_from=ready, scheduled_at=None)


def schedule(
    session: Session, campaign_id: int, local_time: datetime, timezone: str, actor: str, now: datetime | None = None
) -> Campaign:
    """Send at `local_time` (a wall-clock time, without zone) in `timezone`, e.g. 09:00 Europe/Lisbon."""
    campaign = get_campaign(session, campaign_id)
    check_ready(campaign)
    when = to_utc(local_time, timezone)
    if when <= (now or utcnow()):
        raise CampaignStateError("choose a time in the future")
    if campaign.status == S.SCHEDULED:
        change_status(session, campaign_id, S.DRAFT, actor, "rescheduled")
    return change_status(
        session, campaign_id, S.SCHEDULED, actor, f"for {local_time:%Y-%m-%d %H:%M} {timezone}",
        scheduled_at=when, schedule_timezone=timezone,
    )  # fmt: skip


def to_utc(local_time: datetime, timezone: str) -> datetime:
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: a folder such as "America"
        raise CampaignStateError(f"unknown time zone {timezone!r}") from exc
    if local_time.tzinfo is not None:
        local_time = local_time.replace(tzinfo=None)
    return local_time.replace(tzinfo=zone).astimezone(ZoneInfo("UTC"))


def pause(session: Session, campaign_id: int, actor: str, reason: str = "paused by a coordinator") -> Campaign:
    return change_status(session, campaign_id, S.PAUSED, actor, reason)


def resume(session: Session, campaign_id: int, actor: str) -> Campaign:
    return change_status(session, campaign_id, S.SENDING, actor, "resumed", only_from=frozenset({S.PAUSED}))


def cancel(session: Session, campaign_id: int, actor: str, reason: str = "cancelled") -> Campaign:
    return change_status(session, campaign_id, S.CANCELLED, actor, reason)


def retry_failed(session: Session, campaign_id: int, actor: str) -> int:
    """Queue failed rows again, except hard bounces (their members are suppressed)."""
    campaign = get_campaign(session, campaign_id)
    if campaign.status not in (S.SENDING, S.PAUSED, S.SENT, S.FAILED):
        raise CampaignStateError(f"a {campaign.status} campaign has nothing to retry")
    retried = session.execute(
        update(Delivery)
        .where(
            Delivery.campaign_id == campaign_id,
            Delivery.status == DeliveryStatus.FAILED,
            (Delivery.bounce_type.is_(None)) | (Delivery.bounce_type != "hard"),
        )
        .values(status=DeliveryStatus.QUEUED, attempts=0, next_attempt_at=None, claimed_by=None, data_sent_at=None)
    ).rowcount  # type: ignore[attr-defined]
    if retried and campaign.status in (S.SENT, S.FAILED):
        change_status(session, campaign_id, S.SENDING, actor, f"retry {retried} failed")
    return int(retried)


def pause_for_failures(session: Session, campaign_id: int, reason: str) -> bool:
    """Called by workers: pause a sending campaign and say why. False if it was no longer sending."""
    try:
        change_status(session, campaign_id, S.PAUSED, SYSTEM_ACTOR, reason)
    except CampaignStateError:
        return False
    return True


def start_due(session: Session, now: datetime | None = None) -> list[int]:
    """Scheduled campaigns whose time has come become sending; returns their ids."""
    due = session.scalars(
        select(Campaign.id).where(Campaign.status == S.SCHEDULED, Campaign.scheduled_at <= (now or utcnow()))
    ).all()
    started = []
    for campaign_id in due:
        try:
            change_status(session, campaign_id, S.SENDING, "scheduler", "scheduled time reached")
        except CampaignStateError:
            continue  # another scheduler got there first
        started.append(campaign_id)
    return started


def status_history(session: Session, campaign_id: int) -> list[CampaignStatusChange]:
    return list(
        session.scalars(
            select(CampaignStatusChange)
            .where(CampaignStatusChange.campaign_id == campaign_id)
            .order_by(CampaignStatusChange.created_at, CampaignStatusChange.id)
        )
    )
