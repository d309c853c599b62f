"""The campaigns admin: create and send from a form, live progress, the delivery log, steering buttons."""

from __future__ import annotations

from rq import Queue
from sqlalchemy import select, update

from cop_mail.models import AuditEvent, Campaign, CampaignStatus, Delivery, DeliveryStatus
from cop_mail.queues import SEND
from cop_mail.sending import campaigns, planner
from tests.conftest import csrf_token_from, seed_list_members


def form(client, list_id: int, **fields) -> dict:
    token = csrf_token_from(client.get("/admin/campaigns/new").get_data(as_text=True))
    data = {
        "csrf_token": token,
        "name": "Autumn letter",
        "kind": "newsletter",
        "subject": "Hello {{ member.first_name | default('friend') }}",
        "preheader": "What we learned this season",
        "heading": "Autumn",
        "body": "We met **twelve** times.",
        "list_ids": [str(list_id)],
        "when": "draft",
        "timezone": "UTC",
    }
    data.update(fields)
    return data


def sending_campaign(db, engine, members: int = 3) -> int:
    list_id = seed_list_members(engine, members)
    campaign = campaigns.create_campaign(
        db, name="Letter", kind="newsletter", subject="Hi", actor="x", list_ids=[list_id],
        content={"template": "message", "heading": "Hi", "body": "Body", "button": None},
    )  # fmt: skip
    campaigns.send_now(db, campaign.id, "x")
    db.commit()
    planner.plan_campaign(db, campaign.id)
    return campaign.id


