"""Unsubscribing: RFC 8058 one-click exactly as a mailbox provider sends it, and the page with a button.

The one-click POST is tested through the Flask test client and through a real HTTP
server (werkzeug's make_server in a thread) with urllib: no cookies, no redirect, 200.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select
from werkzeug.serving import make_server

from cop_mail.audience import links
from cop_mail.audience.suppression import member_can_receive, receivable_clause
from cop_mail.db import utcnow
from cop_mail.models import ConsentEvent, ListMembership, MailingList, Member
from tests.conftest import csrf_token_from

ONE_CLICK = b"List-Unsubscribe=One-Click"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def member(db) -> Member:
    mailing_list = MailingList(name="Practitioners", slug="practitioners", public=True)
    member = Member(email="ana@example.org", name="Ana", attributes={})
    db.add_all([mailing_list, member])
    db.flush()
    db.add(ListMembership(list_id=mailing_list.id, member_id=member.id, status="subscribed"))
    db.commit()
    return member


def path_of(url: str) -> str:
    return url.split("cop-mail.test", 1)[1]


def fresh(db, member_id: int) -> Member:
    db.expire_all()
    return db.get(Member, member_id)


def consents(db, member_id: int) -> list[ConsentEvent]:
    return list(db.scalars(select(ConsentEvent).where(ConsentEvent.member_id == member_id).order_by(ConsentEvent.id)))


def test_one_click_post_unsubscribes_that_stream_with_200_and_no_cookie(app, db, settings, member):
    url = links.unsubscribe_url(settings, member.id, "newsletters", campaign_id=42)
    client = app.test_client(use_cookies=False)
    response = client.post(path_of(url), data=ONE_CLICK, content_type=FORM, environ_base={"REMOTE_ADDR": "192.0.2.44"})
    assert response.status_code == 200
    assert "Location" not in response.headers and "Set-Cookie" not in response.headers
    assert "unsubscribed from newsletters" in response.get_data(as_text=True)
    ana = fresh(db, member.id)
    assert ana.wants_newsletters is False and ana.wants_intros is True and ana.status == "active"
    [event] = consents(db, member.id)
    assert (event.kind, event.stream, event.ip) == ("stream_off", "newsletters", "192.0.2.44")
    assert event.detail == {"source": "one-click", "campaign_id": 42}
    # Mailbox providers may retry: a second POST is still a 200 and records nothing new.
    assert client.post(path_of(url), data=ONE_CLICK, content_type=FORM).status_code == 200
    assert len(consents(db, member.id)) == 1


def test_one_click_takes_effect_for_mail_not_yet_sent(app, db, settings, member):
    assert member_can_receive(db, member.id, "roundups")
    url = links.unsubscribe_url(settings, member.id, "roundups")
    assert app.test_client().post(path_of(url), data=ONE_CLICK, content_type=FORM).status_code == 200
    db.expire_all()
    # The send-time checks (one member, and the SQL the batch claims use) see it at once.
    assert not member_can_receive(db, member.id, "roundups")
    assert member.id not in set(db.scalars(select(Member.id).where(receivable_clause("roundups"))))
    assert member_can_receive(db, member.id, "newsletters")


def test_one_click_on_the_everything_url_unsubscribes_from_all_mail(app, db, settings, member):
    url = links.unsubscribe_all_url(settings, member.id)
    response = app.test_client(use_cookies=False).post(path_of(url), data=ONE_CLICK, content_type=FORM)
    assert response.status_code == 200 and "Set-Cookie" not in response.headers
    ana = fresh(db, member.id)
    assert ana.status == "unsubscribed"
    assert db.scalar(select(ListMembership.status)) == "unsubscribed"
    assert [e.kind for e in consents(db, member.id)] == ["unsubscribed_all"]
    for stream in ("newsletters", "intros", "roundups", "resources"):
        assert not member_can_receive(db, member.id, stream)


def test_one_click_as_multipart_form_data_also_works(app, db, settings, member):
    url = links.unsubscribe_url(settings, member.id, "resources")
    response = app.test_client(use_cookies=False).post(
        path_of(url), data={"List-Unsubscribe": "One-Click"}, content_type="multipart/form-data"
    )
    assert response.status_code == 200
    assert fresh(db, member.id).wants_resources is False


@pytest.fixture
def live_server(app) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None  # a redirect surfaces as an HTTPError instead of being followed


def test_one_click_through_a_real_http_server_as_a_mailbox_provider_sends_it(live_server, db, settings, member):
    url = live_server + path_of(links.unsubscribe_url(settings, member.id, "intros"))
    request = urllib.request.Request(
        url,
        data=ONE_CLICK,
        method="POST",
        headers={"Content-Type": FORM, "User-Agent": "Mailbox-Provider-Unsubscriber/1.0"},
    )
    opener = urllib.request.build_opener(_NoRedirect)
    with opener.open(request, timeout=10) as response:
        assert response.status == 200
        assert response.headers.get("Set-Cookie") is None
        assert response.headers.get("Location") is None
        assert b"unsubscribed from introductions" in response.read()
    assert fresh(db, member.id).wants_intros is False


def test_a_tampered_token_through_the_real_server_is_a_plain_400(live_server, db, settings, member):
    token = links.unsubscribe_token(settings, member.id, "intros")
    url = f"{live_server}/unsubscribe/{token[:-2]}xx"
    request = urllib.request.Request(url, data=ONE_CLICK, method="POST", headers={"Content-Type": FORM})
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.build_opener(_NoRedirect).open(request, timeout=10)
    assert error.value.code == 400
    assert b"not valid" in error.value.read()
    assert fresh(db, member.id).wants_intros is True


def test_the_get_page_only_shows_a_button(client, db, settings, member):
    url = links.unsubscribe_url(settings, member.id, "newsletters")
    response = client.get(path_of(url))
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Unsubscribe from newsletters" in page and 'method="post"' in page
    assert "unsubscribe from all our emails" in page and "/preferences/" in page
    assert fresh(db, member.id).wants_newsletters is True and consents(db, member.id) == []


def test_the_pages_button_needs_its_csrf_token(client, db, settings, member):
    path = path_of(links.unsubscribe_url(settings, member.id, "newsletters"))
    assert client.post(path, data={}).status_code == 400
    # Only the exact one-click body is exempt.
    assert client.post(path, data={"List-Unsubscribe": "one-click"}).status_code == 400
    assert client.post(path, data=b"List-Unsubscribe=One-Click&x=1", content_type=FORM).status_code == 200
    assert fresh(db, member.id).wants_newsletters is False


def test_the_pages_button_unsubscribes(client, db, settings, member):
    path = path_of(links.unsubscribe_all_url(settings, member.id))
    token = csrf_token_from(client.get(path).get_data(as_text=True))
    response = client.post(path, data={"csrf_token": token})
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "You are unsubscribed" in page and "all our emails" in page
    assert fresh(db, member.id).status == "unsubscribed"
    assert consents(db, member.id)[0].detail["source"] == "link"
    # Visiting again says so instead of offering the button.
    assert "already unsubscribed" in client.get(path).get_data(as_text=True)


def old_token(settings, payload) -> str:
    """A token signed 400 days ago (itsdangerous takes the time from its signer)."""

    class PastSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int((utcnow() - timedelta(days=400)).timestamp())

    token = URLSafeTimedSerializer(settings.secret_key, salt="cop-mail:unsubscribe", signer=PastSigner).dumps(payload)
    with pytest.raises(links.LinkError):  # too old for any link that expires
        links.read_preferences_token(settings, token)
    return token


@pytest.mark.parametrize("kind", ["tampered", "other purpose", "garbage", "unknown member", "bad stream"])
def test_bad_tokens_get_plain_words_never_a_traceback(client, db, settings, member, kind):
    token = {
        "tampered": links.unsubscribe_token(settings, member.id, "intros")[:-3] + "abc",
        "other purpose": links.preferences_token(settings, member.id),
        "garbage": "%00%ff<script>",
        "unknown member": links.unsubscribe_token(settings, member.id + 1000, "intros"),
        "bad stream": URLSafeTimedSerializer(settings.secret_key, salt="cop-mail:unsubscribe").dumps(
            {"m": member.id, "s": "transactional"}
        ),
    }[kind]
    for response in (client.get(f"/unsubscribe/{token}"), client.get(f"/unsubscribe/{token}/all")):
        page = response.get_data(as_text=True)
        assert response.status_code == 400, page
        assert "This link is not valid" in page and "Traceback" not in page
        assert 'action="/manage"' in page
    one_click = client.post(f"/unsubscribe/{token}", data=ONE_CLICK, content_type=FORM)
    assert one_click.status_code == 400 and "not valid" in one_click.get_data(as_text=True)
    assert fresh(db, member.id).wants_intros is True


def test_old_unsubscribe_links_keep_working(client, db, settings, member):
    token = old_token(settings, {"m": member.id, "s": "intros"})
    response = client.post(f"/unsubscribe/{token}", data=ONE_CLICK, content_type=FORM)
    assert response.status_code == 200
    assert fresh(db, member.id).wants_intros is False


def test_an_erased_member_is_told_there_is_nothing_to_unsubscribe(client, db, settings, member):
    from cop_mail.audience.privacy import erase_member

    url = links.unsubscribe_url(settings, member.id, "newsletters")
    erase_member(db, member.id)
    db.commit()
    assert "Nothing to unsubscribe" in client.get(path_of(url)).get_data(as_text=True)
    assert client.post(path_of(url), data=ONE_CLICK, content_type=FORM).status_code == 200


def test_one_click_mid_send_stops_the_rest_of_a_campaign_for_that_member(app, db, engine, make_settings, smtp_sink):
    """A campaign is sending: a member who has not had their copy yet one-clicks, and gets nothing."""
    import email as email_parser
    from email import policy

    from cop_mail.models import Delivery
    from cop_mail.sending import campaigns, pipeline, planner
    from tests.conftest import seed_list_members

    settings = make_settings(smtp_port=smtp_sink.port, send_batch_size=5, smtp_timeout=5)
    list_id = seed_list_members(engine, 10)
    campaign = campaigns.create_campaign(
        db,
        name="Autumn letter",
        kind="newsletter",
        subject="Autumn",
        actor="owner@example.org",
        content={"template": "message", "heading": "Autumn", "body": "Hello.", "button": None},
        list_ids=[list_id],
    )
    db.commit()
    campaigns.send_now(db, campaign.id, "owner@example.org")
    db.commit()
    planner.plan_campaign(db, campaign.id)
    first = pipeline.send_batch(engine, settings, None, campaign.id, "test-worker")
    assert first.sent == 5
    # The List-Unsubscribe header of a message already sent works as one-click.
    sent = email_parser.message_from_bytes(smtp_sink.messages[0].data, policy=policy.default)
    assert sent["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    header_url = sent["List-Unsubscribe"].split(",")[0].strip().strip("<>")
    client = app.test_client(use_cookies=False)
    assert client.post(path_of(header_url), data=ONE_CLICK, content_type=FORM).status_code == 200
    # A member still waiting for their copy unsubscribes from the same stream.
    sent_to = {rcpt for message in smtp_sink.messages for rcpt in message.rcpt_tos}
    waiting = db.scalar(select(Member).where(Member.email.not_in(sent_to)).order_by(Member.id))
    url = links.unsubscribe_url(settings, waiting.id, "newsletters", campaign.id)
    assert client.post(path_of(url), data=ONE_CLICK, content_type=FORM).status_code == 200
    while pipeline.send_batch(engine, settings, None, campaign.id, "test-worker").claimed:
        pass
    received = [rcpt for message in smtp_sink.messages for rcpt in message.rcpt_tos]
    assert waiting.email not in received and len(received) == 9
    db.expire_all()
    assert db.scalar(select(Delivery.status).where(Delivery.member_id == waiting.id)) == "suppressed"
