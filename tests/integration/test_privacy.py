"""GDPR export and erasure of one member, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from cop_mail.audience import privacy
from cop_mail.audience import subscriptions as subs
from cop_mail.audience.consent import record_member_event
from cop_mail.audience.suppression import is_suppressed, member_can_receive
from cop_mail.models import (
    Campaign,
    ConsentEvent,
    Delivery,
    InboundMessage,
    ListMembership,
    MailingList,
    Member,
    MemberEvent,
    Practice,
    Suppression,
    Tag,
    Value,
)
from cop_mail.tokens import address_hash


@pytest.fixture
def ana(db) -> Member:
    """A member with a bit of everything: lists, consents, events, a delivery and a reply."""
    mailing_list = MailingList(name="Practitioners", slug="practitioners", opt_in="single", public=True)
    db.add_all([mailing_list, Value(name="Reciprocity"), Practice(name="Facilitation"), Tag(name="2026 cohort")])
    db.flush()
    result = subs.sign_up(
        db,
        mailing_list,
        subs.SignupRequest(
            email="ana.lima@example.org",
            name="Ana Lima",
            ip="203.0.113.5",
            value_ids=tuple(db.scalars(select(Value.id))),
            practice_ids=tuple(db.scalars(select(Practice.id))),
        ),
    )
    member = db.get(Member, result.member_id)
    member.preferred_name = "Ana"
    member.location = "Lisbon"
    member.attributes = {"phone": "+351 900 000 000"}
    member.tags = list(db.scalars(select(Tag)))
    record_member_event(db, member.id, "replied", explicit=True, snippet="Yes, happy to meet Ben!")
    campaign = Campaign(name="November letter", subject="Reciprocity in practice", status="sent")
    db.add(campaign)
    db.flush()
    db.add(
        Delivery(
            campaign_id=campaign.id,
            member_id=member.id,
            status="failed",
            last_error="550 5.1.1 <ana.lima@example.org>: no such user",
        )
    )
    db.add(
        InboundMessage(
            raw=b"From: Ana <ana.lima@example.org>\r\n\r\nYes!",
            size=40,
            member_id=member.id,
            envelope_from="ana.lima@example.org",
            envelope_to=["reply+x@cop-mail.test"],
        )
    )
    db.add(
        InboundMessage(
            raw=b"From: Ana\r\n\r\nunmatched",
            size=20,
            envelope_from="Ana.Lima@example.org",
            envelope_to=["stories@cop-mail.test"],
        )
    )
    db.commit()
    return member


def test_export_holds_every_section_as_json(db, ana):
    data = privacy.export_member(db, ana.id)
    text = json.dumps(data)  # must be serialisable as it is
    assert data["format"] == privacy.EXPORT_FORMAT
    profile = data["profile"]
    assert (profile["email"], profile["name"], profile["location"]) == ("ana.lima@example.org", "Ana Lima", "Lisbon")
    assert profile["values"] == ["Reciprocity"] and profile["practices"] == ["Facilitation"]
    assert profile["tags"] == ["2026 cohort"] and profile["attributes"] == {"phone": "+351 900 000 000"}
    assert [m["list"] for m in data["lists"]] == ["Practitioners"]
    assert data["consents"][0]["kind"] == "subscribed" and data["consents"][0]["ip"] == "203.0.113.5"
    assert data["events"][0]["detail"] == {"snippet": "Yes, happy to meet Ben!"}
    assert data["deliveries"][0]["subject"] == "Reciprocity in practice"
    assert data["inbound_messages"][0]["raw"].endswith("Yes!")
    assert "Ana Lima" in text


def test_export_includes_tables_added_later_without_code_changes(db, ana):
    from cop_mail.models import Story

    story_columns = {c.name for c in Story.__table__.columns}
    assert "author_id" in story_columns
    story = Story(author_id=ana.id, title="Seed swap", body="We swapped seeds.")
    db.add(story)
    db.commit()
    data = privacy.export_member(db, ana.id)
    assert [row["title"] for row in data["other"]["stories"]] == ["Seed swap"]


def test_export_of_an_unknown_member_raises(db):
    with pytest.raises(privacy.MemberGone):
        privacy.export_member(db, 12345)


def test_erasure_removes_personal_data_everywhere_and_keeps_the_suppression(db, ana):
    member_id = ana.id
    assert privacy.erase_member(db, member_id, actor="owner@example.org") is True
    db.commit()
    db.expire_all()
    member = db.get(Member, member_id)
    assert member.email == f"erased-{member_id}@invalid" and member.status == "erased"
    assert (member.name, member.preferred_name, member.location, member.attributes) == ("", "", "", {})
    assert member.values == [] and member.practices == [] and member.tags == []
    assert db.scalar(select(func.count(ListMembership.id))) == 0
    for event in db.scalars(select(ConsentEvent).where(ConsentEvent.member_id == member_id)):
        assert event.ip is None
        assert event.detail in ({}, {"actor": "owner@example.org"})
    assert all(e.detail == {} for e in db.scalars(select(MemberEvent).where(MemberEvent.member_id == member_id)))
    assert db.scalar(select(Delivery.last_error)) == ""
    assert all(m.raw == b"" and m.envelope_from == "" for m in db.scalars(select(InboundMessage)))
    # The address's hash stays: no import or signup brings it back, and nothing is sent to it.
    assert db.scalar(select(Suppression.reason)) == "erased"
    assert is_suppressed(db, "Ana.Lima@example.org")
    assert not member_can_receive(db, member_id, "transactional")
    again = subs.sign_up(db, db.scalar(select(MailingList)), subs.SignupRequest(email="ana.lima@example.org"))
    assert again.outcome is subs.SignupOutcome.REFUSED
    dump = json.dumps(privacy.export_member(db, member_id))
    for personal in ("ana.lima", "Ana Lima", "Lisbon", "+351", "203.0.113.5", "happy to meet"):
        assert personal not in dump, personal
    assert address_hash("ana.lima@example.org") not in dump  # the member row no longer carries it


def test_erasure_is_idempotent_and_recorded(db, ana):
    assert privacy.erase_member(db, ana.id) is True
    db.commit()
    assert privacy.erase_member(db, ana.id) is False
    kinds = [e.kind for e in db.scalars(select(ConsentEvent).where(ConsentEvent.member_id == ana.id))]
    assert kinds.count("erased") == 1


def test_erasure_follows_each_tables_on_delete_rule(db, ana):
    from cop_mail.models import Resource, Story

    db.add(Story(author_id=ana.id, title="Seed swap", body="We swapped seeds."))
    resource_fks = [fk.parent.name for fk in Resource.__table__.foreign_keys if fk.column.table.name == "members"]
    resource = Resource(title="Facilitation deck", **{name: ana.id for name in resource_fks})
    db.add(resource)
    db.commit()
    privacy.erase_member(db, ana.id)
    db.commit()
    db.expire_all()
    assert db.scalar(select(func.count(Story.id))) == 0  # a member's own story goes with them
    assert all(getattr(db.get(Resource, resource.id), name) is None for name in resource_fks)


def test_every_table_pointing_at_members_is_covered_by_erasure():
    assert privacy.unhandled_member_tables() == []


def test_introductions_are_exported_and_anonymised_not_lost_for_the_other_member(db, ana):
    from cop_mail.models import Connection, HelpTopic, Intro, IntroStatusChange

    ben = Member(email="ben@example.org", name="Ben", attributes={})
    cy = Member(email="cy@example.org", name="Cy", attributes={})
    db.add_all([ben, cy])
    db.flush()
    met = Intro(
        member_a_id=ana.id,
        member_b_id=ben.id,
        status="met",
        reason="both hold Reciprocity; Ana is new",
        note="Ana, meet Ben",
        shared_values=["Reciprocity"],
        topics=["seed swaps"],
    )
    waiting = Intro(member_a_id=cy.id, member_b_id=ana.id, status="invited", reason="Cy and Ana share Care")
    low, high = sorted((ana.id, ben.id))
    db.add_all(
        [
            met,
            waiting,
            Connection(member_a_id=low, member_b_id=high, note="met at the Lisbon meetup"),
            HelpTopic(member_id=ana.id, kind="offer", topic="facilitation for beginners"),
        ]
    )
    db.commit()
    data = privacy.export_member(db, ana.id)
    assert {row["reason"] for row in data["other"]["intros"]} == {
        "both hold Reciprocity; Ana is new",
        "Cy and Ana share Care",
    }
    assert data["other"]["connections"][0]["note"] == "met at the Lisbon meetup"
    assert data["other"]["help_topics"][0]["topic"] == "facilitation for beginners"

    privacy.erase_member(db, ana.id)
    db.commit()
    db.expire_all()
    intros = {intro.id: intro for intro in db.scalars(select(Intro))}
    assert intros[met.id].status == "met" and intros[waiting.id].status == "cancelled"
    assert all((i.reason, i.note, i.topics, i.shared_values) == ("", "", [], []) for i in intros.values())
    assert db.scalar(select(IntroStatusChange.to_status).where(IntroStatusChange.intro_id == waiting.id)) == (
        "cancelled"
    )
    connection = db.scalar(select(Connection))
    assert connection is not None and connection.note == ""  # Ben keeps his connection, without the story
    assert db.scalar(select(func.count(HelpTopic.id))) == 0
    assert "Lisbon" not in json.dumps(privacy.export_member(db, ben.id))
