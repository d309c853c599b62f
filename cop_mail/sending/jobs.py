"""Thin RQ entry points for sending, and the doorbells that enqueue them.

Jobs take a campaign id only. Redis just rings: if a doorbell is lost (Redis restarted
empty, a worker killed), the periodic reconcile job rings again from what the database
says, so every function here is safe to run twice or not at all.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import Engine

from cop_mail.db import utcnow
from cop_mail.jobs import job_redis, job_session, job_settings
from cop_mail.queues import SEND, enqueue
from cop_mail.sending.pipeline import default_messenger, send_batch
from cop_mail.sending.planner import plan_campaign
from cop_mail.sending.reconcile import finish_if_done, next_due_in, reconcile

log = logging.getLogger("cop_mail.sending.jobs")
# Batch jobs kept waiting per campaign: enough for every worker to take one.
SEND_PARALLELISM = 8
JOB_SECONDS = 10.0
BATCH_TIMEOUT = 900


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --- jobs ------------------------------------------------------------------------------


def plan_campaign_job(campaign_id: int) -> int:
    redis = job_redis()
    rung = False

    def first_rows(added: int) -> None:
        nonlocal rung
        if added and not rung:
            rung = True
            ring_batches(redis, campaign_id)

    with job_session() as session:
        added = plan_campaign(session, campaign_id, on_chunk=first_rows)
        finish_if_done(session, campaign_id)
    if not rung:
        ring_batches(redis, campaign_id)
    return added


def send_batch_job(campaign_id: int) -> dict[str, Any]:
    """Send batches of the campaign for up to JOB_SECONDS: a forked job process pays its start-up
    (imports are preloaded, but the compiled email and SQL caches are not) once, not per batch."""
    redis = job_redis()
    engine = _engine()
    settings = job_settings()
    totals: Counter[str] = Counter()
    started = time.monotonic()
    with default_messenger(settings) as messenger:
        while True:
            result = send_batch(
                engine, settings, redis, campaign_id, worker_name(),
                ring=lambda: ring_batches(redis, campaign_id, 1), messenger=messenger,
            )  # fmt: skip
            totals.update(result.counts())
            if not result.more or result.stopped or time.monotonic() - started > JOB_SECONDS:
                break
    if not result.more:
        _after_last_batch(engine, redis, campaign_id, result.retry_after)
    log.info("campaign %s: %s%s", campaign_id, dict(totals), f" ({result.stopped})" if result.stopped else "")
    return dict(totals)


def reconcile_job() -> dict[str, Any]:
    redis = job_redis()
    with job_session() as session:
        report = reconcile(
            session,
            ring_plan=lambda campaign_id: ring_plan(redis, campaign_id),
            ring_batches=lambda campaign_id: ring_batches(redis, campaign_id),
        )
    return {k: v for k, v in vars(report).items() if v}


def _engine() -> Engine:
    with job_session() as session:
        bind = session.get_bind()
    assert isinstance(bind, Engine)
    return bind


def _after_last_batch(engine: Engine, redis: Redis, campaign_id: int, retry_after: float | None) -> None:
    """No full batch was left: finish the campaign, or ring again when its waiting rows fall due."""
    with job_session() as session:
        if finish_if_done(session, campaign_id):
            return
        delay = next_due_in(session.connection(), campaign_id, utcnow())
        session.commit()
    if retry_after is not None:
        delay = min(delay, retry_after) if delay is not None else retry_after
    if delay is not None:
        ring_later(redis, campaign_id, delay)


# --- doorbells -------------------------------------------------------------------------


def ring_plan(redis: Redis, campaign_id: int) -> bool:
    """Enqueue the planner (after the commit that made the campaign sending)."""
    try:
        enqueue(redis, plan_campaign_job, campaign_id, queue=SEND, job_id=f"plan-{campaign_id}", retries=0)
    except RedisError:
        log.warning("could not enqueue planning of campaign %s; the reconciler will", campaign_id, exc_info=True)
        return False
    return True


def ring_batches(redis: Redis, campaign_id: int, at_most: int = SEND_PARALLELISM) -> int:
    """Top the campaign's waiting batch jobs up to SEND_PARALLELISM (adding at most `at_most`)."""
    try:
        prefix = f"send-{campaign_id}-"
        waiting = sum(1 for job_id in Queue(SEND, connection=redis).get_job_ids() if job_id.startswith(prefix))
        missing = min(max(SEND_PARALLELISM - waiting, 0), at_most)
        for _ in range(missing):
            enqueue(
                redis, send_batch_job, campaign_id, queue=SEND, job_id=prefix + uuid.uuid4().hex[:12],
                retries=0, timeout=BATCH_TIMEOUT,
            )  # fmt: skip
    except RedisError:
        log.warning("could not enqueue batches of campaign %s; the reconciler will", campaign_id, exc_info=True)
        return 0
    return missing


def ring_later(redis: Redis, campaign_id: int, delay: float) -> None:
    """One delayed batch job per campaign and wait (deferred rows falling due)."""
    delay = max(delay, 0.05)
    try:
        if not redis.set(f"cop-mail:send:later:{campaign_id}", 1, nx=True, px=int(delay * 1000)):
            return
        Queue(SEND, connection=redis).enqueue_in(
            timedelta(seconds=delay),
            send_batch_job,
            campaign_id,
            job_id=f"send-{campaign_id}-later-{uuid.uuid4().hex[:8]}",
            job_timeout=BATCH_TIMEOUT,
            result_ttl=3600,
        )
    except RedisError:
        log.warning("could not schedule campaign %s; the reconciler will ring", campaign_id, exc_info=True)
