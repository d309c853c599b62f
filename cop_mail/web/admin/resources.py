"""The resource library in the admin: search, add, edit, moderate suggestions, send a digest."""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select

from cop_mail.models import Admin, MailingList, Member, Practice, ResourceKind, ResourceStatus, Role, Segment, Value
from cop_mail.resources import library
from cop_mail.sending.campaigns import CampaignStateError
from cop_mail.web.admin import bp
from cop_mail.web.auth import client_ip, current_admin, role_required
from cop_mail.web.extensions import db, settings

PAGE_SIZE = 50
STATUS_LABELS = {
    ResourceStatus.PUBLISHED: "Published",
    ResourceStatus.PENDING: "Suggested by members",
    ResourceStatus.REJECTED: "Rejected",
}


def _actor() -> Admin:
    """The signed-in coordinator (role_required has already turned everyone else away)."""
    admin = current_admin()
    assert admin is not None
    return admin


def _choices() -> dict[str, Any]:
    session = db()
    return {
        "kinds": library.KIND_LABELS,
        "values": session.scalars(select(Value).order_by(Value.position, Value.name)).all(),
        "practices": session.scalars(select(Practice).order_by(Practice.name)).all(),
        "lists": session.scalars(select(MailingList).order_by(MailingList.name)).all(),
        "segments": session.scalars(select(Segment).order_by(Segment.name)).all(),
        "status_labels": STATUS_LABELS,
    }


def _ids(name: str) -> list[int]:
    return [int(v) for v in request.form.getlist(name) if v.isdecimal()]


def _form_input() -> library.ResourceInput:
    form = request.form
    mentor = (form.get("mentor_email") or "").strip().lower()
    mentor_id = db().scalar(select(Member.id).where(Member.email == mentor)) if mentor else None
    return library.ResourceInput(
        kind=form.get("kind", ""),
        title=form.get("title", ""),
        description=form.get("description", ""),
        url=form.get("url", ""),
        value_ids=_ids("value_ids"),
        practice_ids=_ids("practice_ids"),
        mentor_member_id=mentor_id,
    )


@bp.route("/resources")
@role_required(Role.VIEWER)
def resources() -> Any:
    session = db()
    args = request.args
    status = args.get("status", ResourceStatus.PUBLISHED)
    status = status if status in STATUS_LABELS else ResourceStatus.PUBLISHED
    kind = args.get("kind") if args.get("kind") in set(ResourceKind) else None
    page = max(args.get("page", 1, type=int) or 1, 1)
    query = args.get("q", "")[:200]
    found, total = library.search(
        session, query, kind=kind, value_id=args.get("value", type=int), status=status,
        limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE,
    )  # fmt: skip
    return render_template(
        "admin/resources.html",
        resources=found,
        total=total,
        query=query,
        kind=kind,
        status=status,
        value_id=args.get("value", type=int),
        pending=library.count_pending(session),
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        form={},
        problems=[],
        **_choices(),
    )


@bp.route("/resources/cards.json")
@role_required(Role.VIEWER)
def resource_cards() -> Any:
    """Published resources matching `q`, as the cards the newsletter composer inserts."""
    return jsonify({"resources": library.resources_for_composer(db(), request.args.get("q", "")[:200], limit=20)})


@bp.route("/resources", methods=["POST"])
@role_required(Role.COORDINATOR)
def resource_add() -> Any:
    try:
        resource = library.add_resource(db(), _form_input(), _actor(), client_ip())
    except library.ResourceError as exc:
        db().rollback()
        for problem in exc.problems:
            flash(problem, "error")
        return redirect(url_for("admin.resources"))
    db().commit()
    flash(f"“{resource.title}” is in the library.", "success")
    return redirect(url_for("admin.resources"))


@bp.route("/resources/<int:resource_id>")
@role_required(Role.VIEWER)
def resource(resource_id: int) -> Any:
    found = library.find_resource(db(), resource_id)
    if found is None:
        abort(404)
    mentor = db().get(Member, found.mentor_member_id) if found.mentor_member_id else None
    contributor = db().get(Member, found.contributed_by_member_id) if found.contributed_by_member_id else None
    return render_template(
        "admin/resources_edit.html", resource=found, mentor=mentor, contributor=contributor, **_choices()
    )


@bp.route("/resources/<int:resource_id>", methods=["POST"])
@role_required(Role.COORDINATOR)
def resource_update(resource_id: int) -> Any:
    if library.find_resource(db(), resource_id) is None:
        abort(404)
    try:
        library.update_resource(db(), resource_id, _form_input(), _actor(), client_ip())
    except library.ResourceError as exc:
        db().rollback()
        for problem in exc.problems:
            flash(problem, "error")
        return redirect(url_for("admin.resource", resource_id=resource_id))
    db().commit()
    flash("Saved.", "success")
    return redirect(url_for("admin.resource", resource_id=resource_id))


@bp.route("/resources/<int:resource_id>/moderate", methods=["POST"])
@role_required(Role.COORDINATOR)
def resource_moderate(resource_id: int) -> Any:
    if library.find_resource(db(), resource_id) is None:
        abort(404)
    action = request.form.get("action")
    try:
        if action == "publish":
            library.publish(db(), resource_id, _actor(), client_ip())
        elif action == "reject":
            library.reject(db(), resource_id, _actor(), request.form.get("note", ""), client_ip())
        else:
            abort(400)
    except library.ResourceError as exc:
        db().rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.resource", resource_id=resource_id))
    db().commit()
    flash("Published." if action == "publish" else "Rejected, with your note.", "success")
    return redirect(url_for("admin.resources", status=ResourceStatus.PENDING))


@bp.route("/resources/digest", methods=["POST"])
@role_required(Role.COORDINATOR)
def resource_digest() -> Any:
    admin = _actor()
    try:
        campaign = library.create_resource_digest(
            db(), settings().public_url, admin, resource_ids=_ids("resource_ids"),
            subject=request.form.get("subject", ""), intro=request.form.get("intro", ""),
            list_ids=_ids("list_ids"), segment_ids=_ids("segment_ids"),
        )  # fmt: skip
    except (library.ResourceError, CampaignStateError) as exc:
        db().rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.resources"))
    db().commit()
    flash("The digest is a draft campaign: check it, then send it.", "success")
    if "admin.campaign" in current_app.view_functions:
        return redirect(url_for("admin.campaign", campaign_id=campaign.id))
    return redirect(url_for("admin.resources"))
