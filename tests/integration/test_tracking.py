"""Engagement tracking end to end, over real SMTP, RQ, the web app and both databases.

A campaign is sent by the RQ jobs to an SMTP sink; the links are read back out of the HTML the
members received and followed through the Flask test client, as a mail client would.
"""

from __future__ import annotations

import re
from datetime import timedelta
from email import policy
from email.parser import BytesParser

import pytest
from redis import Redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cop_mail import community, reports
from cop_mail.audience import privacy
from cop_mail.db import utcnow
from cop_mail.models import CampaignKind, Delivery, Member, MemberEvent, TrackedLink, TrackingEvent
from cop_mail.queues import SEND
from cop_mail.sending import campaigns
from cop_mail.sending.jobs import ring_plan
from cop_mail.settings import Settings
from cop_mail.tracking import links, stats
from tests.conftest import seed_list_members

BASE = "http://cop-mail.test"
PERSON = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.0"
APPLE_PROXY = "Mozilla/5.0"  # Apple Mail Privacy Protection fetches on delivery, read or not
GUIDE = "https://example.org/guide?a=1&b=2"
CALL = "https://example.org/call"
BODY = f"Read [the guide]({GUIDE}) or [write to us](mailto:hello@example.org)."


@pytest.fixture
def settings(make_settings, smtp_sink, redis_conn, engine) -> Settings:
    """The app, the jobs and this test share one configuration, sending to the sink."""
    return make_settings(smtp_port=smtp_sink.port)


def set_tracking(db: Session, on: bool) -> None:
    community.update(db, "owner@example.org", tracking_enabled=on)
    db.commit()


def send(db: Session, redis_conn: Redis, run_jobs, list_id: int, name: str, body: str = BODY, **content) -> int:
    campaign = campaigns.create_campaign(
        db,
        name=name,
        kind=content.pop("kind", "newsletter"),
        subject=name,
        actor="owner@example.org",
        content={"template": "message", "heading": name, "body": body, "button": None, **content},
        list_ids=[list_id],
    )
    db.commit()
    campaigns.send_now(db, campaign.id, "owner@example.org")
    db.commit()
    assert ring_plan(redis_conn, campaign.id)
    assert run_jobs((SEND,)) == 0
    return campaign.id


def received(smtp_sink, campaign_name: str) -> dict[str, tuple[str, str]]:
    """Recipient -> (HTML, text) of the messages of one campaign (its subject is its name)."""
    found = {}
    for message in smtp_sink.messages:
        parsed = BytesParser(policy=policy.default).parsebytes(message.data)
        if parsed["Subject"] == campaign_name:
            html = parsed.get_body(("html",)).get_content()
            text = parsed.get_body(("plain",)).get_content()
            found[message.rcpt_tos[0]] = (html, text)
    return found


def href_of(html: str, text: str) -> str:
    found = re.search(r'<a href="([^"]+)"[^>]*>\s*' + re.escape(text) + r"\s*</a>", html)
    assert found, f"no link {text!r} in the message"
    return found.group(1).replace("&amp;", "&")


def pixel_of(html: str) -> str:
    found = re.search(r'<img src="([^"]+)" width="1" height="1" alt=""', html)
    assert found, "no open pixel in the message"
    return found.group(1)


def path(url: str) -> str:
    assert url.startswith(BASE + "/t/"), url
    return url.removeprefix(BASE)


def events(db: Session) -> list[TrackingEvent]:
    db.expire_all()
    return list(db.scalars(select(TrackingEvent).order_by(TrackingEvent.id)))


def delivery_of(db: Session, campaign_id: int, member_id: int) -> Delivery:
    db.expire_all()
    return db.scalars(
        select(Delivery).where(Delivery.campaign_id == campaign_id, Delivery.member_id == member_id)
    ).one()


def sent_an_hour_ago(db: Session) -> None:
    for delivery in db.scalars(select(Delivery)):
        delivery.sent_at = delivery.data_sent_at = delivery.sent_at - timedelta(hours=1)
    db.commit()


def sent_seconds_ago(db: Session, seconds: float) -> None:
    """Pin the delivery time, so a slow test run cannot turn "seconds after delivery" into minutes."""
    for delivery in db.scalars(select(Delivery)):
        delivery.sent_at = delivery.data_sent_at = utcnow() - timedelta(seconds=seconds)
    db.commit()


