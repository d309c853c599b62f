"""The member directory and one member's page: search, filters, sorting, keyset pages,
the timeline, profile edits, adding one member and CSV export."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from flask import Response, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy.orm import Session

from cop_mail import accounts
from cop_mail.audience import exporter, importer, taxonomy
from cop_mail.audience import members as directory
from cop_mail.audience.segments import SegmentNotFound
from cop_mail.journeys import progress
from cop_mail.models import MailingList, MemberStatus, Practice, Role, Segment, Value
from cop_mail.web.admin import bp
from cop_mail.web.auth import client_ip, current_admin, current_admin_may, role_required
from cop_mail.web.extensions import db


def _int_arg(name: str) -> int | None:
    return request.args.get(name, type=int)


def _filters() -> directory.MemberFilter:
    status = request.args.get("status", "")
    return directory.MemberFilter(
        search=request.args.get("q", "")[:200],
        status=status if status in {s.value for s in MemberStatus} else "",
        list_id=_int_arg("list"),
        value_id=_int_arg("value"),
        segment_id=_int_arg("segment"),
    )


def _choices() -> dict[str, Any]:
    session = db()
    return {
        "lists": taxonomy.term_names(session, MailingList),  # type: ignore[type-var]
        "values": taxonomy.term_names(session, Value),
        "segments": taxonomy.term_names(session, Segment),  # type: ignore[type-var]
        "statuses": [status.value for status in MemberStatus],
    }


@bp.route("/members")
@role_required(Role.VIEWER)
def members() -> Any:
    filters = _filters()
    sort = request.args.get("sort", "joined")
    sort = sort if sort in directory.SORTS else "joined"
    descending = request.args.get("dir", "desc") != "asc"
    try:
        page = directory.search_members(db(), filters, sort, descending, request.args.get("cursor"))
    except SegmentNotFound:
        abort(404, "That segment no longer exists.")
    args = {k: v for k, v in request.args.items() if k != "cursor"}
    return render_template(
        "admin/members.html",
        page=page,
        filters=filters,
        sort=sort,
        descending=descending,
        args=args,
        sort_labels=directory.SORT_LABELS,
        counts=directory.status_counts(db()),
        can_edit=current_admin_may(Role.COORDINATOR),
        **_choices(),
    )


@bp.route("/members/export.csv")
@role_required(Role.COORDINATOR)
def members_export() -> Any:
    filters = _filters()
    try:
        condition = directory.filter_condition(db(), filters)
    except SegmentNotFound:
        abort(404, "That segment no longer exists.")
    described = {k: v for k, v in vars(filters).items() if v not in ("", None)}
    accounts.audit(db(), current_admin(), "members.export", "members", client_ip(), **described)
    db().commit()
    return csv_response(lambda session: exporter.export_csv(session, condition), "members.csv")


def csv_response(export: Callable[[Session], Iterator[str]], filename: str) -> Response:
    """Stream CSV from a session of its own, closed when the stream ends: the request's session
    is torn down when the view returns, before the body is sent."""
    factory = current_app.extensions["cop_mail.sessions"]

    def generate() -> Iterator[str]:
        session = factory()
        try:
            yield from export(session)
        finally:
            session.close()

    response = Response(generate(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/members/add", methods=["POST"])
@role_required(Role.COORDINATOR)
def member_add() -> Any:
    list_id = request.form.get("list_id", type=int)
    actor = current_admin()
    options = importer.ImportOptions(list_id=list_id, filename="the admin's add-member form")
    email, name = request.form.get("email", ""), request.form.get("name", "")
    report = importer.add_one(db(), email, name, options, actor.email if actor else "")
    db().commit()
    if report.outcome is importer.Outcome.SKIPPED:
        flash(f"{report.email or 'The address'} was not added: {report.reason}.", "error")
        return redirect(url_for("admin.members"))
    flash(f"{report.email}: {report.outcome.value}" + (f" ({report.reason})." if report.reason else "."), "success")
    found = directory.find_member_id(db(), report.email)
    return redirect(url_for("admin.member_detail", member_id=found) if found else url_for("admin.members"))


def _member_or_404(member_id: int) -> Any:
    try:
        return directory.get_member(db(), member_id)
    except directory.MemberNotFound:
        abort(404, "There is no member with that number.")


@bp.route("/members/<int:member_id>")
@role_required(Role.VIEWER)
def member_detail(member_id: int) -> Any:
    member = _member_or_404(member_id)
    return render_template(
        "admin/member_detail.html",
        member=member,
        timeline=directory.member_timeline(db(), member.id),
        journeys=progress.member_journeys(db(), member.id),
        memberships=directory.memberships(db(), member.id),
        all_values=taxonomy.term_names(db(), Value),
        all_practices=taxonomy.term_names(db(), Practice),
        can_edit=current_admin_may(Role.COORDINATOR),
        is_owner=current_admin_may(Role.OWNER),
    )


@bp.route("/members/<int:member_id>", methods=["POST"])
@role_required(Role.COORDINATOR)
def member_update(member_id: int) -> Any:
    member = _member_or_404(member_id)
    if member.status == MemberStatus.ERASED:
        abort(409, "This member was erased; their profile cannot be edited.")
    try:
        changed = directory.update_profile(db(), member, request.form.to_dict())
    except directory.MemberEditError as exc:
        db().rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.member_detail", member_id=member_id))
    directory.set_terms(
        db(),
        member,
        [int(v) for v in request.form.getlist("value_ids") if v.isdecimal()],
        [int(v) for v in request.form.getlist("practice_ids") if v.isdecimal()],
        request.form.get("tags", "").replace(";", ",").split(","),
    )
    # The audit names the member by id only: the log must not hold personal data.
    accounts.audit(db(), current_admin(), "member.update", f"member:{member.id}", client_ip(), fields=changed)
    db().commit()
    flash("The member's profile is saved.", "success")
    return redirect(url_for("admin.member_detail", member_id=member.id))
