"""Segments against real PostgreSQL and SQLite: every kind of condition, nesting, counts,
samples, and the audience campaigns use (lists OR segments, active, suppression applied)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from cop_mail.audience import segments
from cop_mail.db import utcnow
from cop_mail.models import (
    Campaign,
    ListMembership,
    MailingList,
    Member,
    Practice,
    Segment,
    Suppression,
    Tag,
    Value,
)
from cop_mail.tokens import address_hash

DAY = timedelta(days=1)


@pytest.fixture
def community(db):
    now = utcnow()
    care, joy, courage = Value(name="Care"), Value(name="Joy"), Value(name="Courage")
    facilitation, weaving = Practice(name="Facilitation"), Practice(name="Weaving")
    founder, newcomer = Tag(name="founder"), Tag(name="newcomer")
    newsletter, digest = MailingList(name="Newsletter", slug="newsletter"), MailingList(name="Digest", slug="digest")
    db.add_all([care, joy, courage, facilitation, weaving, founder, newcomer, newsletter, digest])
    people = {
        "ana": Member(email="ana@example.org", values=[care, joy], practices=[facilitation], tags=[founder],
                      joined_at=now - 400 * DAY, last_engaged_at=now - 5 * DAY, connections_count=5,
                      last_introduced_at=now - 10 * DAY, location="Lisbon", locale="pt-BR",
                      attributes={"role": "Host", "skills": "weaving, cooking"}),
        "ben": Member(email="ben@example.org", values=[care], joined_at=now - 10 * DAY, connections_count=0,
                      location="Porto", locale="pt"),
        "cy": Member(email="cy@example.org", values=[joy], practices=[weaving], tags=[newcomer], status="pending",
                     joined_at=now - 40 * DAY, last_engaged_at=now - 100 * DAY, connections_count=1, locale="en",
                     attributes={"role": "guest"}),
        "dee": Member(email="dee@example.org", status="unsubscribed", joined_at=now - 2 * DAY, connections_count=3,
                      attributes={"role": ""}),
        "eve": Member(email="eve@example.org", values=[care], joined_at=now - 3 * DAY),
        "fay": Member(email="fay@example.org", wants_newsletters=False, joined_at=now - 3 * DAY, connections_count=2),
        "gus": Member(email="gus@example.org", paused_until=now + 20 * DAY, joined_at=now - 3 * DAY,
                      connections_count=2),
    }  # fmt: skip
    db.add_all(people.values())
    db.flush()
    for name, item, status in [
        ("ana", newsletter, "subscribed"), ("ben", newsletter, "unsubscribed"), ("cy", digest, "subscribed"),
        ("dee", newsletter, "subscribed"), ("eve", newsletter, "subscribed"), ("fay", newsletter, "subscribed"),
        ("gus", newsletter, "subscribed"),
    ]:  # fmt: skip
        db.add(ListMembership(list_id=item.id, member_id=people[name].id, status=status))
    db.add(Suppression(email_hash=address_hash("eve@example.org"), reason="bounced"))
    db.commit()
    ids = {"care": care.id, "joy": joy.id, "courage": courage.id, "facilitation": facilitation.id,
           "weaving": weaving.id, "founder": founder.id, "newcomer": newcomer.id, "newsletter": newsletter.id,
           "digest": digest.id}  # fmt: skip
    return ids


def who(db, *conditions, match="all"):
    rules = {"match": match, "rules": list(conditions)}
    member_ids = select(Member.email).where(Member.id.in_(segments.segment_member_ids_query(rules)))
    return {email.split("@")[0] for email in db.scalars(member_ids)}


def test_values_practices_and_tags(db, community):
    c = community
    assert who(db, {"field": "value", "op": "any", "value": [c["care"], c["joy"]]}) == {"ana", "ben", "cy", "eve"}
    assert who(db, {"field": "value", "op": "all", "value": [c["care"], c["joy"]]}) == {"ana"}
    assert who(db, {"field": "value", "op": "none", "value": [c["care"]]}) == {"cy", "dee", "fay", "gus"}
    assert who(db, {"field": "value", "op": "any", "value": [c["courage"]]}) == set()
    assert who(db, {"field": "practice", "op": "any", "value": [c["weaving"]]}) == {"cy"}
    assert who(db, {"field": "tag", "op": "none", "value": [c["founder"], c["newcomer"]]}) == {
        "ben", "dee", "eve", "fay", "gus"
    }  # fmt: skip


def test_lists_and_status(db, community):
    c = community
    assert who(db, {"field": "list", "op": "in", "value": [c["newsletter"]]}) == {"ana", "dee", "eve", "fay", "gus"}
    assert who(db, {"field": "list", "op": "not_in", "value": [c["newsletter"]]}) == {"ben", "cy"}
    assert who(db, {"field": "status", "op": "in", "value": ["pending", "unsubscribed"]}) == {"cy", "dee"}
    assert "dee" not in who(db, {"field": "status", "op": "not_in", "value": ["unsubscribed"]})


def test_joined_engaged_introduced(db, community):
    today = utcnow().date()
    assert who(db, {"field": "joined", "op": "within_days", "value": 7}) == {"dee", "eve", "fay", "gus"}
    assert who(db, {"field": "joined", "op": "more_than_days_ago", "value": 30}) == {"ana", "cy"}
    assert who(db, {"field": "joined", "op": "before", "value": (today - 365 * DAY).isoformat()}) == {"ana"}
    assert who(db, {"field": "joined", "op": "after", "value": (today - 11 * DAY).isoformat()}) == {
        "ben", "dee", "eve", "fay", "gus"
    }  # fmt: skip
    assert who(db, {"field": "last_engaged", "op": "within_days", "value": 30}) == {"ana"}
    assert who(db, {"field": "last_engaged", "op": "not_within_days", "value": 30}) == {
        "ben", "cy", "dee", "eve", "fay", "gus"
    }  # fmt: skip
    assert who(db, {"field": "last_engaged", "op": "ever"}) == {"ana", "cy"}
    assert who(db, {"field": "last_engaged", "op": "before", "value": (today - 50 * DAY).isoformat()}) == {"cy"}
    assert who(db, {"field": "introduced", "op": "never"}) == {"ben", "cy", "dee", "eve", "fay", "gus"}
    assert who(db, {"field": "introduced", "op": "not_within_days", "value": 7}) == {
        "ana", "ben", "cy", "dee", "eve", "fay", "gus"
    }  # fmt: skip


def test_connections_and_the_periphery(db, community):
    assert who(db, {"field": "connections", "op": "periphery"}) == {"ben", "cy", "eve"}
    assert who(db, {"field": "connections", "op": "gte", "value": 3}) == {"ana", "dee"}
    assert who(db, {"field": "connections", "op": "eq", "value": 2}) == {"fay", "gus"}
    assert who(db, {"field": "connections", "op": "lt", "value": 1}) == {"ben", "eve"}


def test_location_locale_and_custom_attributes(db, community):
    assert who(db, {"field": "location", "op": "equals", "value": "lisbon"}) == {"ana"}
    assert who(db, {"field": "location", "op": "starts_with", "value": "Po"}) == {"ben"}
    assert who(db, {"field": "location", "op": "is_set"}) == {"ana", "ben"}
    assert who(db, {"field": "locale", "op": "starts_with", "value": "pt"}) == {"ana", "ben"}
    assert who(db, {"field": "locale", "op": "equals", "value": "PT-br"}) == {"ana"}
    role = {"field": "attribute", "key": "role"}
    assert who(db, {**role, "op": "equals", "value": "host"}) == {"ana"}
    assert who(db, {**role, "op": "exists"}) == {"ana", "cy"}  # an empty value is not set
    assert who(db, {**role, "op": "not_exists"}) == {"ben", "dee", "eve", "fay", "gus"}
    assert who(db, {**role, "op": "not_equals", "value": "host"}) == {"ben", "cy", "dee", "eve", "fay", "gus"}
    assert who(db, {"field": "attribute", "key": "skills", "op": "contains", "value": "Weav"}) == {"ana"}
    assert who(db, {"field": "attribute", "key": "skills", "op": "contains", "value": "%"}) == set()


def test_nested_and_or_groups(db, community):
    c = community
    periphery_or_new = {
        "match": "any",
        "rules": [{"field": "connections", "op": "periphery"}, {"field": "joined", "op": "within_days", "value": 7}],
    }
    assert who(db, {"field": "value", "op": "any", "value": [c["care"]]}, periphery_or_new) == {"ben", "eve"}
    nested = {"match": "all", "rules": [periphery_or_new, {"field": "status", "op": "in", "value": ["active"]}]}
    assert who(db, nested, {"field": "tag", "op": "any", "value": [c["founder"]]}, match="any") == {
        "ana", "ben", "eve", "fay", "gus"
    }  # fmt: skip


def test_count_reachable_and_sample(db, community):
    rules = {"match": "all", "rules": [{"field": "list", "op": "in", "value": [community["newsletter"]]}]}
    assert segments.count_segment(db, rules) == 5
    # dee unsubscribed, eve suppressed: both can be counted, neither can be mailed
    assert segments.count_reachable(db, rules) == 3
    sample = segments.sample_segment(db, rules, 2)
    assert len(sample) == 2 and {row.email for row in sample} <= {
        f"{n}@example.org" for n in ("dee", "eve", "fay", "gus")
    }
    assert segments.count_segment(db, segments.EMPTY_RULES) == 7


def test_audience_is_lists_or_segments_active_and_never_suppressed(db, community):
    c = community
    periphery = segments.save_segment(
        db, "Periphery", {"match": "all", "rules": [{"field": "connections", "op": "periphery"}]}
    )
    db.commit()

    def audience(**kwargs):
        query = segments.audience_query(db, **kwargs)
        return {email.split("@")[0] for email in db.scalars(select(Member.email).where(Member.id.in_(query)))}

    assert audience(list_ids=[c["newsletter"]]) == {"ana", "fay", "gus"}  # not dee (unsubscribed), not eve
    assert audience(segment_ids=[periphery.id]) == {"ben"}  # cy is pending, eve is suppressed
    assert audience(list_ids=[c["newsletter"]], segment_ids=[periphery.id]) == {"ana", "ben", "fay", "gus"}
    assert audience(list_ids=[c["newsletter"]], stream="newsletters") == {"ana"}  # fay opted out, gus paused
    assert audience() == set()
    with pytest.raises(segments.SegmentNotFound):
        segments.audience_query(db, segment_ids=[periphery.id + 100])


def test_suppression_applies_even_when_the_status_was_not_updated(db, community):
    """Belt and braces: an active member whose address hash is suppressed is never in an audience."""
    db.add(Suppression(email_hash=address_hash("ana@example.org"), reason="manual"))
    db.commit()
    query = segments.audience_query(db, list_ids=[community["newsletter"]])
    emails = set(db.scalars(select(Member.email).where(Member.id.in_(query))))
    assert (
        "ana@example.org" not in emails
        and db.scalar(select(Member.status).where(Member.email == "ana@example.org")) == "active"
    )


def test_saving_segments_by_name(db, community):
    rules = {"match": "any", "rules": [{"field": "connections", "op": "periphery"}]}
    saved = segments.save_segment(db, "  The   periphery ", rules, "members with few connections")
    db.commit()
    assert saved.name == "The periphery" and saved.rules == {
        "match": "any",
        "rules": [{"field": "connections", "op": "periphery"}],
    }
    with pytest.raises(segments.RuleError, match="already exists"):
        segments.save_segment(db, "the PERIPHERY", rules)
    with pytest.raises(segments.RuleError) as caught:
        segments.save_segment(db, "", {"match": "all", "rules": [{"field": "joined", "op": "before", "value": "x"}]})
    assert caught.value.problems == ["Give the segment a name.", "Condition 1 (Joined): write the date as YYYY-MM-DD."]
    db.rollback()
    assert segments.find_segment_by_name(db, "THE PERIPHERY").id == saved.id


def test_a_segment_in_use_by_a_campaign_cannot_be_deleted(db, community):
    saved = segments.save_segment(
        db, "Newcomers", {"match": "all", "rules": [{"field": "joined", "op": "within_days", "value": 30}]}
    )
    db.add(Campaign(name="Welcome", segment_ids=[saved.id]))
    db.commit()
    with pytest.raises(segments.RuleError, match="Campaigns still use this segment: Welcome"):
        segments.delete_segment(db, saved)
    db.rollback()
    campaign = db.scalar(select(Campaign))
    campaign.status = "sent"
    db.commit()
    segments.delete_segment(db, db.get(Segment, saved.id))
    db.commit()
    assert db.scalar(select(Segment)) is None
