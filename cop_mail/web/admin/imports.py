"""Importing members from CSV: upload, map the columns, dry run, then import, with a
progress bar fed by the task row the worker updates."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Response, abort, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select

from cop_mail import accounts
from cop_mail.audience import importer, taxonomy
from cop_mail.audience.csv_io import DELIMITER_NAMES, MAX_IMPORT_BYTES, CsvProblem, check_size
from cop_mail.audience.jobs import import_members_job
from cop_mail.models import BackgroundTask, MailingList, Role, TaskStatus
from cop_mail.queues import LOW, enqueue
from cop_mail.web.admin import bp
from cop_mail.web.auth import client_ip, current_admin, current_admin_may, role_required
from cop_mail.web.extensions import db, redis

IMPORT_TIMEOUT = 1800
SAMPLE_ROWS = 5
REPORT_ROWS_SHOWN = 100


def _actor() -> str:
    admin = current_admin()
    return admin.email if admin else "unknown"


def _task_or_404(task_id: int) -> BackgroundTask:
    task = db().get(BackgroundTask, task_id)
    if task is None or task.kind != importer.IMPORT_TASK_KIND:
        abort(404, "There is no import with that number.")
    return task


@bp.route("/imports")
@role_required(Role.VIEWER)
def imports() -> Any:
    tasks = db().scalars(
        select(BackgroundTask)
        .where(BackgroundTask.kind == importer.IMPORT_TASK_KIND)
        .order_by(BackgroundTask.id.desc())
        .limit(30)
    )
    return render_template(
        "admin/imports.html",
        tasks=list(tasks),
        can_edit=current_admin_may(Role.COORDINATOR),
        limit_mb=MAX_IMPORT_BYTES // 1_048_576,
    )


@bp.route("/imports", methods=["POST"])
@role_required(Role.COORDINATOR)
def import_upload() -> Any:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash("Choose a CSV file to upload.", "error")
        return redirect(url_for("admin.imports"))
    delimiter = {"comma": ",", "semicolon": ";", "tab": "\t", "bar": "|"}.get(request.form.get("delimiter", ""))
    try:
        upload.stream.seek(0, io.SEEK_END)
        check_size(upload.stream.tell())
        upload.stream.seek(0)
        stored = importer.store_upload(db(), upload.filename, upload.stream.read(), _actor(), delimiter)
    except CsvProblem as exc:
        db().rollback()
        flash(f"{upload.filename}: {exc}", "error")
        return redirect(url_for("admin.imports"))
    accounts.audit(db(), current_admin(), "import.upload", stored.filename, client_ip(), rows=stored.row_count)
    db().commit()
    return redirect(url_for("admin.import_map", file_id=stored.id))


def _upload_or_404(file_id: int) -> Any:
    try:
        return importer.get_upload(db(), file_id)
    except importer.ImportProblem as exc:
        abort(404, str(exc))


@bp.route("/imports/<int:file_id>")
@role_required(Role.VIEWER)
def import_map(file_id: int) -> Any:
    upload = _upload_or_404(file_id)
    table = importer.load_table(upload, head_bytes=65536)
    guessed = importer.guess_mapping(table)
    return render_template(
        "admin/import_map.html",
        upload=upload,
        table=table,
        sample=[row for row in table.rows if any(cell.strip() for cell in row)][:SAMPLE_ROWS],
        guessed=guessed,
        fields=importer.FIELD_LABELS,
        lists=taxonomy.term_names(db(), MailingList),  # type: ignore[type-var]
        delimiter_name=DELIMITER_NAMES.get(upload.delimiter, upload.delimiter),
        can_edit=current_admin_may(Role.COORDINATOR),
    )


def _mapping_from_form(columns: int) -> dict[int, str]:
    mapping: dict[int, str] = {}
    for index in range(columns):
        target = request.form.get(f"column-{index}", "")
        if target == "attribute":
            target = importer.ATTRIBUTE_PREFIX + request.form.get(f"attribute-{index}", "").strip()
        if target:
            mapping[index] = target
    return mapping


def _options_from_form(filename: str) -> importer.ImportOptions:
    return importer.ImportOptions(
        list_id=request.form.get("list_id", type=int),
        create_missing=request.form.get("missing", "create") == "create",
        role_addresses=request.form.get("role_addresses", "skip"),
        overwrite=request.form.get("overwrite") == "on",
        separators=request.form.get("separators", ";|")[:5] or ";|",
        filename=filename,
    )


def _queue(task: BackgroundTask) -> None:
    """Commit first, then ring the doorbell; if Redis is down, the task says so."""
    db().commit()
    try:
        enqueue(redis(), import_members_job, task.id, queue=LOW, retries=0, timeout=IMPORT_TIMEOUT)
    except Exception:  # any Redis problem: tell the coordinator in the task itself
        task.status, task.message = TaskStatus.FAILED, "The job queue (Redis) is not reachable; nothing was imported."
        db().commit()


@bp.route("/imports/<int:file_id>/run", methods=["POST"])
@role_required(Role.COORDINATOR)
def import_run(file_id: int) -> Any:
    upload = _upload_or_404(file_id)
    dry_run = request.form.get("mode") != "import"
    if not dry_run and request.form.get("consent") != "on":
        flash("Confirm that these people agreed to hear from the community before importing them.", "error")
        return redirect(url_for("admin.import_map", file_id=file_id))
    try:
        mapping = _mapping_from_form(len(upload.header))
        task = importer.start_import_task(db(), upload, mapping, _options_from_form(upload.filename), dry_run, _actor())
    except (importer.ImportProblem, CsvProblem) as exc:
        db().rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.import_map", file_id=file_id))
    action = "import.dry_run" if dry_run else "import.start"
    accounts.audit(db(), current_admin(), action, upload.filename, client_ip(), task=task.id)
    _queue(task)
    return redirect(url_for("admin.import_task", task_id=task.id))


@bp.route("/imports/tasks/<int:task_id>/confirm", methods=["POST"])
@role_required(Role.COORDINATOR)
def import_confirm(task_id: int) -> Any:
    """Import exactly what a finished dry run checked."""
    dry = _task_or_404(task_id)
    if dry.status != TaskStatus.DONE or not dry.params.get("dry_run"):
        abort(409, "Only a finished dry run can be confirmed.")
    if request.form.get("consent") != "on":
        flash("Confirm that these people agreed to hear from the community before importing them.", "error")
        return redirect(url_for("admin.import_task", task_id=task_id))
    upload = _upload_or_404(dry.params["file_id"])
    mapping = {int(k): v for k, v in dry.params["mapping"].items()}
    options = importer.ImportOptions.from_json(dry.params.get("options", {}))
    task = importer.start_import_task(db(), upload, mapping, options, False, _actor())
    accounts.audit(db(), current_admin(), "import.start", upload.filename, client_ip(), task=task.id, dry_run=dry.id)
    _queue(task)
    return redirect(url_for("admin.import_task", task_id=task.id))


def _problem_rows(task: BackgroundTask) -> list[dict[str, str]]:
    report = importer.load_report(db(), task.id)
    if not report:
        return []
    rows = csv.DictReader(io.StringIO(report.lstrip("\ufeff")))
    return [row for row in rows if row["outcome"] == "skipped" or row["reason"]][:REPORT_ROWS_SHOWN]


@bp.route("/imports/tasks/<int:task_id>")
@role_required(Role.VIEWER)
def import_task(task_id: int) -> Any:
    task = _task_or_404(task_id)
    finished = task.status in (TaskStatus.DONE, TaskStatus.FAILED)
    return render_template(
        "admin/import_task.html",
        task=task,
        finished=finished,
        problems=_problem_rows(task) if task.status == TaskStatus.DONE else [],
        list_names=taxonomy.term_names(db(), MailingList),  # type: ignore[type-var]
        can_edit=current_admin_may(Role.COORDINATOR),
    )


@bp.route("/imports/tasks/<int:task_id>.json")
@role_required(Role.VIEWER)
def import_task_status(task_id: int) -> Any:
    task = _task_or_404(task_id)
    return jsonify(
        {
            "status": task.status,
            "done": task.done,
            "total": task.total,
            "percent": round(100 * task.done / task.total) if task.total else 0,
            "message": task.message,
        }
    )


@bp.route("/imports/tasks/<int:task_id>/report.csv")
@role_required(Role.COORDINATOR)
def import_report(task_id: int) -> Any:
    task = _task_or_404(task_id)
    report = importer.load_report(db(), task.id)
    if report is None:
        abort(404, "This import has no report (it failed, has not finished, or is older than 14 days).")
    response = Response(report, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="import-{task.id}-report.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response
