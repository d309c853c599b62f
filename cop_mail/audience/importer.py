"""Importing members from CSV.

Two steps. `plan_import` reads the file and the database (never writes) and decides,
per row, what would happen: that is the dry run. `apply_plan` writes the whole plan
with bulk Core statements (INSERT ... ON CONFLICT, chunked) inside the caller's
transaction, so an import either completes or leaves nothing behind.

An import never brings back an address that is suppressed, unsubscribed, bounced,
complained or erased, and never re-adds anyone to a list they left.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any, cast

from sqlalchemy import String, bindparam, delete, func, select, text, update
from sqlalchemy import Table as SqlTable
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from cop_mail.accounts import audit
from cop_mail.audience.csv_io import CsvProblem, Table, looks_like_email, read_table, write_csv
from cop_mail.audience.suppression import InvalidEmail, normalise_email, suppressed_hashes
from cop_mail.db import JSONType, is_postgres, utcnow
from cop_mail.models import (
    BackgroundTask,
    ConsentEvent,
    ImportFile,
    ImportReport,
    ListMembership,
    MailingList,
    Member,
    MemberStatus,
    Practice,
    Tag,
    TaskStatus,
    Value,
    member_practices,
    member_tags,
    member_values,
)
from cop_mail.tokens import address_hash

log = logging.getLogger(__name__)
MEMBERS = cast(SqlTable, Member.__table__)

IMPORT_TASK_KIND = "member_import"
LOOKUP_CHUNK = 900
WRITE_CHUNK = 2000
KEEP_IMPORT_FILES_DAYS = 14
PROGRESS_INTERVAL = 0.5  # seconds between progress commits
TERM_FIELDS = ("values", "practices", "tags")
ATTRIBUTE_PREFIX = "attribute:"
ATTRIBUTE_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_ .-]{0,63}$")
FIELD_LABELS = {
    "email": "Email address",
    "name": "Name",
    "first_name": "First name",
    "last_name": "Last name",
    "preferred_name": "Preferred name",
    "locale": "Language (locale)",
    "timezone": "Time zone",
    "location": "Location",
    "joined_at": "Joined on (YYYY-MM-DD)",
    "values": "Values held (separated list)",
    "practices": "Practices (separated list)",
    "tags": "Tags (separated list)",
}
_SYNONYMS = {
    "email": {"email", "e mail", "email address", "e mail address", "mail", "emailaddress", "address"},
    "name": {"name", "full name", "fullname", "display name", "member", "member name"},
    "first_name": {"first name", "firstname", "given name", "forename", "fname"},
    "last_name": {"last name", "lastname", "surname", "family name", "lname"},
    "preferred_name": {"preferred name", "nickname", "known as"},
    "locale": {"locale", "language", "lang"},
    "timezone": {"timezone", "time zone", "tz"},
    "location": {"location", "city", "place", "town", "region"},
    "joined_at": {"joined", "joined at", "joined on", "date joined", "signup date", "signed up", "created"},
    "values": {"values", "value", "values held"},
    "practices": {"practices", "practice"},
    "tags": {"tags", "tag", "labels", "groups"},
}
# Shared mailboxes: nobody in particular agreed to hear from us.
ROLE_LOCAL_PARTS = frozenset(
    {
        "postmaster", "abuse", "hostmaster", "webmaster", "mailer-daemon", "noc", "security", "root",
        "noreply", "no-reply", "donotreply", "do-not-reply", "bounce", "bounces", "list-request",
    }
)  # fmt: skip
_BLOCKED_REASONS = {
    MemberStatus.UNSUBSCRIBED: "unsubscribed earlier; an import never resubscribes an address",
    MemberStatus.BOUNCED: "mail to this address bounced; an import never resubscribes it",
    MemberStatus.COMPLAINED: "this person marked our mail as spam; an import never resubscribes them",
    MemberStatus.ERASED: "erased at the member's request; an import never brings it back",
}
_LOCALE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")
_TEXT_LIMITS = {"name": 200, "preferred_name": 200, "location": 200}
TERM_LIMIT = 100

Progress = Callable[[int, str], None]


def _no_progress(_done: int, _message: str) -> None:
    return None


class ImportProblem(ValueError):
    """The import cannot run as asked; the message says why in plain words."""


class Outcome(StrEnum):
    IMPORTED = "imported"
    UPDATED = "updated"
    SKIPPED = "skipped"


class RoleAddresses(StrEnum):
    SKIP = "skip"
    IMPORT = "import"


@dataclass(frozen=True)
class ImportOptions:
    list_id: int | None = None
    create_missing: bool = True  # unknown values, practices and tags: create them, or leave them out and report
    role_addresses: str = RoleAddresses.SKIP
    overwrite: bool = False  # replace names and details of existing members instead of only filling blanks
    separators: str = ";|"
    filename: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImportOptions:
        known = {key: data[key] for key in cls.__dataclass_fields__ if key in data}
        return cls(**known)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RowReport:
    row: int
    email: str
    outcome: Outcome
    reason: str = ""
    code: str = ""


@dataclass
class Candidate:
    """One address to write, merged from every row of the file that holds it."""

    email: str
    report: RowReport
    profile: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    terms: dict[str, dict[str, str]] = field(default_factory=lambda: {kind: {} for kind in TERM_FIELDS})
    notes: list[str] = field(default_factory=list)
    member_id: int | None = None
    changes: dict[str, Any] = field(default_factory=dict)
    new_links: dict[str, set[str]] = field(default_factory=dict)
    add_membership: bool = False


@dataclass
class ImportPlan:
    options: ImportOptions
    reports: list[RowReport]
    new: list[Candidate]
    updates: list[Candidate]
    term_ids: dict[str, dict[str, int]]
    missing_terms: dict[str, dict[str, str]]
    unknown_terms: dict[str, dict[str, str]]
    notes: list[str]
    list_name: str | None

    def summary(self) -> dict[str, Any]:
        outcomes = Counter(report.outcome.value for report in self.reports)
        reasons = Counter(report.code for report in self.reports if report.outcome is Outcome.SKIPPED)
        return {
            "rows": len(self.reports),
            "imported": outcomes.get(Outcome.IMPORTED, 0),
            "updated": outcomes.get(Outcome.UPDATED, 0),
            "skipped": outcomes.get(Outcome.SKIPPED, 0),
            "skipped_by_reason": dict(reasons.most_common()),
            "created_terms": {kind: sorted(names.values()) for kind, names in self.missing_terms.items() if names},
            "unknown_terms": {kind: sorted(names.values()) for kind, names in self.unknown_terms.items() if names},
            "list": self.list_name,
            "notes": self.notes,
        }


# --- mapping columns to fields ------------------------------------------------------------


def _header_key(text: str) -> str:
    return " ".join(re.sub(r"[_\-]+", " ", text.strip().lower()).split())


def guess_mapping(table: Table) -> dict[int, str]:
    """Column index -> field, from the header names; the email column by content if the header says nothing."""
    mapping: dict[int, str] = {}
    for index, title in enumerate(table.header if table.has_header else []):
        key = _header_key(title)
        for name, synonyms in _SYNONYMS.items():
            if key in synonyms and name not in mapping.values():
                mapping[index] = name
                break
    if "email" not in mapping.values():
        column = _email_column_by_content(table)
        if column is not None:
            mapping[column] = "email"
    return mapping


def _email_column_by_content(table: Table) -> int | None:
    sample = [row for row in table.rows[:50] if row]
    counts = Counter(index for row in sample for index, cell in enumerate(row) if looks_like_email(cell))
    return counts.most_common(1)[0][0] if counts else None


def validate_mapping(table: Table, mapping: dict[int, str]) -> dict[int, str]:
    """Check a mapping chosen in the form or on the command line; raise ImportProblem in plain words."""
    clean: dict[int, str] = {}
    for index, target in mapping.items():
        if not target:
            continue
        if not 0 <= index < len(table.header):
            raise ImportProblem(f"Column {index + 1} does not exist; the file has {len(table.header)} columns.")
        if target.startswith(ATTRIBUTE_PREFIX):
            key = target[len(ATTRIBUTE_PREFIX) :].strip()
            if not ATTRIBUTE_KEY.match(key):
                raise ImportProblem(
                    f"{key!r} cannot be an attribute name: use up to 64 letters, digits, spaces, '.', '-' or '_'."
                )
            target = ATTRIBUTE_PREFIX + key
        elif target not in FIELD_LABELS:
            raise ImportProblem(f"{target!r} is not a member field.")
        clean[index] = target
    targets = Counter(clean.values())
    if targets.get("email", 0) != 1:
        raise ImportProblem(_email_column_problem(table) if "email" not in targets else "Map only one email column.")
    for target, count in targets.items():
        if count > 1 and target not in TERM_FIELDS:
            raise ImportProblem(f"{FIELD_LABELS.get(target, target)} is mapped to {count} columns; choose one.")
    return clean


def _email_column_problem(table: Table) -> str:
    if len(table.header) == 1:
        first = table.header[0] if table.has_header else (table.rows[0][0] if table.rows and table.rows[0] else "")
        return (
            f"No column holds email addresses. The whole first line was read as one column ({first[:80]!r}): "
            "the file may use another separator than commas, semicolons, tabs or |, or the wrong one was chosen."
        )
    return "No column holds email addresses. Choose which column is the email address."


# --- reading rows ---------------------------------------------------------------------------


@cache
def timezone_names() -> dict[str, str]:
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def _split_terms(cell: str, separators: str) -> list[str]:
    parts = re.split("[" + re.escape(separators) + "]", cell) if separators else [cell]
    return [" ".join(part.split()) for part in parts if part.strip()]


def parse_locale(text: str) -> str | None:
    candidate = text.strip().replace("_", "-").lower()
    if not _LOCALE.match(candidate):
        return None
    language, *rest = candidate.split("-")
    return "-".join([language, *[part.upper() if len(part) == 2 else part for part in rest]])


def _parse_date(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip().replace("/", "-"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _read_profile(cells: dict[str, str], candidate: Candidate, now: datetime) -> None:
    profile, notes = candidate.profile, candidate.notes
    for name, limit in _TEXT_LIMITS.items():
        text = " ".join(cells.get(name, "").split())
        if len(text) > limit:
            notes.append(f"{FIELD_LABELS[name].lower()} cut to {limit} characters")
            text = text[:limit]
        if text:
            profile[name] = text
    full = " ".join(part for part in (cells.get("first_name", "").strip(), cells.get("last_name", "").strip()) if part)
    if full and "name" not in profile:
        profile["name"] = full[: _TEXT_LIMITS["name"]]
    if cells.get("locale", "").strip():
        locale = parse_locale(cells["locale"])
        if locale:
            profile["locale"] = locale
        else:
            notes.append(f"language {cells['locale'].strip()[:40]!r} not understood (use a code such as en or pt-BR)")
    if cells.get("timezone", "").strip():
        zone = timezone_names().get(cells["timezone"].strip().lower())
        if zone:
            profile["timezone"] = zone
        else:
            notes.append(f"time zone {cells['timezone'].strip()[:40]!r} not understood (use e.g. Europe/Lisbon)")
    if cells.get("joined_at", "").strip():
        joined = _parse_date(cells["joined_at"])
        if joined is None or joined > now + timedelta(days=1):
            notes.append(f"joined date {cells['joined_at'].strip()[:40]!r} not understood (use YYYY-MM-DD)")
        else:
            profile["joined_at"] = joined


def _read_row(
    cells: list[str], mapping: dict[int, str], options: ImportOptions, candidate: Candidate, now: datetime
) -> None:
    singles: dict[str, str] = {}
    for index, target in mapping.items():
        cell = cells[index] if index < len(cells) else ""
        if target in TERM_FIELDS:
            for name in _split_terms(cell, options.separators):
                if len(name) > TERM_LIMIT:
                    candidate.notes.append(f"a {target[:-1]} name longer than {TERM_LIMIT} characters left out")
                else:
                    candidate.terms[target].setdefault(name.lower(), name)
        elif target.startswith(ATTRIBUTE_PREFIX):
            if cell.strip():
                candidate.attributes.setdefault(target[len(ATTRIBUTE_PREFIX) :], cell.strip()[:1000])
        elif target != "email":
            singles[target] = cell
    _read_profile(singles, candidate, now)


def _merge_into(first: Candidate, other: Candidate) -> None:
    for key, value in other.profile.items():
        first.profile.setdefault(key, value)
    for key, value in other.attributes.items():
        first.attributes.setdefault(key, value)
    for kind in TERM_FIELDS:
        for lower, name in other.terms[kind].items():
            first.terms[kind].setdefault(lower, name)


def _row_reports(
    table: Table, mapping: dict[int, str], options: ImportOptions, progress: Progress, now: datetime
) -> tuple[list[RowReport], dict[str, Candidate]]:
    """Validate every row and merge duplicates; the database is not consulted yet."""
    email_column = next(index for index, target in mapping.items() if target == "email")
    width = len(table.header)
    reports: list[RowReport] = []
    candidates: dict[str, Candidate] = {}
    for offset, cells in enumerate(table.rows):
        if offset % 5000 == 0 and offset:
            progress(offset, f"Checked {offset:,} of {len(table.rows):,} rows")
        if not any(cell.strip() for cell in cells):
            continue
        number = table.first_row_number + offset
        raw = cells[email_column].strip() if email_column < len(cells) else ""
        report = RowReport(number, raw, Outcome.SKIPPED)
        reports.append(report)
        if len(cells) > width:
            report.code, report.reason = (
                "ragged",
                (
                    f"this row has {len(cells)} cells but the header has {width}; "
                    "a separator inside a cell needs quotes around the cell"
                ),
            )
            continue
        _check_address(report, raw, options, candidates, cells, mapping, now)
        if len(cells) < width and report.outcome is not Outcome.SKIPPED:
            candidates[report.email].notes.append(f"{width - len(cells)} missing cell(s) at the end read as empty")
    return reports, candidates


def _check_address(
    report: RowReport,
    raw: str,
    options: ImportOptions,
    candidates: dict[str, Candidate],
    cells: list[str],
    mapping: dict[int, str],
    now: datetime,
) -> None:
    if not raw:
        report.code, report.reason = "no_email", "no email address in this row"
        return
    try:
        email = normalise_email(raw[7:] if raw.lower().startswith("mailto:") else raw)
    except InvalidEmail as exc:
        report.code, report.reason = "invalid", f"not a valid email address: {exc}"
        return
    report.email = email
    candidate = Candidate(email, report)
    _read_row(cells, mapping, options, candidate, now)
    local = email.split("@", 1)[0].split("+", 1)[0]
    if local in ROLE_LOCAL_PARTS:
        if options.role_addresses != RoleAddresses.IMPORT:
            report.code, report.reason = "role", f"a shared role address ({local}@), not a person: not imported"
            return
        candidate.notes.append(f"a shared role address ({local}@)")
    first = candidates.get(email)
    if first is not None:
        _merge_into(first, candidate)
        report.code, report.reason = "duplicate", f"same address as row {first.report.row}; merged into that row"
        return
    report.outcome = Outcome.IMPORTED  # provisional until compared with the database
    candidates[email] = candidate


# --- comparing with the database -----------------------------------------------------------


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


_EXISTING_COLUMNS = (
    Member.id,
    Member.email,
    Member.status,
    Member.name,
    Member.preferred_name,
    Member.locale,
    Member.timezone,
    Member.location,
    Member.joined_at,
    Member.attributes,
)


def _existing_members(session: Session, emails: Sequence[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(emails, LOOKUP_CHUNK):
        for row in session.execute(select(*_EXISTING_COLUMNS).where(Member.email.in_(chunk))).mappings():
            found[row["email"]] = dict(row)
    return found


_LINK_TABLES: dict[str, tuple[SqlTable, str, type[Any]]] = {
    "values": (member_values, "value_id", Value),
    "practices": (member_practices, "practice_id", Practice),
    "tags": (member_tags, "tag_id", Tag),
}


def _existing_links(session: Session, member_ids: Sequence[int]) -> dict[str, set[tuple[int, int]]]:
    links: dict[str, set[tuple[int, int]]] = {kind: set() for kind in TERM_FIELDS}
    for kind, (table, column, _model) in _LINK_TABLES.items():
        for chunk in _chunks(member_ids, LOOKUP_CHUNK):
            statement = select(table.c.member_id, table.c[column]).where(table.c.member_id.in_(chunk))
            links[kind].update((member_id, term_id) for member_id, term_id in session.execute(statement))
    return links


def _memberships(session: Session, list_id: int | None, member_ids: Sequence[int]) -> dict[int, str]:
    if list_id is None:
        return {}
    found: dict[int, str] = {}
    for chunk in _chunks(member_ids, LOOKUP_CHUNK):
        statement = select(ListMembership.member_id, ListMembership.status).where(
            ListMembership.list_id == list_id, ListMembership.member_id.in_(chunk)
        )
        found.update(dict(session.execute(statement).all()))
    return found


def term_ids(session: Session) -> dict[str, dict[str, int]]:
    """Lower-cased name -> id for every value, practice and tag (small tables)."""
    return {
        kind: {name.lower(): id_ for id_, name in session.execute(select(model.id, model.name)).all()}
        for kind, (_table, _column, model) in _LINK_TABLES.items()
    }


def _resolve_terms(plan: ImportPlan, candidates: Iterable[Candidate]) -> None:
    for candidate in candidates:
        for kind in TERM_FIELDS:
            for lower, name in list(candidate.terms[kind].items()):
                if lower in plan.term_ids[kind]:
                    continue
                if plan.options.create_missing:
                    plan.missing_terms[kind].setdefault(lower, name)
                else:
                    plan.unknown_terms[kind].setdefault(lower, name)
                    candidate.notes.append(f"unknown {kind[:-1]} {name!r} left out")
                    del candidate.terms[kind][lower]


_FILLABLE_DEFAULTS = {"name": "", "preferred_name": "", "location": "", "locale": "en", "timezone": "UTC"}


def _profile_changes(candidate: Candidate, existing: dict[str, Any], overwrite: bool) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for key, value in candidate.profile.items():
        if key == "joined_at":
            if value < existing["joined_at"]:
                changes[key] = value
        elif existing[key] != value and (overwrite or existing[key] == _FILLABLE_DEFAULTS[key]):
            changes[key] = value
    attributes = dict(existing["attributes"] or {})
    for key, value in candidate.attributes.items():
        if key not in attributes or (overwrite and attributes[key] != value):
            attributes[key] = value
    if attributes != (existing["attributes"] or {}):
        changes["attributes"] = attributes
    return changes


def _compare_existing(
    plan: ImportPlan,
    candidate: Candidate,
    existing: dict[str, Any],
    links: dict[str, set[tuple[int, int]]],
    membership: str | None,
) -> None:
    report, member_id = candidate.report, existing["id"]
    candidate.member_id = member_id
    candidate.changes = _profile_changes(candidate, existing, plan.options.overwrite)
    done: list[str] = []
    for kind in TERM_FIELDS:
        new = {
            lower
            for lower in candidate.terms[kind]
            if lower not in plan.term_ids[kind] or (member_id, plan.term_ids[kind][lower]) not in links[kind]
        }
        if new:
            candidate.new_links[kind] = new
            done.append(f"{len(new)} {kind if len(new) > 1 else kind[:-1]} added")
    if plan.options.list_id is not None:
        if membership is None:
            candidate.add_membership = True
            done.insert(0, f"added to {plan.list_name}")
        elif membership == "unsubscribed":
            candidate.notes.append(f"left {plan.list_name} earlier: not added back")
    if candidate.changes:
        done.append(", ".join(sorted(key.replace("_", " ") for key in candidate.changes)) + " updated")
    if done:
        report.outcome, report.code = Outcome.UPDATED, "updated"
        report.reason = "already a member: " + "; ".join(done)
        plan.updates.append(candidate)
    else:
        report.outcome, report.code = Outcome.SKIPPED, "unchanged"
        report.reason = "already a member; nothing new in this row"


def _finish_reports(candidates: Iterable[Candidate]) -> None:
    for candidate in candidates:
        if candidate.notes:
            joined = "; ".join(dict.fromkeys(candidate.notes))
            report = candidate.report
            report.reason = f"{report.reason}; {joined}" if report.reason else joined


def find_list(session: Session, name_or_slug: str) -> MailingList | None:
    text = name_or_slug.strip()
    return session.scalar(
        select(MailingList).where((func.lower(MailingList.name) == text.lower()) | (MailingList.slug == text.lower()))
    )


def plan_import(
    session: Session,
    table: Table,
    mapping: dict[int, str],
    options: ImportOptions,
    progress: Progress = _no_progress,
) -> ImportPlan:
    """The dry run: what would happen to every row. Reads the database, never writes."""
    mapping = validate_mapping(table, mapping)
    list_name = None
    if options.list_id is not None:
        chosen = session.get(MailingList, options.list_id)
        if chosen is None:
            raise ImportProblem("The chosen list no longer exists; choose another list.")
        list_name = chosen.name
    now = utcnow()
    reports, candidates = _row_reports(table, mapping, options, progress, now)
    plan = ImportPlan(
        options, reports, [], [], term_ids(session), {k: {} for k in TERM_FIELDS}, {k: {} for k in TERM_FIELDS},
        list(table.notes), list_name,
    )  # fmt: skip
    progress(len(table.rows), "Comparing with the members already here")
    emails = list(candidates)
    suppressed = suppressed_hashes(session, (address_hash(email) for email in emails))
    existing = _existing_members(session, [email for email in emails if address_hash(email) not in suppressed])
    existing_ids = [row["id"] for row in existing.values()]
    links = _existing_links(session, existing_ids)
    memberships = _memberships(session, options.list_id, existing_ids)
    writable = [candidate for candidate in candidates.values() if _may_write(candidate, suppressed, existing)]
    _resolve_terms(plan, writable)
    for candidate in writable:
        found = existing.get(candidate.email)
        if found is not None:
            _compare_existing(plan, candidate, found, links, memberships.get(found["id"]))
        else:
            candidate.add_membership = options.list_id is not None
            candidate.report.code = "new"
            plan.new.append(candidate)
    _finish_reports(candidates.values())
    return plan


def _may_write(candidate: Candidate, suppressed: set[str], existing: dict[str, dict[str, Any]]) -> bool:
    """Suppression and the blocked statuses win over anything the file says."""
    report = candidate.report
    if address_hash(candidate.email) in suppressed:
        report.outcome, report.code = Outcome.SKIPPED, "suppressed"
        report.reason = "on the suppression list; an import never adds it back"
        return False
    status = existing[candidate.email]["status"] if candidate.email in existing else None
    if status in _BLOCKED_REASONS:
        report.outcome, report.code, report.reason = Outcome.SKIPPED, str(status), _BLOCKED_REASONS[status]
        return False
    return True


# --- writing --------------------------------------------------------------------------------


def _insert(session: Session, table: SqlTable) -> Any:
    return pg_insert(table) if is_postgres(session) else sqlite_insert(table)


def _bulk_insert(
    session: Session,
    table: SqlTable,
    rows: Sequence[dict[str, Any]],
    conflict: Sequence[str],
    returning: Sequence[str] = (),
) -> list[Any]:
    """INSERT ... ON CONFLICT DO NOTHING for many rows with the same keys.

    SQLite: executemany (its loop runs in C); nothing is returned. PostgreSQL: one statement
    per chunk that unnests one array per column, returning the `returning` columns of the
    rows it inserted; psycopg's executemany costs ~15 µs a row and a multi-row VALUES text
    costs more to build than to run.
    """
    if not rows:
        return []
    if not is_postgres(session):
        upsert = sqlite_insert(table).on_conflict_do_nothing(index_elements=list(conflict))
        for part in _chunks(rows, WRITE_CHUNK * 5):
            session.execute(upsert, list(part))
        return []
    columns = list(rows[0])
    dialect = session.get_bind().dialect
    casts = ", ".join(
        f"CAST(:c{n} AS {table.c[name].type.compile(dialect=dialect)}[])" for n, name in enumerate(columns)
    )
    # Table and column names come from our own metadata; every value is a bound array.
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({casts})"  # noqa: S608
    tail = f" RETURNING {', '.join(returning)}" if returning else ""
    statement = text(f"{sql} ON CONFLICT ({', '.join(conflict)}) DO NOTHING{tail}")
    encoders = [_pg_array_encoder(table.c[name]) for name in columns]
    inserted: list[Any] = []
    for part in _chunks(rows, WRITE_CHUNK * 10):
        params = {
            f"c{n}": [encode(row[name]) for row in part]
            for n, (name, encode) in enumerate(zip(columns, encoders, strict=True))
        }
        result = session.execute(statement, params)
        if returning:
            inserted.extend(result.all())
    return inserted


def _pg_array_encoder(column: Any) -> Callable[[Any], Any]:
    if isinstance(column.type, JSONType):
        return lambda value: json.dumps(value)
    if isinstance(column.type, String):
        return lambda value: None if value is None else str(value)
    return lambda value: value


@cache
def _member_column_defaults() -> dict[str, Any]:
    """Scalar defaults of the members table (status, streams, cadence...), so bulk rows match ORM rows."""
    return {
        column.name: cast(Any, column.default).arg
        for column in MEMBERS.columns
        if column.default is not None and column.default.is_scalar
    }


def _create_missing_terms(session: Session, plan: ImportPlan) -> None:
    for kind, names in plan.missing_terms.items():
        if not names:
            continue
        _table, _column, model = _LINK_TABLES[kind]
        statement = _insert(session, model.__table__).on_conflict_do_nothing(index_elements=["name"])
        session.execute(statement, [{"name": name} for name in names.values()])
    if any(plan.missing_terms.values()):
        plan.term_ids = term_ids(session)


def _insert_new_members(session: Session, plan: ImportPlan, progress: Progress, done: int) -> int:
    defaults, now = _member_column_defaults(), utcnow()
    table = MEMBERS
    for chunk in _chunks(plan.new, WRITE_CHUNK * 3):
        rows = []
        for candidate in chunk:
            row = {**defaults, "status": MemberStatus.ACTIVE.value, "attributes": candidate.attributes}
            row.update(candidate.profile)
            row.update(email=candidate.email, email_hash=address_hash(candidate.email), created_at=now, updated_at=now)
            row.setdefault("joined_at", now)
            rows.append(row)
        ids: dict[str, int] = {
            email: id_ for email, id_ in _bulk_insert(session, table, rows, ["email"], ("email", "id"))
        }
        # Not returned: SQLite, or a member a signup created meanwhile (linked to that member).
        missing = [candidate.email for candidate in chunk if candidate.email not in ids]
        for part in _chunks(missing, LOOKUP_CHUNK):
            ids.update(session.execute(select(Member.email, Member.id).where(Member.email.in_(part))).all())
        for candidate in chunk:
            candidate.member_id = ids[candidate.email]
        done += len(chunk)
        progress(done, f"Saved {done:,} members")
    return done


def _update_existing(session: Session, plan: ImportPlan) -> None:
    changed = [candidate for candidate in plan.updates if candidate.changes]
    groups: dict[tuple[str, ...], list[Candidate]] = {}
    for candidate in changed:
        groups.setdefault(tuple(sorted(candidate.changes)), []).append(candidate)
    now = utcnow()
    for columns, candidates in groups.items():
        statement = (
            update(MEMBERS)
            .where(MEMBERS.c.id == bindparam("b_id"))
            .values({**{column: bindparam(f"b_{column}") for column in columns}, "updated_at": now})
        )
        for chunk in _chunks(candidates, WRITE_CHUNK):
            rows = [{"b_id": c.member_id, **{f"b_{k}": c.changes[k] for k in columns}} for c in chunk]
            session.execute(statement, rows)


def _insert_links(session: Session, plan: ImportPlan) -> None:
    for kind, (table, column, _model) in _LINK_TABLES.items():
        ids = plan.term_ids[kind]
        rows = [
            {"member_id": candidate.member_id, column: ids[lower]}
            for candidate in plan.new
            for lower in candidate.terms[kind]
        ]
        rows += [
            {"member_id": candidate.member_id, column: ids[lower]}
            for candidate in plan.updates
            for lower in candidate.new_links.get(kind, ())
        ]
        _bulk_insert(session, table, rows, ["member_id", column])


def _insert_memberships(session: Session, plan: ImportPlan, actor: str, task_id: int | None) -> None:
    if plan.options.list_id is None:
        return
    now = utcnow()
    joining = [c for c in [*plan.new, *plan.updates] if c.add_membership]
    source = (f"import:{plan.options.filename}" if plan.options.filename else "import")[:50]
    memberships = [
        {"list_id": plan.options.list_id, "member_id": c.member_id, "status": "subscribed", "source": source,
         "created_at": now}
        for c in joining
    ]  # fmt: skip
    wording = f"Added by {actor or 'a coordinator'} from {plan.options.filename or 'a CSV file'}"
    consents = [
        {"member_id": c.member_id, "kind": "imported", "list_id": plan.options.list_id, "wording": wording,
         "detail": {"task_id": task_id} if task_id else {}, "created_at": now}
        for c in joining
    ]  # fmt: skip
    _bulk_insert(session, cast(SqlTable, ListMembership.__table__), memberships, ["list_id", "member_id"])
    _bulk_insert(session, cast(SqlTable, ConsentEvent.__table__), consents, ["id"])


def apply_plan(
    session: Session,
    plan: ImportPlan,
    actor: str = "",
    progress: Progress = _no_progress,
    task_id: int | None = None,
) -> dict[str, Any]:
    """Write the plan inside the caller's transaction; the caller commits once (or rolls back)."""
    done = len(plan.reports)
    _create_missing_terms(session, plan)
    done = _insert_new_members(session, plan, progress, done)
    _update_existing(session, plan)
    progress(done + len(plan.updates), "Saving values, practices, tags and lists")
    _insert_links(session, plan)
    _insert_memberships(session, plan, actor, task_id)
    summary = plan.summary()
    counts = {key: summary[key] for key in ("rows", "imported", "updated", "skipped")}
    audit(session, actor or "system", "members.import", plan.options.filename, list=plan.list_name, **counts)
    return summary


