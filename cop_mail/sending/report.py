"""What a campaign's sending looks like right now: counts, rate and ETA, all from SQL over its rows."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cop_mail.db import utcnow
from cop_mail.models import Campaign, Delivery, DeliveryStatus, Member
from cop_mail.sending.campaigns import get_campaign

D = DeliveryStatus
RATE_WINDOW = timedelta(seconds=60)
STATUSES = [str(s) for s in DeliveryStatus]


@dataclass
class Progress:
    campaign_id: int
    name: str
    status: str
    paused_reason: str
    total: int
    queued: int
    sending: int
    sent: int
    deferred: int
    failed: int
    suppressed: int
    uncertain: int
    remaining: int
    percent: float
    rate_per_second: float
    eta_seconds: float | None
    planned: bool
    # The attention budget's rows: held for the member's next window, or dropped.
    held: int = 0
    dropped: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def progress(session: Session, campaign_id: int, now: datetime | None = None) -> Progress:
    now = now or utcnow()
    campaign = get_campaign(session, campaign_id)
    counts = dict.fromkeys(STATUSES, 0)
    rows = session.execute(
        select(Delivery.status, func.count()).where(Delivery.campaign_id == campaign_id).group_by(Delivery.status)
    )
    for status, count in rows:
        counts[status] = int(count)
    total = sum(counts.values())
    remaining = counts[D.QUEUED] + counts[D.SENDING] + counts[D.DEFERRED]
    rate = sending_rate(session, campaign, now)
    return Progress(
        campaign_id=campaign_id,
        name=campaign.name,
        status=campaign.status,
        paused_reason=campaign.paused_reason,
        total=total,
        remaining=remaining,
        percent=round(100.0 * (total - remaining) / total, 1) if total else 0.0,
        rate_per_second=round(rate, 1),
        eta_seconds=round(remaining / rate, 1) if rate > 0 and remaining else (0.0 if not remaining else None),
        planned=campaign.planned_at is not None,
        **{status: counts[status] for status in STATUSES},
    )


def sending_rate(session: Session, campaign: Campaign, now: datetime) -> float:
    """Messages per second over the last minute (or since the start, if that is shorter)."""
    if campaign.started_at is None:
        return 0.0
    window = min(RATE_WINDOW, max(now - campaign.started_at, timedelta(seconds=1)))
    recent = session.scalar(
        select(func.count()).where(
            Delivery.campaign_id == campaign.id, Delivery.status == D.SENT, Delivery.sent_at >= now - window
        )
    )
    return float(recent or 0) / window.total_seconds()


def format_progress(p: Progress) -> str:
    lines = [
        f"Campaign {p.campaign_id}: {p.name}",
        f"Status: {p.status}" + (f" ({p.paused_reason})" if p.paused_reason else ""),
        f"Recipients: {p.total}" + ("" if p.planned else " so far (still planning)"),
        f"Sent: {p.sent}  Deferred: {p.deferred}  Failed: {p.failed}  Suppressed: {p.suppressed}  "
        f"Uncertain: {p.uncertain}  Remaining: {p.remaining}",
        f"Progress: {p.percent:.1f} %  Rate: {p.rate_per_second:.1f}/s  ETA: {format_eta(p.eta_seconds)}",
    ]
    if p.held or p.dropped:
        # Held rows wait for the member's next window, so the ETA and percentage leave them out.
        lines.append(f"Attention budget: {p.held} held for a later window, {p.dropped} dropped")
    return "\n".join(lines)


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


@dataclass(frozen=True)
class LogRow:
    delivery_id: int
    email: str
    status: str
    attempts: int
    smtp_code: int | None
    last_error: str
    message_id: str | None
    sent_at: datetime | None
    updated_at: datetime


def delivery_log(
    session: Session,
    campaign_id: int,
    *,
    status: str | None = None,
    search: str | None = None,
    page: int = 1,
    per_page: int = 50,
) -> tuple[list[LogRow], int]:
    """One page of the delivery log and the number of matching rows."""
    query = select(
        Delivery.id,
        func.coalesce(Member.email, "(member erased)"),
        Delivery.status,
        Delivery.attempts,
        Delivery.smtp_code,
        Delivery.last_error,
        Delivery.message_id,
        Delivery.sent_at,
        Delivery.updated_at,
    ).outerjoin(Member, Member.id == Delivery.member_id)
    query = query.where(Delivery.campaign_id == campaign_id)
    if status in STATUSES:
        query = query.where(Delivery.status == status)
    if search:
        query = query.where(Member.email.contains(search.strip().lower(), autoescape=True))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(query.order_by(Delivery.id).limit(per_page).offset((max(page, 1) - 1) * per_page))
    return [LogRow(*row) for row in rows], int(total)
