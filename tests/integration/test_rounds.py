"""Introduction rounds on SQLite and PostgreSQL: candidates from the database, proposals, review by
hand (swap, remove, add), sending through RQ, recurring rounds, mentor rounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from cop_mail.audience.segments import save_segment
from cop_mail.connect import candidates, rounds, topics, workflow
from cop_mail.connect.connections import record_connection
from cop_mail.connect.rounds import RoundError
from cop_mail.connect.schedule import weekly_rule
from cop_mail.db import utcnow
from cop_mail.models import Intro, IntroRound, IntroStatus, RoundStatus, Value
from cop_mail.queues import DEFAULT, HIGH
from tests.conftest import add_member

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


@pytest.fixture
def community(db):
    """Eight members: a well-connected hub, newcomers, and people who already know each other."""
    old = NOW - timedelta(days=400)
    people = {
        "hub": add_member(
            db,
            "Hana Hub",
            values=("Care", "Reciprocity"),
            practices=("Facilitation",),
            joined_at=old,
            last_engaged_at=NOW - timedelta(days=2),
            timezone="Europe/Lisbon",
            locale="pt-PT",
        ),
        "new1": add_member(
            db,
            "Nia New",
            values=("Care",),
            practices=("Gardening",),
            joined_at=NOW - timedelta(days=5),
            timezone="Europe/Lisbon",
            locale="pt-BR",
        ),
        "new2": add_member(
            db,
            "Noor New",
            values=("Reciprocity",),
            practices=("Cooking",),
            joined_at=NOW - timedelta(days=9),
            timezone="America/New_York",
            locale="en",
        ),
        "mid1": add_member(
            db,
            "Mo Mid",
            values=("Care",),
            practices=("Facilitation",),
            joined_at=old,
            last_engaged_at=NOW - timedelta(days=10),
            timezone="Europe/Berlin",
            locale="de",
        ),
        "mid2": add_member(
            db,
            "Mira Mid",
            values=("Reciprocity",),
            practices=("Teaching",),
            joined_at=old,
            last_engaged_at=NOW - timedelta(days=10),
            timezone="America/Chicago",
            locale="en",
        ),
        "mid3": add_member(
            db,
            "Max Mid",
            values=("Care",),
            practices=("Teaching",),
            joined_at=old,
            last_engaged_at=NOW - timedelta(days=10),
            locale="en",
        ),
        "paused": add_member(db, "Pat Paused", values=("Care",), joined_at=old, paused_until=NOW + timedelta(days=30)),
        "out": add_member(db, "Olu Out", values=("Care",), joined_at=old, wants_intros=False),
    }
    for a, b in (("hub", "mid1"), ("hub", "mid2"), ("hub", "mid3"), ("mid1", "mid2")):
        record_connection(db, people[a].id, people[b].id, "coordinator", began_at=old)
    db.commit()
    return people


def pairs_of(db, round_id: int, status=IntroStatus.PROPOSED) -> set[frozenset[int]]:
    rows = db.execute(
        select(Intro.member_a_id, Intro.member_b_id).where(Intro.round_id == round_id, Intro.status == status)
    )
    return {frozenset(r) for r in rows}


def test_candidates_come_from_the_database_with_everything_matching_needs(db, community):
    loaded = {c.member_id: c for c in candidates.load_candidates(db, candidates.audience_ids(db, None, NOW), NOW)}
    assert community["out"].id not in loaded  # opted out of introductions
    assert community["paused"].id not in loaded  # paused all mail
    hub = loaded[community["hub"].id]
    assert hub.values == frozenset({"Care", "Reciprocity"}) and hub.practices == frozenset({"Facilitation"})
    assert hub.connections == 3 and hub.tz_offset_minutes == 0 and hub.locale == "pt-PT"
    assert loaded[community["new2"].id].tz_offset_minutes == -300
    assert loaded[community["mid3"].id].tz_offset_minutes == 0  # "UTC" by default
    past = candidates.past_pairs(db)
    assert frozenset((community["hub"].id, community["mid1"].id)) in past
    # One member's past pairs, read in SQL: exactly the community's pairs that include them.
    for member_id in (community["hub"].id, community["mid1"].id, community["new1"].id):
        assert candidates.past_pairs(db, member_id=member_id) == {pair for pair in past if member_id in pair}
    assert candidates.past_pairs(db, member_id=community["hub"].id)


def test_a_round_puts_the_periphery_first_and_never_pairs_people_who_already_know_each_other(db, community):
    made = rounds.create_round(db, name="Late November", created_by="coordinator", max_pairs=3, seed="7", now=NOW)
    result = rounds.propose(db, made.id, NOW)
    db.commit()
    proposed = pairs_of(db, made.id)
    assert len(proposed) == 3
    newcomers = {community["new1"].id, community["new2"].id}
    assert all(any(n in pair for pair in proposed) for n in newcomers)
    assert not proposed & candidates.past_pairs(db, exclude_round_id=made.id)
    assert db.get(IntroRound, made.id).status == RoundStatus.REVIEWING
    reasons = db.scalars(select(Intro.reason).where(Intro.round_id == made.id)).all()
    assert any("joined 5 days ago" in r for r in reasons)
    # The same seed gives the same round.
    assert rounds.propose(db, made.id, NOW).proposals == result.proposals


def test_never_pairs_and_same_language_are_respected(db, community):
    hub, new1 = community["hub"].id, community["new1"].id
    made = rounds.create_round(
        db,
        name="Rules",
        created_by="c",
        max_pairs=10,
        now=NOW,
        rules={"never_pairs": [[hub, new1]], "same_language": True},
    )
    rounds.propose(db, made.id, NOW)
    proposed = pairs_of(db, made.id)
    assert frozenset((hub, new1)) not in proposed
    assert proposed  # en speakers can still meet each other
    locales = {m.id: m.locale.split("-")[0] for m in community.values()}
    assert all(len({locales[m] for m in pair}) == 1 for pair in proposed)


def test_rules_are_checked_in_plain_words():
    with pytest.raises(RoundError, match="time-zone window"):
        rounds.clean_rules({"timezone_window_hours": "soon"})
    with pytest.raises(RoundError, match="two different members"):
        rounds.clean_rules({"never_pairs": [[3, 3]]})


def test_a_round_over_a_segment_only_draws_from_it(db, community):
    reciprocity = db.scalar(select(Value).where(Value.name == "Reciprocity"))
    segment = save_segment(
        db, "Reciprocity", {"match": "all", "rules": [{"field": "value", "op": "any", "value": [reciprocity.id]}]}
    )
    made = rounds.create_round(db, name="Seg", created_by="c", segment_id=segment.id, max_pairs=10, now=NOW)
    rounds.propose(db, made.id, NOW)
    members = {m for pair in pairs_of(db, made.id) for m in pair}
    holders = {community[k].id for k in ("hub", "new2", "mid2")}
    assert members and members <= holders


def test_past_introductions_are_never_repeated_even_when_they_expired(db, settings, community):
    new1, new2 = community["new1"].id, community["new2"].id
    intro, _ = rounds.introduce_by_hand(db, settings, new1, new2, "c", now=NOW - timedelta(days=60))
    workflow.send_reminders(db, settings, NOW - timedelta(days=50))
    workflow.expire_unanswered(db, settings, NOW - timedelta(days=40))
    db.commit()
    assert db.get(Intro, intro.id).status == IntroStatus.EXPIRED
    for seed in range(6):
        made = rounds.create_round(db, name=f"r{seed}", created_by="c", max_pairs=10, seed=str(seed), now=NOW)
        rounds.propose(db, made.id, NOW)
        assert frozenset((new1, new2)) not in pairs_of(db, made.id)


def test_review_by_hand_remove_swap_add(db, community):
    made = rounds.create_round(db, name="Review", created_by="c", max_pairs=2, seed="1", now=NOW)
    rounds.propose(db, made.id, NOW)
    first, second = rounds.proposals(db, made.id)
    removed = rounds.remove_proposal(db, made.id, second.id, "coordinator@example.org")
    assert removed.status == IntroStatus.CANCELLED and "removed in review" in removed.closed_reason
    # Proposing again does not bring a removed pair back.
    rounds.propose(db, made.id, NOW)
    assert frozenset((removed.member_a_id, removed.member_b_id)) not in pairs_of(db, made.id)
    pair = rounds.proposals(db, made.id)[-1]
    busy = {m for p in pairs_of(db, made.id) for m in p}
    free = next(
        c.member_id
        for c in candidates.load_candidates(db, candidates.audience_ids(db, None, NOW), NOW)
        if c.member_id not in busy
        and frozenset((c.member_id, pair.member_b_id)) not in candidates.past_pairs(db, exclude_round_id=made.id)
    )
    swapped = rounds.swap_member(db, made.id, pair.id, pair.member_a_id, free, "coordinator@example.org")
    assert free in (swapped.member_a_id, swapped.member_b_id)
    assert swapped.reason.startswith("Swapped by hand by coordinator@example.org")
    with pytest.raises(RoundError, match="already in a pair"):
        rounds.add_pair(db, made.id, free, community["out"].id, "c")


def test_adding_a_pair_by_hand(db, community):
    made = rounds.create_round(db, name="Add", created_by="c", max_pairs=1, now=NOW)
    rounds.propose(db, made.id, NOW)
    rounds.remove_proposal(db, made.id, rounds.proposals(db, made.id)[0].id, "c")
    with pytest.raises(RoundError, match="introduced or proposed before, or are already connected"):
        rounds.add_pair(db, made.id, community["hub"].id, community["mid1"].id, "c")
    added = rounds.add_pair(db, made.id, community["new2"].id, community["mid2"].id, "coordinator@example.org")
    assert added.status == IntroStatus.PROPOSED and added.round_id == made.id
    assert added.reason.startswith("Added by hand by coordinator@example.org; both hold Reciprocity")
    assert added.shared_values == ["Reciprocity"]


def test_swapping_with_someone_in_another_pair_trades_places(db, community):
    made = rounds.create_round(db, name="Trade", created_by="c", max_pairs=1, now=NOW)
    made.status = RoundStatus.REVIEWING  # pairs entirely by hand
    new1, new2, mid3, hub = (community[k].id for k in ("new1", "new2", "mid3", "hub"))
    one = rounds.add_pair(db, made.id, new1, mid3, "c")
    two = rounds.add_pair(db, made.id, new2, hub, "c")
    rounds.swap_member(db, made.id, one.id, mid3, hub, "c")
    db.expire_all()
    assert pairs_of(db, made.id) == {frozenset((new1, hub)), frozenset((new2, mid3))}
    assert db.get(Intro, two.id).reason.startswith("Swapped by hand by c")
    with pytest.raises(RoundError, match="introduced or proposed before"):
        rounds.swap_member(db, made.id, one.id, new1, community["mid1"].id, "c")  # mid1 already knows the hub


def test_sending_a_round_invites_every_pair_through_rq(db, settings, community, run_jobs, redis_conn):
    made = rounds.create_round(db, name="Send", created_by="c", max_pairs=3, now=NOW)
    rounds.propose(db, made.id, NOW)
    with pytest.raises(RoundError):
        rounds.start_sending(db, 999_999)
    rounds.start_sending(db, made.id)
    db.commit()
    from cop_mail.connect.jobs import send_round_job
    from cop_mail.queues import enqueue

    enqueue(redis_conn, send_round_job, made.id, queue=DEFAULT)
    assert run_jobs((DEFAULT,)) == 0
    db.expire_all()
    assert db.get(IntroRound, made.id).status == RoundStatus.SENT
    assert pairs_of(db, made.id, IntroStatus.INVITED) and not pairs_of(db, made.id)
    from rq import Queue

    assert Queue(HIGH, connection=redis_conn).count == 2 * len(pairs_of(db, made.id, IntroStatus.INVITED))
    with pytest.raises(RoundError, match="only a round under review"):
        rounds.add_pair(db, made.id, community["hub"].id, community["new1"].id, "c")


def test_a_round_with_nothing_to_send_says_so(db, community):
    made = rounds.create_round(db, name="Empty", created_by="c", max_pairs=1, now=NOW)
    rounds.propose(db, made.id, NOW)
    rounds.remove_proposal(db, made.id, rounds.proposals(db, made.id)[0].id, "c")
    with pytest.raises(RoundError, match="no pairs to send"):
        rounds.start_sending(db, made.id)


def test_recurring_rounds_copy_the_rules_once_per_due_time(db, community):
    made = rounds.create_round(
        db,
        name="Fortnightly",
        created_by="c",
        max_pairs=2,
        now=NOW,
        schedule_rule=weekly_rule(2, 0, 9),
        schedule_timezone="Europe/Lisbon",
        rules={"same_language": False, "never_pairs": [[community["hub"].id, community["new1"].id]]},
    )
    db.commit()
    first_due = made.next_run_at
    assert first_due is not None and first_due.weekday() == 0 and first_due > NOW
    assert rounds.run_recurring(db, first_due - timedelta(minutes=1)) == []
    copies = rounds.run_recurring(db, first_due + timedelta(minutes=5))
    db.commit()
    assert len(copies) == 1 and copies[0].parent_id == made.id and copies[0].status == RoundStatus.REVIEWING
    assert copies[0].rules == made.rules and pairs_of(db, copies[0].id)
    assert rounds.run_recurring(db, first_due + timedelta(minutes=6)) == []  # safe to run twice
    db.expire_all()
    following = db.get(IntroRound, made.id).next_run_at
    assert following - first_due == timedelta(weeks=2)


def test_recurring_rounds_that_send_on_their_own_start_sending(db, community):
    made = rounds.create_round(
        db, name="Auto", created_by="c", max_pairs=2, now=NOW, schedule_rule=weekly_rule(1, 2, 7), auto_send=True
    )
    copies = rounds.run_recurring(db, made.next_run_at + timedelta(seconds=1))
    assert [c.status for c in copies] == [RoundStatus.SENDING]


def test_mentor_rounds_pair_an_ask_with_a_fitting_offer(db, community):
    topics.set_topics(db, community["new1"].id, "ask", ["Running a circle", " running  a circle "])
    topics.set_topics(db, community["mid1"].id, "offer", ["running a CIRCLE", "Budgets"])
    assert topics.topics_of(db, community["new1"].id) == {"offer": [], "ask": ["Running a circle"]}
    made = rounds.create_round(db, name="Mentors", created_by="c", kind="mentor", max_pairs=5, now=NOW)
    rounds.propose(db, made.id, NOW)
    (intro,) = rounds.proposals(db, made.id)
    assert (intro.member_a_id, intro.member_b_id) == (community["new1"].id, community["mid1"].id)
    assert intro.kind == "mentor" and intro.topics == ["Running a circle"]
    assert "asks for help with Running a circle" in intro.reason


def test_introducing_by_hand_refuses_duplicates_and_strangers(db, settings, community):
    a, b = community["new1"].id, community["new2"].id
    rounds.introduce_by_hand(db, settings, a, b, "c")
    with pytest.raises(RoundError, match="under way"):
        rounds.introduce_by_hand(db, settings, b, a, "c")
    with pytest.raises(RoundError, match="must exist"):
        rounds.introduce_by_hand(db, settings, a, 999_999, "c")
    intro, sent = rounds.introduce_by_hand(db, settings, a, community["out"].id, "c")
    assert intro.status == IntroStatus.CANCELLED and sent == []  # Olu does not take part in introductions
    assert utcnow() >= intro.closed_at


def test_a_member_invited_since_the_proposal_is_not_asked_again_within_their_cadence(db, settings, community):
    first = rounds.create_round(db, name="First", created_by="c", max_pairs=1, now=NOW)
    second = rounds.create_round(db, name="Second", created_by="c", max_pairs=1, now=NOW)
    for made in (first, second):
        made.status = RoundStatus.REVIEWING
    nia, noor, mira = community["new1"].id, community["new2"].id, community["mid2"].id
    rounds.add_pair(db, first.id, nia, noor, "c")
    later = rounds.add_pair(db, second.id, nia, mira, "c")
    for made in (first, second):
        rounds.start_sending(db, made.id)
        rounds.send_chunk(db, settings, made.id, "c", NOW)
    db.commit()
    assert pairs_of(db, first.id, IntroStatus.INVITED) == {frozenset((nia, noor))}
    db.expire_all()
    later = db.get(Intro, later.id)
    assert later.status == IntroStatus.CANCELLED and "too recently" in later.closed_reason
