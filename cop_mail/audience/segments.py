"""Segments: saved rule trees compiled to ONE SQL query over members.

A rule tree is JSON, as stored on Segment.rules:

    {"match": "all", "rules": [                      # a group: "all" (AND) or "any" (OR)
        {"field": "value", "op": "any", "value": [3, 5]},
        {"match": "any", "rules": [
            {"field": "connections", "op": "periphery"},
            {"field": "joined", "op": "within_days", "value": 30}]},
        {"field": "attribute", "key": "role", "op": "equals", "value": "facilitator"}]}

Many-to-many conditions become EXISTS subqueries; nothing is filtered in Python. Every
problem in a tree is reported at once, in words a coordinator understands.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, false, func, not_, or_, select, true
from sqlalchemy.orm import Session

from cop_mail.audience.suppression import on_lists_clause, receivable_clause
from cop_mail.db import utcnow
from cop_mail.models import (
    Campaign,
    CampaignStatus,
    Member,
    MemberStatus,
    Segment,
    Stream,
    Suppression,
    member_practices,
    member_tags,
    member_values,
)

MAX_DEPTH = 5
MAX_CONDITIONS = 100
MAX_DAYS = 36_500
ATTRIBUTE_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_ .-]{0,63}$")
EMPTY_RULES: dict[str, Any] = {"match": "all", "rules": []}


class RuleError(ValueError):
    """A rule tree that cannot be used; `problems` lists every reason in plain words."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


class SegmentNotFound(LookupError):
    pass


@dataclass(frozen=True)
class FieldSpec:
    label: str
    ops: dict[str, str]  # op -> words shown in the builder
    kinds: dict[str, str]  # op -> kind of value it takes: ids, statuses, date, days, number, text, none


_TERM_OPS = {"any": "any of", "all": "all of", "none": "none of"}
_ID_KINDS = dict.fromkeys(_TERM_OPS, "ids")
FIELDS: dict[str, FieldSpec] = {
    "value": FieldSpec("Holds value", _TERM_OPS, _ID_KINDS),
    "practice": FieldSpec("Has practice", _TERM_OPS, _ID_KINDS),
    "tag": FieldSpec("Tagged", _TERM_OPS, _ID_KINDS),
    "list": FieldSpec("Subscribed to list", {"in": "any of", "not_in": "none of"}, {"in": "ids", "not_in": "ids"}),
    "status": FieldSpec(
        "Status", {"in": "is one of", "not_in": "is none of"}, {"in": "statuses", "not_in": "statuses"}
    ),
    "joined": FieldSpec(
        "Joined",
        {
            "before": "before",
            "after": "on or after",
            "within_days": "in the last N days",
            "more_than_days_ago": "more than N days ago",
        },
        {"before": "date", "after": "date", "within_days": "days", "more_than_days_ago": "days"},
    ),
    "last_engaged": FieldSpec(
        "Last engaged (replied, accepted an intro, told a story, clicked)",
        {
            "within_days": "in the last N days",
            "not_within_days": "not in the last N days (or never)",
            "before": "last before",
            "after": "on or after",
            "never": "never",
            "ever": "at least once",
        },
        {
            "within_days": "days",
            "not_within_days": "days",
            "before": "date",
            "after": "date",
            "never": "none",
            "ever": "none",
        },
    ),
    "connections": FieldSpec(
        "Connections",
        {
            "periphery": "0 or 1 (the periphery)",
            "eq": "exactly",
            "lte": "at most",
            "gte": "at least",
            "lt": "fewer than",
            "gt": "more than",
        },
        {"periphery": "none", "eq": "number", "lte": "number", "gte": "number", "lt": "number", "gt": "number"},
    ),
    "introduced": FieldSpec(
        "Introduced",
        {
            "never": "never introduced",
            "ever": "introduced at least once",
            "not_within_days": "not in the last N days (or never)",
        },
        {"never": "none", "ever": "none", "not_within_days": "days"},
    ),
    "location": FieldSpec(
        "Location",
        {
            "equals": "is",
            "contains": "contains",
            "starts_with": "starts with",
            "is_empty": "is empty",
            "is_set": "is filled in",
        },
        {"equals": "text", "contains": "text", "starts_with": "text", "is_empty": "none", "is_set": "none"},
    ),
    "locale": FieldSpec(
        "Language",
        {"equals": "is", "starts_with": "starts with (pt matches pt-BR)", "not_equals": "is not"},
        {"equals": "text", "starts_with": "text", "not_equals": "text"},
    ),
    "attribute": FieldSpec(
        "Custom attribute",
        {
            "equals": "is",
            "not_equals": "is not",
            "contains": "contains",
            "exists": "is set",
            "not_exists": "is not set",
        },
        {"equals": "text", "not_equals": "text", "contains": "text", "exists": "none", "not_exists": "none"},
    ),
}
_MATCH_WORDS = {"all": "all", "and": "all", "any": "any", "or": "any"}


