"""RQ entry points for inbound mail. Ids in; the stored raw message is the truth."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cop_mail.db import utcnow
from cop_mail.inbound.processing import process_inbound
from cop_mail.inbound.store import enqueue_processing
from cop_mail.jobs import job_redis, job_session, job_settings
from cop_mail.models import InboundMessage, InboundStatus

log = logging.getLogger("cop_mail.inbound")
MAX_ATTEMPTS = 3
LOST_AFTER = timedelta(minutes=2)


def process_inbound_job(inbound_id: int) -> str:
    with job_session() as session:
        session.execute(
            update(InboundMessage)
            .where(InboundMessage.id == inbound_id, InboundMessage.status == InboundStatus.RECEIVED)
            .values(attempts=InboundMessage.attempts + 1)
        )
        session.commit()
        try:
            outcome = process_inbound(session, job_settings(), inbound_id)
            session.commit()
        except Exception as exc:
            session.rollback()
            if not _give_up(session, inbound_id, exc):
                raise
            return InboundStatus.QUARANTINED
    if outcome.delivery_id is not None:
        from cop_mail.sending.transactional import enqueue_transactional

        enqueue_transactional(job_redis(), outcome.delivery_id)
    if outcome.intro_emails:
        from cop_mail.connect.mail import enqueue_intro_emails

        enqueue_intro_emails(job_redis(), outcome.intro_emails)
    log.info("inbound message %s: %s (%s)", inbound_id, outcome.status, outcome.reason)
    return outcome.status


def _give_up(session: Session, inbound_id: int, exc: Exception) -> bool:
    """After the last attempt the message is quarantined with the error, so it is never lost or retried forever."""
    message = session.get(InboundMessage, inbound_id)
    if message is None or message.attempts < MAX_ATTEMPTS:
        return False
    message.status = InboundStatus.QUARANTINED
    message.reason = f"processing failed {message.attempts} times: {exc.__class__.__name__}: {exc}"[:2000]
    message.processed_at = utcnow()
    session.commit()
    log.exception("inbound message %s quarantined after %s attempts", inbound_id, message.attempts)
    return True


def reconcile_inbound_job() -> int:
    """Periodic: messages stored but never processed (their job was lost with Redis) are queued again."""
    with job_session() as session:
        stale = session.scalars(
            select(InboundMessage.id).where(
                InboundMessage.status == InboundStatus.RECEIVED, InboundMessage.received_at < utcnow() - LOST_AFTER
            )
        ).all()
    connection = job_redis()
    for inbound_id in stale:
        enqueue_processing(connection, inbound_id)
    return len(stale)


def imap_poll_job() -> int:
    """Periodic: fetch unseen mail from the IMAP mailbox, when one is configured."""
    settings = job_settings()
    if not settings.imap_host or not settings.imap_user or not settings.imap_password:
        return 0
    from cop_mail.inbound.imap_poll import ImapConfig, poll_once
    from cop_mail.jobs import job_sessions

    config = ImapConfig(
        settings.imap_host,
        settings.imap_port,
        settings.imap_user,
        settings.imap_password,
        settings.imap_folder,
        settings.imap_tls,
    )
    return poll_once(config, job_sessions(), job_redis())
