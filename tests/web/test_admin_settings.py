"""The Settings page: everyone signed in reads it, only owners change it; every change is audited,
refused input saves nothing and says why, and the operator's secrets never appear."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from cop_mail import community
from cop_mail.db import utcnow
from cop_mail.models import AuditEvent, Campaign, Delivery, DeliveryStatus
from cop_mail.sending import budget
from tests.conftest import add_member, csrf_token_from

SMTP_PASSWORD = "smtp-password-never-shown"
DKIM_KEY = b"-----BEGIN PRIVATE KEY-----\nkey-material-never-shown\n-----END PRIVATE KEY-----\n"


@pytest.fixture
def settings(make_settings, redis_conn, engine):
    return make_settings(
        smtp_host="mail.example.net",
        smtp_user="relay-user",
        smtp_password=SMTP_PASSWORD,
        dkim_selector="cop2026",
        dkim_private_key=DKIM_KEY,
    )


def good_form(token: str, **changes: str) -> dict[str, str]:
    form = {
        "csrf_token": token,
        "tracking_enabled": "on",
        "budget_max_emails": "2",
        "budget_window_days": "7",
        "over_intros": "defer",
        "over_roundups": "drop",
        "over_newsletters": "defer",
        "over_resources": "drop",
    }
    form.update(changes)
    return {key: value for key, value in form.items() if value is not None}


def prefs(db) -> community.CommunityPrefs:
    db.expire_all()
    return community.load(db)


def page_token(client) -> str:
    return csrf_token_from(client.get("/admin/settings").get_data(as_text=True))


def test_owner_saves_tracking_and_the_budget(client, login, db):
    login("owner")
    page = client.get("/admin/settings").get_data(as_text=True)
    assert 'name="tracking_enabled"' in page and "Save settings" in page
    assert "off unless an owner turns it on" in page.lower()

    response = client.post("/admin/settings", data=good_form(csrf_token_from(page)), follow_redirects=True)

    assert response.status_code == 200
    assert "The settings are saved." in response.get_data(as_text=True)
    saved = prefs(db)
    assert saved.tracking_enabled and (saved.budget_max_emails, saved.budget_window_days) == (2, 7)
    assert saved.budget_over == {"intros": "defer", "roundups": "drop", "newsletters": "defer", "resources": "drop"}
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "settings.update"))
    assert event.actor == "owner@example.org"
    assert set(event.detail["changed"]) == {"tracking_enabled", "budget_max_emails", "budget_over"}
    # The saved values are shown back, and switching tracking off again is a change too.
    page = client.get("/admin/settings").get_data(as_text=True)
    assert 'value="2"' in page and 'id="over_roundups-drop" name="over_roundups" value="drop" checked' in page
    client.post("/admin/settings", data=good_form(page_token(client), tracking_enabled=None))
    assert prefs(db).tracking_enabled is False


def test_viewers_and_coordinators_read_but_cannot_change(client, login, db):
    for role in ("viewer", "coordinator"):
        login(role)
        response = client.get("/admin/settings")
        page = response.get_data(as_text=True)
        assert response.status_code == 200
        assert "an owner can change them" in page and "Save settings" not in page and "disabled" in page
        assert client.post("/admin/settings", data=good_form(csrf_token_from(page))).status_code == 403
    assert prefs(db) == community.CommunityPrefs()
    assert db.scalar(select(AuditEvent).where(AuditEvent.action == "settings.update")) is None


def test_a_post_without_the_csrf_token_is_refused(client, login, db):
    login("owner")
    response = client.post("/admin/settings", data=good_form(""))
    assert response.status_code == 400
    assert prefs(db) == community.CommunityPrefs()


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("budget_max_emails", "-1", "whole number from 0 to 100"),
        ("budget_max_emails", "two", "whole number from 0 to 100"),
        ("budget_max_emails", "101", "whole number from 0 to 100"),
        ("budget_max_emails", "\u00b2", "whole number from 0 to 100"),  # a digit to str.isdigit, not to int()
        ("budget_window_days", "0", "from 1 to 31"),
        ("budget_window_days", "32", "from 1 to 31"),
        ("budget_window_days", "", "from 1 to 31"),
        ("over_newsletters", "sometimes", "newsletters over the budget wait or are dropped"),
        ("over_intros", None, "introductions over the budget wait or are dropped"),
    ],
)
def test_bad_values_are_explained_and_nothing_is_saved(client, login, db, field, value, words):
    login("owner")
    response = client.post("/admin/settings", data=good_form(page_token(client), **{field: value}))
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Nothing was saved" in page and words in page
    assert f'id="{field}-error"' in page
    assert prefs(db) == community.CommunityPrefs()
    assert db.scalar(select(AuditEvent).where(AuditEvent.action == "settings.update")) is None


def test_the_operator_settings_are_shown_without_secrets(client, login):
    login("viewer")
    page = client.get("/admin/settings").get_data(as_text=True)
    for shown in ("Test Community", "http://cop-mail.test", "community@cop-mail.test", "mail.example.net:1025"):
        assert shown in page
    assert "on (selector cop2026, domain cop-mail.test)" in page
    assert SMTP_PASSWORD not in page and "key-material-never-shown" not in page and "test-secret-" not in page


def test_changing_the_budget_releases_held_mail_for_a_new_check(client, login, db):
    member = add_member(db, "Ana Souza")
    campaign = Campaign(name="Letter", kind="newsletter", status="sending", list_ids=[], segment_ids=[])
    db.add(campaign)
    db.flush()
    later = utcnow() + timedelta(days=5)
    db.add(Delivery(campaign_id=campaign.id, member_id=member.id, status=DeliveryStatus.HELD, next_attempt_at=later))
    db.commit()
    login("owner")
    client.post("/admin/settings", data=good_form(page_token(client), budget_max_emails="5"))
    db.expire_all()
    due = db.scalar(select(Delivery.next_attempt_at))
    assert due < later - timedelta(days=4)
    assert budget.campaign_summary(db, campaign.id).held == 1


def test_the_member_page_shows_held_and_dropped_mail_in_plain_words(client, login, db):
    member = add_member(db, "Ana Souza")
    for name, status, reason in (
        (
            "Held letter",
            DeliveryStatus.HELD,
            "Attention budget (2 emails per 7 days): 2 already sent; held until 9 Dec",
        ),
        ("Dropped digest", DeliveryStatus.DROPPED, "Attention budget (2 emails per 7 days): 2 already sent; dropped"),
    ):
        campaign = Campaign(name=name, kind="newsletter", status="sending", list_ids=[], segment_ids=[])
        db.add(campaign)
        db.flush()
        db.add(Delivery(campaign_id=campaign.id, member_id=member.id, status=status, last_error=reason))
    db.commit()
    login("viewer")
    page = client.get(f"/admin/members/{member.id}").get_data(as_text=True)
    assert "held (Attention budget (2 emails per 7 days): 2 already sent; held until 9 Dec)" in page
    assert "dropped (Attention budget (2 emails per 7 days): 2 already sent; dropped)" in page


def test_the_campaign_page_says_what_the_budget_held_and_dropped(client, login, db):
    members = [add_member(db, f"Member {i}") for i in range(3)]
    campaign = Campaign(
        name="Letter",
        kind="newsletter",
        status="sending",
        subject="Hi",
        list_ids=[],
        segment_ids=[],
        planned_at=utcnow(),
    )
    db.add(campaign)
    db.flush()
    window = utcnow().replace(microsecond=0) + timedelta(days=3)
    db.add_all(
        [
            Delivery(
                campaign_id=campaign.id, member_id=members[0].id, status=DeliveryStatus.HELD, next_attempt_at=window
            ),
            Delivery(
                campaign_id=campaign.id, member_id=members[1].id, status=DeliveryStatus.HELD, next_attempt_at=window
            ),
            Delivery(campaign_id=campaign.id, member_id=members[2].id, status=DeliveryStatus.DROPPED),
        ]
    )
    db.commit()
    login("viewer")
    page = client.get(f"/admin/campaigns/{campaign.id}").get_data(as_text=True)
    assert f"2 held by the attention budget (next window {budget.format_when(window)})" in page
    assert "1 dropped by the attention budget" in page
    assert '<option value="held" >held by the attention budget</option>' in page
    assert '<option value="dropped" >dropped by the attention budget</option>' in page
    held_only = client.get(f"/admin/campaigns/{campaign.id}?status=held").get_data(as_text=True)
    assert "2 deliveries." in held_only and held_only.count("<td>held by the attention budget</td>") == 2


def test_saving_the_same_values_changes_and_audits_nothing(client, login, db):
    login("owner")
    client.post("/admin/settings", data=good_form(page_token(client)))
    response = client.post("/admin/settings", data=good_form(page_token(client)), follow_redirects=True)
    assert "Nothing changed." in response.get_data(as_text=True)
    assert len(db.scalars(select(AuditEvent).where(AuditEvent.action == "settings.update")).all()) == 1
