"""The resource library: adding, suggesting, moderating, searching, composer cards and digests."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cop_mail.models import AuditEvent, MemberEvent, Practice, ResourceStatus
from cop_mail.resources import library
from cop_mail.resources.library import ResourceError, ResourceInput
from cop_mail.settings import Settings
from tests.integration.test_stories import add_member, add_value

PUBLIC_URL = "http://cop-mail.test"


def practice(session: Session, name: str) -> Practice:
    row = Practice(name=name)
    session.add(row)
    session.flush()
    return row


def add(session: Session, title: str, kind: str = "method", **fields: object) -> int:
    resource = library.add_resource(session, ResourceInput(kind=kind, title=title, **fields), "c@example.org")  # type: ignore[arg-type]
    session.commit()
    return resource.id


def titles(session: Session, query: str = "", **filters: object) -> list[str]:
    found, total = library.search(session, query, **filters)  # type: ignore[arg-type]
    assert total == len(found)
    return sorted(resource.title for resource in found)


def test_coordinators_publish_at_once_and_members_wait_for_moderation(db: Session) -> None:
    member = add_member(db)
    add(db, "Handover checklist", "template", description="Three **questions** for every shift change.")
    suggested = library.suggest_resource(db, member.id, ResourceInput(kind="reading", title="A book on care"))
    db.commit()

    assert suggested.status == ResourceStatus.PENDING
    assert titles(db) == ["Handover checklist"]
    assert titles(db, status=None) == ["A book on care", "Handover checklist"]
    assert library.count_pending(db) == 1
    event = db.scalars(select(MemberEvent)).one()
    assert (event.kind, event.detail) == ("resource_suggested", {"resource_id": suggested.id})

    with pytest.raises(ResourceError, match="note"):
        library.reject(db, suggested.id, "c@example.org", "")
    library.publish(db, suggested.id, "c@example.org")
    db.commit()
    assert titles(db) == ["A book on care", "Handover checklist"]
    actions = db.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["resource.add", "resource.publish"]


def test_search_matches_every_word_across_title_description_and_tags(db: Session) -> None:
    care = add_value(db, "Care")
    onboarding = practice(db, "Onboarding")
    add(db, "Walk the building", description="A ten-minute tour for new volunteers.", value_ids=[care.id])
    add(db, "Buddy system", "method", practice_ids=[onboarding.id])
    add(db, "Kwame Mensah", "mentor", description="Has welcomed 200 volunteers.")
    add(db, "Discount: 100% off", "tool")

    assert titles(db, "volunteers") == ["Kwame Mensah", "Walk the building"]
    assert titles(db, "TOUR volunteers") == ["Walk the building"]
    assert titles(db, "care") == ["Walk the building"]  # the value's name counts
    assert titles(db, "onboarding") == ["Buddy system"]
    assert titles(db, kind="mentor") == ["Kwame Mensah"]
    assert titles(db, value_id=care.id) == ["Walk the building"]
    assert titles(db, practice_id=onboarding.id) == ["Buddy system"]
    assert titles(db, "100%") == ["Discount: 100% off"]
    assert titles(db, "%") == ["Discount: 100% off"]  # a wildcard is just a character
    assert titles(db, "_") == []


def test_bad_input_is_refused_with_every_reason(db: Session) -> None:
    with pytest.raises(ResourceError) as refused:
        library.add_resource(
            db,
            ResourceInput(kind="spell", title="", url="javascript:alert(1)", value_ids=[404], practice_ids=[405]),
            "c@example.org",
        )
    assert len(refused.value.problems) == 5
    assert "http:// or https://" in " ".join(refused.value.problems)


def test_descriptions_are_sanitised(db: Session) -> None:
    resource_id = add(db, "Guide", description="<script>alert(1)</script> [x](javascript:alert(1)) *fine*")
    html = library.get_resource(db, resource_id).description_html
    assert "<script" not in html and 'href="javascript' not in html and "<em>fine</em>" in html


def test_an_edit_keeps_search_in_step(db: Session) -> None:
    resource_id = add(db, "Old name")
    library.update_resource(db, resource_id, ResourceInput(kind="tool", title="New name"), "c@example.org")
    db.commit()
    assert titles(db, "old") == [] and titles(db, "new") == ["New name"]


def test_the_composer_gets_cards_of_published_resources(db: Session) -> None:
    care = add_value(db, "Care")
    add(
        db, "Friday fifteen", description="Fifteen minutes each week.", url="https://example.org/f", value_ids=[care.id]
    )
    library.suggest_resource(db, add_member(db).id, ResourceInput(kind="tool", title="Friday pending"))
    db.commit()
    cards = library.resources_for_composer(db, "friday")
    assert [card["title"] for card in cards] == ["Friday fifteen"]
    assert cards[0]["kind_label"] == "Method" and cards[0]["values"] == ["Care"]
    assert cards[0]["url"] == "https://example.org/f" and cards[0]["summary"] == "Fifteen minutes each week."


def test_a_digest_becomes_a_draft_campaign_grouped_by_practice(db: Session, settings: Settings) -> None:
    onboarding = practice(db, "Onboarding")
    first = add(db, "Buddy system", practice_ids=[onboarding.id], url="https://example.org/buddy")
    second = add(db, "Walk the building")
    pending = library.suggest_resource(db, add_member(db).id, ResourceInput(kind="tool", title="Unpublished")).id
    db.commit()

    campaign = library.create_resource_digest(
        db, PUBLIC_URL, "c@example.org", resource_ids=[second, first, pending], subject="New in the library",
        list_ids=[1], intro="Picked by members.",
    )  # fmt: skip
    db.commit()
    assert (campaign.kind, campaign.status, campaign.list_ids) == ("resource_digest", "draft", [1])
    content = campaign.content
    assert content["resource_ids"] == [second, first]
    assert [group["name"] for group in content["groups"]] == ["More resources", "Onboarding"]
    assert content["groups"][0]["resources"][0]["url"] == f"{PUBLIC_URL}/resources/@@cm:resources_token@@"
    assert content["groups"][1]["resources"][0]["url"] == "https://example.org/buddy"
    assert content["intro"] == "Picked by members."

    with pytest.raises(ResourceError, match="at least one published"):
        library.create_resource_digest(db, PUBLIC_URL, "c@example.org", resource_ids=[pending], subject="x")
