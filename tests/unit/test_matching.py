from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cop_mail.connect.matching import (
    Candidate,
    MatchResult,
    RoundKind,
    RoundRules,
    UnmatchedReason,
    periphery_facts,
    propose_pairs,
)

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
SEEDS = range(12)


def member(member_id: int, **fields: Any) -> Candidate:
    """A settled, well-enough connected member unless told otherwise: not on the periphery."""
    defaults: dict[str, Any] = {
        "name": f"M{member_id}",
        "joined_at": NOW - timedelta(days=400),
        "last_action_at": NOW - timedelta(days=5),
        "connections": 5,
        "values": frozenset({"Care"}),
        "practices": frozenset({"teaching"}),
        "locale": "en",
        "tz_offset_minutes": 0,
    }
    defaults.update(fields)
    for key in ("values", "practices", "offers", "asks"):
        if key in defaults:
            defaults[key] = frozenset(defaults[key])
    return Candidate(member_id=member_id, **defaults)


def isolated(member_id: int, **fields: Any) -> Candidate:
    return member(member_id, connections=0, **fields)


def rules(**fields: Any) -> RoundRules:
    fields.setdefault("max_pairs", 100)
    return RoundRules(now=NOW, **fields)


def pairs(result: MatchResult) -> set[frozenset[int]]:
    return {frozenset((p.a_id, p.b_id)) for p in result.proposals}


def reasons(result: MatchResult) -> dict[int, UnmatchedReason]:
    return {u.member_id: u.reason for u in result.unmatched}


def partner_of(result: MatchResult, member_id: int) -> int | None:
    for p in result.proposals:
        if member_id in (p.a_id, p.b_id):
            return p.b_id if p.a_id == member_id else p.a_id
    return None


# The periphery goes first. Hub and mid share a value and differ in practice, so any order
# other than periphery-first spends the only pair of the round on them.
@pytest.mark.parametrize(
    "outsider",
    [
        isolated(3, values={"Courage"}, practices={"cooking"}),
        member(3, joined_at=NOW - timedelta(days=10), values={"Courage"}, practices={"cooking"}),
        member(3, last_action_at=NOW - timedelta(days=200), values={"Courage"}, practices={"cooking"}),
        member(3, last_action_at=None, values={"Courage"}, practices={"cooking"}),
    ],
    ids=["no-connections", "newcomer", "drifting", "never-acted"],
)
def test_periphery_member_is_paired_first(outsider: Candidate):
    hub = member(1, connections=30, values={"Care"}, practices={"teaching"})
    mid = member(2, connections=6, values={"Care"}, practices={"gardening"})
    assert periphery_facts(outsider, rules()).on_periphery
    for seed in SEEDS:
        result = propose_pairs([hub, mid, outsider], rules(max_pairs=1, seed=seed))
        assert len(result.proposals) == 1
        assert 3 in pairs(result).pop()
        assert UnmatchedReason.ROUND_FULL in reasons(result).values()


def test_without_periphery_the_best_pair_wins():
    # Control for the test above: the hub and mid really are the best-scoring pair.
    hub = member(1, connections=30, values={"Care"}, practices={"teaching"})
    mid = member(2, connections=6, values={"Care"}, practices={"gardening"})
    other = member(3, connections=50, values={"Courage"}, practices={"cooking"})
    for seed in SEEDS:
        assert pairs(propose_pairs([hub, mid, other], rules(max_pairs=1, seed=seed))) == {frozenset((1, 2))}


def test_shared_value_preferred_over_a_better_connected_partner():
    newcomer = isolated(1, values={"Care"}, practices={"gardening"})
    sharer = member(2, connections=2, values={"Care", "Openness"}, practices={"teaching"})
    hub = member(3, connections=40, values={"Courage"}, practices={"teaching"})
    for seed in SEEDS:
        result = propose_pairs([hub, sharer, newcomer], rules(seed=seed))
        assert partner_of(result, 1) == 2
        assert result.proposals[0].shared_values == ("Care",)