def test_pages_need_a_login(client):
    for path in ("/admin/campaigns", "/admin/campaigns/new", "/admin/campaigns/1", "/admin/campaigns/1/progress.json"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_create_a_draft_then_send_it(client, login, db, engine, redis_conn):
    login("coordinator")
    list_id = seed_list_members(engine, 2)
    response = client.post("/admin/campaigns/new", data=form(client, list_id))
    assert response.status_code == 302
    campaign = db.scalar(select(Campaign))
    assert (campaign.status, campaign.name, campaign.list_ids) == ("draft", "Autumn letter", [list_id])
    assert campaign.content["body"] == "We met **twelve** times."

    page = client.get(f"/admin/campaigns/{campaign.id}").get_data(as_text=True)
    token = csrf_token_from(page)
    response = client.post(f"/admin/campaigns/{campaign.id}/send", data={"csrf_token": token})
    assert response.status_code == 302
    db.expire_all()
    assert db.get(Campaign, campaign.id).status == CampaignStatus.SENDING
    assert f"plan-{campaign.id}" in Queue(SEND, connection=redis_conn).get_job_ids()
    actions = set(db.scalars(select(AuditEvent.action)))
    assert {"campaign.create", "campaign.send"} <= actions


def test_send_now_from_the_form_rings_the_planner(client, login, db, engine, redis_conn):
    login("coordinator")
    list_id = seed_list_members(engine, 2)
    client.post("/admin/campaigns/new", data=form(client, list_id, when="now"))
    campaign = db.scalar(select(Campaign))
    assert campaign.status == CampaignStatus.SENDING
    assert Queue(SEND, connection=redis_conn).get_job_ids() == [f"plan-{campaign.id}"]


def test_schedule_in_a_time_zone_from_the_form(client, login, db, engine):
    login("coordinator")
    list_id = seed_list_members(engine, 1)
    data = form(client, list_id, when="schedule", send_at="2099-06-01T09:30", timezone="Europe/Lisbon")
    client.post("/admin/campaigns/new", data=data)
    campaign = db.scalar(select(Campaign))
    assert campaign.status == CampaignStatus.SCHEDULED
    assert (campaign.scheduled_at.hour, campaign.scheduled_at.minute) == (8, 30)  # 09:30 WEST is 08:30 UTC


def test_form_problems_are_shown_and_nothing_is_kept(client, login, db, engine):
    login("coordinator")
    list_id = seed_list_members(engine, 1)
    response = client.post("/admin/campaigns/new", data=form(client, list_id, body="{{ broken", when="now"))
    assert response.status_code == 400
    assert "cannot be built" in response.get_data(as_text=True)
    response = client.post("/admin/campaigns/new", data=form(client, list_id, list_ids=[], when="now"))
    assert "list or segment" in response.get_data(as_text=True)
    assert db.scalar(select(Campaign)) is None


def test_progress_json_and_page(client, login, db, engine):
    login("viewer")
    campaign_id = sending_campaign(db, engine, members=4)
    db.execute(update(Delivery).where(Delivery.member_id.in_([1, 2])).values(status="sent"))
    db.execute(update(Delivery).where(Delivery.member_id == 3).values(status="uncertain"))
    db.commit()

    data = client.get(f"/admin/campaigns/{campaign_id}/progress.json").get_json()
    assert {k: data[k] for k in ("total", "sent", "uncertain", "remaining", "percent", "status")} == {
        "total": 4, "sent": 2, "uncertain": 1, "remaining": 1, "percent": 75.0, "status": "sending",
    }  # fmt: skip
    assert "rate_per_second" in data and "eta" in data
    page = client.get(f"/admin/campaigns/{campaign_id}").get_data(as_text=True)
    assert "<progress" in page and "Uncertain" in page


def test_delivery_log_filters_and_pages(client, login, db, engine):
    login("viewer")
    campaign_id = sending_campaign(db, engine, members=60)
    db.execute(update(Delivery).where(Delivery.member_id <= 55).values(status="sent"))
    db.execute(update(Delivery).where(Delivery.member_id == 7).values(status="failed", last_error="550 no such user"))
    db.commit()
    page = client.get(f"/admin/campaigns/{campaign_id}?status=failed").get_data(as_text=True)
    assert "member7@example.org" in page and "550 no such user" in page and "member8@example.org" not in page
    page = client.get(f"/admin/campaigns/{campaign_id}?q=member59").get_data(as_text=True)
    assert "member59@example.org" in page and "1 delivery." in page
    first = client.get(f"/admin/campaigns/{campaign_id}").get_data(as_text=True)
    second = client.get(f"/admin/campaigns/{campaign_id}?page=2").get_data(as_text=True)
    assert "Page 1 of 2" in first and "member60@example.org" in second and "member60@example.org" not in first


def test_pause_resume_cancel_buttons(client, login, db, engine, redis_conn):
    login("coordinator")
    campaign_id = sending_campaign(db, engine)
    token = csrf_token_from(client.get(f"/admin/campaigns/{campaign_id}").get_data(as_text=True))
    client.post(f"/admin/campaigns/{campaign_id}/pause", data={"csrf_token": token})
    db.expire_all()
    assert db.get(Campaign, campaign_id).status == CampaignStatus.PAUSED
    client.post(f"/admin/campaigns/{campaign_id}/resume", data={"csrf_token": token})
    db.expire_all()
    assert db.get(Campaign, campaign_id).status == CampaignStatus.SENDING
    assert any(j.startswith(f"send-{campaign_id}-") for j in Queue(SEND, connection=redis_conn).get_job_ids())
    client.post(f"/admin/campaigns/{campaign_id}/cancel", data={"csrf_token": token})
    db.expire_all()
    assert db.get(Campaign, campaign_id).status == CampaignStatus.CANCELLED
    response = client.post(f"/admin/campaigns/{campaign_id}/resume", data={"csrf_token": token}, follow_redirects=True)
    assert "cannot become sending" in response.get_data(as_text=True)


def test_retry_failed_button(client, login, db, engine):
    login("coordinator")
    campaign_id = sending_campaign(db, engine)
    db.execute(update(Delivery).values(status="sent"))
    db.execute(update(Delivery).where(Delivery.member_id == 2).values(status="failed", bounce_type="soft"))
    db.execute(update(Campaign).values(status="sent"))
    db.commit()
    page = client.get(f"/admin/campaigns/{campaign_id}").get_data(as_text=True)
    assert "Retry failed" in page
    client.post(f"/admin/campaigns/{campaign_id}/retry-failed", data={"csrf_token": csrf_token_from(page)})
    assert db.scalar(select(Delivery.status).where(Delivery.member_id == 2)) == DeliveryStatus.QUEUED


def test_viewers_see_but_cannot_steer(client, login, db, engine):
    login("viewer")
    campaign_id = sending_campaign(db, engine)
    page = client.get(f"/admin/campaigns/{campaign_id}").get_data(as_text=True)
    token = csrf_token_from(page)
    assert client.post(f"/admin/campaigns/{campaign_id}/pause", data={"csrf_token": token}).status_code == 403
    assert client.get("/admin/campaigns/new").status_code == 403


def test_buttons_need_a_csrf_token(client, login, db, engine):
    login("coordinator")
    campaign_id = sending_campaign(db, engine)
    assert client.post(f"/admin/campaigns/{campaign_id}/pause").status_code == 400
    assert db.get(Campaign, campaign_id).status == CampaignStatus.SENDING


def test_list_page_and_navigation(client, login, db, engine):
    login("viewer")
    sending_campaign(db, engine)
    page = client.get("/admin/campaigns").get_data(as_text=True)
    assert "Letter" in page and 'href="/admin/campaigns"' in page
