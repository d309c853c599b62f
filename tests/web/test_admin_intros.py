"""The admin's introduction pages and the community map: roles, forms, and the round journey."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import select

from cop_mail.connect.connections import record_connection
from cop_mail.models import AuditEvent, Connection, Intro, IntroRound, IntroStatus, RoundStatus
from cop_mail.queues import DEFAULT, HIGH
from tests.conftest import add_member, csrf_token_from


@pytest.fixture
def people(db):
    found = {
        "ana": add_member(db, "Ana Souza", values=("Reciprocity",), practices=("Facilitation",)),
        "ben": add_member(db, "Ben Okafor", values=("Reciprocity",), practices=("Gardening",)),
        "cy": add_member(db, "Cy Chen", values=("Care",)),
        "di": add_member(db, "Di Dube", values=("Care",)),
    }
    db.commit()
    return found


def post(client, page_url: str, action: str, data: dict[str, str]):
    token = csrf_token_from(client.get(page_url).get_data(as_text=True))
    return client.post(action, data={**data, "csrf_token": token})


def test_anonymous_visitors_are_sent_to_login(client):
    for url in ("/admin/intros", "/admin/community-map", "/admin/community-map.svg", "/admin/intros/rounds/1"):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_a_viewer_sees_but_cannot_act(client, login, people):
    login("viewer")
    assert client.get("/admin/intros").status_code == 200
    assert client.get("/admin/community-map").status_code == 200
    response = post(client, "/admin/intros", "/admin/intros/rounds", {"name": "Nope"})
    assert response.status_code == 403
    response = post(
        client,
        "/admin/intros",
        "/admin/intros/introduce",
        {"member_a": "ana.souza@example.org", "member_b": "ben.okafor@example.org"},
    )
    assert response.status_code == 403


def test_a_round_from_creation_to_invitations(client, db, login, people, run_jobs, redis_conn):
    login("coordinator")
    page = client.get("/admin/intros").get_data(as_text=True)
    assert "No rounds yet" in page and "Introduce two members by hand" in page
    response = post(
        client,
        "/admin/intros",
        "/admin/intros/rounds",
        {
            "name": "December peers",
            "kind": "peer",
            "max_pairs": "5",
            "segment_id": "",
            "never_pairs": "ana.souza@example.org, di.dube@example.org",
            "every_weeks": "2",
            "weekday": "0",
            "hour": "9",
            "schedule_timezone": "Europe/Lisbon",
        },
    )
    assert response.status_code == 302
    made = db.scalar(select(IntroRound))
    assert made.name == "December peers" and made.schedule.startswith("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO")
    assert made.rules["never_pairs"] == [sorted([people["ana"].id, people["di"].id])]
    round_url = f"/admin/intros/rounds/{made.id}"
    assert response.headers["Location"].endswith(round_url)

    response = post(client, round_url, f"{round_url}/propose", {})
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "pairs;" in page and "both hold" in page
    pairs = db.scalars(select(Intro).where(Intro.round_id == made.id)).all()
    assert len(pairs) == 2

    post(client, round_url, f"{round_url}/pairs/{pairs[0].id}/remove", {})
    db.expire_all()
    assert db.get(Intro, pairs[0].id).status == IntroStatus.CANCELLED
    response = post(client, round_url, f"{round_url}/pairs", {"member_a": "nobody", "member_b": "#1"})
    assert "Name each member" in client.get(response.headers["Location"]).get_data(as_text=True)

    response = post(client, round_url, f"{round_url}/send", {})
    assert response.status_code == 302
    db.expire_all()
    assert db.get(IntroRound, made.id).status == RoundStatus.SENDING
    assert run_jobs((DEFAULT,)) == 0
    db.expire_all()
    assert db.get(IntroRound, made.id).status == RoundStatus.SENT
    assert db.get(Intro, pairs[1].id).status == IntroStatus.INVITED
    from rq import Queue

    assert Queue(HIGH, connection=redis_conn).count == 2
    actions = db.scalars(select(AuditEvent.action).where(AuditEvent.action.like("intro_round.%"))).all()
    assert actions == ["intro_round.create", "intro_round.propose", "intro_round.remove", "intro_round.send"]


def test_bad_round_forms_are_explained(client, db, login, people):
    login("coordinator")
    response = post(client, "/admin/intros", "/admin/intros/rounds", {"name": "", "max_pairs": "5"})
    assert "give the round a name" in client.get(response.headers["Location"]).get_data(as_text=True)
    response = post(
        client,
        "/admin/intros",
        "/admin/intros/rounds",
        {"name": "X", "max_pairs": "5", "never_pairs": "ana.souza@example.org"},
    )
    assert "must name two members" in client.get(response.headers["Location"]).get_data(as_text=True)
    response = post(
        client,
        "/admin/intros",
        "/admin/intros/rounds",
        {"name": "X", "max_pairs": "5", "every_weeks": "2", "schedule_timezone": "Mars/Olympus"},
    )
    assert "unknown time zone" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert db.scalar(select(IntroRound)) is None


def test_swapping_a_member_in_review(client, db, login, people):
    login("coordinator")
    post(client, "/admin/intros", "/admin/intros/rounds", {"name": "Swap", "max_pairs": "1"})
    made = db.scalar(select(IntroRound))
    round_url = f"/admin/intros/rounds/{made.id}"
    post(client, round_url, f"{round_url}/propose", {})
    pair = db.scalar(select(Intro).where(Intro.round_id == made.id))
    free = next(p for p in people.values() if p.id not in (pair.member_a_id, pair.member_b_id))
    response = post(
        client,
        round_url,
        f"{round_url}/pairs/{pair.id}/swap",
        {"old_member": str(pair.member_a_id), "new_member": free.email},
    )
    assert "now takes" in client.get(response.headers["Location"]).get_data(as_text=True)
    db.expire_all()
    assert free.id in (db.get(Intro, pair.id).member_a_id, db.get(Intro, pair.id).member_b_id)


def test_introducing_by_hand_and_recording_a_connection(client, db, login, people, redis_conn):
    login("coordinator")
    response = post(
        client,
        "/admin/intros",
        "/admin/intros/introduce",
        {"member_a": "ana.souza@example.org", "member_b": f"#{people['cy'].id}", "note": "Say hi!"},
    )
    intro = db.scalar(select(Intro))
    assert response.headers["Location"].endswith(f"/admin/intros/{intro.id}")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "asked privately" in page and "proposed" in page and "invited" in page
    assert (intro.status, intro.note) == (IntroStatus.INVITED, "Say hi!")
    from rq import Queue

    assert Queue(HIGH, connection=redis_conn).count == 2
    response = post(
        client,
        "/admin/intros",
        "/admin/intros/introduce",
        {"member_a": "ana.souza@example.org", "member_b": f"#{people['cy'].id}"},
    )
    assert "already have an introduction under way" in client.get(response.headers["Location"]).get_data(as_text=True)

    response = post(
        client,
        "/admin/intros",
        "/admin/intros/connections",
        {"member_a": "ben.okafor@example.org", "member_b": "di.dube@example.org", "how": "coordinator"},
    )
    assert "are connected" in client.get(response.headers["Location"]).get_data(as_text=True)
    connection = db.scalar(select(Connection))
    assert connection.how == "coordinator" and connection.created_by == "coordinator@example.org"


def test_the_community_map_page_draws_the_network_with_a_text_alternative(client, db, login, people):
    record_connection(db, people["ana"].id, people["ben"].id, "introduction")
    db.commit()
    login("viewer")
    page = client.get("/admin/community-map").get_data(as_text=True)
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in page and 'role="img"' in page
    assert "4 members and 1 connection" in page
    assert "Members by ring" in page and "Connections made per month" in page
    assert "Members with no connection yet" in page and "Cy Chen" in page
    assert "Ana Souza: 1 connection, periphery (one connection), Reciprocity" in page
    response = client.get("/admin/community-map.svg")
    assert response.mimetype == "image/svg+xml"
    ET.fromstring(response.get_data())  # noqa: S314 - our own drawing, parsed to prove it is well formed


def test_the_overview_lists_introductions_waiting_on_one_side(client, db, login, people, settings):
    from cop_mail.connect import rounds, workflow

    intro, _ = rounds.introduce_by_hand(db, settings, people["ana"].id, people["ben"].id, "c")
    workflow.answer(db, settings, intro.id, people["ben"].id, "accept", "link")
    db.commit()
    login("viewer")
    page = client.get("/admin/intros").get_data(as_text=True)
    assert "Waiting on one side" in page and f"#{intro.id}" in page
    assert client.get(f"/admin/intros/{intro.id}").status_code == 200
    assert client.get("/admin/intros/999999").status_code == 404


def test_a_members_request_to_meet_a_storyteller_asks_only_the_storyteller(client, db, login, people, redis_conn):
    from cop_mail.audience.consent import record_member_event

    ana, cy = people["ana"], people["cy"]
    event = record_member_event(db, ana.id, "intro_request", explicit=True, with_member_id=cy.id, story_id=7)
    record_member_event(db, ana.id, "intro_request", explicit=True, with_member_id=cy.id, story_id=7)  # asked twice
    db.commit()
    login("coordinator")
    page = client.get("/admin/intros").get_data(as_text=True)
    assert "Members who asked to meet someone" in page and page.count("Ask Cy Chen") == 1
    response = post(client, "/admin/intros", f"/admin/intros/requests/{event.id}", {})
    intro = db.scalar(select(Intro))
    assert response.headers["Location"].endswith(f"/admin/intros/{intro.id}")
    side = intro.side_of(ana.id)
    assert intro.status == f"accepted_{side}" and getattr(intro, f"{side}_answer") == "accept"
    assert intro.note == "They read your story and asked to meet you."
    from rq import Queue

    assert Queue(HIGH, connection=redis_conn).count == 1  # Cy's invitation; Ana already said yes by asking
    assert "No member has asked to meet anyone." in client.get("/admin/intros").get_data(as_text=True)
    again = post(client, "/admin/intros", f"/admin/intros/requests/{event.id}", {})
    assert "dealt with already" in client.get(again.headers["Location"]).get_data(as_text=True)
