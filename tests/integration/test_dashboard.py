"""The dashboard's figures, on SQLite and PostgreSQL, from a small community with a known history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from cop_mail import dashboard
from cop_mail.models import (
    Campaign,
    CampaignStatusChange,
    Connection,
    ConsentEvent,
    Delivery,
    InboundMessage,
    Intro,
    Member,
    MemberEvent,
    Story,
    Value,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


@dataclass
class Community:
    ids: dict[str, int]
    campaign_id: int
    paused_id: int
    draft_id: int


def seed_community(session: Session, now: datetime = NOW) -> Community:
    """Eight members with a history, two values, a connection, introductions, stories and campaigns."""

    def ago(days: float) -> datetime:
        return now - timedelta(days=days)

    care, craft = Value(name="Care", position=0), Value(name="Craft", position=1)
    session.add_all([care, craft, Value(name="Curiosity", position=2)])
    people: dict[str, dict[str, Any]] = {
        "ana": {"joined_at": ago(100), "values": [care, craft], "connections_count": 1},
        "ben": {"joined_at": ago(40), "values": [care]},  # a newcomer nobody has introduced
        "cleo": {"joined_at": ago(200), "status": "unsubscribed", "updated_at": ago(1)},
        "dan": {"joined_at": ago(150), "status": "bounced", "updated_at": ago(1)},
        "eve": {"joined_at": ago(2), "status": "pending"},
        "fay": {"joined_at": ago(50), "values": [craft], "connections_count": 1},
        "gus": {"joined_at": ago(45)},  # invited to an introduction: not "without one"
        "hal": {"joined_at": ago(60), "wants_intros": False},  # opted out of introductions
    }
    members = {}
    for name, fields in people.items():
        fields = {"status": "active", "name": name.capitalize(), **fields}
        members[name] = Member(email=f"{name}@example.org", created_at=fields["joined_at"], **fields)
    session.add_all(members.values())
    session.flush()
    ids = {name: member.id for name, member in members.items()}
    # Cleo left everything 10 days ago; Dan's address bounced 3 days ago.
    session.add(ConsentEvent(member_id=ids["cleo"], kind="unsubscribed_all", created_at=ago(10), detail={}))
    session.add(MemberEvent(member_id=ids["dan"], kind="suppressed", created_at=ago(3), detail={"reason": "bounced"}))
    session.add(Connection(member_a_id=ids["ana"], member_b_id=ids["fay"], began_at=ago(20)))
    session.add(Intro(member_a_id=ids["ana"], member_b_id=ids["gus"], status="accepted_a", a_answer="accept",
                      invited_at=ago(6), created_at=ago(7)))  # fmt: skip
    session.add(Story(author_id=ids["ana"], title="Waiting", status="submitted", submitted_at=ago(1)))
    told = Story(author_id=ids["fay"], title="Told", status="approved", submitted_at=ago(12), approved_at=ago(8))
    told.values = [care]
    session.add(told)
    campaign = Campaign(name="November letter", subject="Hello", status="sent", started_at=ago(2),
                        created_at=ago(3))  # fmt: skip
    paused = Campaign(name="Stuck letter", subject="Hi", status="paused", started_at=ago(1), created_at=ago(1),
                      paused_reason="Paused after 50 messages in a row could not be sent.")  # fmt: skip
    draft = Campaign(name="Draft letter", subject="Soon", status="draft", created_at=ago(1))
    session.add_all([campaign, paused, draft])
    session.flush()
    session.add(CampaignStatusChange(campaign_id=paused.id, from_status="sending", to_status="paused",
                                     actor="system", created_at=ago(1)))  # fmt: skip
    sent_at = campaign.started_at
    rows = [
        ("ana", "sent", None),
        ("fay", "sent", None),
        ("gus", "sent", "soft"),  # accepted, then a soft bounce came back
        ("dan", "failed", "hard"),
        ("cleo", "suppressed", None),
        ("ben", "deferred", None),
    ]
    for name, status, bounce in rows:
        session.add(Delivery(campaign_id=campaign.id, member_id=ids[name], status=status, bounce_type=bounce,
                             sent_at=sent_at if status == "sent" else None))  # fmt: skip
    session.add(Delivery(campaign_id=paused.id, member_id=ids["ana"], status="failed"))
    start = campaign.started_at
    for name, hours, status in (("ana", 3.5, "processed"), ("fay", 30.2, "processed"), ("ana", 80, "processed")):
        session.add(InboundMessage(raw=b"", member_id=ids[name], subject_kind="campaign", subject_id=campaign.id,
                                   received_at=start + timedelta(hours=hours), status=status,
                                   from_address=f"{name}@example.org", subject="Re: Hello"))  # fmt: skip
    session.add(InboundMessage(raw=b"", status="needs_review", subject="unclear", received_at=ago(0.5)))
    session.add(ConsentEvent(member_id=ids["fay"], kind="stream_off", stream="newsletters",
                             created_at=start + timedelta(hours=5.5), detail={"campaign_id": campaign.id}))  # fmt: skip
    session.add(ConsentEvent(member_id=ids["gus"], kind="stream_off", stream="newsletters",
                             created_at=start + timedelta(hours=1), detail={"campaign_id": paused.id}))  # fmt: skip
    session.add(MemberEvent(member_id=ids["ana"], kind="story_prompt_answered", explicit=True,
                            created_at=start + timedelta(hours=3.2), detail={"campaign_id": campaign.id}))  # fmt: skip
    session.commit()
    return Community(ids, campaign.id, paused.id, draft.id)


def test_zero_data_gives_zeros_and_empty_lists(db):
    data = dashboard.overview(db, now=NOW)
    assert data.total_members == 0 and data.active_members == 0 and data.new_this_week == 0
    assert all(not any(series) for series in data.members.by_status.values())
    assert data.members.joined == [0] * dashboard.WEEKS
    assert data.connections.per_month == [0] * dashboard.MONTHS
    assert data.connections.unconnected_share == 0.0
    assert data.intros is not None and (data.intros.invited, data.intros.waiting_on_one) == (0, 0)
    assert data.stories is not None and data.stories.to_moderate == 0
    assert data.values == [] and data.campaigns == [] and data.needs_you == []
    charts = dashboard.dashboard_charts(data)
    assert all(chart.empty for chart in charts.values())


def test_members_by_status_follow_joins_and_leavings(db):
    seed_community(db)
    history = dashboard.overview(db, now=NOW).members
    weeks = history.weeks
    assert len(weeks) == dashboard.WEEKS and weeks[-1] == datetime(2026, 11, 23, tzinfo=UTC)
    last, end_of_2_nov, end_of_9_nov = dashboard.WEEKS - 1, dashboard.WEEKS - 4, dashboard.WEEKS - 3
    # Now: 5 active (ana, ben, fay, gus, hal), eve pending, cleo unsubscribed, dan bounced.
    assert {s: v[last] for s, v in history.by_status.items() if v[last]} == {
        "active": 5, "pending": 1, "unsubscribed": 1, "bounced": 1,
    }  # fmt: skip
    # At the end of the week of 2 November eve had not joined; cleo (15 Nov) and dan (22 Nov) had not left.
    assert {s: v[end_of_2_nov] for s, v in history.by_status.items() if v[end_of_2_nov]} == {"active": 7}
    assert {s: v[end_of_9_nov] for s, v in history.by_status.items() if v[end_of_9_nov]} == {
        "active": 6, "unsubscribed": 1,
    }  # fmt: skip
    # The first week (1 to 7 June): only cleo (9 May) had joined; dan came on 28 June, ana in August.
    assert weeks[0] == datetime(2026, 6, 1, tzinfo=UTC)
    assert {s: v[0] for s, v in history.by_status.items() if v[0]} == {"active": 1}
    assert sum(history.joined) == 7  # everyone but cleo joined inside the 26 weeks
    assert history.joined[last] == 1  # eve, this week
    assert history.current == {
        "pending": 1, "active": 5, "unsubscribed": 1, "bounced": 1, "complained": 0, "erased": 0,
    }  # fmt: skip


def test_connections_intros_stories_and_values(db):
    seed_community(db)
    data = dashboard.overview(db, now=NOW)
    assert data.connections.per_month[-1] == 1 and sum(data.connections.per_month) == 1  # 20 days ago: 5 Nov
    assert (data.connections.active_members, data.connections.unconnected) == (5, 3)
    assert data.connections.unconnected_share == pytest.approx(60.0)
    assert data.intros is not None
    assert (data.intros.invited, data.intros.waiting_on_one) == (0, 1)
    assert data.intros.oldest_waiting == days_ago(6)
    assert data.stories is not None
    assert data.stories.submitted[-1] == 2 and data.stories.published[-1] == 1 and data.stories.to_moderate == 1
    assert [(v.name, v.members, v.stories) for v in data.values] == [("Care", 2, 1), ("Craft", 2, 0),
                                                                      ("Curiosity", 0, 0)]  # fmt: skip


def test_recent_campaigns_count_deliveries_replies_and_unsubscribes(db):
    community = seed_community(db)
    data = dashboard.overview(db, now=NOW)
    assert [c.name for c in data.campaigns] == ["Stuck letter", "November letter"]  # drafts never started
    letter = data.campaigns[1]
    assert letter.campaign_id == community.campaign_id
    assert (letter.recipients, letter.delivered, letter.bounced, letter.failed) == (6, 2, 2, 1)
    assert (letter.replies, letter.unsubscribes) == (3, 1)
    stuck = data.campaigns[0]
    assert (stuck.recipients, stuck.replies, stuck.unsubscribes) == (1, 0, 1)


def test_needs_you_lists_each_kind_of_waiting_work_with_a_link(db):
    community = seed_community(db)
    items = {item.key: item for item in dashboard.overview(db, now=NOW).needs_you}
    assert set(items) == {"replies", "paused", "stories", "newcomers"}
    assert (items["replies"].count, items["replies"].endpoint, items["replies"].args) == (
        1, "admin.inbox", {"folder": "review"},
    )  # fmt: skip
    assert items["paused"].items == [("Stuck letter", "admin.campaign", {"campaign_id": community.paused_id})]
    assert (items["stories"].count, items["stories"].args) == (1, {"status": "submitted"})
    # Ben (40 days, nobody asked him); not Gus (invited), Fay (connected), Hal (no intros), Eve (2 days).
    newcomers = items["newcomers"]
    assert newcomers.count == 1
    assert newcomers.items == [("Ben", "admin.member_detail", {"member_id": community.ids["ben"]})]


def test_a_coordinator_pause_is_not_an_error_to_fix(db):
    community = seed_community(db)
    db.add(CampaignStatusChange(campaign_id=community.paused_id, from_status="sending", to_status="sending",
                                actor="system", created_at=days_ago(0.8)))  # fmt: skip
    db.add(CampaignStatusChange(campaign_id=community.paused_id, from_status="sending", to_status="paused",
                                actor="ana@example.org", created_at=days_ago(0.5)))  # fmt: skip
    db.commit()
    keys = {item.key for item in dashboard.overview(db, now=NOW).needs_you}
    assert "paused" not in keys


def test_week_and_month_buckets():
    weeks = dashboard.week_starts(NOW, 3)
    assert weeks == [datetime(2026, 11, 9, tzinfo=UTC), datetime(2026, 11, 16, tzinfo=UTC),
                     datetime(2026, 11, 23, tzinfo=UTC)]  # fmt: skip
    months = dashboard.month_starts(datetime(2026, 2, 3, tzinfo=UTC), 4)
    assert months == [datetime(2025, 11, 1, tzinfo=UTC), datetime(2025, 12, 1, tzinfo=UTC),
                      datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)]  # fmt: skip


def test_the_dashboard_works_while_later_tables_are_missing(db, monkeypatch):
    """A database migrated before introductions and stories landed still gets its dashboard."""
    seed_community(db)
    monkeypatch.setattr(dashboard, "existing_tables", lambda session: set())
    data = dashboard.overview(db, now=NOW)
    assert data.intros is None and data.stories is None
    assert data.connections.per_month == [0] * dashboard.MONTHS
    assert all(v.stories is None for v in data.values)
    assert {item.key for item in data.needs_you} == {"replies", "paused", "newcomers"}
    charts = dashboard.dashboard_charts(data)
    assert "stories" not in charts and charts["values"].columns == ("Value", "Members")


def test_existing_tables_reads_the_database(db):
    assert dashboard.existing_tables(db) == set(dashboard.OPTIONAL_TABLES)
    assert set(inspect(db.connection()).get_table_names()) >= set(dashboard.OPTIONAL_TABLES)


def test_queries_do_not_grow_with_the_community(db, engine):
    """Every figure is an aggregate: 60 more members, stories and campaigns cost no extra query."""
    seed_community(db)
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        dashboard.overview(db, now=NOW)
        first = len(statements)
        care = db.query(Value).filter_by(name="Care").one()
        for i in range(60):
            member = Member(email=f"extra{i}@example.org", joined_at=days_ago(i * 3), status="active")
            member.values = [care]
            db.add(member)
            db.flush()
            db.add(Story(author_id=member.id, title=f"S{i}", status="approved", submitted_at=days_ago(i),
                         approved_at=days_ago(i)))  # fmt: skip
            db.add(Campaign(name=f"C{i}", subject="s", status="sent", started_at=days_ago(i)))
        db.commit()
        statements.clear()
        data = dashboard.overview(db, now=NOW)
        assert len(statements) == first
        assert data.total_members == 68 and len(data.campaigns) == dashboard.RECENT_CAMPAIGNS
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_even_buckets_agree_with_the_case_buckets_at_every_boundary(db):
    starts = dashboard.week_starts(NOW, 5)
    tiny = timedelta(microseconds=1)
    times = [starts[0] - tiny, *starts, *(s - tiny for s in starts[1:]), starts[2] + timedelta(days=3, hours=5),
             starts[-1] + timedelta(days=6), NOW]  # fmt: skip
    for i, moment in enumerate(times):
        db.add(Member(email=f"t{i}@example.org", joined_at=moment))
    db.flush()
    rows = db.execute(
        select(Member.joined_at, dashboard.bucket(Member.joined_at, starts),
               dashboard.even_bucket(db, Member.joined_at, starts)).order_by(Member.id)
    ).all()  # fmt: skip
    assert [case for _, case, _ in rows] == [even for _, _, even in rows]
    assert [case for _, case, _ in rows][:7] == [-1, 0, 1, 2, 3, 4, 0]
