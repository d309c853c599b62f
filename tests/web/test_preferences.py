"""The preference centre (signed link, no password) and "manage by email"."""

from __future__ import annotations

from datetime import timedelta

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from rq import Queue
from sqlalchemy import func, select

from cop_mail.audience import links
from cop_mail.audience.suppression import member_can_receive
from cop_mail.db import utcnow
from cop_mail.models import (
    ConsentEvent,
    Delivery,
    ListMembership,
    MailingList,
    Member,
    MemberEvent,
    Practice,
    Value,
)
from cop_mail.queues import HIGH
from tests.conftest import csrf_token_from


@pytest.fixture
def member(db) -> Member:
    public = MailingList(name="Practitioners", slug="practitioners", public=True)
    other_public = MailingList(name="Events", slug="events", public=True)
    private = MailingList(name="Board", slug="board", public=False)
    hidden = MailingList(name="Staff", slug="staff", public=False)
    care, reciprocity = Value(name="Care", position=2), Value(name="Reciprocity", position=1)
    facilitation, gardening = Practice(name="Facilitation"), Practice(name="Gardening")
    member = Member(email="ana@example.org", name="Ana Lima", attributes={})
    member.values = [care]
    member.practices = [facilitation]
    db.add_all([public, other_public, private, hidden, care, reciprocity, facilitation, gardening, member])
    db.flush()
    db.add(ListMembership(list_id=public.id, member_id=member.id, status="subscribed"))
    db.add(ListMembership(list_id=private.id, member_id=member.id, status="subscribed"))
    db.commit()
    return member


def page_of(client, settings, member) -> tuple[str, str]:
    path = links.preferences_url(settings, member.id).split("cop-mail.test", 1)[1]
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)
    return path, response.get_data(as_text=True)


def fresh(db, member_id) -> Member:
    db.expire_all()
    return db.get(Member, member_id)


def ids_of(db, model, *names) -> list[str]:
    return [str(db.scalar(select(model.id).where(model.name == name))) for name in names]


def test_the_page_shows_the_members_current_choices(client, settings, member):
    _path, page = page_of(client, settings, member)
    assert "ana@example.org" in page
    assert 'name="stream_newsletters" checked' in page and 'name="stream_intros" checked' in page
    assert '<option value="4" selected>' in page
    assert "Care" in page and "Reciprocity" in page and "Gardening" in page
    assert "Practitioners" in page and "Events" in page and "Board" in page  # a private list they are on
    assert "Staff" not in page  # a private list they are not on
    assert "Pause all mail for" in page and "Unsubscribe from everything" in page


def test_saving_changes_streams_cadence_values_practices_and_lists(client, db, settings, member):
    path, page = page_of(client, settings, member)
    form = {
        "csrf_token": csrf_token_from(page),
        "action": "save",
        "stream_intros": "on",
        "stream_roundups": "on",  # newsletters and resources left unticked: off
        "intro_cadence_weeks": "8",
        "values": ids_of(db, Value, "Reciprocity"),
        "practices": ids_of(db, Practice, "Facilitation", "Gardening"),
        "lists": ids_of(db, MailingList, "Events", "Board"),
    }
    response = client.post(path, data=form, environ_base={"REMOTE_ADDR": "203.0.113.77"})
    assert response.status_code == 302 and response.headers["Location"] == path
    assert "Your preferences are saved." in client.get(path).get_data(as_text=True)
    ana = fresh(db, member.id)
    assert (ana.wants_newsletters, ana.wants_intros, ana.wants_roundups, ana.wants_resources) == (
        False,
        True,
        True,
        False,
    )
    assert ana.intro_cadence_weeks == 8
    assert [v.name for v in ana.values] == ["Reciprocity"]
    assert sorted(p.name for p in ana.practices) == ["Facilitation", "Gardening"]
    lists = {
        lst.slug: m.status
        for lst, m in db.execute(
            select(MailingList, ListMembership).join(ListMembership, ListMembership.list_id == MailingList.id)
        )
    }
    assert lists == {"practitioners": "unsubscribed", "events": "subscribed", "board": "subscribed"}
    consent = [
        (e.kind, e.stream or e.list_id, e.ip) for e in db.scalars(select(ConsentEvent).order_by(ConsentEvent.id))
    ]
    assert ("stream_off", "newsletters", "203.0.113.77") in consent and (
        "stream_off",
        "resources",
        "203.0.113.77",
    ) in consent
    assert {k for k, *_ in consent} == {"stream_off", "subscribed", "list_unsubscribed"}
    changed = db.scalar(select(MemberEvent).where(MemberEvent.kind == "preferences_changed"))
    assert changed.detail["intro_cadence_weeks"] == {"from": 4, "to": 8}
    assert not member_can_receive(db, member.id, "newsletters") and member_can_receive(db, member.id, "intros")


