"""Periodic jobs, declared as data and registered by `cop-mail scheduler`.

Each entry: (dotted function path, interval in seconds, queue). Issues that add
periodic work append here; the functions must be safe to run twice.
"""

from __future__ import annotations

from cop_mail.queues import DEFAULT

PERIODIC_JOBS: list[tuple[str, int, str]] = [
    ("cop_mail.maintenance.heartbeat_job", 60, DEFAULT),
]
