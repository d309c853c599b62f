"""Issue 8 end to end, over real SMTP, RQ, the web app and both databases:

a member emails a story with a picture to the stories address -> the inbound receiver stores it and
a job turns it into a story -> a coordinator approves it as public in the admin -> the author confirms
through the signed link -> a coordinator makes a roundup and sends it -> the planner queues the roundup
for the list -> the archive page and the Atom feed show the story -> the author withdraws consent ->
it is gone from both, and from the roundup's archive page.
"""

from __future__ import annotations

import re
import smtplib
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import feedparser
from sqlalchemy import select
from sqlalchemy.orm import Session

from cop_mail import jobs
from cop_mail.inbound import receiver
from cop_mail.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Delivery,
    InboundMessage,
    ListMembership,
    MailingList,
    Member,
    MemberEvent,
    Story,
    StoryStatus,
)
from cop_mail.queues import HIGH, SEND
from cop_mail.settings import Settings
from cop_mail.stories import links
from tests.conftest import csrf_token_from, free_port
from tests.integration.test_stories import add_value, png_bytes


def message_text(raw: bytes) -> str:
    """The decoded text and HTML parts of a sent message, joined."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    return "\n".join(part.get_content() for part in message.walk() if part.get_content_maintype() == "text")


def story_email(to: str) -> bytes:
    message = EmailMessage()
    message["From"] = "Amira Haddad <amira@example.net>"
    message["To"] = to
    message["Subject"] = "Fwd: The handover question"
    message["Message-ID"] = "<story-1@example.net>"
    message.set_content(
        "When the storm came we asked one question at every handover: who is carrying too much?\n\nValues: Care\n"
    )
    message.add_attachment(png_bytes(120, 80), maintype="image", subtype="png", filename="storm.png")
    return message.as_bytes()


def test_a_story_goes_from_an_email_to_the_archive_and_leaves_it_when_withdrawn(
    client, login, db: Session, settings: Settings, make_settings, redis_conn, run_jobs, smtp_sink, monkeypatch
) -> None:
    add_value(db, "Care")
    author = Member(email="amira@example.net", name="Amira Haddad")
    reader = Member(email="jonas@example.net", name="Jonas Øberg")
    everyone = MailingList(name="Everyone", slug="everyone", opt_in="single")
    db.add_all([author, reader, everyone])
    db.flush()
    db.add_all([ListMembership(list_id=everyone.id, member_id=m.id, status="subscribed") for m in (author, reader)])
    db.commit()

    # 1. The member emails the story, with a picture, to the stories address over SMTP.
    port = free_port()
    inbound = receiver.start(make_settings(inbound_port=port), "127.0.0.1", port)
    try:
        stories_address = f"{settings.stories_local_part}@{settings.mail_domain}"
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.sendmail("amira@example.net", [stories_address], story_email(stories_address))
    finally:
        inbound.stop()
    assert run_jobs((HIGH,)) == 0
    inbound_row = db.scalars(select(InboundMessage)).one()
    assert inbound_row.status == "processed", inbound_row.reason
    story = db.scalars(select(Story)).one()
    assert (story.author_id, story.status, story.source) == (author.id, StoryStatus.SUBMITTED, "email")
    assert story.title == "The handover question" and [v.name for v in story.values] == ["Care"]
    assert len(story.images) == 1 and story.images[0].width == 120
    assert story.consent == "members_only"  # email cannot show the sharing choice

    # 2. A coordinator approves it as public: the author is asked first.
    login("coordinator")
    csrf = csrf_token_from(client.get(f"/admin/stories/{story.id}").get_data(as_text=True))
    client.post(f"/admin/stories/{story.id}/approve", data={"csrf_token": csrf, "share_as": "public"})
    db.expire_all()
    assert story.status == StoryStatus.PENDING_AUTHOR_CONFIRMATION
    assert client.get(f"/archive/stories/{story.id}").status_code == 404
    confirm_message = db.scalars(select(Campaign).where(Campaign.kind == CampaignKind.TRANSACTIONAL)).one()
    assert confirm_message.content["context"] == {"story_id": story.id, "version": story.proposal_version}

    # 3. The author follows the link from that email and agrees.
    confirm = links.confirm_url(settings, story.id, author.id, story.proposal_version).removeprefix(settings.public_url)
    html = client.get(confirm).get_data(as_text=True)
    assert "Public, with my name" in html
    client.post(confirm, data={"csrf_token": csrf_token_from(html), "action": "confirm"})
    db.expire_all()
    assert story.status == StoryStatus.APPROVED and story.is_public

    # 4. A roundup is made and sent to the list; the planner queues it for both members.
    roundups_page = client.get("/admin/roundups").get_data(as_text=True)
    client.post(
        "/admin/roundups",
        data={
            "csrf_token": csrf_token_from(roundups_page), "title": "Stories from November", "subject": "November",
            "mode": "since", "list_ids": [str(everyone.id)], "send_now": "1",
        },
    )  # fmt: skip
    roundup_campaign = db.scalars(select(Campaign).where(Campaign.kind == CampaignKind.ROUNDUP)).one()
    assert roundup_campaign.status == CampaignStatus.SENDING
    cards = [card for group in roundup_campaign.content["groups"] for card in group["stories"]]
    assert [(c["title"], c["storyteller"]) for c in cards] == [("The handover question", "Amira Haddad")]
    monkeypatch.setenv("SMTP_PORT", str(smtp_sink.port))
    jobs.reset_process_state()
    assert run_jobs((SEND,)) == 0
    planned = db.scalars(select(Delivery.member_id).where(Delivery.campaign_id == roundup_campaign.id)).all()
    assert sorted(planned) == sorted([author.id, reader.id])
    received = smtp_sink.wait_for(2)
    assert sorted(rcpt for m in received for rcpt in m.rcpt_tos) == ["amira@example.net", "jonas@example.net"]
    to_jonas = next(m for m in received if m.rcpt_tos == ["jonas@example.net"])
    body = message_text(to_jonas.data)
    assert "The handover question" in body and "Amira Haddad" in body
    assert f"/stories/{story.id}/meet/" in body  # "meet the storyteller"
    db.expire_all()
    assert roundup_campaign.status == CampaignStatus.SENT

    # 5. The archive and the feed show the story and the roundup.
    assert "The handover question" in client.get("/archive").get_data(as_text=True)
    assert "Told by Amira Haddad" in client.get(f"/archive/stories/{story.id}").get_data(as_text=True)
    feed = feedparser.parse(client.get("/archive/feed.atom").data)
    assert feed.bozo == 0 and sorted(e.title for e in feed.entries) == ["November", "The handover question"]

    # Jonas asks to meet the storyteller by the link in his copy of the roundup.
    found = re.search(rf"{re.escape(settings.public_url)}/stories/{story.id}/meet/([A-Za-z0-9_.\-]+)", body)
    assert found, "the roundup has no filled 'meet the storyteller' link"
    # Signed tokens carry their signing time, so compare what the token says, not its bytes.
    assert links.read_meet_token(settings, found.group(1)) == reader.id
    meet_path = found.group(0).removeprefix(settings.public_url)
    client.post(meet_path, data={"csrf_token": csrf_token_from(client.get(meet_path).get_data(as_text=True))})
    request = db.scalars(select(MemberEvent).where(MemberEvent.kind == "intro_request")).one()
    assert (request.member_id, request.detail["with_member_id"]) == (reader.id, author.id)

    issue_page = client.get(f"/archive/issues/{roundup_campaign.id}").get_data(as_text=True)
    assert "The handover question" in issue_page

    # 6. The author withdraws consent: gone from the archive, the feed and the roundup's page at once.
    withdraw = links.withdraw_url(settings, story.id, author.id).removeprefix(settings.public_url)
    html = client.get(withdraw).get_data(as_text=True)
    client.post(withdraw, data={"csrf_token": csrf_token_from(html)})
    assert client.get(f"/archive/stories/{story.id}").status_code == 410
    assert "The handover question" not in client.get("/archive").get_data(as_text=True)
    assert "The handover question" not in client.get(f"/archive/issues/{roundup_campaign.id}").get_data(as_text=True)
    feed = feedparser.parse(client.get("/archive/feed.atom").data)
    assert feed.bozo == 0
    assert [entry.title for entry in feed.entries] == ["November"]  # the roundup stays, the story is gone
    assert "The handover question" not in client.get("/archive/feed.atom").get_data(as_text=True)