def test_differing_practice_preferred_over_a_better_connected_partner():
    newcomer = isolated(1, values={"Care"}, practices={"gardening"})
    same_practice = member(2, connections=40, values={"Care"}, practices={"gardening"})
    other_practice = member(3, connections=2, values={"Care"}, practices={"teaching"})
    for seed in SEEDS:
        assert partner_of(propose_pairs([same_practice, other_practice, newcomer], rules(seed=seed)), 1) == 3


def test_periphery_member_prefers_a_well_connected_partner():
    newcomer = isolated(1)
    middling = member(2, connections=2)
    hub = member(3, connections=40)
    for seed in SEEDS:
        assert partner_of(propose_pairs([middling, hub, newcomer], rules(seed=seed)), 1) == 3


def test_past_pairs_are_never_repeated():
    newcomer = isolated(1, values={"Care"}, practices={"gardening"})
    best = member(2, connections=40, values={"Care"}, practices={"teaching"})
    poor = member(3, connections=2, values={"Courage"}, practices={"gardening"})
    fourth = member(4, connections=2, values={"Courage"}, practices={"gardening"})
    past = {frozenset((1, 2))}
    for seed in SEEDS:
        result = propose_pairs([newcomer, best, poor, fourth], rules(seed=seed, past_pairs=past))
        assert frozenset((1, 2)) not in pairs(result)
        assert partner_of(result, 1) in (3, 4)
    # Without the history they would meet: the rule is what keeps them apart.
    assert partner_of(propose_pairs([newcomer, best, poor, fourth], rules()), 1) == 2


def test_never_pairs_are_respected_and_reported():
    a, b = isolated(1), member(2)
    result = propose_pairs([a, b], rules(never_pairs={frozenset((1, 2))}))
    assert result.proposals == []
    assert reasons(result) == {1: UnmatchedReason.NO_ELIGIBLE_PARTNER, 2: UnmatchedReason.NO_ELIGIBLE_PARTNER}
    assert pairs(propose_pairs([a, b], rules())) == {frozenset((1, 2))}


def test_cadence_pause_and_opt_out():
    people = [
        member(1, cadence_weeks=4, last_intro_at=NOW - timedelta(weeks=2)),
        member(2, cadence_weeks=4, last_intro_at=NOW - timedelta(weeks=5)),
        member(3, paused_until=NOW + timedelta(days=1)),
        member(4, paused_until=NOW - timedelta(days=1)),
        member(5, cadence_weeks=None),
        member(6, cadence_weeks=2, last_intro_at=NOW - timedelta(weeks=3)),
        member(7, cadence_weeks=8, last_intro_at=NOW - timedelta(weeks=7)),
        member(8),
    ]
    result = propose_pairs(people, rules())
    assert reasons(result) == {
        1: UnmatchedReason.CADENCE,
        3: UnmatchedReason.PAUSED,
        5: UnmatchedReason.OPTED_OUT,
        7: UnmatchedReason.CADENCE,
    }
    assert {m for p in pairs(result) for m in p} == {2, 4, 6, 8}


def test_same_language_constraint():
    newcomer = isolated(1, locale="en", values={"Care"}, practices={"gardening"})
    spanish = member(2, locale="es", connections=40, values={"Care"}, practices={"teaching"})
    british = member(3, locale="en-GB", connections=2, values={"Courage"}, practices={"gardening"})
    unknown = member(4, locale=None, values={"Openness"})
    people = [newcomer, spanish, british, unknown]
    assert partner_of(propose_pairs(people, rules()), 1) == 2
    for seed in SEEDS:
        result = propose_pairs(people, rules(same_language=True, seed=seed))
        assert pairs(result) == {frozenset((1, 3))}
        assert reasons(result) == {2: UnmatchedReason.NO_ELIGIBLE_PARTNER, 4: UnmatchedReason.NO_ELIGIBLE_PARTNER}


