"""RQ entry points for transactional mail (HIGH queue). Ids in, nothing else."""

from __future__ import annotations

import logging

from cop_mail.jobs import job_redis, job_session, job_settings
from cop_mail.sending import transactional

log = logging.getLogger("cop_mail.sending.transactional_jobs")


def send_transactional_job(delivery_id: int) -> str:
    with job_session() as session:
        status = transactional.deliver_transactional(session, job_settings(), delivery_id)
    log.info("transactional delivery %s: %s", delivery_id, status)
    return status


def reconcile_transactional_job() -> int:
    """Periodic: re-ring the doorbell for transactional messages whose job was lost or is due again."""
    with job_session() as session:
        due = transactional.reconcile_transactional(session)
    if due:
        connection = job_redis()
        for delivery_id in due:
            transactional.enqueue_transactional(connection, delivery_id)
        log.info("re-enqueued %d transactional deliveries", len(due))
    return len(due)
