"""Connections and the community map's data, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from cop_mail.connect import graph, rounds, workflow
from cop_mail.connect.connections import ConnectionRefused, connections_of, find_connection, record_connection
from cop_mail.models import Connection, Member, MemberEvent, Value
from tests.conftest import add_member

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def test_a_connection_is_one_row_per_pair_and_counts_for_both(db):
    ana, ben = add_member(db, "Ana"), add_member(db, "Ben")
    assert record_connection(db, ben.id, ana.id, "coordinator", created_by="rosa@example.org", note="met at camp")
    assert not record_connection(db, ana.id, ben.id, "introduction")
    db.commit()
    (row,) = db.scalars(select(Connection)).all()
    assert (row.member_a_id, row.member_b_id, row.how, row.created_by) == (
        ana.id,
        ben.id,
        "coordinator",
        "rosa@example.org",
    )
    db.expire_all()
    assert [db.get(Member, m).connections_count for m in (ana.id, ben.id)] == [1, 1]
    assert find_connection(db, ben.id, ana.id).id == row.id
    assert [c.id for c in connections_of(db, ben.id)] == [row.id]
    events = db.scalars(select(MemberEvent.kind).where(MemberEvent.kind == "connection_made")).all()
    assert len(events) == 2


def test_a_connection_needs_two_real_members(db):
    ana = add_member(db, "Ana")
    with pytest.raises(ConnectionRefused, match="themselves"):
        record_connection(db, ana.id, ana.id, "other")
    with pytest.raises(ConnectionRefused, match="must exist"):
        record_connection(db, ana.id, 999_999, "other")


def test_the_map_data_shows_core_periphery_values_months_newcomers_and_waiting(db, settings):
    care = Value(name="Care", colour="#aa3355")
    db.add(care)
    db.flush()
    old = NOW - timedelta(days=400)
    hub = add_member(db, "Hub", values=("Care", "Rare"), joined_at=old)
    spokes = [add_member(db, f"Spoke {i}", values=("Care",), joined_at=old) for i in range(4)]
    newcomer = add_member(db, "Newcomer", joined_at=NOW - timedelta(days=20))
    late = add_member(db, "Late", joined_at=NOW - timedelta(days=30))
    alone = add_member(db, "Alone", joined_at=NOW - timedelta(days=10))
    for i, spoke in enumerate(spokes):
        record_connection(db, hub.id, spoke.id, "coordinator", began_at=NOW - timedelta(days=35 * i))
    record_connection(db, spokes[0].id, spokes[1].id, "other", began_at=NOW - timedelta(days=2))
    record_connection(db, newcomer.id, hub.id, "introduction", began_at=NOW - timedelta(days=5))
    intro, _ = rounds.introduce_by_hand(db, settings, late.id, alone.id, "c")
    workflow.answer(db, settings, intro.id, late.id, "accept", "link")
    db.commit()

    data = graph.community_map(db, NOW)
    assert (data.members, data.connections) == (8, 6)
    nodes = {n.member_id: n for n in data.nodes}
    assert nodes[hub.id].degree == 5 and nodes[hub.id].band == graph.Band.CORE
    assert nodes[spokes[0].id].band == graph.Band.MIDDLE and nodes[spokes[2].id].band == graph.Band.PERIPHERY
    assert nodes[alone.id].band == graph.Band.ISOLATED
    assert data.bands == {"core": 1, "middle": 2, "periphery": 3, "isolated": 2}
    # Colour by the most widely held of a member's values: the hub holds Care (6 hold it) and Rare (1).
    assert nodes[hub.id].value == "Care"
    keys = data.value_keys
    assert keys["Care"].colour == "#aa3355" and keys["Care"].shape == "circle" and keys["Care"].members == 5
    assert keys[graph.NO_VALUE].members == 3
    assert [n.name for n in data.isolated] == ["Alone", "Late"]
    months = dict(data.per_month)
    assert len(data.per_month) == 12 and months["2026-11"] == 3 and sum(months.values()) == 6
    assert (data.newcomers, data.newcomers_connected) == (3, 1) and data.newcomer_share == pytest.approx(1 / 3)
    assert [(w.accepted, w.waiting_on) for w in data.waiting] == [("Late", "Alone")]
    assert {(e.a, e.b) for e in data.edges} == {(c.member_a_id, c.member_b_id) for c in db.scalars(select(Connection))}


def test_an_empty_community_has_an_empty_map(db):
    data = graph.community_map(db, NOW)
    assert (data.members, data.connections, data.nodes, data.newcomer_share) == (0, 0, [], None)