def test_same_location_constraint():
    newcomer = isolated(1, location="Lisbon", values={"Care"}, practices={"gardening"})
    far = member(2, location="Porto", connections=40, values={"Care"}, practices={"teaching"})
    near = member(3, location=" lisbon ", connections=2, values={"Courage"}, practices={"gardening"})
    people = [newcomer, far, near]
    assert partner_of(propose_pairs(people, rules()), 1) == 2
    assert pairs(propose_pairs(people, rules(same_location=True))) == {frozenset((1, 3))}


def test_timezone_window():
    newcomer = isolated(1, tz_offset_minutes=0, values={"Care"}, practices={"gardening"})
    far = member(2, tz_offset_minutes=300, connections=40, values={"Care"}, practices={"teaching"})
    near = member(3, tz_offset_minutes=-60, connections=2, values={"Courage"}, practices={"gardening"})
    people = [newcomer, far, near]
    assert partner_of(propose_pairs(people, rules()), 1) == 2
    for seed in SEEDS:
        result = propose_pairs(people, rules(timezone_window_minutes=120, seed=seed))
        assert pairs(result) == {frozenset((1, 3))}
        assert reasons(result) == {2: UnmatchedReason.NO_ELIGIBLE_PARTNER}


def test_timezone_window_is_measured_on_the_clock():
    auckland = member(1, tz_offset_minutes=780)
    samoa = member(2, tz_offset_minutes=-660)  # 24 h behind Auckland: same clock time
    nowhere = member(3, tz_offset_minutes=None)
    result = propose_pairs([auckland, samoa, nowhere], rules(timezone_window_minutes=60))
    assert pairs(result) == {frozenset((1, 2))}
    assert reasons(result) == {3: UnmatchedReason.NO_ELIGIBLE_PARTNER}


def test_a_rare_partner_beyond_the_sample_is_still_found():
    # 1,000 members at UTC+0 and two at UTC+10 who share nothing with each other: the
    # bounded sample rarely reaches the other one, so only the full look finds them.
    crowd = [member(i, values={"Care"}, connections=3) for i in range(1, 1001)]
    lonely = isolated(2001, tz_offset_minutes=600, values={"Courage"})
    other = member(2002, tz_offset_minutes=600, values={"Openness"}, connections=2)
    for seed in range(4):
        result = propose_pairs([*crowd, lonely, other], rules(max_pairs=600, timezone_window_minutes=60, seed=seed))
        assert partner_of(result, 2001) == 2002
        assert len(result.proposals) == 501


def test_odd_number_leaves_exactly_one_odd_one_out():
    people = [member(i) for i in range(1, 6)]
    result = propose_pairs(people, rules())
    paired = [m for p in result.proposals for m in (p.a_id, p.b_id)]
    assert len(result.proposals) == 2
    assert len(paired) == len(set(paired)) == 4
    assert [u.reason for u in result.unmatched] == [UnmatchedReason.ODD_ONE_OUT]
    assert set(paired) | set(result.unmatched_ids) == {1, 2, 3, 4, 5}


def test_max_pairs_limits_the_round():
    result = propose_pairs([member(i) for i in range(1, 11)], rules(max_pairs=3))
    assert len(result.proposals) == 3
    assert sorted(reasons(result).values()) == [UnmatchedReason.ROUND_FULL] * 4
    assert propose_pairs([member(1), member(2)], rules(max_pairs=0)).proposals == []


