"""Who should meet whom in an introduction round, and why, in plain words.

Pure functions over plain dataclasses: the caller turns Members into Candidates and the
proposals into Intros. The periphery (few connections, new, or drifting) goes first; each
member looks for a partner among a bounded, seeded sample drawn from indexes (value buckets,
the best-connected members, everyone), so a round over 10,000 members never scores every
pair. Everything is ordered by member id and then by a seeded shuffle, so the same input and
seed give the same round whatever order the candidates arrive in.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class RoundKind(StrEnum):
    PEER = "peer"
    MENTOR = "mentor"


class UnmatchedReason(StrEnum):
    OPTED_OUT = "opted out"  # cadence None: no introductions at all
    PAUSED = "paused"
    CADENCE = "cadence"  # introduced more recently than their cadence allows
    NO_ELIGIBLE_PARTNER = "no eligible partner"  # nobody in the round may meet them
    ODD_ONE_OUT = "odd one out"  # everyone who could meet them was already paired
    ROUND_FULL = "round full"  # max_pairs reached before their turn
    NOTHING_ASKED = "nothing asked"  # mentor round: no ask, and no asker needed their offer


@dataclass(frozen=True, kw_only=True, slots=True)
class Candidate:
    member_id: int
    name: str
    joined_at: datetime
    values: frozenset[str] = frozenset()
    practices: frozenset[str] = frozenset()
    connections: int = 0
    last_action_at: datetime | None = None  # last explicit action: reply, accepted intro, story, click
    locale: str | None = None  # "pt-BR", "en"; the language part is compared
    location: str | None = None
    tz_offset_minutes: int | None = None
    cadence_weeks: int | None = 4  # None: opted out of introductions
    last_intro_at: datetime | None = None
    paused_until: datetime | None = None
    offers: frozenset[str] = frozenset()
    asks: frozenset[str] = frozenset()


@dataclass(frozen=True, kw_only=True)
class RoundRules:
    now: datetime
    max_pairs: int
    kind: RoundKind | str = RoundKind.PEER
    seed: int | str = 0
    same_language: bool = False
    same_location: bool = False
    # Compared on the clock, so +13:00 and -11:00 are 0 minutes apart.
    timezone_window_minutes: int | None = None
    never_pairs: Collection[frozenset[int]] = frozenset()
    past_pairs: Collection[frozenset[int]] = frozenset()
    newcomer_days: int = 30
    drifting_days: int = 90
    periphery_max_connections: int = 1


@dataclass(frozen=True, slots=True)
class PeripheryFacts:
    connections: int
    isolated: bool
    days_since_joined: int
    newcomer: bool
    quiet_days: int | None  # None: no explicit action ever
    drifting: bool

    @property
    def on_periphery(self) -> bool:
        return self.isolated or self.newcomer or self.drifting

    @property
    def weight(self) -> int:
        return self.isolated + self.newcomer + self.drifting


@dataclass(frozen=True, slots=True)
class Proposal:
    a_id: int  # mentor rounds: the member who asked
    b_id: int  # mentor rounds: the member who offered
    score: float
    reason: str
    shared_values: tuple[str, ...] = ()
    periphery: bool = False  # at least one of the two is on the periphery
    topics: tuple[str, ...] = ()  # mentor rounds: the asks the offer answers


@dataclass(frozen=True, slots=True)
class Unmatched:
    member_id: int
    reason: UnmatchedReason


@dataclass(frozen=True)
class MatchResult:
    proposals: list[Proposal] = field(default_factory=list)
    unmatched: list[Unmatched] = field(default_factory=list)

    @property
    def unmatched_ids(self) -> list[int]:
        return [u.member_id for u in self.unmatched]


# A shared value outweighs everything else together; then what each brings the other.
W_SHARED_VALUE = 4.0
W_EXTRA_SHARED_VALUE = 0.5
W_NEW_PRACTICE = 1.0
W_HUB = 1.5
W_PERIPHERY_PEER = 0.75
W_TOPIC = 10.0

SAMPLE_PER_BUCKET = 24
SAMPLE_HUBS = 8
SAMPLE_ANY = 16
SCAN_FACTOR = 8  # how far past taken or forbidden entries a sample may look
DAY_MINUTES = 24 * 60


def propose_pairs(candidates: Iterable[Candidate], rules: RoundRules) -> MatchResult:
    if rules.max_pairs < 0:
        raise ValueError("max_pairs must be 0 or more")
    members = _sorted_unique(candidates)
    eligible: list[Candidate] = []
    unmatched: list[Unmatched] = []
    for c in members:
        reason = ineligibility(c, rules.now)
        if reason is None:
            eligible.append(c)
        else:
            unmatched.append(Unmatched(c.member_id, reason))
    pool = _Pool(eligible, rules)
    if RoundKind(rules.kind) is RoundKind.MENTOR:
        proposals, left = _match_mentors(pool, rules.max_pairs)
    else:
        proposals, left = _match_peers(pool, rules.max_pairs)
    return MatchResult(proposals, sorted(unmatched + left, key=lambda u: u.member_id))


def ineligibility(c: Candidate, now: datetime) -> UnmatchedReason | None:
    if c.cadence_weeks is None:
        return UnmatchedReason.OPTED_OUT
    if c.paused_until is not None and c.paused_until > now:
        return UnmatchedReason.PAUSED
    if c.last_intro_at is not None and c.last_intro_at + timedelta(weeks=c.cadence_weeks) > now:
        return UnmatchedReason.CADENCE
    return None


def periphery_facts(c: Candidate, rules: RoundRules) -> PeripheryFacts:
    joined = (rules.now - c.joined_at).days
    quiet = None if c.last_action_at is None else (rules.now - c.last_action_at).days
    # Someone who only just joined is new, not drifting.
    drifting = joined > rules.drifting_days and (quiet is None or quiet > rules.drifting_days)
    return PeripheryFacts(
        connections=c.connections,
        isolated=c.connections <= rules.periphery_max_connections,
        days_since_joined=joined,
        newcomer=joined <= rules.newcomer_days,
        quiet_days=quiet,
        drifting=drifting,
    )


def _sorted_unique(candidates: Iterable[Candidate]) -> list[Candidate]:
    members = sorted(candidates, key=lambda c: c.member_id)
    for a, b in zip(members, members[1:], strict=False):
        if a.member_id == b.member_id:
            raise ValueError(f"member {a.member_id} appears twice")
    return members


def _match_peers(pool: _Pool, max_pairs: int) -> tuple[list[Proposal], list[Unmatched]]:
    proposals, failed = _greedy(pool, pool.priority(range(pool.size)), pool.best_peer, max_pairs)
    return proposals, pool.leftovers(failed)


def _match_mentors(pool: _Pool, max_pairs: int) -> tuple[list[Proposal], list[Unmatched]]:
    askers = pool.priority(i for i in range(pool.size) if pool.asks[i])
    proposals, failed = _greedy(pool, askers, pool.best_mentor, max_pairs)
    for i in range(pool.size):
        if not pool.asks[i]:
            failed.setdefault(i, UnmatchedReason.NOTHING_ASKED)
    return proposals, pool.leftovers(failed)


def _greedy(
    pool: _Pool, order: list[int], pick: Callable[[int], int | UnmatchedReason], max_pairs: int
) -> tuple[list[Proposal], dict[int, UnmatchedReason]]:
    """Each member in turn takes their best available partner; first come, best served."""
    proposals: list[Proposal] = []
    failed: dict[int, UnmatchedReason] = {}
    for i in order:
        if len(proposals) >= max_pairs:
            break
        if pool.taken[i]:
            continue
        found = pick(i)
        if isinstance(found, UnmatchedReason):
            failed[i] = found
            continue
        pool.take(i, found)
        proposals.append(pool.proposal(i, found))
    return proposals, failed


class _Bucket:
    """Members in seeded order; `start` skips the prefix already taken."""

    __slots__ = ("items", "start")

    def __init__(self) -> None:
        self.items: list[int] = []
        self.start = 0

    def sample(self, pool: _Pool, i: int, limit: int) -> Iterator[int]:
        items, taken = self.items, pool.taken
        k = self.start
        while k < len(items) and taken[items[k]]:
            k += 1
        self.start = k
        found = 0
        for j in items[k : k + limit * SCAN_FACTOR]:
            if not taken[j] and pool.allowed(i, j):
                yield j
                found += 1
                if found >= limit:
                    return


class _Pool:
    """The eligible members of one round, as parallel lists indexed 0..n-1 by member id."""

    def __init__(self, members: list[Candidate], rules: RoundRules) -> None:
        self.members = members
        self.rules = rules
        self.size = len(members)
        self.facts = [periphery_facts(c, rules) for c in members]
        self.periphery = [f.on_periphery for f in self.facts]
        self.taken = bytearray(self.size)
        self.tz = [c.tz_offset_minutes for c in members]
        self.asks = [frozenset(_topics(c.asks)) for c in members]
        self.offers = [frozenset(_topics(c.offers)) for c in members]
        self.mentor = RoundKind(rules.kind) is RoundKind.MENTOR
        self.rank = self._seeded_rank(rules.seed)
        self.excluded = self._exclusions(rules)
        self.hubness = self._hubness()
        self.part = [_partition(c, rules) for c in members]
        self._build_indexes()

    def _seeded_rank(self, seed: int | str) -> list[int]:
        order = list(range(self.size))
        random.Random(seed).shuffle(order)
        rank = [0] * self.size
        for r, i in enumerate(order):
            rank[i] = r
        self.order = order
        return rank

    def _exclusions(self, rules: RoundRules) -> dict[int, set[int]]:
        index = {c.member_id: i for i, c in enumerate(self.members)}
        excluded: dict[int, set[int]] = {}
        for pairs in (rules.never_pairs, rules.past_pairs):
            for pair in pairs:
                a, b = tuple(pair)
                if a in index and b in index:
                    excluded.setdefault(index[a], set()).add(index[b])
                    excluded.setdefault(index[b], set()).add(index[a])
        return excluded

    def _hubness(self) -> list[float]:
        degrees = sorted(c.connections for c in self.members)
        top = degrees[int(0.9 * (len(degrees) - 1))] if degrees else 0
        hub_degree = max(top, self.rules.periphery_max_connections + 2)
        scale = math.log1p(hub_degree)
        return [min(1.0, math.log1p(max(c.connections, 0)) / scale) for c in self.members]

    def _build_indexes(self) -> None:
        self.by_value: dict[tuple[tuple[str, ...], str], _Bucket] = {}
        self.by_offer: dict[tuple[tuple[str, ...], str], _Bucket] = {}
        self.anyone: dict[tuple[str, ...], _Bucket] = {}
        self.by_tz: dict[tuple[tuple[str, ...], int | None], list[int]] = {}
        for i in self.order:
            part = self.part[i]
            for v in self.members[i].values:
                self.by_value.setdefault((part, v), _Bucket()).items.append(i)
            for t in self.offers[i]:
                self.by_offer.setdefault((part, t), _Bucket()).items.append(i)
            self.anyone.setdefault(part, _Bucket()).items.append(i)
            self.by_tz.setdefault((part, self.tz[i]), []).append(i)
        self.zones: dict[tuple[str, ...], list[int]] = {}
        for part, tz in sorted(self.by_tz, key=lambda key: (key[0], key[1] or 0)):
            if tz is not None:
                self.zones.setdefault(part, []).append(tz)
        self.hubs: dict[tuple[str, ...], _Bucket] = {}
        for part, bucket in self.anyone.items():
            hubs = self.hubs[part] = _Bucket()
            hubs.items = sorted(bucket.items, key=lambda i: (-self.members[i].connections, self.rank[i]))

    def priority(self, indexes: Iterable[int]) -> list[int]:
        def key(i: int) -> tuple[bool, int, int, int]:
            f = self.facts[i]
            return (not f.on_periphery, -f.weight, f.connections, self.rank[i])

        return sorted(indexes, key=key)

    def allowed(self, i: int, j: int) -> bool:
        if i == j or self.part[i] != self.part[j]:
            return False
        excluded = self.excluded.get(i)
        if excluded is not None and j in excluded:
            return False
        window = self.rules.timezone_window_minutes
        if window is None:
            return True
        return _clock_gap(self.tz[i], self.tz[j]) <= window

    def take(self, i: int, j: int) -> None:
        self.taken[i] = self.taken[j] = 1

    def leftovers(self, failed: dict[int, UnmatchedReason]) -> list[Unmatched]:
        """Whoever was neither paired nor turned away ran out of room in the round."""
        return [
            Unmatched(self.members[i].member_id, failed.get(i, UnmatchedReason.ROUND_FULL))
            for i in range(self.size)
            if not self.taken[i]
        ]

    def best_peer(self, i: int) -> int | UnmatchedReason:
        part = self.part[i]
        sample: dict[int, None] = {}
        for v in sorted(self.members[i].values):
            sample.update(dict.fromkeys(self.by_value[(part, v)].sample(self, i, SAMPLE_PER_BUCKET)))
        sample.update(dict.fromkeys(self.hubs[part].sample(self, i, SAMPLE_HUBS)))
        sample.update(dict.fromkeys(self.anyone[part].sample(self, i, SAMPLE_ANY)))
        if sample:
            return self._best(i, sample)
        return self._exhaustive(i, self._within_window(i))

    def _within_window(self, i: int) -> Iterator[int]:
        """Everyone in i's partition whose time zone may fit, without visiting the rest."""
        part, window = self.part[i], self.rules.timezone_window_minutes
        if window is None:
            yield from self.anyone[part].items
            return
        for tz in self.zones.get(part, ()):
            if _clock_gap(self.tz[i], tz) <= window:
                yield from self.by_tz[(part, tz)]

    def best_mentor(self, i: int) -> int | UnmatchedReason:
        part = self.part[i]
        buckets = [self.by_offer[(part, t)] for t in sorted(self.asks[i]) if (part, t) in self.by_offer]
        sample: dict[int, None] = {}
        for bucket in buckets:
            sample.update(dict.fromkeys(bucket.sample(self, i, SAMPLE_PER_BUCKET)))
        if sample:
            return self._best(i, sample)
        return self._exhaustive(i, [j for bucket in buckets for j in bucket.items])

    def _exhaustive(self, i: int, items: Iterable[int]) -> int | UnmatchedReason:
        """The sample found nobody: look at everyone, and tell 'all taken' from 'nobody fits'."""
        free: dict[int, None] = {}
        fits = False
        for j in items:
            if self.allowed(i, j):
                fits = True
                if not self.taken[j]:
                    free[j] = None
        if free:
            return self._best(i, free)
        return UnmatchedReason.ODD_ONE_OUT if fits else UnmatchedReason.NO_ELIGIBLE_PARTNER

    def _best(self, i: int, candidates: dict[int, None]) -> int:
        best, best_score = -1, -1.0
        for j in candidates:
            s = self.score(i, j)
            if s > best_score:  # ties keep the earlier, seeded, candidate
                best, best_score = j, s
        return best

    def score(self, i: int, j: int) -> float:
        a, b = self.members[i], self.members[j]
        s = len(self.asks[i] & self.offers[j]) * W_TOPIC if self.mentor else 0.0
        shared = len(a.values & b.values)
        if shared:
            s += W_SHARED_VALUE + W_EXTRA_SHARED_VALUE * min(shared - 1, 2)
        s += W_NEW_PRACTICE * (bool(a.practices - b.practices) + bool(b.practices - a.practices))
        return s + self._bridge(i, j)

    def _bridge(self, i: int, j: int) -> float:
        pi, pj = self.periphery[i], self.periphery[j]
        if pi and pj:
            return W_PERIPHERY_PEER
        if pi or pj:
            return W_HUB * self.hubness[j if pi else i]
        return 0.0

    def proposal(self, i: int, j: int) -> Proposal:
        a, b = self.members[i], self.members[j]
        shared = tuple(sorted(a.values & b.values))
        fitting = self.asks[i] & self.offers[j] if self.mentor else frozenset()
        topics = tuple(sorted(t for t in a.asks if _topic(t) in fitting))
        return Proposal(
            a_id=a.member_id,
            b_id=b.member_id,
            score=round(self.score(i, j), 3),
            reason=self._reason(i, j, shared, topics),
            shared_values=shared,
            periphery=self.periphery[i] or self.periphery[j],
            topics=topics,
        )

    def _reason(self, i: int, j: int, shared: tuple[str, ...], topics: tuple[str, ...]) -> str:
        a, b = self.members[i], self.members[j]
        parts = []
        if topics:
            parts.append(f"{a.name} asks for help with {_and_list(topics)}, which {b.name} offers")
        if shared:
            parts.append(f"both hold {_and_list(shared)}")
        for k, other in ((i, j), (j, i)):
            parts.extend(self._periphery_words(k, other))
        parts.extend(_practice_words(a, b))
        return "; ".join(parts)

    def _periphery_words(self, k: int, other: int) -> list[str]:
        c, f = self.members[k], self.facts[k]
        if not f.on_periphery:
            if self.periphery[other] and f.connections > 0:
                return [f"{c.name} is connected to {_count(f.connections, 'member')}"]
            return []
        facts = []
        if f.newcomer:
            facts.append(f"joined {_count(f.days_since_joined, 'day')} ago")
        if f.drifting:
            facts.append(
                "has not taken part since joining"
                if f.quiet_days is None
                else f"has not taken part for {_count(f.quiet_days, 'day')}"
            )
        if f.isolated:
            facts.append(
                "has no connections yet" if f.connections <= 0 else f"has only {_count(f.connections, 'connection')}"
            )
        return [f"{c.name} {_and_list(facts)}"]


