"""RQ entry points for audience work: open sessions, call one function, log. Ids only."""

from __future__ import annotations

import logging

from cop_mail.audience import importer
from cop_mail.jobs import job_session

log = logging.getLogger(__name__)


def import_members_job(task_id: int) -> None:
    """Run a queued import or dry run; a finished task is left alone, so a second run is harmless."""
    # Two sessions: the import's own transaction, and short commits of progress the admin can see.
    with job_session() as session, job_session() as progress_session:
        task = importer.run_import_task(session, progress_session, task_id)
    log.info("import task %s ended: %s", task_id, task.status if task is not None else "no such task")


def purge_old_imports_job() -> int:
    with job_session() as session:
        removed = importer.purge_old_imports(session)
        session.commit()
    log.info("removed %s old import files and reports", removed)
    return removed
