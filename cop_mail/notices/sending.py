"""Find finished work without a notice, claim it, send the notice."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from cop_mail.audience.importer import IMPORT_TASK_KIND
from cop_mail.db import utcnow
from cop_mail.models import Admin, BackgroundTask, Campaign, CampaignKind, CampaignStatus, TaskStatus
from cop_mail.notices import compose
from cop_mail.sending.smtp import Outcome, SmtpConfig, SmtpMessenger
from cop_mail.settings import Settings

log = logging.getLogger("cop_mail.notices")
# Work finished longer ago than this gets no notice (e.g. after an upgrade, or a long outage).
LOOKBACK = timedelta(days=2)
NOTIFIED_CAMPAIGN_STATUSES = (CampaignStatus.SENT, CampaignStatus.FAILED)


def recipient(session: Session, email: str) -> Admin | None:
    """The active coordinator who wants notices, by the address recorded on the work."""
    return session.scalar(
        select(Admin).where(func.lower(Admin.email) == email.strip().lower(), Admin.active, Admin.email_notices)
    )


def due_campaigns(session: Session, now: datetime) -> list[int]:
    return list(
        session.scalars(
            select(Campaign.id).where(
                Campaign.kind != CampaignKind.TRANSACTIONAL,
                Campaign.status.in_([str(s) for s in NOTIFIED_CAMPAIGN_STATUSES]),
                Campaign.finished_at >= now - LOOKBACK,
                Campaign.notice_sent_at.is_(None),
            )
        )
    )


def due_imports(session: Session, now: datetime) -> list[int]:
    return [
        task.id
        for task in session.scalars(
            select(BackgroundTask).where(
                BackgroundTask.kind == IMPORT_TASK_KIND,
                BackgroundTask.status == TaskStatus.DONE,
                BackgroundTask.finished_at >= now - LOOKBACK,
                BackgroundTask.notice_sent_at.is_(None),
            )
        )
        if not task.params.get("dry_run")
    ]


def _claim(session: Session, model: Any, row_id: int, now: datetime) -> bool:
    statement = update(model).where(model.id == row_id, model.notice_sent_at.is_(None)).values(notice_sent_at=now)
    claimed = cast(CursorResult[Any], session.execute(statement)).rowcount == 1
    session.commit()
    return claimed


def _release(session: Session, model: Any, row_id: int) -> None:
    session.execute(update(model).where(model.id == row_id).values(notice_sent_at=None))
    session.commit()


def send_due_notices(session: Session, settings: Settings, now: datetime | None = None) -> int:
    """Send every notice that is due; returns how many went out. Safe to run twice at once."""
    now = now or utcnow()
    sent = 0
    for campaign_id in due_campaigns(session, now):
        sent += _send_one(session, settings, Campaign, campaign_id, now)
    for task_id in due_imports(session, now):
        sent += _send_one(session, settings, BackgroundTask, task_id, now)
    return sent


def _send_one(session: Session, settings: Settings, model: Any, row_id: int, now: datetime) -> int:
    if not _claim(session, model, row_id, now):
        return 0  # another scheduler has it
    row = session.get(model, row_id)
    admin = recipient(session, row.created_by or "") if row is not None else None
    if row is None or admin is None:
        return 0  # made by the system or by someone who wants no notices: the mark stays
    if model is Campaign:
        kind, context = compose.CAMPAIGN_FINISHED, compose.campaign_context(session, settings, row)
    else:
        kind, context = compose.IMPORT_REPORT, compose.import_context(session, settings, row)
    try:
        notice = compose.render(settings, kind, admin, context)
        with SmtpMessenger(SmtpConfig.from_settings(settings)) as messenger:
            reply = messenger.send(notice.mail_from, notice.to, notice.raw)
    except Exception:
        log.exception("the %s notice for %s %s could not be sent", kind, model.__tablename__, row_id)
        _release(session, model, row_id)
        return 0
    if reply.outcome is not Outcome.SENT:
        log.warning("the %s notice for %s %s was refused: %s", kind, model.__tablename__, row_id, reply.describe())
        if reply.outcome is Outcome.DEFERRED:
            _release(session, model, row_id)  # try again on the next scan
        return 0
    log.info("sent the %s notice for %s %s to %s", kind, model.__tablename__, row_id, admin.email)
    return 1
