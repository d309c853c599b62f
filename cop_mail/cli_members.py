"""`cop-mail members import|export`: the same import rules as the admin, run in this process."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from sqlalchemy import ColumnElement, and_
from sqlalchemy.orm import Session

from cop_mail.cli_support import load_settings, plain_errors


@contextmanager
def _sessions() -> Iterator[Session]:
    """One session for the command; the engine is closed with it (no pooled connection outlives it)."""
    from cop_mail.db import make_engine, make_session_factory

    engine = make_engine(load_settings().database_url)
    try:
        with make_session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


SEPARATOR_NAMES = {"comma": ",", "semicolon": ";", "tab": "\t", "bar": "|"}


@click.group("members")
def members_group() -> None:
    """Members: import and export CSV files."""


def _apply_mapping_options(header: list[str], guessed: dict[int, str], mappings: tuple[str, ...]) -> dict[int, str]:
    """--map 'COLUMN=FIELD': COLUMN is a header name or a 1-based number; FIELD 'ignore' drops it."""
    from cop_mail.audience.importer import ATTRIBUTE_PREFIX, TERM_FIELDS

    mapping = dict(guessed)
    for item in mappings:
        column, _, target = item.partition("=")
        lowered = [title.strip().lower() for title in header]
        if column.strip().isdecimal():
            index = int(column) - 1
        elif column.strip().lower() in lowered:
            index = lowered.index(column.strip().lower())
        else:
            raise click.BadParameter(
                f"no column called {column!r}; the columns are: {', '.join(header)}", param_hint="--map"
            )
        target = target.strip()
        if target in ("", "ignore"):
            mapping.pop(index, None)
            continue
        if target not in TERM_FIELDS and not target.startswith(ATTRIBUTE_PREFIX):
            mapping = {key: value for key, value in mapping.items() if value != target}  # one column per field
        mapping[index] = target
    return mapping


def _echo_plan(plan: Any, dry_run: bool, shown: int = 10) -> None:
    from cop_mail.audience.importer import Outcome, outcome_message

    summary = plan.summary()
    for note in summary["notes"]:
        click.echo(f"Note: {note}")
    click.echo(outcome_message(summary, dry_run))
    for code, count in summary["skipped_by_reason"].items():
        click.echo(f"  skipped, {code.replace('_', ' ')}: {count:,}")
    for kind, names in summary["created_terms"].items():
        click.echo(f"  new {kind}{' (to create)' if dry_run else ''}: {', '.join(names[:20])}")
    for kind, names in summary["unknown_terms"].items():
        click.echo(f"  unknown {kind} left out: {', '.join(names[:20])}")
    problems = [report for report in plan.reports if report.outcome is Outcome.SKIPPED][:shown]
    for report in problems:
        click.echo(f"  row {report.row}: {report.email or '(empty)'}: {report.reason}")


@members_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--list", "list_name", help="Add everyone imported to this list (its name or web address name).")
@click.option("--dry-run", is_flag=True, help="Check every row and say what would happen; save nothing.")
@click.option(
    "--map",
    "mappings",
    multiple=True,
    metavar="COLUMN=FIELD",
    help="Map a column (header name or number) to a field: email, name, first_name, last_name, "
    "preferred_name, locale, timezone, location, joined_at, values, practices, tags, "
    "attribute:<name>, or ignore. Repeatable; other columns are guessed from the header.",
)
@click.option(
    "--missing",
    type=click.Choice(["create", "report"]),
    default="create",
    show_default=True,
    help="Values, practices and tags not known yet: create them, or leave them out and report them.",
)
@click.option(
    "--role-addresses",
    type=click.Choice(["skip", "import"]),
    default="skip",
    show_default=True,
    help="Shared addresses such as postmaster@ or abuse@.",
)
@click.option("--overwrite", is_flag=True, help="Replace names and details of existing members, not only blanks.")
@click.option(
    "--delimiter",
    type=click.Choice(list(SEPARATOR_NAMES)),
    help="Column separator (default: worked out from the file).",
)
@click.option("--separators", default=";|", show_default=True, help="Characters between items in list cells.")
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the per-row report (row, email, outcome, reason) to this CSV file.",
)
@click.option("--max-size-mb", default=25, show_default=True, help="Refuse larger files.")
@plain_errors
def import_members(
    file: Path,
    list_name: str | None,
    dry_run: bool,
    mappings: tuple[str, ...],
    missing: str,
    role_addresses: str,
    overwrite: bool,
    delimiter: str | None,
    separators: str,
    report_path: Path | None,
    max_size_mb: int,
) -> None:
    """Import members from a CSV FILE: all rows are saved, or none."""
    from cop_mail.audience import importer
    from cop_mail.audience.csv_io import DELIMITER_NAMES, CsvProblem, check_size, read_table

    limit = max_size_mb * 1_048_576
    with _sessions() as session:
        try:
            check_size(file.stat().st_size, limit)
            table = read_table(file.read_bytes(), SEPARATOR_NAMES.get(delimiter or ""), limit)
            chosen = importer.find_list(session, list_name) if list_name else None
            if list_name and chosen is None:
                raise importer.ImportProblem(f"There is no list called {list_name!r}. {_known_lists(session)}")
            options = importer.ImportOptions(
                list_id=chosen.id if chosen else None,
                create_missing=missing == "create",
                role_addresses=role_addresses,
                overwrite=overwrite,
                separators=separators,
                filename=file.name,
            )
            mapping = _apply_mapping_options(table.header, importer.guess_mapping(table), mappings)
            click.echo(
                f"Read {file.name}: {table.encoding}, columns separated by {DELIMITER_NAMES[table.delimiter]}, "
                f"{table.row_count:,} rows."
            )
            click.echo("Columns: " + ", ".join(f"{table.header[i]} -> {field}" for i, field in sorted(mapping.items())))
            plan = importer.plan_import(session, table, mapping, options, _progress)
            if not dry_run:
                importer.apply_plan(session, plan, "cli", _progress)
                session.commit()
        except (CsvProblem, importer.ImportProblem) as exc:
            session.rollback()
            click.echo(f"Error: nothing was imported: {exc}", err=True)
            sys.exit(1)
        except Exception as exc:
            session.rollback()
            click.echo(f"Error: the import failed and nothing was saved: {importer.failure_reason(exc)}", err=True)
            sys.exit(1)
    _echo_plan(plan, dry_run)
    if report_path is not None:
        report_path.write_text(importer.report_csv(plan), encoding="utf-8")
        click.echo(f"Per-row report written to {report_path}.")


def _progress(done: int, message: str) -> None:
    click.echo(message, err=True)


def _known_lists(session: Session) -> str:
    from sqlalchemy import select

    from cop_mail.models import MailingList

    names = session.scalars(select(MailingList.name).order_by(MailingList.name)).all()
    return f"The lists are: {', '.join(names)}." if names else "There are no lists yet; create one in the admin."


@members_group.command("export")
@click.option("--list", "list_name", help="Only members subscribed to this list.")
@click.option("--segment", "segment_name", help="Only members of this saved segment.")
@click.option("--status", help="Only members with this status (active, pending, unsubscribed, ...).")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="File to write (default: stdout)."
)
@plain_errors
def export_members(list_name: str | None, segment_name: str | None, status: str | None, output: Path | None) -> None:
    """Export members as formula-safe CSV."""
    from cop_mail.accounts import audit
    from cop_mail.audience import exporter, importer, segments
    from cop_mail.audience.suppression import on_lists_clause
    from cop_mail.models import Member

    with _sessions() as session:
        parts: list[ColumnElement[bool]] = []
        if list_name:
            chosen = importer.find_list(session, list_name)
            if chosen is None:
                raise click.BadParameter(f"no list called {list_name!r}. {_known_lists(session)}", param_hint="--list")
            parts.append(on_lists_clause([chosen.id]))
        if segment_name:
            segment = segments.find_segment_by_name(session, segment_name)
            if segment is None:
                raise click.BadParameter(f"no segment called {segment_name!r}", param_hint="--segment")
            parts.append(segments.compile_rules(segment.rules))
        if status:
            parts.append(Member.status == status)
        chunks = exporter.export_csv(session, and_(*parts) if parts else None)
        count = _write(chunks, output)
        audit(session, "cli", "members.export", list_name or segment_name or "all members", rows=count)
        session.commit()
    click.echo(f"Exported {count:,} members.", err=True)


def _write(chunks: Any, output: Path | None) -> int:
    """Write the CSV and return how many member rows it holds."""
    lines = 0
    handle = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    try:
        for chunk in chunks:
            handle.write(chunk)
            lines += chunk.count("\r\n")
    finally:
        if output:
            handle.close()
    return max(lines - 1, 0)
