"""RQ entry points for stories: the roundup scheduler and the picture clean-up, both periodic."""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError

from cop_mail.db import utcnow
from cop_mail.jobs import job_redis, job_session, job_settings
from cop_mail.stories import images, roundups

log = logging.getLogger("cop_mail.stories.jobs")


def run_roundup_schedules_job() -> int:
    """Periodic: make the roundups whose time has come. Safe to run twice (one per schedule and day)."""
    settings = job_settings()
    started: list[int] = []
    made = 0
    with job_session() as session:
        for schedule_id in roundups.due_schedule_ids(session, utcnow()):
            try:
                run = roundups.run_schedule(session, settings, schedule_id)
                session.commit()
            except IntegrityError:
                session.rollback()  # another scheduler made this date's roundup first
                continue
            if run.roundup is not None:
                made += 1
                log.info("schedule %s: roundup %s is %s", schedule_id, run.roundup.id, run.roundup.status)
            if run.started and run.campaign_id is not None:
                started.append(run.campaign_id)
    if started:
        from cop_mail.sending.jobs import ring_plan

        redis = job_redis()
        for campaign_id in started:
            ring_plan(redis, campaign_id)
    return made


def remove_orphan_images_job() -> int:
    """Periodic: delete picture files whose story is gone (an erased member, a rolled-back submission)."""
    with job_session() as session:
        removed = images.remove_orphans(session, images.images_folder(job_settings().instance_path))
    if removed:
        log.info("removed %d picture files no story refers to", removed)
    return removed
