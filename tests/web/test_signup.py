"""The public signup form, its embeddable snippet, the JSON endpoint and the confirm page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from rq import Queue
from sqlalchemy import func, select

from cop_mail.audience import links
from cop_mail.db import utcnow
from cop_mail.models import ConsentEvent, Delivery, ListMembership, MailingList, Member, Practice, Value
from cop_mail.queues import HIGH
from tests.conftest import csrf_token_from


@pytest.fixture
def lists(db):
    double = MailingList(
        name="Practitioners",
        slug="practitioners",
        opt_in="double",
        public=True,
        description="Letters for people who practise.",
        form_wording="Yes, email me the Practitioners letters.",
    )
    single = MailingList(name="Events", slug="events", opt_in="single", public=True)
    hidden = MailingList(name="Board", slug="board", opt_in="single", public=False)
    db.add_all(
        [
            double,
            single,
            hidden,
            Value(name="Reciprocity", position=1),
            Value(name="Care", position=2),
            Practice(name="Facilitation"),
        ]
    )
    db.commit()
    return double, single


def count(db, model) -> int:
    db.expire_all()
    return db.scalar(select(func.count(model.id))) or 0


def queued_jobs(redis_conn) -> int:
    return len(Queue(HIGH, connection=redis_conn))


def test_the_form_offers_values_practices_the_wording_and_a_hidden_honeypot(client, lists):
    page = client.get("/signup/practitioners").get_data(as_text=True)
    assert "Join Practitioners" in page and "Letters for people who practise." in page
    assert page.index("Reciprocity") < page.index("Care")
    assert 'name="values"' in page and 'name="practices"' in page and "Facilitation" in page
    assert "Yes, email me the Practitioners letters." in page
    assert 'name="website"' in page and 'tabindex="-1"' in page
    assert client.get("/signup/board").status_code == 404
    missing = client.get("/signup/nothing-here")
    assert missing.status_code == 404 and "no signup form" in missing.get_data(as_text=True)


def test_double_opt_in_signup_queues_a_confirmation_on_the_high_queue(client, db, redis_conn, lists):
    double, _single = lists
    value_id = db.scalar(select(Value.id).where(Value.name == "Care"))
    response = client.post(
        "/signup/practitioners",
        data={"email": "Ana@Example.org", "name": "Ana", "values": [str(value_id)]},
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    assert response.status_code == 302 and response.headers["Location"] == "/signup/practitioners/thanks"
    thanks = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "check your inbox" in thanks and "7 days" in thanks
    member = db.scalar(select(Member))
    assert (member.email, member.status, [v.name for v in member.values]) == ("ana@example.org", "pending", ["Care"])
    event = db.scalar(select(ConsentEvent))
    assert event.ip == "203.0.113.9" and event.wording == "Yes, email me the Practitioners letters."
    assert count(db, Delivery) == 1 and queued_jobs(redis_conn) == 1


def test_single_opt_in_signup_is_active_at_once_and_sends_nothing(client, db, redis_conn, lists):
    response = client.post("/signup/events", data={"email": "ben@example.org"})
    assert response.status_code == 302
    assert db.scalar(select(Member.status)) == "active"
    assert db.scalar(select(ListMembership.status)) == "subscribed"
    assert count(db, Delivery) == 0 and queued_jobs(redis_conn) == 0


def test_a_filled_honeypot_looks_like_success_and_stores_nothing(client, db, redis_conn, lists):
    response = client.post("/signup/practitioners", data={"email": "bot@example.org", "website": "http://spam"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/thanks")
    assert count(db, Member) == 0 and queued_jobs(redis_conn) == 0


def test_an_invalid_address_is_shown_again_with_the_reason(client, db, lists):
    response = client.post("/signup/practitioners", data={"email": "ana@", "name": "Ana <b>"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "does not look right" in page and 'value="Ana &lt;b&gt;"' in page
    assert count(db, Member) == 0


def test_signups_are_rate_limited_per_ip(make_app, make_settings, db, lists):
    client = make_app(make_settings(extra={"signup_per_ip_per_hour": 2})).test_client()
    codes = [
        client.post(
            "/signup/events", data={"email": f"p{i}@example.org"}, environ_base={"REMOTE_ADDR": "198.51.100.1"}
        ).status_code
        for i in range(3)
    ]
    assert codes == [302, 302, 429]
    other_ip = client.post(
        "/signup/events", data={"email": "q@example.org"}, environ_base={"REMOTE_ADDR": "198.51.100.2"}
    )
    assert other_ip.status_code == 302
    assert count(db, Member) == 3


def test_a_suppressed_address_sees_the_same_thank_you_page_and_gets_no_mail(client, db, redis_conn, lists):
    from cop_mail.audience.suppression import suppress

    suppress(db, "ana@example.org", "complained")
    db.commit()
    response = client.post("/signup/practitioners", data={"email": "ana@example.org"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/thanks")
    assert count(db, Member) == 0 and count(db, Delivery) == 0 and queued_jobs(redis_conn) == 0


def test_the_embed_snippet_posts_back_here_without_a_csrf_token(client, db, lists):
    response = client.get("/signup/practitioners/embed")
    fragment = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert 'action="http://cop-mail.test/signup/practitioners"' in fragment
    assert "<html" not in fragment and 'name="website"' in fragment and "csrf_token" not in fragment
    names = set(re.findall(r'name="([^"]+)"', fragment))
    assert names == {"email", "name", "website"}
    # Exactly what a browser would send from another site: no cookie, no token.
    fresh_client = client.application.test_client(use_cookies=False)
    posted = fresh_client.post("/signup/practitioners", data={"email": "cy@example.org", "name": "", "website": ""})
    assert posted.status_code == 302
    assert count(db, Member) == 1
    code_page = client.get("/signup/practitioners/embed?format=code").get_data(as_text=True)
    assert "&lt;form" in code_page and "<textarea" in code_page


def test_json_signup(client, db, redis_conn, lists):
    value_id = db.scalar(select(Value.id).where(Value.name == "Reciprocity"))
    response = client.post(
        "/api/signup/practitioners",
        json={"email": "dee@example.org", "name": "Dee", "values": [value_id, "junk"], "practices": []},
    )
    assert response.status_code == 200
    assert response.json["ok"] is True and response.json["confirmation_required"] is True
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    member = db.scalar(select(Member))
    assert [v.name for v in member.values] == ["Reciprocity"] and queued_jobs(redis_conn) == 1
    assert db.scalar(select(ConsentEvent.detail))["source"] == "api"


def test_json_signup_errors_are_json_in_one_shape(client, db, lists):
    bad = client.post("/api/signup/practitioners", json={"email": "nope"})
    assert bad.status_code == 400 and "does not look right" in bad.json["error"]["message"]
    not_object = client.post("/api/signup/practitioners", json=["dee@example.org"])
    assert not_object.status_code == 400 and "JSON object" in not_object.json["error"]["message"]
    unknown = client.post("/api/signup/nothing", json={"email": "dee@example.org"})
    assert unknown.status_code == 404 and unknown.json["error"]["code"] == 404
    bot = client.post("/api/signup/events", json={"email": "bot@example.org", "website": "x"})
    assert bot.status_code == 200 and count(db, Member) == 0
    odd = client.post("/api/signup/events", json={"email": {"x": 1}, "values": 5, "practices": "1,2", "name": 7})
    assert odd.status_code == 400 and "does not look right" in odd.json["error"]["message"]
    form = client.post("/api/signup/events", data={"email": "eve@example.org"})
    assert form.status_code == 200 and count(db, Member) == 1
    preflight = client.options("/api/signup/events")
    assert preflight.status_code == 204 and "POST" in preflight.headers["Access-Control-Allow-Methods"]


def test_json_signup_is_rate_limited(make_app, make_settings, db, lists):
    client = make_app(make_settings(extra={"signup_per_ip_per_hour": 1})).test_client()
    assert client.post("/api/signup/events", json={"email": "a@example.org"}).status_code == 200
    limited = client.post("/api/signup/events", json={"email": "b@example.org"})
    assert limited.status_code == 429 and limited.json["error"]["code"] == 429


def request_token(db, settings, email="ana@example.org") -> tuple[str, Member]:
    member = db.scalar(select(Member).where(Member.email == email))
    event = db.scalar(
        select(ConsentEvent).where(ConsentEvent.member_id == member.id, ConsentEvent.kind == "signup_requested")
    )
    return links.confirm_token(settings, member.id, event.list_id, event.id), member


def test_the_confirm_link_shows_a_button_and_only_the_post_confirms(client, db, settings, lists):
    client.post("/signup/practitioners", data={"email": "ana@example.org"})
    token, member = request_token(db, settings)
    page = client.get(f"/confirm/{token}")
    assert page.status_code == 200 and "Yes, subscribe me" in page.get_data(as_text=True)
    db.expire_all()
    assert db.get(Member, member.id).status == "pending"  # a link scanner's GET changes nothing
    assert client.post(f"/confirm/{token}").status_code == 400  # no CSRF token
    response = client.post(
        f"/confirm/{token}",
        data={"csrf_token": csrf_token_from(page.get_data(as_text=True))},
        environ_base={"REMOTE_ADDR": "198.51.100.23"},
    )
    assert response.status_code == 200 and "You are subscribed" in response.get_data(as_text=True)
    db.expire_all()
    assert db.get(Member, member.id).status == "active"
    confirmed = db.scalar(select(ConsentEvent).where(ConsentEvent.kind == "confirmed"))
    assert confirmed.ip == "198.51.100.23" and confirmed.wording == "Yes, email me the Practitioners letters."
    again = client.post(f"/confirm/{token}", data={"csrf_token": csrf_token_from(page.get_data(as_text=True))})
    assert again.status_code == 200 and "Already confirmed" in again.get_data(as_text=True)


def aged(settings, salt: str, payload: dict, days: float) -> str:
    """A token signed `days` ago (itsdangerous takes the time from its signer)."""

    class PastSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int((utcnow() - timedelta(days=days)).timestamp())

    return URLSafeTimedSerializer(settings.secret_key, salt=salt, signer=PastSigner).dumps(payload)


def test_an_expired_confirmation_link_says_so_in_plain_words(client, db, settings, lists):
    client.post("/signup/practitioners", data={"email": "ana@example.org"})
    _token, member = request_token(db, settings)
    event = db.scalar(select(ConsentEvent))
    fresh = aged(settings, "cop-mail:confirm-subscription", {"m": member.id, "l": event.list_id, "r": event.id}, 6.9)
    fresh_page = client.get(f"/confirm/{fresh}")
    assert fresh_page.status_code == 200
    old = aged(settings, "cop-mail:confirm-subscription", {"m": member.id, "l": event.list_id, "r": event.id}, 7.1)
    csrf = csrf_token_from(fresh_page.get_data(as_text=True))
    for response in (client.get(f"/confirm/{old}"), client.post(f"/confirm/{old}", data={"csrf_token": csrf})):
        page = response.get_data(as_text=True)
        assert response.status_code == 410
        assert "This link has expired" in page and "sign up again" in page and "Traceback" not in page
    db.expire_all()
    assert db.get(Member, member.id).status == "pending"


@pytest.mark.parametrize("kind", ["tampered", "preferences token", "unsubscribe token", "nonsense", "wrong ids"])
def test_forged_confirmation_links_are_refused_in_plain_words(client, db, settings, lists, kind):
    client.post("/signup/practitioners", data={"email": "ana@example.org"})
    token, member = request_token(db, settings)
    event = db.scalar(select(ConsentEvent))
    forged = {
        "tampered": token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"),
        "preferences token": links.preferences_token(settings, member.id),
        "unsubscribe token": links.unsubscribe_token(settings, member.id),
        "nonsense": "x" * 40,
        "wrong ids": links.confirm_token(settings, member.id, event.list_id + 1, event.id),
    }[kind]
    page = client.get(f"/confirm/{forged}")
    if kind == "wrong ids":
        # Signed by us but matching no request: the button leads to the refusal.
        token_html = page.get_data(as_text=True)
        page = client.post(f"/confirm/{forged}", data={"csrf_token": csrf_token_from(token_html)})
    assert page.status_code == 400
    assert "This link is not valid" in page.get_data(as_text=True)
    db.expire_all()
    assert db.get(Member, member.id).status == "pending"


def test_a_link_pressed_after_unsubscribing_does_not_resubscribe(client, db, settings, lists):
    client.post("/signup/practitioners", data={"email": "ana@example.org"})
    token, member = request_token(db, settings)
    unsubscribe = links.unsubscribe_all_url(settings, member.id).split("cop-mail.test", 1)[1]
    client.post(unsubscribe, data=b"List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    page = client.get(f"/confirm/{token}").get_data(as_text=True)
    response = client.post(f"/confirm/{token}", data={"csrf_token": csrf_token_from(page)})
    assert response.status_code == 410 and "no longer subscribes you" in response.get_data(as_text=True)
    db.expire_all()
    assert db.get(Member, member.id).status == "unsubscribed"
