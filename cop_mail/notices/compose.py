"""The context and the finished message of each coordinator notice."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cop_mail.audience.importer import load_report
from cop_mail.models import Admin, BackgroundTask, Campaign, Delivery, DeliveryStatus, ImportFile
from cop_mail.rendering import compile_email
from cop_mail.sending.dkim_signer import signer_for
from cop_mail.sending.mime import make_message_id
from cop_mail.sending.transactional import automatic_skeleton
from cop_mail.settings import Settings

CAMPAIGN_FINISHED = "notice_campaign_finished"
IMPORT_REPORT = "notice_import_report"
PROBLEMS_SHOWN = 10


@dataclass(frozen=True)
class Notice:
    raw: bytes
    mail_from: str
    to: str


def campaign_context(session: Session, settings: Settings, campaign: Campaign) -> dict[str, Any]:
    rows = session.execute(
        select(Delivery.status, func.count()).where(Delivery.campaign_id == campaign.id).group_by(Delivery.status)
    )
    counts = {str(status): int(count) for status, count in rows}
    return {
        "campaign": {
            "title": campaign.name,
            "finished_at": campaign.finished_at.isoformat() if campaign.finished_at else "",
            "url": f"{settings.public_url}/admin/campaigns/{campaign.id}",
        },
        "counts": {status.value: counts.get(status.value, 0) for status in DeliveryStatus},
    }


def import_context(session: Session, settings: Settings, task: BackgroundTask) -> dict[str, Any]:
    upload = session.get(ImportFile, int(task.params.get("file_id") or 0))
    problems = _skipped_rows(load_report(session, task.id) or "")
    return {
        "import": {
            "filename": upload.filename if upload is not None else f"import {task.id}",
            "created": int(task.result.get("imported", 0)),
            "updated": int(task.result.get("updated", 0)),
            "skipped": int(task.result.get("skipped", 0)),
            "problems": problems[:PROBLEMS_SHOWN],
            "more_problems": max(len(problems) - PROBLEMS_SHOWN, 0),
            "url": f"{settings.public_url}/admin/imports/tasks/{task.id}",
        }
    }


def _skipped_rows(report: str) -> list[dict[str, str]]:
    return [
        {"row": row["row"], "message": row["reason"]}
        for row in csv.DictReader(io.StringIO(report.lstrip("\ufeff")))
        if row.get("outcome") == "skipped"
    ]


def render(settings: Settings, kind: str, admin: Admin, context: dict[str, Any]) -> Notice:
    account_url = f"{settings.public_url}/admin/account"
    recipient = {
        "first_name": (admin.name or "").split(" ")[0],
        "name": admin.name,
        "email": admin.email,
        # Coordinators switch notices off on their account page, not in the member preference centre.
        "preferences_url": account_url,
        "unsubscribe_url": account_url,
    }
    subject, html, text = compile_email(kind, context, settings).fill(recipient)
    raw = automatic_skeleton(settings, f"notice:{settings.mail_domain}").render(
        to_addr=admin.email,
        to_name=admin.name,
        subject=subject,
        html=html,
        text=text,
        message_id=make_message_id(settings.mail_domain),
    )
    signer = signer_for(settings)
    # Bounces of a notice need no VERP token: they go to the plain return path.
    return Notice(raw=signer.sign(raw) if signer else raw, mail_from=parseaddr(settings.mail_from)[1], to=admin.email)