# --- reports, uploads and background tasks --------------------------------------------------

REPORT_HEADER = ("row", "email", "outcome", "reason")


def report_csv(plan: ImportPlan) -> str:
    """Formula-safe: the report repeats cells from the uploaded file."""
    return write_csv(REPORT_HEADER, ((r.row, r.email, r.outcome.value, r.reason) for r in plan.reports))


def store_upload(session: Session, filename: str, data: bytes, actor: str, delimiter: str | None = None) -> ImportFile:
    """Check an uploaded file (raises CsvProblem in plain words) and keep it for the mapping step."""
    table = read_table(data, delimiter)
    upload = ImportFile(
        filename=(filename or "members.csv")[:255],
        size=len(data),
        encoding=table.encoding,
        delimiter=table.delimiter,
        has_header=table.has_header,
        header=table.header,
        row_count=table.row_count,
        data=gzip.compress(data, compresslevel=5),
        created_by=actor,
    )
    session.add(upload)
    session.flush()
    return upload


def get_upload(session: Session, file_id: int) -> ImportFile:
    upload = session.get(ImportFile, file_id)
    if upload is None:
        raise ImportProblem("That uploaded file is no longer here (uploads are kept for 14 days); upload it again.")
    return upload


def load_table(upload: ImportFile, head_bytes: int | None = None) -> Table:
    """The stored file as a table; `head_bytes` reads only the start (for the mapping page's sample)."""
    data = gzip.decompress(upload.data)
    if head_bytes is not None and len(data) > head_bytes:
        data = data[: data.rfind(b"\n", 0, head_bytes) + 1 or head_bytes]
    return read_table(data, upload.delimiter)


