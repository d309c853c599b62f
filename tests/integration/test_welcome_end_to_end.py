"""The automations working together, on SQLite and PostgreSQL, through a real SMTP server, real RQ
jobs and a real HTTP webhook receiver.

A website creates a member through the REST API; the member enters the welcome journey and its
first step (the welcome message) arrives by SMTP. After a simulated wait the second mail step
(an introduction) goes out. The community's attention budget (2 emails a week) then holds back a
newsletter that would be the member's third email, shows why, and sends it when the window has
room. The registered webhook receives the member's subscription and the campaign's end, signed
so that they verify.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from email import policy
from email.parser import BytesParser

import pytest
from sqlalchemy import select, update

from cop_mail import community, reports
from cop_mail.db import utcnow
from cop_mail.integrations import tokens, webhooks
from cop_mail.integrations.jobs import webhook_retry_job
from cop_mail.journeys import definitions, runner, welcome
from cop_mail.journeys import jobs as journey_jobs
from cop_mail.models import (
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    JourneyStepRun,
    ListMembership,
    MailingList,
    Value,
)
from cop_mail.queues import DEFAULT, HIGH, SEND, enqueue
from cop_mail.sending import campaigns
from cop_mail.sending.jobs import reconcile_job, ring_plan
from tests.conftest import add_member
from tests.integration.test_webhooks import Receiver

NEWSLETTER = "What care looks like in practice"


@pytest.fixture
def settings(make_settings, redis_conn, engine, smtp_sink):
    return make_settings(smtp_port=smtp_sink.port)


@pytest.fixture
def receiver():
    server = Receiver()
    server.start()
    yield server
    server.stop()


def subjects_to(smtp_sink, address: str) -> list[str]:
    parser = BytesParser(policy=policy.default)
    return [str(parser.parsebytes(m.data)["Subject"]) for m in smtp_sink.messages if address in m.rcpt_tos]


def verifies(secret: str, header: str, body: bytes) -> bool:
    """Check a signature the way a receiving system would, without cop-mail's code."""
    parts = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


