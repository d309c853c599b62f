"""`cop-mail campaigns ...` against a real database and Redis."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from rq import Queue
from sqlalchemy import update

from cop_mail.cli import main
from cop_mail.models import Campaign, CampaignStatus, Delivery
from cop_mail.queues import SEND
from cop_mail.sending import campaigns, planner
from tests.conftest import seed_list_members


@pytest.fixture
def cli(settings, monkeypatch):
    for name in settings.field_names():
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("SECRET_KEY", settings.secret_key)
    monkeypatch.setenv("INSTANCE_PATH", str(settings.instance_path))
    runner = CliRunner()
    return lambda *args: runner.invoke(main, ["campaigns", *args], catch_exceptions=False)


def draft(db, engine, members: int = 3) -> int:
    list_id = seed_list_members(engine, members)
    campaign = campaigns.create_campaign(
        db, name="Winter letter", kind="newsletter", subject="Hi", actor="x", list_ids=[list_id],
        content={"template": "message", "heading": "Hi", "body": "Body", "button": None},
    )  # fmt: skip
    db.commit()
    return campaign.id


def test_send_status_pause_resume_cancel(cli, db, engine, redis_conn):
    campaign_id = draft(db, engine)
    result = cli("send", str(campaign_id))
    assert result.exit_code == 0, result.output
    assert "Status: sending" in result.output
    assert Queue(SEND, connection=redis_conn).get_job_ids() == [f"plan-{campaign_id}"]

    planner.plan_campaign(db, campaign_id)
    db.execute(update(Delivery).where(Delivery.member_id == 1).values(status="sent"))
    db.commit()
    result = cli("status", str(campaign_id))
    assert "Sent: 1" in result.output and "Remaining: 2" in result.output and "Recipients: 3" in result.output
    assert "ETA" in result.output

    assert "Status: paused" in cli("pause", str(campaign_id)).output
    assert "Status: sending" in cli("resume", str(campaign_id)).output
    assert "Status: cancelled" in cli("cancel", str(campaign_id)).output
    db.expire_all()
    assert db.get(Campaign, campaign_id).status == CampaignStatus.CANCELLED
    assert [c.actor for c in campaigns.status_history(db, campaign_id)] == ["cli"] * 4


def test_list_and_readable_errors(cli, db, engine):
    assert "No campaigns yet." in cli("list").output
    campaign_id = draft(db, engine)
    assert "Winter letter" in cli("list").output
    result = cli("resume", str(campaign_id))
    assert result.exit_code == 1 and "Error: a draft campaign cannot become sending" in result.output
    result = cli("status", "999")
    assert result.exit_code == 1 and "there is no campaign 999" in result.output