def start_import_task(
    session: Session, upload: ImportFile, mapping: dict[int, str], options: ImportOptions, dry_run: bool, actor: str
) -> BackgroundTask:
    """Record the run the worker will do; the caller commits, then enqueues import_members_job(task.id)."""
    validate_mapping(load_table(upload, head_bytes=65536), mapping)
    task = BackgroundTask(
        kind=IMPORT_TASK_KIND,
        status=TaskStatus.QUEUED,
        total=upload.row_count * 2,
        message="Waiting for a worker to start the dry run" if dry_run else "Waiting for a worker to start the import",
        params={
            "file_id": upload.id,
            "mapping": {str(k): v for k, v in mapping.items()},
            "options": options.to_json(),
            "dry_run": dry_run,
        },
        created_by=actor,
    )
    session.add(task)
    session.flush()
    return task


def failure_reason(exc: BaseException) -> str:
    if isinstance(exc, ImportProblem | CsvProblem):
        return str(exc)
    if isinstance(exc, DBAPIError):
        first = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
        return f"the database refused the data ({first})."
    return f"an unexpected error ({type(exc).__name__}); the details are in the worker's log."


def outcome_message(summary: dict[str, Any], dry_run: bool) -> str:
    counts = f"{summary['imported']:,} new, {summary['updated']:,} updated, {summary['skipped']:,} skipped"
    if dry_run:
        return f"Dry run finished: {counts}. Nothing was saved yet."
    return f"Import finished: {counts}."