def test_saving_the_same_choices_changes_nothing(client, db, settings, member):
    path, page = page_of(client, settings, member)
    form = {
        "csrf_token": csrf_token_from(page),
        "action": "save",
        "intro_cadence_weeks": "4",
        "values": ids_of(db, Value, "Care"),
        "practices": ids_of(db, Practice, "Facilitation"),
        "lists": ids_of(db, MailingList, "Practitioners", "Board"),
        **{f"stream_{s}": "on" for s in ("newsletters", "intros", "roundups", "resources")},
    }
    client.post(path, data=form)
    assert "Nothing changed." in client.get(path).get_data(as_text=True)
    assert db.scalar(select(func.count(ConsentEvent.id))) == 0


def test_no_introductions_turns_the_stream_off(client, db, settings, member):
    path, page = page_of(client, settings, member)
    client.post(
        path,
        data={
            "csrf_token": csrf_token_from(page),
            "action": "save",
            "intro_cadence_weeks": "none",
            "stream_intros": "on",
            "stream_newsletters": "on",
        },
    )
    ana = fresh(db, member.id)
    assert ana.wants_intros is False and ana.intro_cadence_weeks is None
    assert not member_can_receive(db, member.id, "intros")
    assert '<option value="none" selected>' in client.get(path).get_data(as_text=True)


def test_an_odd_cadence_is_refused_in_plain_words(client, db, settings, member):
    path, page = page_of(client, settings, member)
    client.post(path, data={"csrf_token": csrf_token_from(page), "action": "save", "intro_cadence_weeks": "3"})
    assert "every 2, 4 or 8 weeks" in client.get(path).get_data(as_text=True)
    assert fresh(db, member.id).intro_cadence_weeks == 4
    # "²" is a digit to str.isdigit but no number to int(): still a plain answer, never a server error.
    form = {"csrf_token": csrf_token_from(page), "action": "save", "intro_cadence_weeks": "\u00b2"}
    odd = client.post(path, data=form)
    assert odd.status_code < 500 and fresh(db, member.id).intro_cadence_weeks == 4


def test_pausing_holds_every_stream_then_resuming(client, db, settings, member):
    path, page = page_of(client, settings, member)
    client.post(path, data={"csrf_token": csrf_token_from(page), "action": "pause", "weeks": "4"})
    ana = fresh(db, member.id)
    assert abs(ana.paused_until - (utcnow() + timedelta(weeks=4))) < timedelta(minutes=1)
    for stream in ("newsletters", "intros", "roundups", "resources"):
        assert not member_can_receive(db, member.id, stream)
    assert member_can_receive(db, member.id, "transactional")
    page = client.get(path).get_data(as_text=True)
    assert "All mail is paused until" in page
    client.post(path, data={"csrf_token": csrf_token_from(page), "action": "resume"})
    assert fresh(db, member.id).paused_until is None and member_can_receive(db, member.id, "newsletters")
    kinds = list(db.scalars(select(MemberEvent.kind).order_by(MemberEvent.id)))
    assert kinds == ["paused", "resumed"]


def test_a_pause_out_of_range_is_refused(client, db, settings, member):
    path, page = page_of(client, settings, member)
    client.post(path, data={"csrf_token": csrf_token_from(page), "action": "pause", "weeks": "100"})
    assert "from 1 to 52 weeks" in client.get(path).get_data(as_text=True)
    assert fresh(db, member.id).paused_until is None


def test_unsubscribing_from_everything_and_back_from_the_page(client, db, settings, member):
    path, page = page_of(client, settings, member)
    client.post(path, data={"csrf_token": csrf_token_from(page), "action": "unsubscribe_all"})
    page = client.get(path).get_data(as_text=True)
    assert fresh(db, member.id).status == "unsubscribed" and "Subscribe me again" in page
    client.post(path, data={"csrf_token": csrf_token_from(page), "action": "resubscribe"})
    assert fresh(db, member.id).status == "active"
    assert db.scalar(select(ListMembership.status).where(ListMembership.list_id == 1)) == "subscribed"


def test_saving_needs_the_csrf_token(client, db, settings, member):
    path, _page = page_of(client, settings, member)
    response = client.post(path, data={"action": "save"})
    assert response.status_code == 400
    assert fresh(db, member.id).wants_newsletters is True


