"""Reading the CSV files people really make, and writing CSV spreadsheets cannot execute."""

from __future__ import annotations

import csv
import io

import pytest

from cop_mail.audience.csv_io import (
    CsvProblem,
    check_size,
    csv_lines,
    decode,
    detect_delimiter,
    read_table,
    safe_cell,
    write_csv,
)

NAMES = "email,name\nana@example.org,Ana Conceição\nzoe@example.org,Zoë Müller\n"


def test_utf8_without_bom():
    table = read_table(NAMES.encode("utf-8"))
    assert table.encoding == "UTF-8"
    assert table.header == ["email", "name"]
    assert table.rows[0] == ["ana@example.org", "Ana Conceição"]


def test_utf8_with_bom_does_not_leak_into_the_first_header():
    table = read_table(b"\xef\xbb\xbf" + NAMES.encode("utf-8"))
    assert table.encoding == "UTF-8 with BOM"
    assert table.header[0] == "email"


def test_latin1_from_old_excel():
    table = read_table(NAMES.encode("latin-1"))
    assert "Latin-1" in table.encoding
    assert table.rows[1][1] == "Zoë Müller"


def test_windows_1252_punctuation_is_kept():
    table = read_table("email,name\nana@example.org,Ana “the builder” – 10 €\n".encode("cp1252"))
    assert table.rows[0][1] == "Ana “the builder” – 10 €"


def test_utf16_from_excel_unicode_text():
    table = read_table("email\tname\nana@example.org\tAna Conceição\n".encode("utf-16"))
    assert table.encoding == "UTF-16"
    assert table.delimiter == "\t"
    assert table.rows[0][1] == "Ana Conceição"


def test_decomposed_accents_are_joined():
    text, _ = decode("Jose\u0301".encode())
    table = read_table(f"email,name\nj@example.org,{text}\n".encode())
    assert table.rows[0][1] == "José"


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [
        ("email,name,values\na@example.org,A,Care|Joy\nb@example.org,B,Joy\n", ","),
        ("email;name;values\na@example.org;A;Care|Joy\nb@example.org;B;Joy\n", ";"),
        ("email\tname\tvalues\na@example.org\tA\tCare;Joy\nb@example.org\tB\tJoy\n", "\t"),
        ("email|name|values\na@example.org|A|Care;Joy\nb@example.org|B|Joy\n", "|"),
        ('email;name\n"a@example.org";"Ana, the builder"\n', ";"),
    ],
)
def test_delimiter_is_detected_even_with_list_separators_in_cells(text, delimiter):
    assert detect_delimiter(text)[0] == delimiter
    assert read_table(text.encode()).delimiter == delimiter


def test_a_single_column_file_is_read_as_one_column_with_a_note():
    table = read_table(b"email\na@example.org\nb@example.org\n")
    assert table.header == ["email"]
    assert any("one column" in note for note in table.notes)


def test_a_file_without_header_keeps_its_first_member():
    table = read_table(b"a@example.org,Ana\nb@example.org,Ben\n")
    assert not table.has_header
    assert table.header == ["Column 1", "Column 2"]
    assert table.rows[0] == ["a@example.org", "Ana"]
    assert table.first_row_number == 1


def test_blank_lines_keep_row_numbers_and_trailing_blanks_are_dropped():
    table = read_table(b"email\na@example.org\n\nb@example.org\n\n\n")
    assert table.rows == [["a@example.org"], [], ["b@example.org"]]
    assert table.row_count == 2


@pytest.mark.parametrize("data", [b"", b"   \n\r\n", b"\xef\xbb\xbf"])
def test_empty_file_is_refused_in_plain_words(data):
    with pytest.raises(CsvProblem, match="empty|no rows"):
        read_table(data)


def test_header_only_file_is_refused():
    with pytest.raises(CsvProblem, match="no member rows"):
        read_table(b"email,name\n")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"PK\x03\x04\x14\x00\x06\x00" + bytes(200), "spreadsheet or zip"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(200), "old Excel"),
        (b"%PDF-1.7\n" + bytes(range(256)), "PDF"),
        (bytes(range(256)) * 20, "binary"),
    ],
)
def test_binary_files_are_refused_with_what_to_do(data, words):
    with pytest.raises(CsvProblem) as caught:
        read_table(data)
    assert words in str(caught.value)
    assert "Save as" in str(caught.value)


def test_a_file_over_the_limit_is_refused_with_its_size():
    with pytest.raises(CsvProblem) as caught:
        check_size(50 * 1_048_576)
    assert "50.0 MB" in str(caught.value) and "25 MB" in str(caught.value)
    with pytest.raises(CsvProblem, match="limit"):
        read_table(b"email\n" + b"a@example.org\n" * 100, max_bytes=1000)


def test_a_runaway_quote_is_reported_not_swallowed():
    data = b'email,name\na@example.org,"never closed\n' + b"x" * 70_000 + b"\n"
    with pytest.raises(CsvProblem, match="Row 2"):
        read_table(data)


def test_wrong_explicit_separator_is_refused_when_unknown():
    with pytest.raises(CsvProblem, match="separator"):
        read_table(NAMES.encode(), delimiter=":")


@pytest.mark.parametrize("cell", ["=1+1", "+41 79 000", "-2", "@SUM(A1)", "\tx", "\rx", '=HYPERLINK("http://x")'])
def test_formula_like_cells_are_neutralised(cell):
    assert safe_cell(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["Ana", "a@example.org", "", "3", "x=1", None])
def test_ordinary_cells_are_left_alone(cell):
    assert safe_cell(cell) == ("" if cell is None else cell)


def test_written_csv_reads_back_with_formulas_neutralised():
    text = write_csv(["email", "name"], [["a@example.org", "=cmd|' /C calc'!A0"], ["b@example.org", "Ben, Jr."]])
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows == [["email", "name"], ["a@example.org", "'=cmd|' /C calc'!A0"], ["b@example.org", "Ben, Jr."]]


def test_streaming_writer_yields_chunks_that_join_to_the_same_text():
    rows = [[f"m{i}@example.org", "x" * 50] for i in range(3000)]
    chunks = list(csv_lines(["email", "name"], rows))
    assert len(chunks) > 1
    assert "".join(chunks) == write_csv(["email", "name"], rows)
