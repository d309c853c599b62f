"""The member's pages for an introduction: a GET never changes anything, the buttons POST, double clicks
are harmless, bad links get plain pages, and the other member's no is never shown."""

from __future__ import annotations

from datetime import timedelta

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import func, select

from cop_mail.audience import subscriptions
from cop_mail.connect import links, rounds, workflow
from cop_mail.db import utcnow
from cop_mail.models import Campaign, Intro, IntroStatus
from tests.conftest import add_member, csrf_token_from


@pytest.fixture
def pair(db, settings):
    ana = add_member(db, "Ana Souza", values=("Reciprocity",))
    ben = add_member(db, "Ben Okafor", values=("Reciprocity",))
    intro, _ = rounds.introduce_by_hand(db, settings, ana.id, ben.id, "coordinator")
    db.commit()
    return ana, ben, intro


def path(url: str) -> str:
    return url.split("cop-mail.test", 1)[1]


def now_intro(db, intro_id):
    db.expire_all()
    return db.get(Intro, intro_id)


def press(client, url: str, answer: str):
    """Open the page as a member would, then press one of its buttons."""
    page = client.get(path(url))
    assert page.status_code == 200
    return client.post(
        path(url).split("?")[0], data={"answer": answer, "csrf_token": csrf_token_from(page.get_data(as_text=True))}
    )


def without_token(page: str) -> str:
    return page.replace(csrf_token_from(page), "") if 'name="csrf_token"' in page else page


def joint_count(db) -> int:
    return db.scalar(select(func.count()).select_from(Campaign).where(Campaign.name.like("intro_joint%")))


def test_the_page_asks_and_a_get_changes_nothing(client, db, settings, pair):
    ana, _, intro = pair
    for answer in (None, "accept", "decline"):
        response = client.get(path(links.answer_url(settings, intro.id, ana.id, answer)))
        page = response.get_data(as_text=True)
        assert response.status_code == 200
        assert "Would you like to meet Ben Okafor?" in page and "You both care about Reciprocity" in page
        assert 'value="accept"' in page and 'value="later"' in page and 'value="decline"' in page
        assert "ben.okafor@example.org" not in page
    assert now_intro(db, intro.id).a_answer is None


def test_accept_then_the_other_accepts_introduces_them(client, db, settings, pair):
    ana, ben, intro = pair
    response = press(client, links.answer_url(settings, intro.id, ana.id), "accept")
    assert response.status_code == 200 and "Thank you, you said yes" in response.get_data(as_text=True)
    assert (now_intro(db, intro.id).a_answer, now_intro(db, intro.id).a_channel) == ("accept", "link")
    response = press(client, links.answer_url(settings, intro.id, ben.id), "accept")
    assert "You're introduced!" in response.get_data(as_text=True)
    assert now_intro(db, intro.id).status == IntroStatus.INTRODUCED and joint_count(db) == 2
    page = client.get(path(links.answer_url(settings, intro.id, ana.id))).get_data(as_text=True)
    assert "You've been introduced" in page


def test_a_double_click_on_accept_is_harmless(client, db, settings, pair):
    ana, ben, intro = pair
    press(client, links.answer_url(settings, intro.id, ben.id), "accept")
    url = links.answer_url(settings, intro.id, ana.id)
    token = csrf_token_from(client.get(path(url)).get_data(as_text=True))
    first = client.post(path(url), data={"answer": "accept", "csrf_token": token})
    second = client.post(path(url), data={"answer": "accept", "csrf_token": token})
    assert "You're introduced!" in first.get_data(as_text=True)
    assert second.status_code == 200 and "We already have your answer" in second.get_data(as_text=True)
    assert joint_count(db) == 2


def test_a_no_is_never_shown_to_the_other_member(client, db, settings, pair):
    ana, ben, intro = pair
    ana_url = path(links.answer_url(settings, intro.id, ana.id))
    before = without_token(client.get(ana_url).get_data(as_text=True))
    press(client, links.answer_url(settings, intro.id, ben.id), "decline")
    assert now_intro(db, intro.id).status == IntroStatus.DECLINED
    # Ana's page is the same as before Ben's no, and her yes is thanked as if he had not answered yet.
    assert without_token(client.get(ana_url).get_data(as_text=True)) == before
    response = press(client, links.answer_url(settings, intro.id, ana.id), "accept")
    assert "Thank you, you said yes" in response.get_data(as_text=True)
    assert joint_count(db) == 0
    page = client.get(path(links.answer_url(settings, intro.id, ben.id))).get_data(as_text=True)
    assert "You said no to this introduction" in page


def test_someone_who_said_yes_does_not_learn_that_the_other_said_no(client, db, settings, pair):
    ana, ben, intro = pair
    press(client, links.answer_url(settings, intro.id, ana.id), "accept")
    press(client, links.answer_url(settings, intro.id, ben.id), "decline")
    page = client.get(path(links.answer_url(settings, intro.id, ana.id))).get_data(as_text=True)
    assert "You said yes" in page and "If Ben Okafor says yes too" in page