def run_import_task(session: Session, progress_session: Session, task_id: int) -> BackgroundTask:
    """Run a queued import or dry run. All or nothing: on any failure every write is rolled back
    and the task says so in plain words. Safe to run twice: a finished task is left alone."""
    task = session.get(BackgroundTask, task_id)
    if task is None or task.status in (TaskStatus.DONE, TaskStatus.FAILED):
        return task  # type: ignore[return-value]
    dry_run = bool(task.params.get("dry_run"))
    reporter = TaskProgress(progress_session, task_id, PROGRESS_INTERVAL)
    reporter.start("Reading the file")
    try:
        summary, report = _run(session, task, dry_run, reporter)
    except Exception as exc:
        session.rollback()
        log.exception("import task %s failed", task_id)
        reporter.fail("The import failed and nothing was saved: " + failure_reason(exc))
        session.expire_all()
        return session.get(BackgroundTask, task_id)  # type: ignore[return-value]
    return _finish(session, task, summary, report, dry_run)


def _run(session: Session, task: BackgroundTask, dry_run: bool, reporter: TaskProgress) -> tuple[dict[str, Any], str]:
    upload = get_upload(session, task.params["file_id"])
    table = load_table(upload)
    mapping = {int(k): v for k, v in task.params["mapping"].items()}
    options = ImportOptions.from_json(task.params.get("options", {}))
    plan = plan_import(session, table, mapping, options, reporter.update)
    if dry_run:
        return plan.summary(), report_csv(plan)
    # SQLite allows one writer: a progress commit from another connection would wait on this transaction.
    writing_progress = reporter.update if is_postgres(session) else _no_progress
    reporter.update(len(plan.reports), f"Saving {len(plan.new) + len(plan.updates):,} members")
    summary = apply_plan(session, plan, task.created_by, writing_progress, task.id)
    return summary, report_csv(plan)


