"""Introduction matching on a synthetic community: speed and quality against random pairing.

Generates N members with values, practices, locales, time zones, a power-law-ish connection
graph (many members with 0-1 connections) and past introductions; proposes a peer round of
--pairs pairs, checks it (no repeats, no never-pairs, nobody twice, nobody ineligible), and in
the same run pairs the same eligible members at random as the raw reference.

    .venv/bin/python bench/match.py [--n 10000] [--pairs 2000] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from cop_mail.connect.matching import (
    Candidate,
    MatchResult,
    Proposal,
    RoundKind,
    RoundRules,
    ineligibility,
    periphery_facts,
    propose_pairs,
)

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
VALUES = {
    "Reciprocity": 30,
    "Care": 22,
    "Curiosity": 18,
    "Openness": 12,
    "Courage": 8,
    "Stewardship": 5,
    "Solidarity": 3,
    "Playfulness": 2,
}
PRACTICES = [
    "facilitation", "gardening", "teaching", "mentoring", "coding", "writing", "design",
    "research", "fundraising", "organising", "cooking", "carpentry", "nursing", "counselling",
    "translation", "photography", "bookkeeping", "mediation", "farming", "repair",
    "youth work", "journalism", "music", "law", "data analysis",
]  # fmt: skip
LOCALES = {"en": 50, "es": 15, "fr": 10, "de": 8, "pt-BR": 8, "pt-PT": 3, "nl": 6}
CITIES = {
    "London": 0, "Lisbon": 0, "Madrid": 60, "Paris": 60, "Berlin": 60, "Amsterdam": 60,
    "Nairobi": 180, "Delhi": 330, "Manila": 480, "Sydney": 660, "Auckland": 780,
    "Sao Paulo": -180, "Mexico City": -360, "New York": -300, "Chicago": -360,
    "Vancouver": -480, "Bogota": -300, "Lagos": 60, "Cape Town": 120, "Tokyo": 540,
}  # fmt: skip
TOPICS = [
    "grant writing", "facilitating meetings", "running a workshop", "budgets", "websites",
    "volunteer care", "conflict", "public speaking", "storytelling", "data", "legal setup",
    "press", "partnerships", "onboarding", "burnout",
]  # fmt: skip


def weighted(rng: random.Random, table: dict[str, int], k: int = 1) -> list[str]:
    chosen: set[str] = set()
    while len(chosen) < k:
        chosen.add(rng.choices(list(table), weights=list(table.values()))[0])
    return sorted(chosen)


def connection_graph(rng: random.Random, ids: list[int]) -> set[frozenset[int]]:
    """Preferential attachment among the active 70 %: a few hubs, a long tail, many isolated."""
    active = rng.sample(ids, len(ids) * 7 // 10)
    ends: list[int] = []
    edges: set[frozenset[int]] = set()
    while len(edges) < len(ids) * 3 // 2:
        u = rng.choice(active)
        v = rng.choice(ends) if ends and rng.random() < 0.8 else rng.choice(active)
        if u != v and frozenset((u, v)) not in edges:
            edges.add(frozenset((u, v)))
            ends += (u, v)
    return edges


def member(rng: random.Random, member_id: int, degree: int) -> Candidate:
    joined = NOW - timedelta(days=rng.randint(0, 30) if rng.random() < 0.08 else rng.randint(31, 1100))
    acted = None if rng.random() < 0.08 else max(joined, NOW - timedelta(days=rng.expovariate(1 / 35)))
    city = rng.choice(list(CITIES))
    cadence = rng.choices([4, 2, 8, None], weights=[70, 15, 8, 7])[0]
    return Candidate(
        member_id=member_id,
        name=f"Member {member_id}",
        joined_at=joined,
        values=frozenset(weighted(rng, VALUES, rng.choices([1, 2, 3, 4], weights=[35, 35, 20, 10])[0])),
        practices=frozenset(rng.sample(PRACTICES, rng.choice([1, 1, 2, 2, 3]))),
        connections=degree,
        last_action_at=acted,
        locale=weighted(rng, LOCALES)[0],
        location=city,
        tz_offset_minutes=CITIES[city],
        cadence_weeks=cadence,
        last_intro_at=NOW - timedelta(weeks=rng.uniform(0, 10)) if rng.random() < 0.3 else None,
        paused_until=NOW + timedelta(days=30) if rng.random() < 0.03 else None,
        asks=frozenset(rng.sample(TOPICS, rng.choice([1, 2]))) if rng.random() < 0.1 else frozenset(),
        offers=frozenset(rng.sample(TOPICS, rng.choice([1, 2, 3]))) if rng.random() < 0.15 else frozenset(),
    )


def community(n: int, seed: int) -> tuple[list[Candidate], set[frozenset[int]], set[frozenset[int]]]:
    rng = random.Random(seed)
    ids = list(range(1, n + 1))
    edges = connection_graph(rng, ids)
    degree = Counter(m for e in edges for m in e)
    members = [member(rng, i, degree[i]) for i in ids]
    # Past introductions: every connection, plus intros that never became one.
    past = set(edges)
    while len(past) < len(edges) + n // 3:
        past.add(frozenset(rng.sample(ids, 2)))
    never = {frozenset(rng.sample(ids, 2)) for _ in range(n // 200)}
    return members, past, never


def random_pairs(members: list[Candidate], rules: RoundRules) -> list[tuple[int, int]]:
    eligible = [c.member_id for c in members if ineligibility(c, rules.now) is None]
    random.Random(rules.seed).shuffle(eligible)
    return list(zip(eligible[0::2], eligible[1::2], strict=False))[: rules.max_pairs]


def shares(pairs: list[tuple[int, int]], members: list[Candidate], rules: RoundRules) -> dict[str, float]:
    by_id = {c.member_id: c for c in members}
    periphery = {c.member_id for c in members if periphery_facts(c, rules).on_periphery}
    n = len(pairs) or 1
    return {
        "periphery": sum(a in periphery or b in periphery for a, b in pairs) / n,
        "shared_value": sum(bool(by_id[a].values & by_id[b].values) for a, b in pairs) / n,
        "new_practice": sum(by_id[a].practices != by_id[b].practices for a, b in pairs) / n,
        "repeats": sum(frozenset(p) in rules.past_pairs for p in pairs),
        "never": sum(frozenset(p) in rules.never_pairs for p in pairs),
    }


def violations(result: MatchResult, members: list[Candidate], rules: RoundRules) -> list[str]:
    seen = Counter(m for p in result.proposals for m in (p.a_id, p.b_id))
    by_id = {c.member_id: c for c in members}
    problems = [f"member {m} paired {k} times" for m, k in seen.items() if k > 1]
    problems += [f"member {m} not eligible" for m in seen if ineligibility(by_id[m], rules.now)]
    problems += [f"unmatched member {m} also paired" for m in result.unmatched_ids if m in seen]
    pairs = [frozenset((p.a_id, p.b_id)) for p in result.proposals]
    problems += [f"repeat {sorted(p)}" for p in pairs if p in rules.past_pairs]
    problems += [f"never-pair {sorted(p)}" for p in pairs if p in rules.never_pairs]
    if len(seen) + len(result.unmatched) != len(members):
        problems.append("some members are neither paired nor reported unmatched")
    return problems


def timed(rules: RoundRules, members: list[Candidate]) -> tuple[float, MatchResult]:
    started = time.perf_counter()
    result = propose_pairs(members, rules)
    return time.perf_counter() - started, result


def as_pairs(proposals: Iterable[Proposal]) -> list[tuple[int, int]]:
    return [(p.a_id, p.b_id) for p in proposals]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="candidate members")
    parser.add_argument("--pairs", type=int, default=2_000, help="pairs in the round")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    members, past, never = community(args.n, args.seed)
    rules = RoundRules(now=NOW, max_pairs=args.pairs, seed=args.seed, past_pairs=past, never_pairs=never)
    on_periphery = sum(periphery_facts(c, rules).on_periphery for c in members)
    print(f"{len(members)} members, {on_periphery} on the periphery, {len(past)} past pairs")

    seconds, result = timed(rules, members)
    started = time.perf_counter()
    naive = random_pairs(members, rules)
    random_seconds = time.perf_counter() - started
    ours, theirs = shares(as_pairs(result.proposals), members, rules), shares(naive, members, rules)
    problems = violations(result, members, rules)

    constrained = RoundRules(
        now=NOW, max_pairs=args.pairs, seed=args.seed, past_pairs=past, never_pairs=never,
        same_language=True, timezone_window_minutes=180,
    )  # fmt: skip
    constrained_seconds, constrained_result = timed(constrained, members)
    problems += violations(constrained_result, members, constrained)
    mentor = RoundRules(now=NOW, max_pairs=args.pairs, seed=args.seed, past_pairs=past, kind=RoundKind.MENTOR)
    mentor_seconds, mentor_result = timed(mentor, members)
    problems += violations(mentor_result, members, mentor)

    print("unmatched:", dict(Counter(u.reason.value for u in result.unmatched)))
    print("example:", result.proposals[0].reason if result.proposals else "-")
    print(f"random pairing: periphery {theirs['periphery']:.3f}, shared value {theirs['shared_value']:.3f}")
    for problem in problems[:20]:
        print("PROBLEM", problem)
    print(f"BENCH match_seconds {seconds:.3f} s")
    print(f"BENCH match_pairs {len(result.proposals)} pairs")
    print(f"BENCH match_periphery_share {ours['periphery']:.3f} ratio")
    print(f"BENCH match_shared_value_share {ours['shared_value']:.3f} ratio")
    print(f"BENCH match_new_practice_share {ours['new_practice']:.3f} ratio")
    print(f"BENCH match_repeats {ours['repeats']} pairs")
    print(f"BENCH match_never_pairs {ours['never']} pairs")
    print(f"BENCH match_violations {len(problems)} problems")
    print(f"BENCH match_random_seconds {random_seconds:.4f} s")
    print(f"BENCH match_random_periphery_share {theirs['periphery']:.3f} ratio")
    print(f"BENCH match_random_shared_value_share {theirs['shared_value']:.3f} ratio")
    print(f"BENCH match_random_new_practice_share {theirs['new_practice']:.3f} ratio")
    print(f"BENCH match_random_repeats {theirs['repeats']} pairs")
    print(f"BENCH match_constrained_seconds {constrained_seconds:.3f} s")
    print(f"BENCH match_constrained_pairs {len(constrained_result.proposals)} pairs")
    print(f"BENCH match_mentor_seconds {mentor_seconds:.3f} s")
    print(f"BENCH match_mentor_pairs {len(mentor_result.proposals)} pairs")
    return 1 if problems or ours["repeats"] or ours["never"] else 0


if __name__ == "__main__":
    sys.exit(main())
