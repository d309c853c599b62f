"""Imports as background tasks (real Redis, real RQ worker) and from the command line."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text, update

from cop_mail.audience import importer
from cop_mail.audience.jobs import import_members_job, purge_old_imports_job
from cop_mail.cli import main
from cop_mail.db import utcnow
from cop_mail.models import BackgroundTask, ImportFile, ImportReport, MailingList, Member, Suppression
from cop_mail.queues import LOW, enqueue
from cop_mail.tokens import address_hash
from tests.integration.test_import import failing_tag  # noqa: F401  (fixture)

CSV = b"email,name,values\nana@example.org,Ana,Care\nbad-address,X,\nben@example.org,Ben,Joy|Care\n"


def make_list(db, name="Newsletter"):
    item = MailingList(name=name, slug=name.lower())
    db.add(item)
    db.commit()
    return item


def queue_task(db, redis_conn, data=CSV, dry_run=False, **options):
    upload = importer.store_upload(db, "members.csv", data, "coordinator@example.org")
    table = importer.load_table(upload)
    task = importer.start_import_task(
        db, upload, importer.guess_mapping(table), importer.ImportOptions(filename="members.csv", **options),
        dry_run, "coordinator@example.org",
    )  # fmt: skip
    db.commit()
    enqueue(redis_conn, import_members_job, task.id, queue=LOW, retries=0)
    return task.id


def members(db):
    return db.scalars(select(Member.email).order_by(Member.email)).all()


def test_an_import_task_runs_in_a_worker_and_keeps_a_report(db, redis_conn, run_jobs):
    newsletter = make_list(db)
    task_id = queue_task(db, redis_conn, list_id=newsletter.id)
    assert run_jobs() == 0
    db.expire_all()
    task = db.get(BackgroundTask, task_id)
    assert task.status == "done" and task.done == task.total
    assert task.message == "Import finished: 2 new, 0 updated, 1 skipped."
    assert task.result["skipped_by_reason"] == {"invalid": 1} and not task.result["dry_run"]
    assert members(db) == ["ana@example.org", "ben@example.org"]
    report = list(csv.DictReader(io.StringIO(importer.load_report(db, task_id).lstrip("\ufeff"))))
    assert [(r["row"], r["outcome"]) for r in report] == [("2", "imported"), ("3", "skipped"), ("4", "imported")]


def test_progress_is_committed_while_a_large_import_runs(db, redis_conn, run_jobs, monkeypatch):
    """Progress goes through its own connection; on SQLite it must never wait on the import's lock."""
    monkeypatch.setattr(importer, "PROGRESS_INTERVAL", 0.0)
    seen: list[int] = []
    original = importer.TaskProgress.update

    def spy(self, done, message):
        original(self, done, message)
        seen.append(done)

    monkeypatch.setattr(importer.TaskProgress, "update", spy)
    rows = "".join(f"m{i}@example.org,Care|Joy\n" for i in range(12_000))
    task_id = queue_task(db, redis_conn, data=("email,values\n" + rows).encode())
    assert run_jobs() == 0
    db.expire_all()
    task = db.get(BackgroundTask, task_id)
    assert task.status == "done", task.message
    assert seen[:2] == [5000, 10000] and max(seen) >= 12_000
    assert db.scalar(select(func.count()).select_from(Member)) == 12_000


def test_a_dry_run_task_saves_only_its_report(db, redis_conn, run_jobs):
    task_id = queue_task(db, redis_conn, dry_run=True)
    assert run_jobs() == 0
    db.expire_all()
    task = db.get(BackgroundTask, task_id)
    assert task.status == "done" and task.result["dry_run"] and task.result["imported"] == 2
    assert "Nothing was saved yet" in task.message
    assert members(db) == [] and importer.load_report(db, task_id)


def test_running_a_finished_task_again_changes_nothing(db, redis_conn, run_jobs):
    task_id = queue_task(db, redis_conn)
    run_jobs()
    enqueue(redis_conn, import_members_job, task_id, queue=LOW, retries=0)
    db.execute(text("DELETE FROM members"))
    db.commit()
    assert run_jobs() == 0
    assert members(db) == []  # the second run did not import again


def test_a_failed_import_saves_nothing_and_says_so(db, redis_conn, run_jobs, failing_tag):  # noqa: F811
    rows = "".join(f"m{i}@example.org,{'explode' if i == 2500 else 'fine'}\n" for i in range(3000))
    task_id = queue_task(db, redis_conn, data=("email,tags\n" + rows).encode())
    assert run_jobs() == 0  # the job records the failure itself instead of crashing the worker
    db.expire_all()
    task = db.get(BackgroundTask, task_id)
    assert task.status == "failed"
    assert task.message.startswith("The import failed and nothing was saved: the database refused the data")
    assert "refused by the test trigger" in task.message
    assert db.scalar(select(func.count()).select_from(Member)) == 0
    assert db.get(ImportReport, task_id) is None