# --- validation -----------------------------------------------------------------------------


def validate_rules(rules: Any) -> dict[str, Any]:
    """Return a clean copy of the tree or raise RuleError listing every problem."""
    problems: list[str] = []
    counter = [0]
    clean = _validate_group(rules, 1, problems, counter, root=True)
    if counter[0] > MAX_CONDITIONS:
        problems.append(f"A segment can hold at most {MAX_CONDITIONS} conditions; this one has {counter[0]}.")
    if problems:
        raise RuleError(problems)
    return clean


def _validate_group(
    node: Any, depth: int, problems: list[str], counter: list[int], root: bool = False
) -> dict[str, Any]:
    if not isinstance(node, dict) or not isinstance(node.get("rules", None), list):
        problems.append('The rules must be a group: {"match": "all" or "any", "rules": [...]}.')
        return dict(EMPTY_RULES)
    match = _MATCH_WORDS.get(str(node.get("match", "all")).lower())
    if match is None:
        problems.append('A group must match "all" or "any" of its conditions.')
    if depth > MAX_DEPTH:
        problems.append(f"Groups can be nested at most {MAX_DEPTH} deep.")
        return dict(EMPTY_RULES)
    if not node["rules"] and not root:
        problems.append("A group is empty: add a condition to it or remove it.")
    children = []
    for child in node["rules"]:
        if isinstance(child, dict) and "rules" in child:
            children.append(_validate_group(child, depth + 1, problems, counter))
        else:
            counter[0] += 1
            children.append(_validate_condition(child, counter[0], problems))
    return {"match": match or "all", "rules": children}


def _validate_condition(node: Any, number: int, problems: list[str]) -> dict[str, Any]:
    where = f"Condition {number}"
    if not isinstance(node, dict):
        problems.append(f"{where} is not a condition.")
        return {}
    spec = FIELDS.get(str(node.get("field", "")))
    if spec is None:
        problems.append(f"{where}: choose what to filter on.")
        return {}
    where = f"{where} ({spec.label.split(' (')[0]})"
    op = str(node.get("op", ""))
    if op not in spec.ops:
        problems.append(f"{where}: choose one of: {', '.join(spec.ops.values())}.")
        return {}
    clean: dict[str, Any] = {"field": node["field"], "op": op}
    if node["field"] == "attribute":
        key = str(node.get("key", "")).strip()
        if not ATTRIBUTE_KEY.match(key):
            problems.append(f"{where}: name the attribute with letters, digits, spaces, '.', '-' or '_' (up to 64).")
        clean["key"] = key
    kind = spec.kinds[op]
    if kind != "none":
        value, problem = _VALUE_CHECKS[kind](node.get("value"))
        if problem:
            problems.append(f"{where}: {problem}")
        clean["value"] = value
    return clean


def _check_ids(raw: Any) -> tuple[Any, str | None]:
    items = raw if isinstance(raw, list) else [raw] if raw not in (None, "") else []
    try:
        ids = sorted({int(item) for item in items})
    except (TypeError, ValueError):
        return [], "choose from the list."
    return ids, None if ids else "choose at least one."


