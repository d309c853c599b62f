"""Periodic jobs, declared as data and registered by `cop-mail scheduler`.

Each entry: (dotted function path, interval in seconds, queue). Issues that add
periodic work append here; the functions must be safe to run twice.
"""

from __future__ import annotations

from cop_mail.queues import DEFAULT, HIGH, LOW

PERIODIC_JOBS: list[tuple[str, int, str]] = [
    ("cop_mail.maintenance.heartbeat_job", 60, DEFAULT),
    ("cop_mail.sending.transactional_jobs.reconcile_transactional_job", 60, HIGH),
    ("cop_mail.sending.jobs.reconcile_job", 30, HIGH),
    ("cop_mail.audience.jobs.purge_old_imports_job", 86400, LOW),
    ("cop_mail.inbound.jobs.reconcile_inbound_job", 60, HIGH),
    ("cop_mail.inbound.jobs.imap_poll_job", 60, HIGH),
    ("cop_mail.stories.jobs.run_roundup_schedules_job", 600, DEFAULT),
    ("cop_mail.stories.jobs.remove_orphan_images_job", 86400, LOW),
    ("cop_mail.connect.jobs.intro_reminders_job", 3600, DEFAULT),
    ("cop_mail.connect.jobs.intro_followups_job", 3600, DEFAULT),
    ("cop_mail.connect.jobs.recurring_rounds_job", 300, DEFAULT),
    ("cop_mail.connect.jobs.intro_mail_reconcile_job", 60, HIGH),
    ("cop_mail.connect.jobs.sending_rounds_reconcile_job", 600, DEFAULT),
    ("cop_mail.integrations.jobs.webhook_retry_job", 30, DEFAULT),
    ("cop_mail.journeys.jobs.advance_journeys_job", 60, DEFAULT),
    ("cop_mail.journeys.jobs.enrol_inactive_members_job", 3600, LOW),
    ("cop_mail.notices.jobs.send_notices_job", 60, DEFAULT),
]