def test_a_deleted_list_fails_the_task_in_plain_words(db, redis_conn, run_jobs):
    newsletter = make_list(db)
    task_id = queue_task(db, redis_conn, list_id=newsletter.id)
    db.delete(newsletter)
    db.commit()
    run_jobs()
    db.expire_all()
    task = db.get(BackgroundTask, task_id)
    assert task.status == "failed"
    assert task.message == (
        "The import failed and nothing was saved: The chosen list no longer exists; choose another list."
    )


def test_old_uploads_and_reports_are_purged(db, redis_conn, run_jobs):
    task_id = queue_task(db, redis_conn)
    run_jobs()
    old = utcnow() - timedelta(days=15)
    db.execute(update(ImportFile).values(created_at=old))
    db.execute(update(ImportReport).values(created_at=old))
    db.commit()
    assert purge_old_imports_job() == 2
    assert db.scalar(select(func.count()).select_from(ImportFile)) == 0
    assert db.get(ImportReport, task_id) is None


# --- the command line ---------------------------------------------------------------------


@pytest.fixture
def cli(settings, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SECRET_KEY", settings.secret_key)
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "instance"))

    def invoke(*args: str):
        return CliRunner().invoke(main, ["members", *args], catch_exceptions=False)

    return invoke


def test_cli_dry_run_then_import(cli, db, tmp_path):
    make_list(db)
    path = tmp_path / "members.csv"
    path.write_bytes(CSV)
    dry = cli("import", str(path), "--list", "Newsletter", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Dry run finished: 2 new, 0 updated, 1 skipped. Nothing was saved yet." in dry.output
    assert "row 3: bad-address: not a valid email address" in dry.output
    assert members(db) == []

    report = tmp_path / "report.csv"
    done = cli("import", str(path), "--list", "newsletter", "--report", str(report))
    assert done.exit_code == 0, done.output
    assert "Import finished: 2 new, 0 updated, 1 skipped." in done.output
    assert members(db) == ["ana@example.org", "ben@example.org"]
    assert report.read_text(encoding="utf-8").lstrip("\ufeff").splitlines()[0] == "row,email,outcome,reason"


def test_cli_refuses_bad_input_with_plain_words(cli, db, tmp_path):
    cases = {
        "empty.csv": (b"", "The file is empty"),
        "sheet.csv": (b"PK\x03\x04" + bytes(300), "spreadsheet or zip file"),
        "huge.csv": (b"email\n" + b"member@example.org\n" * (50 * 1_048_576 // 19), "the limit is 25 MB"),
        "colons.csv": (b"email:name\na@example.org:Ana\n", "No column holds email addresses"),
    }
    for name, (data, words) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        result = cli("import", str(path))
        assert result.exit_code == 1, name
        assert words in result.output, (name, result.output)
        assert "nothing was imported" in result.output
    missing = tmp_path / "ok.csv"
    missing.write_bytes(CSV)
    result = cli("import", str(missing), "--list", "Nope")
    assert result.exit_code == 1 and "There is no list called 'Nope'" in result.output
    assert members(db) == []


def test_cli_maps_columns_by_name_or_number(cli, db, tmp_path):
    path = tmp_path / "other.csv"
    path.write_bytes(b"Contact;Who;Org\nana@example.org;Ana;Coop\n")
    result = cli("import", str(path), "--map", "Contact=email", "--map", "2=name", "--map", "Org=attribute:org")
    assert result.exit_code == 0, result.output
    member = db.scalar(select(Member))
    assert (member.email, member.name, member.attributes) == ("ana@example.org", "Ana", {"org": "Coop"})


def test_cli_never_resubscribes_a_suppressed_address(cli, db, tmp_path):
    db.add(Suppression(email_hash=address_hash("ana@example.org"), reason="complained"))
    db.commit()
    path = tmp_path / "m.csv"
    path.write_bytes(CSV)
    result = cli("import", str(path))
    assert "skipped, suppressed: 1" in result.output
    assert members(db) == ["ben@example.org"]


def test_cli_export_is_formula_safe(cli, db, tmp_path):
    db.add(Member(email="ana@example.org", name='=HYPERLINK("http://evil")', location="+351"))
    db.commit()
    out = tmp_path / "out.csv"
    result = cli("export", "--output", str(out))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8").lstrip("\ufeff"))))
    assert rows[0]["name"] == '\'=HYPERLINK("http://evil")' and rows[0]["location"] == "'+351"


def test_cli_explains_a_wrong_separator(cli, db, tmp_path):
    path = tmp_path / "commas.csv"
    path.write_bytes(b"email,name\nana@example.org,Ana\n")
    result = cli("import", str(path), "--delimiter", "semicolon")
    assert result.exit_code == 1
    assert "The whole first line was read as one column ('email,name')" in result.output
    assert cli("import", str(path), "--delimiter", "comma").exit_code == 0
    assert members(db) == ["ana@example.org"]
