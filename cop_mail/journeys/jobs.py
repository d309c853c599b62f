"""Thin RQ entry points for journeys. Periodic, and safe to run twice (or two at once)."""

from __future__ import annotations

import logging
import time

from redis import Redis

from cop_mail.connect import mail as intro_mail
from cop_mail.jobs import job_redis, job_session, job_settings
from cop_mail.journeys import runner, triggers
from cop_mail.sending.transactional import enqueue_transactional

log = logging.getLogger("cop_mail.journeys.jobs")

MAX_SECONDS = 240  # leave the rest to the next run rather than outlive the job timeout


def advance_journeys_job() -> int:
    """Periodic: take every due step, batch after batch; returns how many steps were taken."""
    started, taken, connection = time.monotonic(), 0, job_redis()
    while True:
        with job_session() as session:
            done = runner.advance_due(session, job_settings())
        ring(connection, done)
        taken += done.steps_taken
        if done.claimed < runner.BATCH or time.monotonic() - started > MAX_SECONDS:
            break
    if taken:
        log.info("journeys: %d steps taken", taken)
    return taken


def enrol_inactive_members_job() -> int:
    """Periodic: members who have gone quiet enter the "no action for N days" journeys."""
    with job_session() as session:
        entered = triggers.enrol_inactive(session)
        session.commit()
    if entered:
        log.info("journeys: %d quiet members entered", entered)
    return entered


def ring(connection: Redis, done: runner.Pass) -> None:
    """Enqueue the mail a committed pass recorded; the reconcilers send whatever is lost here."""
    for delivery_id in done.transactional:
        enqueue_transactional(connection, delivery_id)
    intro_mail.enqueue_intro_emails(connection, done.intro_mail)