def _check_statuses(raw: Any) -> tuple[Any, str | None]:
    items = raw if isinstance(raw, list) else [raw] if raw else []
    known = {status.value for status in MemberStatus}
    chosen = sorted({str(item) for item in items})
    if not chosen or any(item not in known for item in chosen):
        return chosen, "choose at least one status: " + ", ".join(sorted(known)) + "."
    return chosen, None


def _check_date(raw: Any) -> tuple[Any, str | None]:
    try:
        return date.fromisoformat(str(raw).strip()).isoformat(), None
    except ValueError:
        return str(raw or ""), "write the date as YYYY-MM-DD."


def _check_whole_number(raw: Any, high: int, what: str) -> tuple[Any, str | None]:
    try:
        number = int(str(raw).strip())
    except ValueError:
        return raw, f"write {what} as a whole number."
    if not 0 <= number <= high:
        return number, f"{what} must be from 0 to {high:,}."
    return number, None


def _check_text(raw: Any) -> tuple[Any, str | None]:
    text = " ".join(str(raw or "").split())
    if not text:
        return text, "write something to compare with."
    return text[:200], None


_VALUE_CHECKS: dict[str, Callable[[Any], tuple[Any, str | None]]] = {
    "ids": _check_ids,
    "statuses": _check_statuses,
    "date": _check_date,
    "days": lambda raw: _check_whole_number(raw, MAX_DAYS, "the number of days"),
    "number": lambda raw: _check_whole_number(raw, 1_000_000, "the number"),
    "text": _check_text,
}


# --- compiling ------------------------------------------------------------------------------


def compile_rules(rules: Any, now: datetime | None = None) -> ColumnElement[bool]:
    """The WHERE condition on Member for a (validated here) rule tree."""
    return _compile_group(validate_rules(rules), now or utcnow())


def _compile_group(group: dict[str, Any], now: datetime) -> ColumnElement[bool]:
    parts = [
        _compile_group(child, now) if "rules" in child else _compile_condition(child, now) for child in group["rules"]
    ]
    if not parts:
        return true()
    return and_(*parts) if group["match"] == "all" else or_(*parts)


def _day_start(text: str) -> datetime:
    return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)


def _terms(table: Any, column: str, op: str, ids: list[int]) -> ColumnElement[bool]:
    def holds(wanted: Sequence[int]) -> ColumnElement[bool]:
        return exists().where(table.c.member_id == Member.id, table.c[column].in_(list(wanted)))

    if op == "all":
        return and_(*[holds([term_id]) for term_id in ids])
    return not_(holds(ids)) if op == "none" else holds(ids)


def _since(column: Any, op: str, value: Any, now: datetime) -> ColumnElement[bool]:
    conditions: dict[str, Callable[[], ColumnElement[bool]]] = {
        "before": lambda: column < _day_start(value),
        "after": lambda: column >= _day_start(value),
        "within_days": lambda: column >= now - timedelta(days=value),
        "more_than_days_ago": lambda: column < now - timedelta(days=value),
        "not_within_days": lambda: or_(column.is_(None), column < now - timedelta(days=value)),
        "never": lambda: column.is_(None),
        "ever": lambda: column.is_not(None),
    }
    return conditions[op]()


