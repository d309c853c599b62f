"""Member CSV import against real PostgreSQL and SQLite: rules, bad input, all-or-nothing."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import func, select, text

from cop_mail.audience import importer
from cop_mail.audience.csv_io import CsvProblem
from cop_mail.models import (
    AuditEvent,
    ConsentEvent,
    ListMembership,
    MailingList,
    Member,
    Practice,
    Suppression,
    Tag,
    Value,
)
from cop_mail.tokens import address_hash


def make_list(db, name="Newsletter"):
    item = MailingList(name=name, slug=name.lower().replace(" ", "-"))
    db.add(item)
    db.commit()
    return item


def make_member(db, email, **fields):
    member = Member(email=email, **fields)
    db.add(member)
    db.commit()
    return member


def run(db, data: str | bytes, **options):
    dry_run = options.pop("dry_run", False)
    mapping = options.pop("mapping", None)
    delimiter = options.pop("delimiter", None)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    plan = importer.import_rows(
        db, raw, importer.ImportOptions(**options), mapping=mapping, delimiter=delimiter, dry_run=dry_run, actor="t"
    )
    db.commit()
    return plan


def outcomes(plan):
    return [(r.row, r.email, r.outcome.value, r.code) for r in plan.reports]


def count(db, model):
    return db.scalar(select(func.count()).select_from(model))


def test_import_creates_members_with_terms_lists_and_consent(db):
    newsletter = make_list(db)
    plan = run(
        db,
        "Email,Name,Values,Practices,Tags,Location,Language\n"
        "ana@example.org,Ana Conceição,Care|Reciprocity,Facilitation,founder,Lisbon,pt_br\n"
        "ben@example.org,Ben,Care;Joy,,,,\n",
        list_id=newsletter.id,
        filename="members.csv",
    )
    assert outcomes(plan) == [(2, "ana@example.org", "imported", "new"), (3, "ben@example.org", "imported", "new")]
    ana = db.scalar(select(Member).where(Member.email == "ana@example.org"))
    assert ana.name == "Ana Conceição" and ana.location == "Lisbon" and ana.locale == "pt-BR"
    assert ana.status == "active" and ana.email_hash == address_hash("ana@example.org")
    assert sorted(v.name for v in ana.values) == ["Care", "Reciprocity"]
    assert [p.name for p in ana.practices] == ["Facilitation"] and [t.name for t in ana.tags] == ["founder"]
    assert count(db, Value) == 3  # Care is created once, whatever the separator
    memberships = db.scalars(select(ListMembership)).all()
    assert {(m.list_id, m.status) for m in memberships} == {(newsletter.id, "subscribed")}
    consents = db.scalars(select(ConsentEvent)).all()
    assert len(consents) == 2 and {c.kind for c in consents} == {"imported"}
    assert "members.csv" in consents[0].wording
    audit = db.scalar(select(AuditEvent).where(AuditEvent.action == "members.import"))
    assert audit.detail["imported"] == 2


def test_case_and_internationalised_domains_are_normalised_and_duplicates_merged(db):
    plan = run(
        db,
        "email,name,values\n"
        "Ana@Example.ORG,Ana,Care\n"
        "ana@example.org,,Joy\n"
        "zoe@MÜNCHEN.de,Zoë,\n"
        "zoe@xn--mnchen-3ya.de,,Care\n",
    )
    assert outcomes(plan) == [
        (2, "ana@example.org", "imported", "new"),
        (3, "ana@example.org", "skipped", "duplicate"),
        (4, "zoe@münchen.de", "imported", "new"),
        (5, "zoe@münchen.de", "skipped", "duplicate"),
    ]
    assert "same address as row 2" in plan.reports[1].reason
    assert count(db, Member) == 2
    ana = db.scalar(select(Member).where(Member.email == "ana@example.org"))
    assert sorted(v.name for v in ana.values) == ["Care", "Joy"]


def test_existing_members_are_updated_never_duplicated(db):
    newsletter = make_list(db)
    make_member(db, "ana@example.org", name="Ana Original", attributes={"role": "host"})
    make_member(db, "ben@example.org", name="")
    data = "email,name,role,values\nana@example.org,Ana New,guest,Care\nben@example.org,Ben,,\n"
    mapping = {0: "email", 1: "name", 2: "attribute:role", 3: "values"}
    plan = run(db, data, list_id=newsletter.id, mapping=mapping)
    assert [r.outcome.value for r in plan.reports] == ["updated", "updated"]
    assert "added to Newsletter" in plan.reports[0].reason
    db.expire_all()
    ana = db.scalar(select(Member).where(Member.email == "ana@example.org"))
    ben = db.scalar(select(Member).where(Member.email == "ben@example.org"))
    assert ana.name == "Ana Original" and ana.attributes == {"role": "host"}  # blanks only, by default
    assert ben.name == "Ben"
    assert [v.name for v in ana.values] == ["Care"]
    assert count(db, Member) == 2 and count(db, ListMembership) == 2

    again = run(db, data, list_id=newsletter.id, mapping=mapping)
    assert [(r.outcome.value, r.code) for r in again.reports] == [("skipped", "unchanged")] * 2

    overwrite = run(db, data, list_id=newsletter.id, mapping=mapping, overwrite=True)
    assert overwrite.reports[0].outcome.value == "updated"
    db.expire_all()
    ana = db.scalar(select(Member).where(Member.email == "ana@example.org"))
    assert ana.name == "Ana New" and ana.attributes == {"role": "guest"}


@pytest.mark.parametrize("status", ["unsubscribed", "bounced", "complained", "erased"])
def test_an_import_never_resubscribes(db, status):
    newsletter = make_list(db)
    member = make_member(db, "gone@example.org", status=status, name="")
    plan = run(db, "email,name,tags\ngone@example.org,Gone,x\n", list_id=newsletter.id)
    report = plan.reports[0]
    assert (report.outcome.value, report.code) == ("skipped", status)
    assert "never" in report.reason
    db.expire_all()
    assert db.get(Member, member.id).status == status and db.get(Member, member.id).name == ""
    assert count(db, ListMembership) == 0 and count(db, Tag) == 0


def test_a_suppressed_address_is_never_created(db):
    newsletter = make_list(db)
    db.add(Suppression(email_hash=address_hash("erased@example.org"), reason="erased"))
    db.commit()
    plan = run(db, "email\nErased@Example.org\nkept@example.org\n", list_id=newsletter.id)
    assert outcomes(plan) == [
        (2, "erased@example.org", "skipped", "suppressed"),
        (3, "kept@example.org", "imported", "new"),
    ]
    assert db.scalars(select(Member.email)).all() == ["kept@example.org"]


def test_nobody_is_added_back_to_a_list_they_left(db):
    newsletter = make_list(db)
    member = make_member(db, "left@example.org", name="")
    db.add(ListMembership(list_id=newsletter.id, member_id=member.id, status="unsubscribed"))
    db.commit()
    plan = run(db, "email,name\nleft@example.org,Lee\n", list_id=newsletter.id)
    assert plan.reports[0].outcome.value == "updated"  # the name was blank
    assert "left Newsletter earlier: not added back" in plan.reports[0].reason
    assert db.scalars(select(ListMembership.status)).all() == ["unsubscribed"]


def test_role_addresses_are_skipped_or_flagged(db):
    data = "email\npostmaster@example.org\nabuse+lists@example.org\nana@example.org\n"
    plan = run(db, data)
    assert [r.code for r in plan.reports] == ["role", "role", "new"]
    assert "postmaster@" in plan.reports[0].reason
    flagged = run(db, data, role_addresses="import")
    assert [r.outcome.value for r in flagged.reports] == ["imported", "imported", "skipped"]
    assert "shared role address" in flagged.reports[0].reason


def test_invalid_and_missing_addresses_are_reported_per_row(db):
    plan = run(db, "email,name\nnot-an-address,X\n,Nobody\nsome@thing,Y\nok@example.org,Ok\n")
    assert [(r.row, r.code) for r in plan.reports] == [(2, "invalid"), (3, "no_email"), (4, "invalid"), (5, "new")]
    assert plan.reports[0].reason.startswith("not a valid email address: ")
    assert count(db, Member) == 1


def test_ragged_rows_have_defined_outcomes(db):
    plan = run(db, "email,name,location\na@example.org,Ana\nb@example.org,Ben,Porto,extra\nc@example.org,Cy,Quito\n")
    assert [(r.row, r.outcome.value, r.code) for r in plan.reports] == [
        (2, "imported", "new"),
        (3, "skipped", "ragged"),
        (4, "imported", "new"),
    ]
    assert "1 missing cell(s) at the end read as empty" in plan.reports[0].reason
    assert "4 cells but the header has 3" in plan.reports[1].reason


def test_a_wrong_delimiter_is_explained(db):
    with pytest.raises(importer.ImportProblem, match="read as one column"):
        run(db, "email;name\na@example.org;Ana\n", delimiter=",")
    with pytest.raises(importer.ImportProblem, match="No column holds email addresses"):
        run(db, "email:name\na@example.org:Ana\n")
    assert count(db, Member) == 0


def test_bad_files_are_refused_before_anything_is_written(db):
    for data, words in [(b"", "empty"), (b"PK\x03\x04" + bytes(100), "spreadsheet"), (b"email\n", "no member rows")]:
        with pytest.raises(CsvProblem, match=words):
            run(db, data)
    assert count(db, Member) == 0


def test_formula_cells_are_stored_as_text_and_neutralised_in_the_report(db):
    plan = run(db, 'email,name\n"=HYPERLINK(""http://evil"")",x\nana@example.org,=1+2\n')
    report = list(csv.reader(io.StringIO(importer.report_csv(plan).lstrip("\ufeff"))))
    assert report[1][1].startswith("'=HYPERLINK")
    assert db.scalar(select(Member.name)) == "=1+2"  # data, shown escaped; exports neutralise it


def test_unknown_terms_can_be_reported_instead_of_created(db):
    db.add(Value(name="Care"))
    db.commit()
    plan = run(db, "email,values,practices\na@example.org,care|Courage,Weaving\n", create_missing=False)
    assert plan.summary()["unknown_terms"] == {"values": ["Courage"], "practices": ["Weaving"]}
    assert "unknown value 'Courage' left out" in plan.reports[0].reason
    assert count(db, Value) == 1 and count(db, Practice) == 0
    member = db.scalar(select(Member))
    assert [v.name for v in member.values] == ["Care"]  # matched regardless of case


def test_a_dry_run_writes_nothing(db):
    newsletter = make_list(db)
    plan = run(db, "email,values\na@example.org,Care\nb@example.org,Joy\n", list_id=newsletter.id, dry_run=True)
    summary = plan.summary()
    assert (summary["imported"], summary["created_terms"]) == (2, {"values": ["Care", "Joy"]})
    assert count(db, Member) == 0 and count(db, Value) == 0 and count(db, ListMembership) == 0


@pytest.fixture
def failing_tag(db):
    """A real database trigger that refuses one tag: a failure in the middle of the writes."""
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text(
            "CREATE FUNCTION refuse_tag() RETURNS trigger AS $$ BEGIN "
            "IF (SELECT name FROM tags WHERE id = NEW.tag_id) = 'explode' THEN "
            "RAISE EXCEPTION 'refused by the test trigger'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
        ))  # fmt: skip
        db.execute(
            text("CREATE TRIGGER refuse_tag BEFORE INSERT ON member_tags FOR EACH ROW EXECUTE FUNCTION refuse_tag()")
        )
        drops = ["DROP TRIGGER refuse_tag ON member_tags", "DROP FUNCTION refuse_tag()"]
    else:
        db.execute(text(
            "CREATE TRIGGER refuse_tag BEFORE INSERT ON member_tags "
            "WHEN NEW.tag_id = (SELECT id FROM tags WHERE name = 'explode') "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END"
        ))  # fmt: skip
        drops = ["DROP TRIGGER refuse_tag"]
    db.commit()
    yield
    db.rollback()
    for statement in drops:
        db.execute(text(statement))
    db.commit()


def test_a_failure_while_writing_leaves_nothing_behind(db, failing_tag):
    newsletter = make_list(db)
    rows = "".join(f"m{i}@example.org,Care,{'explode' if i == 4500 else 'ok'}\n" for i in range(5000))
    data = ("email,values,tags\n" + rows).encode()
    table = importer.read_table(data)
    plan = importer.plan_import(db, table, importer.guess_mapping(table), importer.ImportOptions(list_id=newsletter.id))
    with pytest.raises(Exception, match="refused by the test trigger"):
        importer.apply_plan(db, plan, "t")
    db.rollback()
    assert count(db, Member) == 0 and count(db, Value) == 0 and count(db, ListMembership) == 0
    assert count(db, ConsentEvent) == 0 and count(db, AuditEvent) == 0


def test_thousands_of_rows_in_several_chunks(db):
    newsletter = make_list(db)
    rows = "".join(f"m{i}@example.org,Member {i},{'Care' if i % 2 else 'Joy'}|Courage,t{i % 3}\n" for i in range(4500))
    seen: list[int] = []
    plan = importer.import_rows(
        db, ("email,name,values,tags\n" + rows).encode(), importer.ImportOptions(list_id=newsletter.id),
        progress=lambda done, _message: seen.append(done),
    )  # fmt: skip
    db.commit()
    assert plan.summary()["imported"] == 4500 and seen
    assert count(db, Member) == 4500 and count(db, ListMembership) == 4500
    assert db.scalar(text("SELECT count(*) FROM member_values")) == 9000
    assert db.scalar(text("SELECT count(*) FROM member_tags")) == 4500
