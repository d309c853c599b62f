"""Coordinator notices: a finished campaign and a finished import email the coordinator who
started them, through a real SMTP server, once, and only if they want notices."""

from __future__ import annotations

from datetime import timedelta
from email import policy
from email.parser import BytesParser

from sqlalchemy import select

from cop_mail import accounts
from cop_mail.db import utcnow
from cop_mail.models import (
    Admin,
    BackgroundTask,
    Campaign,
    CampaignKind,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    Role,
)
from cop_mail.notices.sending import send_due_notices
from tests.conftest import add_member
from tests.integration.test_import_jobs import make_list, queue_task

COORDINATOR = "coordinator@example.org"


def coordinator(db, *, notices=True, active=True) -> Admin:
    admin = accounts.create_admin(db, COORDINATOR, "correct horse battery", Role.COORDINATOR, "Rosa Lindqvist")
    admin.email_notices, admin.active = notices, active
    db.commit()
    return admin


def finished_campaign(db, *, created_by=COORDINATOR, status=CampaignStatus.SENT, ago=timedelta(minutes=5)):
    campaign = Campaign(
        kind=CampaignKind.NEWSLETTER, name="What care looks like", subject="Care", status=status,
        created_by=created_by, finished_at=utcnow() - ago,
    )  # fmt: skip
    db.add(campaign)
    db.flush()
    outcomes = [DeliveryStatus.SENT] * 3 + [DeliveryStatus.FAILED, DeliveryStatus.SUPPRESSED]
    for number, outcome in enumerate(outcomes):
        member = add_member(db, f"Member {number}", email=f"member{campaign.id}-{number}@example.org")
        db.add(Delivery(campaign_id=campaign.id, member_id=member.id, status=outcome))
    db.commit()
    return campaign


def settings_for(make_settings, smtp_sink):
    return make_settings(smtp_port=smtp_sink.port)


def text_of(raw: bytes) -> str:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    return message.get_body(preferencelist=("plain",)).get_content()


def test_a_finished_campaign_emails_its_coordinator_once(db, make_settings, smtp_sink):
    coordinator(db)
    campaign = finished_campaign(db)
    settings = settings_for(make_settings, smtp_sink)

    assert send_due_notices(db, settings) == 1
    assert send_due_notices(db, settings) == 0  # claimed: a second scan sends nothing
    (message,) = smtp_sink.wait_for(1)
    assert message.rcpt_tos == [COORDINATOR]
    parsed = BytesParser(policy=policy.default).parsebytes(message.data)
    assert parsed["Subject"] == "Sent: What care looks like"
    assert parsed["Auto-Submitted"] == "auto-generated"
    body = text_of(message.data)
    assert "Sent: 3" in body and "Failed: 1" in body and "Skipped (unsubscribed meanwhile): 1" in body
    assert f"http://cop-mail.test/admin/campaigns/{campaign.id}" in body
    db.expire_all()
    assert db.get(Campaign, campaign.id).notice_sent_at is not None


def test_no_notice_for_system_work_old_work_or_a_coordinator_who_said_no(db, make_settings, smtp_sink):
    admin = coordinator(db, notices=False)
    finished_campaign(db)  # the coordinator switched notices off
    finished_campaign(db, created_by="system")
    finished_campaign(db, ago=timedelta(days=3))  # finished before the notice window
    finished_campaign(db, status=CampaignStatus.CANCELLED)  # cancelled by a person: they know
    settings = settings_for(make_settings, smtp_sink)

    assert send_due_notices(db, settings) == 0
    assert smtp_sink.messages == []
    # Switching notices back on does not bring back notices already passed over.
    admin.email_notices = True
    db.commit()
    assert send_due_notices(db, settings) == 0


def test_a_refused_notice_is_tried_again_on_the_next_scan(db, make_settings, smtp_sink):
    coordinator(db)
    campaign = finished_campaign(db)
    settings = settings_for(make_settings, smtp_sink)
    smtp_sink.responder = lambda message: "451 4.3.0 try again later"

    assert send_due_notices(db, settings) == 0
    assert len(smtp_sink.refused) == 1
    db.expire_all()
    assert db.get(Campaign, campaign.id).notice_sent_at is None

    smtp_sink.responder = None
    assert send_due_notices(db, settings) == 1
    assert smtp_sink.wait_for(1)[0].rcpt_tos == [COORDINATOR]


def test_an_unreachable_smtp_server_loses_no_notice(db, make_settings, smtp_sink):
    from tests.conftest import free_port

    coordinator(db)
    campaign = finished_campaign(db)
    assert send_due_notices(db, make_settings(smtp_port=free_port(), smtp_timeout=2.0)) == 0
    db.expire_all()
    assert db.get(Campaign, campaign.id).notice_sent_at is None
    assert send_due_notices(db, settings_for(make_settings, smtp_sink)) == 1


def test_a_finished_import_emails_its_report(db, redis_conn, run_jobs, make_settings, smtp_sink):
    coordinator(db)
    newsletter = make_list(db)
    task_id = queue_task(db, redis_conn, list_id=newsletter.id)
    dry_task_id = queue_task(db, redis_conn, dry_run=True)
    assert run_jobs() == 0
    db.expire_all()
    assert db.get(BackgroundTask, task_id).status == "done"

    assert send_due_notices(db, settings_for(make_settings, smtp_sink)) == 1  # the dry run gets none
    (message,) = smtp_sink.wait_for(1)
    parsed = BytesParser(policy=policy.default).parsebytes(message.data)
    assert parsed["Subject"] == "Import finished: members.csv"
    body = text_of(message.data)
    assert "New members: 2" in body and "Skipped: 1" in body
    assert "Row 3:" in body  # the row that could not be imported, with its reason
    assert f"http://cop-mail.test/admin/imports/tasks/{task_id}" in body
    db.expire_all()
    assert db.get(BackgroundTask, dry_task_id).notice_sent_at is None
    assert db.scalars(select(BackgroundTask.id).where(BackgroundTask.notice_sent_at.is_not(None))).all() == [task_id]