def test_an_acceptance_after_expiry_gets_a_polite_page(client, db, settings, pair):
    ana, _, intro = pair
    later = utcnow() + timedelta(days=settings.intro_answer_days + 1)
    workflow.send_reminders(db, settings, later)
    workflow.expire_unanswered(db, settings, later + timedelta(days=settings.intro_answer_days + 1))
    db.commit()
    page = client.get(path(links.answer_url(settings, intro.id, ana.id))).get_data(as_text=True)
    assert "This introduction has closed" in page and 'value="accept"' not in page
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    response = client.post(
        path(links.answer_url(settings, intro.id, ana.id)), data={"answer": "accept", "csrf_token": token}
    )
    assert response.status_code == 200
    assert "This introduction has closed" in response.get_data(as_text=True)
    assert now_intro(db, intro.id).status == IntroStatus.EXPIRED and now_intro(db, intro.id).a_answer is None


def test_someone_who_left_introductions_cannot_accept_and_is_told_why(client, db, settings, pair):
    ana, _, intro = pair
    subscriptions.unsubscribe_stream(db, ana.id, "intros", source="test")
    db.commit()
    response = press(client, links.answer_url(settings, intro.id, ana.id), "accept")
    assert "Introductions are turned off for you" in response.get_data(as_text=True)
    assert now_intro(db, intro.id).a_answer is None


def aged(settings, payload, days) -> str:
    class PastSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int((utcnow() - timedelta(days=days)).timestamp())

    return URLSafeTimedSerializer(settings.secret_key, salt=f"cop-mail:{links.PURPOSE}", signer=PastSigner).dumps(
        payload
    )


@pytest.mark.parametrize("kind", ["tampered", "another purpose", "nonsense", "not a party", "bad payload"])
def test_forged_links_get_a_plain_400_and_change_nothing(client, db, settings, pair, kind):
    ana, ben, intro = pair
    carla = add_member(db, "Carla")
    db.commit()
    from cop_mail.audience.links import preferences_token

    token = {
        "tampered": links.answer_token(settings, intro.id, ana.id)[:-2] + "zz",
        "another purpose": preferences_token(settings, ana.id),
        "nonsense": "..",
        "not a party": links.answer_token(settings, intro.id, carla.id),
        "bad payload": aged(settings, {"i": "1", "m": ana.id}, 0),
    }[kind]
    response = client.get(f"/intro/{token}")
    page = response.get_data(as_text=True)
    expected = 410 if kind == "not a party" else 400
    assert response.status_code == expected, page
    assert ("no longer exists" if expected == 410 else "This link is not valid") in page and "Traceback" not in page
    csrf = csrf_token_from(client.get("/login").get_data(as_text=True))
    assert client.post(f"/intro/{token}", data={"answer": "accept", "csrf_token": csrf}).status_code == expected
    assert now_intro(db, intro.id).a_answer is None


def test_an_expired_link_gets_a_plain_410(client, db, settings, pair):
    ana, _, intro = pair
    assert client.get(f"/intro/{aged(settings, {'i': intro.id, 'm': ana.id}, 100)}").status_code == 200
    response = client.get(f"/intro/{aged(settings, {'i': intro.id, 'm': ana.id}, 121)}")
    assert response.status_code == 410 and "This link has expired" in response.get_data(as_text=True)


def test_a_post_without_the_form_token_or_a_button_is_refused(client, db, settings, pair):
    ana, _, intro = pair
    url = path(links.answer_url(settings, intro.id, ana.id))
    assert client.post(url, data={"answer": "accept"}).status_code == 400
    csrf = csrf_token_from(client.get(url).get_data(as_text=True))
    assert client.post(url, data={"answer": "maybe", "csrf_token": csrf}).status_code == 400
    assert now_intro(db, intro.id).a_answer is None


def test_the_follow_up_page_records_met_once(client, db, settings, pair):
    ana, ben, intro = pair
    early = client.get(path(links.followup_url(settings, intro.id, ana.id))).get_data(as_text=True)
    assert "did not go ahead" in early
    workflow.answer(db, settings, intro.id, ana.id, "accept", "link")
    workflow.answer(db, settings, intro.id, ben.id, "accept", "link")
    db.commit()
    url = path(links.followup_url(settings, intro.id, ana.id))
    page = client.get(url).get_data(as_text=True)
    assert "Did you and Ben Okafor meet?" in page and now_intro(db, intro.id).a_followup is None
    csrf = csrf_token_from(page)
    response = client.post(url, data={"answer": "met", "csrf_token": csrf})
    assert "now connected" in response.get_data(as_text=True)
    again = client.post(url, data={"answer": "met", "csrf_token": csrf})
    assert "We already have your answer" in again.get_data(as_text=True)
    assert now_intro(db, intro.id).status == IntroStatus.MET