def community(size: int, seed: int) -> tuple[list[Candidate], set[frozenset[int]]]:
    rng = random.Random(seed)
    values = ["Reciprocity", "Care", "Curiosity", "Openness", "Courage"]
    practices = ["teaching", "gardening", "coding", "writing", "cooking", "mediation"]
    people = [
        member(
            i,
            connections=rng.choice([0, 0, 1, 2, 3, 5, 8, 20]),
            joined_at=NOW - timedelta(days=rng.randint(0, 900)),
            last_action_at=rng.choice([None, NOW - timedelta(days=rng.randint(0, 300))]),
            values=rng.sample(values, rng.randint(0, 3)),
            practices=rng.sample(practices, rng.randint(0, 2)),
            locale=rng.choice(["en", "es", "pt-BR", "pt_PT", None]),
            tz_offset_minutes=rng.choice([-300, 0, 60, 330, 600, None]),
            cadence_weeks=rng.choice([2, 4, 8, None]),
            last_intro_at=rng.choice([None, NOW - timedelta(weeks=rng.randint(0, 10))]),
            offers=rng.sample(["budgets", "press", "data"], rng.randint(0, 2)),
            asks=rng.sample(["budgets", "press", "data", "law"], rng.choice([0, 0, 1])),
        )
        for i in range(1, size + 1)
    ]
    past = {frozenset(rng.sample(range(1, size + 1), 2)) for _ in range(size * 3)}
    return people, past


def test_invariants_on_random_communities():
    for seed in range(8):
        people, past = community(120, seed)
        never = {frozenset((1, i)) for i in range(2, 40)}
        for kind in RoundKind:
            round_rules = rules(
                kind=kind, seed=seed, past_pairs=past, never_pairs=never, same_language=seed % 2 == 0,
                timezone_window_minutes=60 if seed % 3 == 0 else None, max_pairs=40,
            )  # fmt: skip
            result = propose_pairs(people, round_rules)
            by_id = {c.member_id: c for c in people}
            paired = [m for p in result.proposals for m in (p.a_id, p.b_id)]
            assert len(paired) == len(set(paired))
            assert sorted(paired + result.unmatched_ids) == sorted(by_id)
            assert not pairs(result) & (past | never)
            for p in result.proposals:
                a, b = by_id[p.a_id], by_id[p.b_id]
                assert a.cadence_weeks is not None and b.cadence_weeks is not None
                if round_rules.same_language:
                    assert a.locale and b.locale and a.locale[:2] == b.locale[:2]
                if round_rules.timezone_window_minutes:
                    assert abs(a.tz_offset_minutes - b.tz_offset_minutes) <= 60
                if kind is RoundKind.MENTOR:
                    assert p.topics and set(p.topics) <= a.asks & b.offers


def digest(result: MatchResult) -> str:
    text = repr([(p.a_id, p.b_id, p.score, p.reason) for p in result.proposals]) + repr(result.unmatched)
    return hashlib.sha256(text.encode()).hexdigest()


def test_same_seed_same_round_whatever_the_input_order():
    people, past = community(200, 3)
    expected = digest(propose_pairs(people, rules(seed=42, past_pairs=past)))
    shuffled = people[:]
    for k in range(5):
        random.Random(k).shuffle(shuffled)
        assert digest(propose_pairs(shuffled, rules(seed=42, past_pairs=past))) == expected
    assert digest(propose_pairs(reversed(people), rules(seed=42, past_pairs=past))) == expected
    others = {digest(propose_pairs(people, rules(seed=s, past_pairs=past))) for s in range(5)}
    assert len(others) > 1, "the seed should change the round"


SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from tests.unit.test_matching import community, digest, rules
from cop_mail.connect.matching import propose_pairs
people, past = community(200, 3)
print(digest(propose_pairs(people, rules(seed=42, past_pairs=past, kind={kind!r}))))
"""


@pytest.mark.parametrize("kind", ["peer", "mentor"])
def test_same_seed_same_round_across_processes(kind: str):
    # String hashing differs per process; set iteration order must never leak into the round.
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    outputs = set()
    for hash_seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        code = SCRIPT.format(tests=root, kind=kind)
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        outputs.add(done.stdout.strip())
    assert len(outputs) == 1


def test_mentor_round_pairs_an_ask_with_a_fitting_offer():
    asker = isolated(1, asks={"Grant writing"}, values={"Care"}, practices={"gardening"})
    kindred = member(2, values={"Care"}, practices={"teaching"}, connections=40, offers={"websites"})
    mentor = member(3, values={"Courage"}, practices={"gardening"}, offers={"  grant   WRITING"})
    people = [asker, kindred, mentor]
    assert partner_of(propose_pairs(people, rules()), 1) == 2
    for seed in SEEDS:
        result = propose_pairs(people, rules(kind="mentor", seed=seed))
        assert [(p.a_id, p.b_id, p.topics) for p in result.proposals] == [(1, 3, ("Grant writing",))]
        assert "M1 asks for help with Grant writing, which M3 offers" in result.proposals[0].reason
        assert reasons(result) == {2: UnmatchedReason.NOTHING_ASKED}


def test_mentor_round_prefers_the_offer_that_answers_more_asks():
    asker = isolated(1, asks={"budgets", "press"}, values={"Care"}, practices={"gardening"})
    partial = member(2, offers={"budgets"}, values={"Care"}, practices={"teaching"}, connections=40)
    complete = member(3, offers={"budgets", "press"}, values={"Courage"}, practices={"gardening"})
    for seed in SEEDS:
        result = propose_pairs([asker, partial, complete], rules(kind=RoundKind.MENTOR, seed=seed))
        assert [(p.a_id, p.b_id, p.topics) for p in result.proposals] == [(1, 3, ("budgets", "press"))]


def test_mentor_round_serves_periphery_askers_first():
    settled = member(1, asks={"budgets"}, values={"Care"}, practices={"cooking"})
    newcomer = member(2, asks={"budgets"}, joined_at=NOW - timedelta(days=3), values={"Courage"})
    mentor = member(3, offers={"budgets"}, values={"Care"}, practices={"teaching"})
    for seed in SEEDS:
        result = propose_pairs([settled, newcomer, mentor], rules(kind=RoundKind.MENTOR, seed=seed))
        assert [(p.a_id, p.b_id) for p in result.proposals] == [(2, 3)]
        assert reasons(result) == {1: UnmatchedReason.ODD_ONE_OUT}


def test_mentor_round_without_a_fitting_offer():
    result = propose_pairs([member(1, asks={"law"}), member(2, offers={"press"})], rules(kind=RoundKind.MENTOR))
    assert result.proposals == []
    assert reasons(result) == {1: UnmatchedReason.NO_ELIGIBLE_PARTNER, 2: UnmatchedReason.NOTHING_ASKED}


def test_reason_names_the_shared_value_and_the_periphery_facts():
    ana = member(
        1, name="Ana", connections=0, joined_at=NOW - timedelta(days=12),
        values={"Reciprocity", "Care"}, practices={"gardening"},
    )  # fmt: skip
    ben = member(2, name="Ben", connections=14, values={"Reciprocity", "Courage"}, practices={"workshop facilitation"})
    proposal = propose_pairs([ben, ana], rules()).proposals[0]
    assert (proposal.a_id, proposal.b_id) == (1, 2)
    assert proposal.periphery
    assert proposal.reason == (
        "both hold Reciprocity; Ana joined 12 days ago and has no connections yet; "
        "Ben is connected to 14 members; Ana practises gardening; Ben practises workshop facilitation"
    )


def test_reason_for_a_drifting_member():
    cleo = member(1, name="Cleo", connections=1, last_action_at=None, values={"Care"})
    dan = member(2, name="Dan", last_action_at=NOW - timedelta(days=120), values={"Care"})
    reason = propose_pairs([cleo, dan], rules()).proposals[0].reason
    assert "Cleo has not taken part since joining and has only 1 connection" in reason
    assert "Dan has not taken part for 120 days" in reason


def test_empty_and_single_candidate():
    assert propose_pairs([], rules()) == MatchResult([], [])
    single = propose_pairs([member(7)], rules())
    assert single.proposals == []
    assert reasons(single) == {7: UnmatchedReason.NO_ELIGIBLE_PARTNER}


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="appears twice"):
        propose_pairs([member(1), member(1)], rules())
    with pytest.raises(ValueError, match="max_pairs"):
        propose_pairs([member(1)], rules(max_pairs=-1))
    with pytest.raises(ValueError):
        propose_pairs([member(1)], rules(kind="speed-dating"))
