"""RQ entry point for coordinator notices."""

from __future__ import annotations

from cop_mail.jobs import job_session, job_settings
from cop_mail.notices.sending import send_due_notices


def send_notices_job() -> int:
    with job_session() as session:
        return send_due_notices(session, job_settings())