@pytest.mark.parametrize("status", ["bounced", "complained", "pending"])
def test_members_who_cannot_change_preferences_are_told_why(client, db, settings, member, status):
    member.status = status
    db.commit()
    _path, page = page_of(client, settings, member)
    assert "Save my preferences" not in page
    assert {
        "bounced": "could not be delivered",
        "complained": "reported as unwanted",
        "pending": "waiting for your confirmation",
    }[status] in page


def aged(settings, payload, days) -> str:
    class PastSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int((utcnow() - timedelta(days=days)).timestamp())

    return URLSafeTimedSerializer(settings.secret_key, salt="cop-mail:preferences", signer=PastSigner).dumps(payload)


def test_expiry_a_year_for_links_in_emails_and_a_week_for_requested_links(client, db, settings, member):
    assert client.get(f"/preferences/{aged(settings, {'m': member.id}, 364)}").status_code == 200
    assert client.get(f"/preferences/{aged(settings, {'m': member.id, 'x': 7 * 86400}, 6)}").status_code == 200
    for token in (aged(settings, {"m": member.id}, 366), aged(settings, {"m": member.id, "x": 7 * 86400}, 8)):
        response = client.get(f"/preferences/{token}")
        page = response.get_data(as_text=True)
        assert response.status_code == 410 and "This link has expired" in page and "Email me a link" in page


@pytest.mark.parametrize("kind", ["tampered", "unsubscribe token", "nonsense", "unknown member", "bad lifetime"])
def test_forged_preference_links_get_a_plain_400(client, db, settings, member, kind):
    token = {
        "tampered": links.preferences_token(settings, member.id)[:-2] + "zz",
        "unsubscribe token": links.unsubscribe_token(settings, member.id),
        "nonsense": "..",
        "unknown member": links.preferences_token(settings, member.id + 99),
        "bad lifetime": aged(settings, {"m": member.id, "x": "forever"}, 0),
    }[kind]
    response = client.get(f"/preferences/{token}")
    page = response.get_data(as_text=True)
    assert response.status_code == 400, page
    assert "This link is not valid" in page and "Traceback" not in page
    assert client.post(f"/preferences/{token}", data={"action": "unsubscribe_all"}).status_code == 400
    assert fresh(db, member.id).status == "active"


def test_an_erased_members_link_is_gone(client, db, settings, member):
    from cop_mail.audience.privacy import erase_member

    token = links.preferences_token(settings, member.id)
    erase_member(db, member.id)
    db.commit()
    response = client.get(f"/preferences/{token}")
    assert response.status_code == 410 and "no data for this link" in response.get_data(as_text=True)


def test_manage_by_email_answers_the_same_whether_or_not_the_address_is_known(client, db, redis_conn, member):
    token = csrf_token_from(client.get("/manage").get_data(as_text=True))
    known = client.post("/manage", data={"csrf_token": token, "email": "ANA@example.org"})
    unknown = client.post("/manage", data={"csrf_token": token, "email": "nobody@example.org"})
    assert known.status_code == unknown.status_code == 200
    assert known.get_data(as_text=True) == unknown.get_data(as_text=True)
    assert "If that address is on our lists" in known.get_data(as_text=True)
    deliveries = list(db.scalars(select(Delivery)))
    assert [d.member_id for d in deliveries] == [member.id]
    assert len(Queue(HIGH, connection=redis_conn)) == 1
    assert db.scalar(select(MemberEvent.kind)) == "manage_link_requested"


def test_manage_by_email_sends_nothing_to_a_bounced_address_and_caps_requests(client, db, redis_conn, member):
    token = csrf_token_from(client.get("/manage").get_data(as_text=True))
    for _ in range(5):
        assert client.post("/manage", data={"csrf_token": token, "email": "ana@example.org"}).status_code == 200
    assert db.scalar(select(func.count(Delivery.id))) == 3  # at most three links an hour to one address
    member.status = "bounced"
    db.commit()
    client.post("/manage", data={"csrf_token": token, "email": "ana@example.org"})
    assert db.scalar(select(func.count(Delivery.id))) == 3


def test_manage_by_email_is_rate_limited_per_ip_and_needs_csrf(make_app, make_settings, db, member):
    client = make_app(make_settings(extra={"manage_per_ip_per_hour": 2})).test_client()
    token = csrf_token_from(client.get("/manage").get_data(as_text=True))
    codes = [
        client.post("/manage", data={"csrf_token": token, "email": f"x{i}@example.org"}).status_code for i in range(3)
    ]
    assert codes == [200, 200, 429]
    assert client.post("/manage", data={"email": "ana@example.org"}).status_code == 400
    empty = client.post("/manage", data={"csrf_token": token, "email": ""})
    assert empty.status_code in (400, 429)
