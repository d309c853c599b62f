"""Reading member CSV files as people really produce them, and writing CSV that a
spreadsheet cannot turn into formulas.

Files come from spreadsheets, other mail tools and hand edits: UTF-8 with or without
a byte-order mark, Windows-1252/Latin-1 from older Excel, UTF-16 from Excel's
"Unicode text", separated by commas, semicolons (European Excel), tabs or pipes.
Every refusal says in plain words what is wrong and what to do.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

MAX_IMPORT_BYTES = 25 * 1024 * 1024
DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "vertical bars (|)"}
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
MAX_CELL_CHARS = 64 * 1024
_SNIFF_CHARS = 16 * 1024
_EMAIL_LIKE = re.compile(r"^(mailto:)?[^@\s,;:|]+@[^@\s,;:|]+\.[^@\s,;:|]+$", re.IGNORECASE)

_SIGNATURES = (
    (b"PK\x03\x04", "a spreadsheet or zip file (.xlsx, .ods or .zip)"),
    (b"\xd0\xcf\x11\xe0", "an old Excel spreadsheet (.xls)"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"\x89PNG", "an image"),
    (b"\xff\xd8\xff", "an image"),
)
_SAVE_AS_CSV = "In your spreadsheet program choose File, Save as, and pick CSV; then upload that file."


class CsvProblem(ValueError):
    """The file cannot be read as a member list; the message tells the coordinator why."""


@dataclass(frozen=True)
class Table:
    """A decoded CSV: the header and every record, blank records kept so row numbers match a spreadsheet."""

    header: list[str]
    rows: list[list[str]]
    encoding: str
    delimiter: str
    has_header: bool
    notes: list[str] = field(default_factory=list)

    @property
    def first_row_number(self) -> int:
        return 2 if self.has_header else 1

    @property
    def row_count(self) -> int:
        return sum(1 for row in self.rows if any(cell.strip() for cell in row))


def check_size(size: int, limit: int = MAX_IMPORT_BYTES) -> None:
    if size > limit:
        raise CsvProblem(
            f"The file is {size / 1_048_576:.1f} MB; the limit is {limit / 1_048_576:.0f} MB. "
            "Split it into smaller files (each with the header line) and import them one after another."
        )


def describe_binary(data: bytes) -> str | None:
    """What a non-text file probably is, or None when it looks like text."""
    for signature, description in _SIGNATURES:
        if data.startswith(signature):
            return description
    head = data[:8192]
    if b"\x00" in head:
        return "a binary file"
    controls = sum(1 for byte in head if byte < 32 and byte not in (9, 10, 12, 13))
    return "a binary file" if head and controls / len(head) > 0.05 else None


def decode(data: bytes) -> tuple[str, str]:
    """Return (text, encoding label): UTF-8 (with or without BOM), UTF-16 with BOM, else Windows-1252/Latin-1."""
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "UTF-8 with BOM"
        except UnicodeDecodeError:
            pass
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "UTF-16"
        except UnicodeDecodeError as exc:
            raise CsvProblem("The file says it is UTF-16 text but is not. " + _SAVE_AS_CSV) from exc
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "Windows-1252 (Latin-1)"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "Latin-1 (ISO-8859-1)"


def _sample(text: str) -> str:
    if len(text) <= _SNIFF_CHARS:
        return text
    cut = text.rfind("\n", 0, _SNIFF_CHARS)
    return text[: cut if cut > 0 else _SNIFF_CHARS]


def _column_counts(sample: str, delimiter: str) -> list[int]:
    reader = csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter, quotechar='"', strict=False)
    try:
        return [len(row) for row in reader if row]
    except csv.Error:
        return []


def _consistency(sample: str, delimiter: str) -> float:
    """Share of records with as many columns as the first; 0 when the first has only one."""
    counts = _column_counts(sample, delimiter)
    if not counts or counts[0] < 2:
        return 0.0
    return sum(1 for count in counts if count == counts[0]) / len(counts)


def detect_delimiter(text: str) -> tuple[str, str | None]:
    """csv.Sniffer first, checked against column counts; then the most consistent candidate; then commas."""
    sample = _sample(text)
    try:
        sniffed: str | None = csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        sniffed = None
    if sniffed in DELIMITERS and _consistency(sample, sniffed) >= 0.9:
        return sniffed, None
    scores = {candidate: _consistency(sample, candidate) for candidate in DELIMITERS}
    best = max(DELIMITERS, key=lambda candidate: scores[candidate])
    if scores[best] > 0:
        return best, f"The column separator was worked out from the column counts: {DELIMITER_NAMES[best]}."
    return ",", "Only one column was found (no commas, semicolons, tabs or | between columns)."


def looks_like_email(cell: str) -> bool:
    return bool(_EMAIL_LIKE.match(cell.strip()))


def _parse(text: str, delimiter: str) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', strict=False)
    rows: list[list[str]] = []
    try:
        for row in reader:
            rows.append(row)
    except csv.Error as exc:
        if "field larger" in str(exc):
            raise CsvProblem(
                f"Row {len(rows) + 1} has a cell longer than {MAX_CELL_CHARS // 1024} KB; "
                "this is probably not a member list, or a quote mark is never closed."
            ) from exc
        raise CsvProblem(f"Row {len(rows) + 1} cannot be read as CSV ({exc}).") from exc
    while rows and not any(cell.strip() for cell in rows[-1]):
        rows.pop()
    return rows


def read_table(data: bytes, delimiter: str | None = None, max_bytes: int = MAX_IMPORT_BYTES) -> Table:
    """Check, decode and parse an uploaded member file, or raise CsvProblem in plain words."""
    check_size(len(data), max_bytes)
    if not data.strip():
        raise CsvProblem("The file is empty. Export the members again, with a header line and one member per row.")
    binary = describe_binary(data) if not data.startswith((b"\xff\xfe", b"\xfe\xff")) else None
    if binary:
        raise CsvProblem(f"This is {binary}, not a CSV text file. {_SAVE_AS_CSV}")
    text, encoding = decode(data)
    text = unicodedata.normalize("NFC", text)
    if "\x00" in text:
        raise CsvProblem(f"This is a binary file, not a CSV text file. {_SAVE_AS_CSV}")
    notes: list[str] = []
    if delimiter is None:
        delimiter, note = detect_delimiter(text)
        if note:
            notes.append(note)
    elif delimiter not in DELIMITERS:
        raise CsvProblem("The separator must be a comma, a semicolon, a tab or a vertical bar (|).")
    previous_limit = csv.field_size_limit(MAX_CELL_CHARS)
    try:
        rows = _parse(text, delimiter)
    finally:
        csv.field_size_limit(previous_limit)
    while rows and not any(cell.strip() for cell in rows[0]):
        rows.pop(0)
    if not rows:
        raise CsvProblem("The file has no rows with anything in them.")
    has_header = not any(looks_like_email(cell) for cell in rows[0])
    width = max(len(rows[0]), 1)
    header = [cell.strip() or f"Column {n + 1}" for n, cell in enumerate(rows[0])] if has_header else []
    if not has_header:
        header = [f"Column {n + 1}" for n in range(width)]
        notes.append("The first row holds an email address, so it is read as a member, not as a header.")
    table = Table(header, rows[1:] if has_header else rows, encoding, delimiter, has_header, notes)
    if table.row_count == 0:
        raise CsvProblem("The file has a header line but no member rows below it.")
    return table


def safe_cell(value: object) -> str:
    """A cell a spreadsheet shows as text: formula-like starts are prefixed with an apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[object]], bom: bool = True) -> Iterator[str]:
    """Formula-safe CSV in chunks of about 64 KB, for streaming responses and files.

    The UTF-8 byte-order mark makes Excel read accented names correctly.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if bom:
        buffer.write("\ufeff")
    writer.writerow([safe_cell(cell) for cell in header])
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
        if buffer.tell() > 65536:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def write_csv(header: Sequence[str], rows: Iterable[Sequence[object]], bom: bool = True) -> str:
    return "".join(csv_lines(header, rows, bom))