def test_clicks_redirect_to_the_links_and_people_are_counted_apart_from_machines(
    db, engine, settings, client, redis_conn, run_jobs, smtp_sink
):
    list_id = seed_list_members(engine, 3)
    set_tracking(db, True)
    cid = send(db, redis_conn, run_jobs, list_id, "Autumn letter", button={"label": "Join the call", "url": CALL})
    smtp_sink.wait_for(3)
    mail = received(smtp_sink, "Autumn letter")
    html, text = mail["member1@example.org"]

    # Every web link is a redirect; mailto, unsubscribe and preference links are left as they were.
    guide, call = href_of(html, "the guide"), href_of(html, "Join the call")
    assert re.fullmatch(re.escape(BASE) + r"/t/c/[\w.-]+/\d+", guide) and call.startswith(BASE + "/t/c/")
    assert GUIDE not in html.replace("&amp;", "&") and 'href="mailto:hello@example.org"' in html
    assert href_of(html, "Unsubscribe").startswith(BASE + "/unsubscribe/")
    assert href_of(html, "Choose what you receive").startswith(BASE + "/preferences/")
    # The plain-text part keeps the real addresses.
    assert GUIDE in text and "/t/c/" not in text and "/t/o/" not in text
    stored = {link.url: link.position for link in db.scalars(select(TrackedLink).where(TrackedLink.campaign_id == cid))}
    assert stored == {BASE: 1, GUIDE: 2, CALL: 3}
    assert guide.endswith("/2") and call.endswith("/3")
    # Each member's links carry their own token.
    assert href_of(mail["member2@example.org"][0], "the guide") != guide

    # A click seconds after delivery is a link scanner: it redirects, but counts for no one.
    sent_seconds_ago(db, 2)
    response = client.get(path(guide), headers={"User-Agent": PERSON})
    assert response.status_code == 302 and response.headers["Location"] == GUIDE
    [scanner] = events(db)
    assert (scanner.kind, scanner.machine, scanner.machine_reason) == ("click", True, "clicked within 10 s of delivery")
    assert delivery_of(db, cid, 1).clicked_at is None

    # An hour later the member clicks: a human click, which also means the message was opened.
    sent_an_hour_ago(db)
    assert client.get(path(guide), headers={"User-Agent": PERSON}).headers["Location"] == GUIDE
    assert client.get(path(guide), headers={"User-Agent": PERSON}).status_code == 302
    first = delivery_of(db, cid, 1)
    assert first.clicked_at is not None and first.opened_at == first.clicked_at
    human = [e for e in events(db) if not e.machine]
    assert len(human) == 2 and {e.member_id for e in human} == {1} and human[0].client == "Thunderbird"
    # Only the first human click is an explicit action, for segments and the periphery.
    [action] = db.scalars(select(MemberEvent).where(MemberEvent.kind == "click")).all()
    assert action.explicit and action.member_id == 1 and action.detail["campaign_id"] == cid
    assert db.get(Member, 1).last_engaged_at == first.clicked_at

    # Apple's privacy proxy and a HEAD request fetch the pixel: machine opens; a person's open counts.
    pixel_2, pixel_3 = pixel_of(mail["member2@example.org"][0]), pixel_of(mail["member3@example.org"][0])
    proxied = client.get(path(pixel_2), headers={"User-Agent": APPLE_PROXY})
    assert proxied.status_code == 200 and proxied.mimetype == "image/gif"
    assert "no-store" in proxied.headers["Cache-Control"] and proxied.data.startswith(b"GIF89a")
    assert client.head(path(pixel_3), headers={"User-Agent": PERSON}).status_code == 200
    assert delivery_of(db, cid, 2).opened_at is None and delivery_of(db, cid, 3).opened_at is None
    machine_opens = [(e.member_id, e.machine_reason, e.client) for e in events(db) if e.kind == "open"]
    assert machine_opens == [
        (2, "privacy proxy", "Apple Mail privacy protection"),
        (3, "HEAD request (a link checker)", "Link checker"),
    ]
    client.get(path(pixel_2), headers={"User-Agent": PERSON})
    assert delivery_of(db, cid, 2).opened_at is not None

    # Counted per delivery, people apart from machines, and per link.
    figures = stats.campaign_stats(db, cid)
    assert (figures.opened, figures.clicked, figures.machine_opened, figures.machine_clicked) == (2, 1, 2, 1)
    by_url = {link.url: (link.people, link.clicks, link.machine) for link in figures.links}
    assert by_url == {GUIDE: (1, 2, 1), CALL: (0, 0, 0), BASE: (0, 0, 0)}
    assert figures.links[0].url == GUIDE and figures.links[0].label == "the guide"
    assert reports.campaign_report(db, cid).tracking == figures


