"""Housekeeping jobs run by the scheduler."""

from __future__ import annotations

import time

from cop_mail.jobs import job_redis


def heartbeat_job() -> float:
    """Lets the admin show that the scheduler and a worker are alive."""
    now = time.time()
    job_redis().set("cop-mail:heartbeat:scheduler", now, ex=600)
    return now
