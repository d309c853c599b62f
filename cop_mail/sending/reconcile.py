"""The periodic safety net: the database says what work exists, this makes sure someone does it.

Each pass:
1. starts scheduled campaigns whose time has come;
2. takes back rows left in `sending` by a worker that died (lease expired): within each
   claim, the row with the latest transmission mark may have been in flight (uncertain),
   earlier marked rows were sent (a later mark proves their 2xx came back), unmarked rows
   go back to the queue;
3. queues uncertain rows again for campaigns that asked for it (resend_uncertain);
4. re-rings the doorbell for campaigns whose planning or batch jobs were lost
   (a Redis restart, a killed worker), and for campaigns whose rows held by the attention
   budget fall due (the member's next window), so held mail goes out with nobody's help;
5. marks campaigns sent once planned and no row is left to send (a held row is still to send).
Every step is safe to run twice and alongside workers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, exists, func, select, update
from sqlalchemy.orm import Session

from cop_mail.db import utcnow
from cop_mail.integrations import events
from cop_mail.models import Campaign, CampaignKind, CampaignStatus, Delivery, DeliveryStatus
from cop_mail.sending.campaigns import CampaignStateError, change_status, start_due
from cop_mail.sending.claims import due_clause

log = logging.getLogger("cop_mail.sending.reconcile")
D = DeliveryStatus
OPEN_STATUSES = (D.QUEUED, D.SENDING, D.DEFERRED, D.HELD)
RESEND_NOTE = "resending an uncertain message"
IN_FLIGHT_NOTE = "the sender stopped while this message was in flight; it may or may not have arrived"


@dataclass
class ReconcileReport:
    started: list[int] = field(default_factory=list)
    uncertain: int = 0
    recovered_sent: int = 0
    requeued: int = 0
    resent_uncertain: int = 0
    rung: list[int] = field(default_factory=list)
    planned: list[int] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)


def reconcile(
    session: Session,
    *,
    ring_plan: Callable[[int], object],
    ring_batches: Callable[[int], object],
    now: datetime | None = None,
) -> ReconcileReport:
    """One pass; commits after each step. The ring callbacks enqueue jobs (they may fail: next pass)."""
    now = now or utcnow()
    report = ReconcileReport()
    report.started = start_due(session, now)
    session.commit()
    for campaign_id in report.started:
        ring_plan(campaign_id)
    conn = session.connection()
    report.uncertain, report.recovered_sent, report.requeued = recover_expired(conn, now)
    session.commit()
    report.resent_uncertain = requeue_uncertain(session.connection())
    session.commit()
    for campaign_id in unplanned_campaigns(session):
        ring_plan(campaign_id)
        report.planned.append(campaign_id)
    for campaign_id in campaigns_with_due_rows(session, now):
        ring_batches(campaign_id)
        report.rung.append(campaign_id)
    for campaign_id in sending_campaigns(session):
        if finish_if_done(session, campaign_id):
            report.finished.append(campaign_id)
    session.commit()
    return report


def _batch_campaigns() -> ColumnElement[bool]:
    # Transactional messages have their own reconciler (transactional.py).
    return Campaign.kind != CampaignKind.TRANSACTIONAL


def recover_expired(conn: Connection, now: datetime) -> tuple[int, int, int]:
    """(uncertain, sent, requeued) rows taken back from claims whose lease expired."""
    tokens: list[str] = conn.scalars(  # type: ignore[assignment]
        select(Delivery.claimed_by)
        .where(Delivery.status == D.SENDING, Delivery.lease_until < now, Delivery.claimed_by.is_not(None))
        .distinct()
        .limit(1000)
    ).all()
    totals = [0, 0, 0]
    for token in tokens:
        for index, count in enumerate(_recover_claim(conn, token, now)):
            totals[index] += count
    if any(totals):
        log.warning("recovered expired claims: %d uncertain, %d sent, %d requeued", *totals)
    return totals[0], totals[1], totals[2]


def _recover_claim(conn: Connection, token: str, now: datetime) -> tuple[int, int, int]:
    expired = (Delivery.claimed_by == token) & (Delivery.status == D.SENDING) & (Delivery.lease_until < now)
    latest = conn.scalar(
        select(Delivery.id)
        .where(Delivery.claimed_by == token, Delivery.data_sent_at.is_not(None))
        .order_by(Delivery.data_sent_at.desc(), Delivery.id.desc())
        .limit(1)
    )
    uncertain = 0
    if latest is not None:
        uncertain = conn.execute(
            update(Delivery)
            .where(expired, Delivery.id == latest, Delivery.data_sent_at.is_not(None))
            .values(status=str(D.UNCERTAIN), last_error=IN_FLIGHT_NOTE, lease_until=None)
        ).rowcount
    sent = conn.execute(
        update(Delivery)
        .where(expired, Delivery.data_sent_at.is_not(None), Delivery.id != (latest or 0))
        .values(status=str(D.SENT), sent_at=Delivery.data_sent_at, smtp_code=250, lease_until=None)
    ).rowcount
    requeued = conn.execute(
        update(Delivery)
        .where(expired, Delivery.data_sent_at.is_(None))
        .values(status=str(D.QUEUED), claimed_by=None, lease_until=None)
    ).rowcount
    return int(uncertain), int(sent), int(requeued)


def requeue_uncertain(conn: Connection) -> int:
    """Campaigns set to resend uncertain rows get them back in the queue (same Message-ID)."""
    wanted = select(Campaign.id).where(Campaign.resend_uncertain.is_(True), Campaign.status == CampaignStatus.SENDING)
    return int(
        conn.execute(
            update(Delivery)
            .where(Delivery.status == D.UNCERTAIN, Delivery.campaign_id.in_(wanted))
            .values(status=str(D.QUEUED), claimed_by=None, data_sent_at=None, last_error=RESEND_NOTE)
        ).rowcount
    )


def unplanned_campaigns(session: Session) -> list[int]:
    return list(
        session.scalars(
            select(Campaign.id).where(
                Campaign.status == CampaignStatus.SENDING, Campaign.planned_at.is_(None), _batch_campaigns()
            )
        )
    )


def sending_campaigns(session: Session) -> list[int]:
    return list(
        session.scalars(select(Campaign.id).where(Campaign.status == CampaignStatus.SENDING, _batch_campaigns()))
    )


def campaigns_with_due_rows(session: Session, now: datetime) -> list[int]:
    due = []
    for campaign_id in sending_campaigns(session):
        if session.scalar(select(exists().where(due_clause(campaign_id, now)))):
            due.append(campaign_id)
    return due


def next_due_in(conn: Connection, campaign_id: int, now: datetime) -> float | None:
    """Seconds until the campaign's next waiting row is due (None: nothing is waiting).

    Rows held by the attention budget wait days, not seconds: the periodic pass rings for them.
    """
    earliest = conn.scalar(
        select(func.min(Delivery.next_attempt_at)).where(
            Delivery.campaign_id == campaign_id, Delivery.status.in_([str(D.QUEUED), str(D.DEFERRED)])
        )
    )
    if earliest is None:
        return None
    return max((earliest - now).total_seconds(), 0.0)


def finish_if_done(session: Session, campaign_id: int) -> bool:
    """A planned, sending campaign with no open row is sent."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.status != CampaignStatus.SENDING or campaign.planned_at is None:
        return False
    still_open = [str(s) for s in OPEN_STATUSES] + ([str(D.UNCERTAIN)] if campaign.resend_uncertain else [])
    open_rows = session.scalar(
        select(exists().where(Delivery.campaign_id == campaign_id, Delivery.status.in_(still_open)))
    )
    if open_rows:
        return False
    try:
        change_status(session, campaign_id, CampaignStatus.SENT, "system", "every delivery has an outcome")
    except CampaignStateError:
        return False
    if campaign.kind != CampaignKind.TRANSACTIONAL:
        events.emit_campaign_sent(session, campaign_id)
    session.commit()
    log.info("campaign %s sent", campaign_id)
    return True