def test_tampered_tokens_and_links_the_message_never_had_are_refused(
    db, engine, settings, client, redis_conn, run_jobs, smtp_sink
):
    list_id = seed_list_members(engine, 1)
    set_tracking(db, True)
    short = send(db, redis_conn, run_jobs, list_id, "Short letter", body=f"Only [one link]({GUIDE}).")
    long_body = " ".join(f"[link {n}](https://example.org/{n})" for n in range(1, 6))
    long = send(db, redis_conn, run_jobs, list_id, "Long letter", body=long_body)
    smtp_sink.wait_for(2)
    html = received(smtp_sink, "Short letter")["member1@example.org"][0]
    link = path(href_of(html, "one link"))
    token, position = link.split("/")[3:]
    last_short = db.scalar(select(func.max(TrackedLink.position)).where(TrackedLink.campaign_id == short))
    last_long = db.scalar(select(func.max(TrackedLink.position)).where(TrackedLink.campaign_id == long))
    assert int(position) == last_short == 2 and last_long == 6

    tampered = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
    refused = [
        f"/t/c/{tampered}/{position}",  # the signature no longer matches
        f"/t/c/not-a-token/{position}",
        f"/t/c/{token}/{last_long}",  # a position only the other campaign's message has
        f"/t/c/{token}/0",
        f"/t/c/{token}/99999999999999999999",
        f"/t/c/{token}.{token}/{position}",
    ]
    for url in refused:
        response = client.get(url, headers={"User-Agent": PERSON})
        assert response.status_code == 404, url
        assert "Location" not in response.headers
        assert "This link does not lead anywhere" in response.get_data(as_text=True)
    # A tampered pixel still answers with the image, and records nothing.
    image = client.get(f"/t/o/{tampered}.gif", headers={"User-Agent": PERSON})
    assert image.status_code == 200 and image.mimetype == "image/gif"
    assert client.get("/t/o/%00%ff.gif").status_code == 200
    assert events(db) == []
    assert client.get(link, headers={"User-Agent": PERSON}).headers["Location"] == GUIDE


def test_with_tracking_off_mail_has_plain_links_and_old_links_redirect_without_counting(
    db, engine, settings, client, redis_conn, run_jobs, smtp_sink
):
    list_id = seed_list_members(engine, 1)
    untracked = send(db, redis_conn, run_jobs, list_id, "Plain letter")
    html = received(smtp_sink, "Plain letter")["member1@example.org"][0]
    assert "/t/c/" not in html and "/t/o/" not in html
    assert href_of(html, "the guide") == GUIDE
    assert db.scalar(select(func.count()).select_from(TrackedLink).where(TrackedLink.campaign_id == untracked)) == 0

    set_tracking(db, True)
    send(db, redis_conn, run_jobs, list_id, "Tracked letter")
    tracked = received(smtp_sink, "Tracked letter")["member1@example.org"][0]
    set_tracking(db, False)
    sent_an_hour_ago(db)
    response = client.get(path(href_of(tracked, "the guide")), headers={"User-Agent": PERSON})
    assert response.status_code == 302 and response.headers["Location"] == GUIDE
    assert client.get(path(pixel_of(tracked)), headers={"User-Agent": PERSON}).status_code == 200
    assert events(db) == [] and db.scalar(select(func.count(Delivery.opened_at))) == 0


def test_an_erased_members_tracking_loses_their_name_and_nothing_more_is_recorded(
    db, engine, settings, client, redis_conn, run_jobs, smtp_sink
):
    list_id = seed_list_members(engine, 1)
    set_tracking(db, True)
    send(db, redis_conn, run_jobs, list_id, "Autumn letter")
    guide = path(href_of(received(smtp_sink, "Autumn letter")["member1@example.org"][0], "the guide"))
    sent_an_hour_ago(db)
    client.get(guide, headers={"User-Agent": PERSON})

    exported = privacy.export_member(db, 1)
    [row] = exported["other"]["tracking_events"]
    assert (row["kind"], row["machine"], row["client"]) == ("click", False, "Thunderbird")
    privacy.erase_member(db, 1)
    db.commit()
    assert [e.member_id for e in events(db)] == [None]
    # The link in the old mail still works, and tells us nothing more.
    assert client.get(guide, headers={"User-Agent": PERSON}).headers["Location"] == GUIDE
    assert len(events(db)) == 1


def test_only_bulk_campaigns_are_tracked(db, engine, settings):
    set_tracking(db, True)

    def compiled() -> object:
        raise AssertionError("an untracked kind is never compiled for tracking")

    with engine.connect() as conn:
        assert links.plan_links(conn, 1, CampaignKind.INTRO, compiled) is None  # type: ignore[arg-type]
        assert links.plan_links(conn, 1, CampaignKind.TRANSACTIONAL, compiled) is None  # type: ignore[arg-type]