def _finish(
    session: Session, task: BackgroundTask, summary: dict[str, Any], report: str, dry_run: bool
) -> BackgroundTask:
    session.refresh(task)
    session.merge(ImportReport(task_id=task.id, data=gzip.compress(report.encode("utf-8"), compresslevel=5)))
    task.status, task.done, task.finished_at = TaskStatus.DONE, task.total, utcnow()
    task.result = {**summary, "dry_run": dry_run}
    task.message = outcome_message(summary, dry_run)
    session.commit()
    return task


class TaskProgress:
    """Writes progress to the task row through its own session, committed at most twice a second,
    so the admin's progress bar moves while the import's own transaction is still open."""

    def __init__(self, session: Session, task_id: int, interval: float = 0.5):
        self.session, self.task_id, self.interval = session, task_id, interval
        self._last = 0.0

    def _write(self, **values: Any) -> None:
        self.session.execute(update(BackgroundTask).where(BackgroundTask.id == self.task_id).values(**values))
        self.session.commit()

    def start(self, message: str) -> None:
        self._write(status=TaskStatus.RUNNING, message=message, done=0)

    def update(self, done: int, message: str) -> None:
        now = datetime.now(UTC).timestamp()
        if now - self._last >= self.interval:
            self._last = now
            self._write(done=done, message=message)

    def fail(self, message: str) -> None:
        self._write(status=TaskStatus.FAILED, message=message[:1000], finished_at=utcnow())


