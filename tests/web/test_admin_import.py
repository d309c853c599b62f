"""The admin import flow: upload, map columns, dry run with a progress bar, import, report;
bad files refused with messages a coordinator understands."""

from __future__ import annotations

import csv
import io
import re

from sqlalchemy import func, select

from cop_mail.models import AuditEvent, BackgroundTask, ImportFile, ListMembership, MailingList, Member
from tests.conftest import csrf_token_from

CSV = (
    "Email;Full name;Values;Company\n"
    "ana@example.org;Ana Conceição;Care|Joy;Coop\n"
    "postmaster@example.org;PM;;\n"
    '"=HYPERLINK(""http://evil"")";X;;\n'
    "ben@example.org;Ben;Care;\n"
).encode("cp1252")


def upload(client, data: bytes, filename="members.csv", **fields):
    """Post the file as a browser does. The body is built here: the test client would spool a large
    body to a temporary file it never closes."""
    csrf = csrf_token_from(client.get("/admin/imports").get_data(as_text=True))
    boundary = "cop-mail-test-boundary"
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in {"csrf_token": csrf, **fields}.items()
    )
    body += (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return client.post("/admin/imports", data=body, content_type=f"multipart/form-data; boundary={boundary}")


def flash_after(client, response) -> str:
    assert response.status_code == 302, response.get_data(as_text=True)
    return client.get(response.headers["Location"]).get_data(as_text=True)


def test_upload_map_dry_run_then_import(client, login, db, run_jobs):
    newsletter = MailingList(name="Newsletter", slug="newsletter")
    db.add(newsletter)
    db.commit()
    login("coordinator")
    response = upload(client, CSV)
    mapping_page = flash_after(client, response)
    upload_row = db.scalar(select(ImportFile))
    assert response.headers["Location"].endswith(f"/admin/imports/{upload_row.id}")
    assert "4 rows · Windows-1252 (Latin-1) · columns separated by semicolons" in mapping_page
    assert '<option value="email" selected>' in mapping_page and '<option value="values" selected>' in mapping_page
    assert "=HYPERLINK" in mapping_page  # shown as text in the sample, escaped by the template

    csrf = csrf_token_from(mapping_page)
    form = {"csrf_token": csrf, "column-0": "email", "column-1": "name", "column-2": "values", "column-3": "attribute",
            "attribute-3": "company", "list_id": str(newsletter.id), "missing": "create", "role_addresses": "skip",
            "separators": ";|"}  # fmt: skip
    dry = client.post(f"/admin/imports/{upload_row.id}/run", data={**form, "mode": "dry-run"})
    task_id = int(dry.headers["Location"].rsplit("/", 1)[1])
    waiting = client.get(dry.headers["Location"]).get_data(as_text=True)
    assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in waiting and "import.js" in waiting
    assert client.get(f"/admin/imports/tasks/{task_id}.json").get_json()["status"] == "queued"

    assert run_jobs() == 0
    status = client.get(f"/admin/imports/tasks/{task_id}.json").get_json()
    assert status["status"] == "done" and status["percent"] == 100
    summary = client.get(f"/admin/imports/tasks/{task_id}").get_data(as_text=True)
    assert "What would happen" in summary and "would be imported" in summary
    assert "role: 1" in summary and "invalid: 1" in summary and "To create: values: Care, Joy" in summary
    assert "noscript" not in summary
    assert db.scalar(select(func.count()).select_from(Member)) == 0

    no_consent = client.post(f"/admin/imports/tasks/{task_id}/confirm", data={"csrf_token": csrf})
    assert "agreed to hear from the community" in flash_after(client, no_consent)
    confirmed = client.post(f"/admin/imports/tasks/{task_id}/confirm", data={"csrf_token": csrf, "consent": "on"})
    real_id = int(confirmed.headers["Location"].rsplit("/", 1)[1])
    assert run_jobs() == 0
    done = client.get(f"/admin/imports/tasks/{real_id}").get_data(as_text=True)
    assert "Import finished: 2 new, 0 updated, 2 skipped." in done
    ana = db.scalar(select(Member).where(Member.email == "ana@example.org"))
    assert ana.name == "Ana Conceição" and ana.attributes == {"company": "Coop"}
    assert sorted(v.name for v in ana.values) == ["Care", "Joy"]
    assert db.scalar(select(func.count()).select_from(ListMembership)) == 2

    report = client.get(f"/admin/imports/tasks/{real_id}/report.csv")
    rows = list(csv.DictReader(io.StringIO(report.get_data(as_text=True).lstrip("\ufeff"))))
    assert [(r["row"], r["outcome"]) for r in rows] == [
        ("2", "imported"),
        ("3", "skipped"),
        ("4", "skipped"),
        ("5", "imported"),
    ]
    assert rows[2]["email"].startswith("'=HYPERLINK")  # neutralised for spreadsheets
    listing = client.get("/admin/imports").get_data(as_text=True)
    assert listing.count("members.csv") >= 2
    audit = [e.action for e in db.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert audit[-4:] == ["import.upload", "import.dry_run", "import.start", "members.import"]


def test_importing_directly_needs_the_consent_box(client, login, db):
    login("coordinator")
    page = flash_after(client, upload(client, b"email\nana@example.org\n"))
    file_id = db.scalar(select(ImportFile.id))
    refused = client.post(
        f"/admin/imports/{file_id}/run",
        data={"csrf_token": csrf_token_from(page), "column-0": "email", "mode": "import"},
    )
    assert "agreed to hear from the community" in flash_after(client, refused)
    assert db.scalar(select(BackgroundTask)) is None


def test_a_mapping_without_an_email_column_is_explained(client, login, db):
    login("coordinator")
    page = flash_after(client, upload(client, b"email,name\nana@example.org,Ana\n"))
    file_id = db.scalar(select(ImportFile.id))
    response = client.post(
        f"/admin/imports/{file_id}/run", data={"csrf_token": csrf_token_from(page), "column-0": "", "column-1": "name"}
    )
    assert "Choose which column is the email address." in flash_after(client, response)


def test_bad_files_are_refused_with_plain_words(client, login, db):
    login("coordinator")
    cases = [
        (b"", "The file is empty."),
        (b"PK\x03\x04" + bytes(500), "This is a spreadsheet or zip file (.xlsx, .ods or .zip), not a CSV text file."),
        (bytes(range(256)) * 40, "This is a binary file"),
        (b"email,name\n", "no member rows"),
        (b"email\n" + b"member@example.org\n" * (50 * 1_048_576 // 19), "the limit is 25 MB"),
    ]
    for data, words in cases:
        html = flash_after(client, upload(client, data, "bad.csv"))
        assert words in html, words
        assert 'class="flash flash-error"' in html
    assert db.scalar(select(ImportFile)) is None


def test_a_viewer_can_watch_but_not_import(client, login, db):
    login("viewer")
    html = client.get("/admin/imports").get_data(as_text=True)
    assert "Upload a CSV file" not in html
    assert upload(client, b"email\nana@example.org\n").status_code == 403


def test_the_task_page_reports_a_queue_outage(client, login, db, redis_server):
    login("coordinator")
    page = flash_after(client, upload(client, b"email\nana@example.org\n"))
    file_id = db.scalar(select(ImportFile.id))
    redis_server.kill()
    try:
        response = client.post(
            f"/admin/imports/{file_id}/run", data={"csrf_token": csrf_token_from(page), "column-0": "email"}
        )
        html = client.get(response.headers["Location"]).get_data(as_text=True)
    finally:
        redis_server.start()
    assert "The job queue (Redis) is not reachable; nothing was imported." in html
    assert re.search(r"Status: <strong data-status>failed</strong>", html)