def _text(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    lowered = func.lower(column)
    text = str(value or "").lower()
    conditions: dict[str, Callable[[], ColumnElement[bool]]] = {
        "equals": lambda: lowered == text,
        "not_equals": lambda: or_(column.is_(None), lowered != text),
        "contains": lambda: lowered.contains(text, autoescape=True),
        "starts_with": lambda: lowered.startswith(text, autoescape=True),
        "is_empty": lambda: or_(column.is_(None), column == ""),
        "is_set": lambda: and_(column.is_not(None), column != ""),
        "exists": lambda: and_(column.is_not(None), column != ""),
        "not_exists": lambda: or_(column.is_(None), column == ""),
    }
    return conditions[op]()


def _connections(op: str, value: Any) -> ColumnElement[bool]:
    column = Member.connections_count
    conditions: dict[str, Callable[[], ColumnElement[bool]]] = {
        "periphery": lambda: column <= 1,
        "eq": lambda: column == value,
        "lt": lambda: column < value,
        "lte": lambda: column <= value,
        "gt": lambda: column > value,
        "gte": lambda: column >= value,
    }
    return conditions[op]()


def _compile_condition(rule: dict[str, Any], now: datetime) -> ColumnElement[bool]:
    field, op = rule["field"], rule["op"]
    value: Any = rule.get("value")
    if field in ("value", "practice", "tag"):
        table, column = {"value": (member_values, "value_id"), "practice": (member_practices, "practice_id"),
                         "tag": (member_tags, "tag_id")}[field]  # fmt: skip
        return _terms(table, column, op, value)
    if field == "list":
        return on_lists_clause(value) if op == "in" else not_(on_lists_clause(value))
    if field == "status":
        return Member.status.in_(value) if op == "in" else Member.status.not_in(value)
    if field == "joined":
        return _since(Member.joined_at, op, value, now)
    if field == "last_engaged":
        return _since(Member.last_engaged_at, op, value, now)
    if field == "introduced":
        return _since(Member.last_introduced_at, op, value, now)
    if field == "connections":
        return _connections(op, value)
    if field == "attribute":
        # ->> on PostgreSQL, json_extract on SQLite: both give the attribute as text.
        return _text(Member.attributes[rule["key"]].as_string(), op, value)
    return _text(Member.location if field == "location" else Member.locale, op, value)


# --- queries campaigns and the admin use -------------------------------------------------------


def not_suppressed() -> ColumnElement[bool]:
    """Members whose address hash is not on the suppression list (an indexed anti-join)."""
    return not_(exists().where(Suppression.email_hash == Member.email_hash))


def reachable() -> ColumnElement[bool]:
    return and_(Member.status == MemberStatus.ACTIVE.value, not_suppressed())


def segment_member_ids_query(rules: Any, now: datetime | None = None) -> Select[Any]:
    return select(Member.id).where(compile_rules(rules, now))


def count_segment(session: Session, rules: Any, now: datetime | None = None) -> int:
    """Every member the rules match, whatever their status."""
    return session.scalar(select(func.count()).select_from(Member).where(compile_rules(rules, now))) or 0


def count_reachable(session: Session, rules: Any, now: datetime | None = None) -> int:
    """Those of them mail can reach: active and not suppressed."""
    condition = and_(compile_rules(rules, now), reachable())
    return session.scalar(select(func.count()).select_from(Member).where(condition)) or 0


def sample_segment(session: Session, rules: Any, n: int = 10) -> list[Any]:
    """The most recently joined members the rules match (uses the joined_at index)."""
    statement = (
        select(Member.id, Member.email, Member.name, Member.status, Member.joined_at)
        .where(compile_rules(rules))
        .order_by(Member.joined_at.desc(), Member.id.desc())
        .limit(max(1, min(n, 100)))
    )
    return list(session.execute(statement).all())


def audience_query(
    session: Session,
    list_ids: Iterable[int] = (),
    segment_ids: Iterable[int] = (),
    stream: Stream | str | None = None,
    now: datetime | None = None,
) -> Select[Any]:
    """Member ids a campaign reaches: subscribed to any of the lists OR matching any of the
    segments; active and not suppressed; given a stream, also wanting it and not paused
    (suppression.receivable_clause).

    Raises SegmentNotFound for a segment that no longer exists: a campaign must not go to
    a silently smaller audience.
    """
    moment = now or utcnow()
    wanted_lists, wanted_segments = list(list_ids), list(segment_ids)
    reasons: list[ColumnElement[bool]] = [on_lists_clause(wanted_lists)] if wanted_lists else []
    segments = {s.id: s for s in session.scalars(select(Segment).where(Segment.id.in_(wanted_segments)))}
    for segment_id in wanted_segments:
        if segment_id not in segments:
            raise SegmentNotFound(f"segment #{segment_id} no longer exists")
        reasons.append(compile_rules(segments[segment_id].rules, moment))
    # One definition of who may receive a stream, shared with the sending side.
    reach = reachable() if stream is None else receivable_clause(stream, now=moment)
    return select(Member.id).where(or_(*reasons) if reasons else false(), reach)


# --- saved segments -------------------------------------------------------------------------


def get_segment(session: Session, segment_id: int) -> Segment:
    segment = session.get(Segment, segment_id)
    if segment is None:
        raise SegmentNotFound(f"segment #{segment_id} does not exist")
    return segment


def find_segment_by_name(session: Session, name: str) -> Segment | None:
    return session.scalar(select(Segment).where(func.lower(Segment.name) == name.strip().lower()))


def save_segment(
    session: Session, name: str, rules: Any, description: str = "", segment: Segment | None = None
) -> Segment:
    """Create or update a segment by name; raises RuleError listing the problems."""
    problems: list[str] = []
    name = " ".join(name.split())
    if not name:
        problems.append("Give the segment a name.")
    elif len(name) > 200:
        problems.append("The name can be at most 200 characters long.")
    other = find_segment_by_name(session, name) if name else None
    if other is not None and other is not segment:
        problems.append(f"A segment called {other.name!r} already exists; choose another name.")
    try:
        clean = validate_rules(rules)
    except RuleError as exc:
        problems.extend(exc.problems)
    if problems:
        raise RuleError(problems)
    target = segment or Segment()
    target.name, target.description, target.rules = name, description.strip(), clean
    session.add(target)
    session.flush()
    return target


def campaigns_using(session: Session, segment_id: int) -> list[str]:
    """Names of unfinished campaigns that target the segment (the ids live in a JSON list)."""
    open_statuses = [CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.PAUSED]
    rows = session.execute(select(Campaign.name, Campaign.segment_ids).where(Campaign.status.in_(open_statuses)))
    return [name for name, ids in rows if segment_id in (ids or [])]


def delete_segment(session: Session, segment: Segment) -> None:
    using = campaigns_using(session, segment.id)
    if using:
        raise RuleError([f"Campaigns still use this segment: {', '.join(using)}. Change their audience first."])
    session.delete(segment)


def describe(rules: Any, names: dict[str, dict[int, str]] | None = None) -> str:
    """A one-line reading of the rules, e.g. 'Holds value any of Care AND (Connections 0 or 1 OR ...)'."""
    try:
        clean = validate_rules(rules)
    except RuleError:
        return "(rules with problems)"
    text = _describe_group(clean, names or {}, top=True)
    return text or "Every member"


def _describe_group(group: dict[str, Any], names: dict[str, dict[int, str]], top: bool = False) -> str:
    joiner = " AND " if group["match"] == "all" else " OR "
    parts = [
        _describe_group(child, names) if "rules" in child else _describe_condition(child, names)
        for child in group["rules"]
    ]
    text = joiner.join(part for part in parts if part)
    return text if top or len(parts) < 2 else f"({text})"


def _describe_condition(rule: dict[str, Any], names: dict[str, dict[int, str]]) -> str:
    spec = FIELDS[rule["field"]]
    label = spec.label.split(" (")[0]
    if rule["field"] == "attribute":
        label = f"{label} {rule['key']!r}"
    value = rule.get("value")
    if isinstance(value, list):
        lookup = names.get(rule["field"], {})
        value = ", ".join(lookup.get(item, f"#{item}") if isinstance(item, int) else str(item) for item in value)
    words = spec.ops[rule["op"]]
    if " N " in words:
        words, value = words.replace(" N ", f" {value} "), None
    return " ".join(str(part) for part in (label, words, value) if part not in (None, ""))