def _practice_words(a: Candidate, b: Candidate) -> list[str]:
    words = []
    for c, other in ((a, b), (b, a)):
        new = sorted(c.practices - other.practices)
        if new:
            words.append(f"{c.name} practises {_and_list(new[:2])}")
    return words


def _clock_gap(a: int | None, b: int | None) -> int:
    if a is None or b is None:
        return DAY_MINUTES + 1  # fits no window
    gap = abs(a - b) % DAY_MINUTES
    return min(gap, DAY_MINUTES - gap)


def _partition(c: Candidate, rules: RoundRules) -> tuple[str, ...]:
    """Hard equality constraints split the round; a missing detail matches nobody."""
    key: list[str] = []
    if rules.timezone_window_minutes is not None and c.tz_offset_minutes is None:
        return ("", str(c.member_id))
    if rules.same_language:
        language = (c.locale or "").strip().replace("_", "-").split("-")[0].casefold()
        if not language:
            return ("", str(c.member_id))
        key.append(language)
    if rules.same_location:
        location = _topic(c.location or "")
        if not location:
            return ("", str(c.member_id))
        key.append(location)
    return tuple(key)


def _topics(topics: Iterable[str]) -> Iterator[str]:
    for t in topics:
        if _topic(t):
            yield _topic(t)


def _topic(text: str) -> str:
    return " ".join(text.split()).casefold()


def _and_list(items: Collection[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
