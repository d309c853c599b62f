"""RQ entry points for webhooks: ids in, one attempt per job; the database keeps the schedule."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from redis import Redis

from cop_mail.integrations import webhooks
from cop_mail.jobs import job_redis, job_session
from cop_mail.queues import DEFAULT, enqueue

log = logging.getLogger("cop_mail.integrations.jobs")


def deliver_webhook_job(delivery_id: int) -> str:
    with job_session() as session:
        return webhooks.deliver(session, delivery_id)


def webhook_retry_job() -> int:
    """Periodic: ring again for every due row (retries, lost doorbells, attempts cut off by a crash)."""
    with job_session() as session:
        due = webhooks.due_deliveries(session)
    if due:
        ring(job_redis(), due)
        log.info("queued %d due webhook deliveries", len(due))
    return len(due)


def ring(connection: Redis, delivery_ids: Iterable[int]) -> None:
    """Enqueue attempts after the commit that recorded the rows. Without Redis the periodic job sends them later."""
    for delivery_id in delivery_ids:
        try:
            # No RQ retries: the row's own backoff decides when to try again.
            enqueue(connection, deliver_webhook_job, delivery_id, queue=DEFAULT, retries=0, timeout=120)
        except Exception:  # a lost doorbell is recovered by webhook_retry_job
            log.warning("could not enqueue webhook delivery %s; the retry job will", delivery_id, exc_info=True)
            return
