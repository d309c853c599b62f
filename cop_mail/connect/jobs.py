"""Thin RQ entry points for introductions. Ids in; each is safe to run twice."""

from __future__ import annotations

import logging

from rq import Queue
from sqlalchemy import select

from cop_mail.connect import mail, rounds, workflow
from cop_mail.jobs import job_redis, job_session, job_settings
from cop_mail.models import Delivery, DeliveryStatus, IntroRound, RoundStatus
from cop_mail.queues import DEFAULT, HIGH, enqueue

log = logging.getLogger("cop_mail.connect.jobs")


def send_intro_email_job(delivery_id: int) -> str:
    with job_session() as session:
        status = mail.deliver_intro_email(session, job_settings(), delivery_id)
        retry_at = session.scalar(select(Delivery.next_attempt_at).where(Delivery.id == delivery_id))
    log.info("intro delivery %s: %s", delivery_id, status)
    if status == DeliveryStatus.DEFERRED and retry_at is not None:
        # Ring again when it is due; the periodic reconcile is the safety net if this is lost.
        Queue(HIGH, connection=job_redis()).enqueue_at(retry_at, send_intro_email_job, delivery_id, result_ttl=3600)
    return status


def send_round_job(round_id: int) -> int:
    """Invite every proposed pair of a round that is sending, one committed chunk at a time."""
    invited = 0
    more = True
    while more:
        with job_session() as session:
            ids, more = rounds.send_chunk(session, job_settings(), round_id, f"round #{round_id}")
            session.commit()
        mail.enqueue_intro_emails(job_redis(), ids)
        invited += len(ids)
    log.info("round %s: %d invitations queued", round_id, invited)
    return invited


def intro_reminders_job() -> dict[str, int]:
    """Periodic: one reminder after the answer window, expiry after another; pause the unresponsive."""
    with job_session() as session:
        reminders = workflow.send_reminders(session, job_settings())
        session.commit()
        notices = workflow.expire_unanswered(session, job_settings())
        session.commit()
    mail.enqueue_intro_emails(job_redis(), reminders + notices)
    return {"reminders": len(reminders), "pause_notices": len(notices)}


def intro_followups_job() -> int:
    with job_session() as session:
        ids = workflow.send_followups(session, job_settings())
        session.commit()
    mail.enqueue_intro_emails(job_redis(), ids)
    return len(ids)


def recurring_rounds_job() -> list[int]:
    """Periodic: make the rounds that are due; those set to send on their own start sending."""
    with job_session() as session:
        made = rounds.run_recurring(session)
        session.commit()
        sending = [r.id for r in made if r.status == RoundStatus.SENDING]
        made_ids = [r.id for r in made]
    for round_id in sending:
        enqueue(job_redis(), send_round_job, round_id, queue=DEFAULT, job_id=f"send-round-{round_id}")
    if made_ids:
        log.info("recurring rounds made: %s (sending: %s)", made_ids, sending)
    return made_ids


def intro_mail_reconcile_job() -> int:
    """Periodic: re-ring the doorbell for introduction emails whose job was lost or is due again."""
    with job_session() as session:
        due = mail.reconcile_intro_emails(session)
    mail.enqueue_intro_emails(job_redis(), due)
    return len(due)


def sending_rounds_reconcile_job() -> int:
    """Periodic: a round left in `sending` (its job lost) gets its job again."""
    with job_session() as session:
        ids = list(session.scalars(select(IntroRound.id).where(IntroRound.status == RoundStatus.SENDING)))
    for round_id in ids:
        enqueue(job_redis(), send_round_job, round_id, queue=DEFAULT, job_id=f"send-round-{round_id}")
    return len(ids)
