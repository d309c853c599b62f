"""CSV export of members and of segments: contents, chunking, and formula neutralisation."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select

from cop_mail.audience import exporter, importer, segments
from cop_mail.audience.csv_io import FORMULA_PREFIXES
from cop_mail.models import ListMembership, MailingList, Member, Practice, Tag, Value


def read(chunks) -> list[dict[str, str]]:
    text = "".join(chunks)
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))


def test_export_holds_profile_terms_lists_and_attributes(db):
    care, joy = Value(name="Care"), Value(name="Joy")
    newsletter, left = MailingList(name="Newsletter", slug="n"), MailingList(name="Left", slug="l")
    ana = Member(
        email="ana@example.org", name="Ana Conceição", location="Lisbon", values=[joy, care],
        practices=[Practice(name="Weaving")], tags=[Tag(name="founder")], attributes={"org": "Coop", "n": 2},
    )  # fmt: skip
    db.add_all([ana, newsletter, left, Member(email="ben@example.org")])
    db.flush()
    db.add_all([
        ListMembership(list_id=newsletter.id, member_id=ana.id, status="subscribed"),
        ListMembership(list_id=left.id, member_id=ana.id, status="unsubscribed"),
    ])  # fmt: skip
    db.commit()
    rows = read(exporter.export_csv(db))
    assert [row["email"] for row in rows] == ["ana@example.org", "ben@example.org"]
    first = rows[0]
    assert first["name"] == "Ana Conceição" and first["status"] == "active"
    assert first["values"] == "Care; Joy" and first["practices"] == "Weaving" and first["tags"] == "founder"
    assert first["lists"] == "Newsletter"  # not the list they left
    assert first["attributes"] == '{"n": 2, "org": "Coop"}'
    assert first["joined_at"][:4].isdigit() and first["last_engaged_at"] == ""


def test_every_cell_that_a_spreadsheet_would_run_is_neutralised(db):
    hostile = ["=1+1", "+351 999", "-cmd", "@SUM(A1)", "\tTab", "\rCR"]
    for n, text in enumerate(hostile):
        db.add(Member(email=f"m{n}@example.org", name=text, location=text, attributes={"x": text}))
    db.add(Member(email="tag@example.org", tags=[Tag(name='=HYPERLINK("http://evil")')]))
    db.commit()
    text = "".join(exporter.export_csv(db)).lstrip("\ufeff")
    for row in csv.reader(io.StringIO(text)):
        for cell in row:
            assert not cell.startswith(FORMULA_PREFIXES), row
    rows = read(exporter.export_csv(db))
    assert rows[0]["name"] == "'=1+1" and rows[-1]["tags"] == '\'=HYPERLINK("http://evil")'


def test_export_of_a_segment_in_several_chunks(db):
    rows = "".join(f"m{i}@example.org,{'Care' if i % 3 == 0 else 'Joy'}\n" for i in range(4500))
    importer.import_rows(db, ("email,values\n" + rows).encode(), importer.ImportOptions())
    db.commit()
    care = db.scalar(select(Value.id).where(Value.name == "Care"))
    condition = segments.compile_rules({"match": "all", "rules": [{"field": "value", "op": "any", "value": [care]}]})
    exported = read(exporter.export_csv(db, condition))
    assert len(exported) == 1500 > exporter.CHUNK // 2
    assert {row["values"] for row in exported} == {"Care"}
    assert len({row["email"] for row in exported}) == 1500
    assert len(read(exporter.export_csv(db))) == 4500 > exporter.CHUNK