def test_api_member_welcome_journey_attention_budget_and_signed_webhooks(
    db, client, settings, redis_conn, run_jobs, smtp_sink, receiver
):
    # The community: a list, a value, a peer to be introduced to, a 2-a-week budget, the welcome
    # journey switched on, and a webhook for subscriptions and finished campaigns.
    everyone = MailingList(name="Everyone", slug="everyone", opt_in="single", public=True)
    care = Value(name="Care", description="We look after one another.", position=1)
    db.add_all([everyone, care])
    db.flush()
    ben = add_member(db, "Ben Okafor", values=("Care",), practices=("Gardening",))
    # Ben was on the list before the journey existed, so he is not in it.
    db.add(ListMembership(list_id=everyone.id, member_id=ben.id, status="subscribed"))
    db.commit()
    community.update(db, "owner@example.org", budget_max_emails=2, budget_window_days=7)
    journey = welcome.ensure_welcome_journey(db)
    definitions.set_active(db, journey.id, True)
    hook = webhooks.register_webhook(db, receiver.url, ("member.subscribed", "campaign.sent"), "owner@example.org")
    _, secret = tokens.create_token(db, "website", ("members:write", "campaigns:read"), "owner@example.org")
    db.commit()
    api = {"Authorization": f"Bearer {secret}"}

    # 1. The website creates Ana through the API, on the list.
    response = client.post(
        "/api/members",
        json={"email": "ana@example.org", "name": "Ana Lima", "list_ids": [everyone.id], "value_ids": [care.id]},
        headers=api,
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    ana_id = response.get_json()["member"]["id"]

    # 2. The journey's first step, the welcome message, arrives through SMTP.
    enqueue(redis_conn, journey_jobs.advance_journeys_job, queue=DEFAULT)
    assert run_jobs() == 0
    smtp_sink.wait_for(1)
    assert subjects_to(smtp_sink, "ana@example.org") == ["Ana, welcome to Test Community"]

    # 3. Three days later (simulated), the next mail step: an introduction to Ben.
    done = runner.advance_due(db, settings, now=utcnow() + timedelta(days=3, minutes=1))
    journey_jobs.ring(redis_conn, done)
    assert done.steps_taken == 1
    assert run_jobs() == 0
    smtp_sink.wait_for(3)
    assert subjects_to(smtp_sink, "ana@example.org")[-1] == "Would you like to meet Ben Okafor?"
    assert subjects_to(smtp_sink, "ben.okafor@example.org") == ["Would you like to meet Ana Lima?"]
    taken = db.scalars(select(JourneyStepRun.kind).where(JourneyStepRun.member_id == ana_id)).all()
    assert sorted(taken) == ["offer_intro", "send_template", "wait"]

    # 4. A newsletter to the list: Ana has had her two emails this week, so hers is held; Ben's goes.
    newsletter = campaigns.create_campaign(
        db, name=NEWSLETTER, kind="newsletter", subject=NEWSLETTER, actor="owner@example.org",
        content={"template": "message", "heading": NEWSLETTER, "body": "Care, in practice.", "button": None},
        list_ids=[everyone.id],
    )  # fmt: skip
    db.commit()
    campaigns.send_now(db, newsletter.id, "owner@example.org")
    db.commit()
    assert ring_plan(redis_conn, newsletter.id)
    assert run_jobs((SEND,)) == 0
    smtp_sink.wait_for(4)
    assert subjects_to(smtp_sink, "ben.okafor@example.org")[-1] == NEWSLETTER
    assert NEWSLETTER not in subjects_to(smtp_sink, "ana@example.org")
    db.expire_all()
    held = db.scalars(select(Delivery).where(Delivery.campaign_id == newsletter.id, Delivery.member_id == ana_id)).one()
    assert held.status == DeliveryStatus.HELD and held.next_attempt_at > utcnow() + timedelta(days=6)
    assert held.last_error.startswith("Attention budget (2 emails per 7 days)")
    # The coordinator sees it: the campaign keeps sending, the report and the API count it held.
    assert db.get(Campaign, newsletter.id).status == CampaignStatus.SENDING
    assert reports.campaign_report(db, newsletter.id).by_status["held"] == 1
    stats = client.get(f"/api/campaigns/{newsletter.id}/stats", headers=api).get_json()
    assert (stats["sent"], stats["held"], stats["status"]) == (1, 1, "sending")

    # 5. A week on, Ana's window has room: the periodic reconcile sends the held newsletter.
    week_ago = utcnow() - timedelta(days=7, minutes=5)
    db.execute(update(Delivery).where(Delivery.status == DeliveryStatus.SENT).values(sent_at=week_ago))
    db.execute(update(Delivery).where(Delivery.id == held.id).values(next_attempt_at=utcnow()))
    db.commit()
    enqueue(redis_conn, reconcile_job, queue=HIGH)
    assert run_jobs() == 0
    smtp_sink.wait_for(5)
    assert subjects_to(smtp_sink, "ana@example.org")[-1] == NEWSLETTER
    db.expire_all()
    assert db.get(Delivery, held.id).status == DeliveryStatus.SENT
    assert db.get(Campaign, newsletter.id).status == CampaignStatus.SENT

    # 6. The webhook received the subscription and the finished campaign, each signed and verifiable.
    enqueue(redis_conn, webhook_retry_job, queue=DEFAULT)  # the periodic job rings for events not yet sent
    assert run_jobs() == 0
    received = {request.json["event"]: request for request in receiver.requests}
    assert set(received) == {"member.subscribed", "campaign.sent"}, [r.json for r in receiver.requests]
    assert received["member.subscribed"].json["data"]["member"]["email"] == "ana@example.org"
    assert received["campaign.sent"].json["data"]["campaign"]["id"] == newsletter.id
    for request in received.values():
        assert verifies(hook.secret, request.headers["X-Cop-Mail-Signature"], request.body)
        assert webhooks.verify_signature(hook.secret, request.headers["X-Cop-Mail-Signature"], request.body)
        assert not verifies("another secret", request.headers["X-Cop-Mail-Signature"], request.body)