def load_report(session: Session, task_id: int) -> str | None:
    stored = session.get(ImportReport, task_id)
    return gzip.decompress(stored.data).decode("utf-8") if stored else None


def purge_old_imports(session: Session, days: int = KEEP_IMPORT_FILES_DAYS) -> int:
    """Uploaded files and row reports hold personal data: keep them only as long as they are useful."""
    cutoff = utcnow() - timedelta(days=days)
    removed = 0
    for model in (ImportFile, ImportReport):
        result = cast(CursorResult[Any], session.execute(delete(model).where(model.created_at < cutoff)))
        removed += result.rowcount or 0
    return removed


def import_rows(
    session: Session,
    data: bytes,
    options: ImportOptions,
    *,
    mapping: dict[int, str] | None = None,
    delimiter: str | None = None,
    dry_run: bool = False,
    actor: str = "",
    progress: Progress = _no_progress,
) -> ImportPlan:
    """One call for the command line and tests: read, plan and (unless a dry run) write. The caller commits."""
    table = read_table(data, delimiter)
    plan = plan_import(session, table, mapping if mapping is not None else guess_mapping(table), options, progress)
    if not dry_run:
        apply_plan(session, plan, actor, progress)
    return plan


def add_one(session: Session, email: str, name: str, options: ImportOptions, actor: str = "") -> RowReport:
    """Add or update one member from the admin, under exactly the rules of a file import
    (suppression, blocked statuses, role addresses). The caller commits."""
    table = Table(["email", "name"], [[email, name]], "form", ",", True)
    plan = plan_import(session, table, {0: "email", 1: "name"}, options)
    if plan.new or plan.updates:
        apply_plan(session, plan, actor)
    return plan.reports[0] if plan.reports else RowReport(2, email, Outcome.SKIPPED, "no email address", "no_email")
