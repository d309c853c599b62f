"""The newsletter composer's service: template data from the coordinator's choices, previews that
report problems with their field and line, saving drafts, and test sends through a real SMTP sink."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cop_mail.compose import ComposeError
from cop_mail.compose import newsletter as composer
from cop_mail.compose.preview import preview_campaign, preview_newsletter
from cop_mail.compose.test_send import send_test
from cop_mail.models import Admin, AuditEvent, CampaignStatus, Member, Resource, Role, Story, StoryConsent, Value
from cop_mail.resources import library
from cop_mail.sending import campaigns as service
from cop_mail.sending.pipeline import check_campaign
from cop_mail.settings import Settings
from cop_mail.stories import moderation
from tests.integration.test_stories import add_member, add_value, approved_story, submit

ESSAY = """Care is the quiet part of our work, {{ member.first_name | default("friend") }}.
This month we asked what care looks like **in practice**.

- a checklist that starts with "who might this affect?"
- fifteen minutes each Friday
"""


@dataclass
class Issue:
    """What a coordinator has to compose with: a value, stories of each sharing level, resources."""

    care: Value
    public: Story
    anonymous: Story
    members_only: Story
    waiting: Story
    method: Resource
    reading: Resource
    no_link: Resource
    pending: Resource
    spotlight: Member

    def choices(self, **changes: Any) -> composer.NewsletterInput:
        values: dict[str, Any] = {
            "title": "What care looks like in practice",
            "theme_value_id": self.care.id,
            "essay": ESSAY,
            "essay_author": "Rosa, for the coordinators",
            "story_ids": [self.public.id, self.anonymous.id, self.members_only.id],
            "resource_ids": [self.method.id, self.reading.id],
            "spotlight_email": self.spotlight.email,
            "spotlight_text": "Kwame has welcomed more than two hundred new volunteers.",
            "events": "2026-12-03 18:00 | Story circle: care | Online | https://events.example.org/circle\n"
            "Thursday evening | Practice lab | https://events.example.org/lab",
        }
        values.update(changes)
        return composer.NewsletterInput(**values)


def seed_issue(session: Session, instance: Path) -> Issue:
    care = add_value(session, "Care", 0, "Paying attention to the people our work touches.")
    courage = add_value(session, "Courage", 1)
    public = approved_story(
        session, instance, add_member(session, "amira@example.org", "Amira Haddad"),
        title="The handover question", body="We asked one question at every handover.", values=[courage, care],
    )  # fmt: skip
    anonymous = approved_story(
        session, instance, add_member(session, "jonas@example.org", "Jonas Øberg"),
        title="Saying no in a meeting", body="It was a small *no*.", consent=StoryConsent.PUBLIC_ANONYMOUS,
        values=[care],
    )  # fmt: skip
    members_only = approved_story(
        session, instance, add_member(session, "li@example.org", "Li Wei"),
        title="Night shifts", body="Nights are long.", consent=StoryConsent.MEMBERS_ONLY, values=[care],
    )  # fmt: skip
    waiting = submit(session, instance, add_member(session, "sam@example.org", "Sam O'Neill"), title="Not yet")

    def resource(kind: str, title: str, url: str) -> Resource:
        data = library.ResourceInput(kind=kind, title=title, description=f"About {title}.", url=url)
        return library.add_resource(session, data, "coordinator@example.org")

    method = resource("method", "The Friday fifteen", "https://library.example.org/friday")
    reading = resource("reading", "A field guide to handovers", "https://library.example.org/guide")
    no_link = resource("mentor", "Ask Kwame", "")
    pending = library.suggest_resource(
        session, public.author_id, library.ResourceInput(kind="tool", title="Unchecked", url="https://x.example.org")
    )
    spotlight = add_member(session, "kwame@example.org", "Kwame Mensah")
    session.commit()
    return Issue(care, public, anonymous, members_only, waiting, method, reading, no_link, pending, spotlight)


@pytest.fixture
def issue(db: Session, settings: Settings) -> Issue:
    return seed_issue(db, settings.instance_path)


def test_the_content_copies_the_coordinators_choices_into_template_data(
    db: Session, settings: Settings, issue: Issue
) -> None:
    content = composer.build_content(db, settings.public_url, issue.choices(), campaign_id=7)

    assert content["value"] == {"name": "Care", "description": "Paying attention to the people our work touches."}
    assert content["theme_value_id"] == issue.care.id
    assert content["archive_url"] == f"{settings.public_url}/archive/issues/7"
    cards = {card["title"]: card for card in content["stories"]}
    assert list(cards) == ["The handover question", "Saying no in a meeting", "Night shifts"]
    assert cards["The handover question"]["storyteller"] == "Amira Haddad"
    assert cards["The handover question"]["value"] == "Care"  # the theme, though Courage comes first
    assert cards["Saying no in a meeting"]["storyteller"] == "A member of the community"
    assert "Jonas" not in str(content)
    assert cards["Night shifts"]["storyteller"] == "Li Wei"  # members read the newsletter
    assert cards["The handover question"]["url"] == f"{settings.public_url}/archive/stories/{issue.public.id}"
    assert content["story_ids"] == [issue.public.id, issue.anonymous.id, issue.members_only.id]
    assert [r["title"] for r in content["practices"]] == ["The Friday fifteen"]
    assert [r["title"] for r in content["resources"]] == ["A field guide to handovers"]
    assert content["resource_ids"] == [issue.method.id, issue.reading.id]
    assert content["spotlight"]["name"] == "Kwame Mensah"
    assert content["spotlight_member_id"] == issue.spotlight.id
    assert content["events"] == [
        {"starts_at": "2026-12-03T18:00:00", "title": "Story circle: care", "place": "Online",
         "url": "https://events.example.org/circle"},
        {"starts_at": "Thursday evening", "title": "Practice lab", "place": "", "url": "https://events.example.org/lab"},
    ]  # fmt: skip


def test_what_was_saved_is_what_goes_out_even_after_a_story_is_renamed(
    db: Session, settings: Settings, issue: Issue
) -> None:
    campaign = composer.save_newsletter(db, settings, issue.choices(), "coordinator@example.org")
    db.commit()
    issue.public.title = "Renamed later"
    issue.spotlight.name = "Someone Else"
    db.commit()

    shown = preview_campaign(db, settings, campaign)
    assert shown.ok, shown.errors
    assert "The handover question" in shown.html and "Renamed later" not in shown.html
    assert "Kwame Mensah" in shown.html and "Someone Else" not in shown.html
    assert shown.subject == "Care: What care looks like in practice"
    assert campaign.status == CampaignStatus.DRAFT and campaign.kind == "newsletter"
    assert campaign.content["archive_url"] == f"{settings.public_url}/archive/issues/{campaign.id}"
    check_campaign(settings, campaign)  # the sending pipeline compiles the same data and accepts it


def test_only_approved_stories_and_published_linked_resources_go_in(
    db: Session, settings: Settings, issue: Issue
) -> None:
    choices = issue.choices(
        story_ids=[issue.public.id, issue.waiting.id, 9999],
        resource_ids=[issue.no_link.id, issue.pending.id],
        spotlight_email="nobody@example.org",
        events="next week | Lab | not a link",
        theme_value_id=None,
    )
    with pytest.raises(ComposeError) as caught:
        composer.build_content(db, settings.public_url, choices)
    problems = caught.value.problems
    by_field: dict[str | None, list[str]] = {}
    for problem in problems:
        by_field.setdefault(problem.field, []).append(problem.message)
    assert by_field["theme_value_id"] == ["Pick the value this issue is about."]
    assert any("“Not yet” is not approved" in m for m in by_field["story_ids"])
    assert any("#9999" in m for m in by_field["story_ids"])
    assert any("“Ask Kwame” has no web address" in m for m in by_field["resource_ids"])
    assert any("“Unchecked” is not published" in m for m in by_field["resource_ids"])
    assert by_field["spotlight_email"] == ["No member has the address nobody@example.org."]
    assert [p.line for p in problems if p.field == "events"] == [1]


def test_a_withdrawn_story_leaves_unsent_newsletters(db: Session, settings: Settings, issue: Issue) -> None:
    campaign = composer.save_newsletter(db, settings, issue.choices(), "coordinator@example.org")
    db.commit()
    moderation.withdraw(db, issue.anonymous.id, issue.anonymous.author_id)  # drops it from unsent newsletters
    db.commit()
    assert composer.drop_story_from_unsent(db, issue.anonymous.id) == []  # nothing left to drop
    db.refresh(campaign)
    assert campaign.content["story_ids"] == [issue.public.id, issue.members_only.id]
    assert "Saying no in a meeting" not in preview_campaign(db, settings, campaign).html
    with pytest.raises(ComposeError, match="not approved"):  # saving the old choices again is refused
        composer.save_newsletter(db, settings, issue.choices(), "coordinator@example.org", campaign.id)


@pytest.mark.parametrize(
    ("essay", "line", "words"),
    [
        ("Hello\n\n{{ member.first_name", 3, "template syntax"),
        ("Hello\n\nwe met {{ meeting_place }} last week", 3, "unknown name 'meeting_place'"),
        ("{{ member.favourite_colour }}", 1, "member has no field 'favourite_colour'"),
        ("{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}", None, "seconds"),
        ("{% for x in range(10**9) %}{{ x }}{% endfor %}", None, "beyond 1 MB"),
    ],
)
def test_essay_errors_come_back_with_field_and_line(
    db: Session, settings: Settings, issue: Issue, essay: str, line: int | None, words: str
) -> None:
    result = preview_newsletter(db, settings, issue.choices(essay=essay))
    assert not result.ok and result.html == ""
    (problem,) = result.errors
    assert problem.field == "essay"
    if line is not None:
        assert problem.line == line
    assert words in problem.message
    with pytest.raises(ComposeError):
        composer.save_newsletter(db, settings, issue.choices(essay=essay), "coordinator@example.org")


def test_a_broken_subject_says_so(db: Session, settings: Settings, issue: Issue) -> None:
    result = preview_newsletter(db, settings, issue.choices(subject="News for {{ member.first_name }"))
    assert [(e.field, e.line) for e in result.errors] == [("subject", 1)]


def test_scripts_handlers_and_javascript_links_are_removed_and_the_coordinator_told(
    db: Session, settings: Settings, issue: Issue
) -> None:
    essay = (
        "Hello <script>alert('x')</script> there.\n\n<img src=x onerror=\"alert(1)\">\n\n"
        '[click me](javascript:alert(document.cookie)) and <a href="javascript:steal()" onclick="steal()">this</a>'
    )
    result = preview_newsletter(db, settings, issue.choices(essay=essay))
    assert result.ok, result.errors
    lowered = result.html.lower()
    assert "<script" not in lowered and "alert(" not in lowered.replace("[click me](javascript:alert(", "")
    assert "onerror" not in lowered and "onclick" not in lowered and 'href="javascript' not in lowered
    assert result.notices == ["Scripts, event handlers and javascript: links in the essay are removed from the email."]


def test_a_ten_megabyte_pasted_image_is_refused_with_a_clear_message(
    db: Session, settings: Settings, issue: Issue
) -> None:
    essay = "Look at this:\n\n![garden](data:image/png;base64," + "iVBORw0KGgo" * 950_000 + ")\n"
    assert len(essay) > 10_000_000
    result = preview_newsletter(db, settings, issue.choices(essay=essay))
    (problem,) = result.errors
    assert (problem.field, problem.line) == ("essay", 3)
    assert "An image is pasted into the essay (10.5 MB)" in problem.message
    assert "upload the image instead and link to it" in problem.message


def test_the_checks_catch_a_clipped_email_a_missing_alt_text_and_a_link_to_nowhere(
    db: Session, settings: Settings, issue: Issue
) -> None:
    long_essay = ESSAY + "\n\n" + ("A long paragraph about care in practice. " * 40 + "\n\n") * 70
    essay = long_essay + "![](https://img.example.org/garden.jpg)\n\n[our wiki](ftp://wiki.example.org)"
    result = preview_newsletter(db, settings, issue.choices(essay=essay))
    assert result.ok, result.errors
    failing = {check.label: check.problems for check in result.checks if not check.ok}
    assert set(failing) == {
        "HTML under 102 KB (Gmail clips longer emails)",
        "Every link is a full address",
        "Every image has alt text",
    }
    assert "Gmail cuts off emails over 102 KB" in failing["HTML under 102 KB (Gmail clips longer emails)"][0]
    assert "“our wiki” goes to “nowhere”" in failing["Every link is a full address"][0]
    assert result.size > 102 * 1024 and not result.ready

    campaign = composer.save_newsletter(db, settings, issue.choices(essay=essay), "c@example.org")  # a draft may
    db.commit()
    with pytest.raises(service.CampaignStateError, match="Gmail"):
        check_campaign(settings, campaign)

    fine = preview_newsletter(db, settings, issue.choices())
    assert fine.ready and [check.label for check in fine.checks][:2] == [
        "Subject and preheader present",
        "Unsubscribe and preference links present",
    ]


def test_preview_as_a_member_uses_their_name_and_sample_links(db: Session, settings: Settings, issue: Issue) -> None:
    add_member(db, "ana.souza@example.org", "Ana Souza", preferred_name="Aninha")
    db.commit()
    result = preview_newsletter(db, settings, issue.choices(), member_email="ANA.SOUZA@example.org")
    assert result.ok, result.errors
    assert "Hi Aninha," in result.html and "ana.souza@example.org" in result.html
    assert result.recipient == "Aninha <ana.souza@example.org>"
    assert f"{settings.public_url}/u/" in result.html  # a sample unsubscribe link, not the member's own
    sample = preview_newsletter(db, settings, issue.choices())
    assert "Hi Alex," in sample.html
    unknown = preview_newsletter(db, settings, issue.choices(), member_email="who@example.org")
    assert [(e.field, e.message) for e in unknown.errors] == [
        ("preview_email", "No member has the address who@example.org.")
    ]


def test_saving_updates_a_draft_and_takes_a_scheduled_one_back_to_draft(
    db: Session, settings: Settings, issue: Issue
) -> None:
    from datetime import datetime, timedelta

    from cop_mail.models import MailingList

    everyone = MailingList(name="Everyone", slug="everyone")
    db.add(everyone)
    db.flush()
    campaign = composer.save_newsletter(
        db, settings, issue.choices(list_ids=[everyone.id], subject="Care, in practice"), "c@example.org"
    )
    db.commit()
    service.schedule(db, campaign.id, datetime.now() + timedelta(days=3), "Europe/Lisbon", "c@example.org")
    db.commit()
    again = issue.choices(title="Care, again", story_ids=[], list_ids=[everyone.id])
    composer.save_newsletter(db, settings, again, "c@example.org", campaign.id)
    db.commit()
    db.refresh(campaign)
    assert campaign.status == CampaignStatus.DRAFT
    assert campaign.content["title"] == "Care, again" and campaign.content["stories"] == []
    assert campaign.subject == "Care: Care, again"  # the default, since no subject was given this time
    assert [c.to_status for c in service.status_history(db, campaign.id)] == ["scheduled", "draft"]
    assert composer.input_from_campaign(campaign).theme_value_id == issue.care.id

    service.send_now(db, campaign.id, "c@example.org")
    db.commit()
    with pytest.raises(ComposeError, match="no longer be edited"):
        composer.save_newsletter(db, settings, issue.choices(), "c@example.org", campaign.id)


def test_a_test_send_reaches_the_coordinator_over_smtp_and_is_audited(
    db: Session,
    make_settings,
    smtp_sink,
    issue: Issue,  # type: ignore[no-untyped-def]
) -> None:
    settings = make_settings(smtp_port=smtp_sink.port)
    coordinator = Admin(email="rosa@example.org", name="Rosa Martínez", password_hash="x", role=Role.COORDINATOR)
    db.add(coordinator)
    db.flush()
    info = composer.newsletter_info(db, settings, issue.choices())
    result = send_test(db, settings, info, coordinator, ip="192.0.2.1")
    db.commit()

    assert result.sent and result.subject == "[TEST] Care: What care looks like in practice"
    (received,) = smtp_sink.wait_for(1)
    assert received.rcpt_tos == ["rosa@example.org"]
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    assert message["Subject"] == "[TEST] Care: What care looks like in practice"
    assert message["To"] == "Rosa Martínez <rosa@example.org>"
    assert message["Message-ID"] == result.message_id
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Hi Rosa," in html and "The handover question" in html and "Kwame Mensah" in html
    assert "1 Commons Lane, Testville" in text and "Unsubscribe" in text
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "newsletter.test_send")).one()
    assert (event.admin_id, event.ip) == (coordinator.id, "192.0.2.1")
    assert event.detail["to"] == "rosa@example.org" and event.detail["sent"] is True


def test_a_refused_test_send_is_reported_and_audited(
    db: Session,
    make_settings,
    smtp_sink,
    issue: Issue,  # type: ignore[no-untyped-def]
) -> None:
    settings = make_settings(smtp_port=smtp_sink.port)
    smtp_sink.responder = lambda message: "550 5.1.1 no such mailbox"
    coordinator = Admin(email="rosa@example.org", password_hash="x", role=Role.COORDINATOR)
    db.add(coordinator)
    db.flush()
    result = send_test(db, settings, composer.newsletter_info(db, settings, issue.choices()), coordinator)
    db.commit()
    assert not result.sent and "550" in result.reply
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "newsletter.test_send")).one()
    assert event.detail["sent"] is False and "no such mailbox" in event.detail["reply"]


def test_pickers_find_approved_stories_published_resources_and_members(db: Session, issue: Issue) -> None:
    titles = [row["title"] for row in composer.story_choices(db, "")]
    assert set(titles) == {"The handover question", "Saying no in a meeting", "Night shifts"}
    found = composer.story_choices(db, "HANDOVER")
    assert [row["title"] for row in found] == ["The handover question"]
    assert "Amira Haddad" in found[0]["detail"] and "public" in found[0]["detail"]
    anonymous = composer.story_choices(db, "saying")[0]
    assert "Jonas" not in anonymous["detail"] and "name not shown" in anonymous["detail"]
    kept = composer.story_choices(db, "handover", include=[issue.members_only.id])
    assert {row["title"] for row in kept} == {"The handover question", "Night shifts"}
    assert [row["title"] for row in composer.story_choices(db, "100%_")] == []

    resources = {row["title"] for row in composer.resource_choices(db, "")}
    assert resources == {"The Friday fifteen", "A field guide to handovers", "Ask Kwame"}
    assert [row["detail"] for row in composer.member_choices(db, "kwame")] == ["kwame@example.org"]


def test_members_only_stories_and_storytellers_get_per_member_links(
    db: Session, settings: Settings, issue: Issue
) -> None:
    from cop_mail.rendering import sample_recipient

    result = preview_newsletter(db, settings, issue.choices())
    token = sample_recipient(settings.public_url)["meet_token"]
    base = settings.public_url
    assert f'href="{base}/stories/{issue.members_only.id}/read/{token}"' in result.html
    assert f'href="{base}/stories/{issue.public.id}/meet/{token}"' in result.html
    assert f'href="{base}/archive/stories/{issue.public.id}"' in result.html  # public: the archive page
    assert "@@cm" not in result.html and "\u200b" not in result.html
