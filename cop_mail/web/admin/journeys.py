"""Journeys in the admin: the welcome journey and other automated sequences.

Viewers read; coordinators create, edit, reorder and switch journeys on and off. Every form
posts back and works without JavaScript; a form with problems comes back with them listed and
what was typed still in it.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from cop_mail import accounts
from cop_mail.journeys import definitions, progress, welcome
from cop_mail.journeys.definitions import JourneyError, JourneyInput, StepInput
from cop_mail.models import EnrolmentStatus, Journey, MailingList, Role, StepKind, Value
from cop_mail.web.admin import bp
from cop_mail.web.auth import client_ip, current_admin, current_admin_may, role_required
from cop_mail.web.extensions import db

STATUS_LABELS = {
    EnrolmentStatus.ACTIVE: "In it now",
    EnrolmentStatus.COMPLETED: "Finished",
    EnrolmentStatus.STOPPED: "Left early",
}



def _audit(action: str, journey_id: int, **detail: Any) -> None:
    accounts.audit(db(), current_admin(), action, f"journey:{journey_id}", client_ip(), **detail)


def _choices() -> dict[str, Any]:
    session = db()
    return {
        "triggers": definitions.TRIGGER_LABELS,
        "step_labels": definitions.STEP_LABELS,
        "templates": definitions.TEMPLATES,
        "lists": session.scalars(select(MailingList).order_by(MailingList.name)).all(),
        "values": session.scalars(select(Value).order_by(Value.position, Value.name)).all(),
        "status_labels": STATUS_LABELS,
        "can_edit": current_admin_may(Role.COORDINATOR),
    }


def _journey_input() -> JourneyInput:
    form = request.form
    return JourneyInput(
        name=form.get("name", ""),
        trigger=form.get("trigger", ""),
        description=form.get("description", ""),
        list_id=form.get("list_id", type=int),
        days=form.get("days", ""),
    )


def _step_input(kind: str) -> StepInput:
    form = request.form
    return StepInput(
        kind=kind,
        days=form.get("days", ""),
        template=form.get("template", "message"),
        subject=form.get("subject", ""),
        body=form.get("body", ""),
        question=form.get("question", ""),
        note=form.get("note", ""),
        value_id=form.get("value_id", type=int),
        tag=form.get("tag", ""),
        skip_if_introduced=form.get("skip_if_introduced") == "on",
    )


def _journey_or_404(journey_id: int) -> Journey:
    found = definitions.find_journey(db(), journey_id)
    if found is None:
        abort(404, "There is no journey with that number.")
    return found


def _problems(exc: JourneyError) -> None:
    db().rollback()
    for problem in exc.problems:
        flash(problem, "error")


# --- the list ------------------------------------------------------------------------------------


@bp.route("/journeys")
@role_required(Role.VIEWER)
def journeys() -> Any:
    return _render_list({}, 200)


def _render_list(form: dict[str, Any], status: int) -> Any:
    session = db()
    made = welcome.ensure_welcome_journey(session)  # the first visit makes it, switched off
    found = definitions.list_journeys(session)
    return (
        render_template(
            "admin/journeys.html",
            journeys=found,
            counts=progress.counts(session),
            welcome_journey=made,
            any_on=any(j.active for j in found),
            form=form,
            **_choices(),
        ),
        status,
    )


@bp.route("/journeys", methods=["POST"])
@role_required(Role.COORDINATOR)
def journey_create() -> Any:
    admin = current_admin()
    try:
        journey = definitions.create_journey(db(), _journey_input(), admin.email if admin else "")
    except JourneyError as exc:
        _problems(exc)
        return _render_list(request.form.to_dict(), 400)
    _audit("journey.create", journey.id, name=journey.name, trigger=journey.trigger)
    db().commit()
    flash(f"“{journey.name}” is made, switched off. Add its steps, then switch it on.", "success")
    return redirect(url_for("admin.journey", journey_id=journey.id))


# --- one journey ---------------------------------------------------------------------------------


@bp.route("/journeys/<int:journey_id>")
@role_required(Role.VIEWER)
def journey(journey_id: int) -> Any:
    return _render_journey(_journey_or_404(journey_id), None, 200)


def _render_journey(found: Journey, form: dict[str, Any] | None, status: int) -> Any:
    session = db()
    steps = definitions.live_steps(session, found.id)
    return (
        render_template(
            "admin/journey.html",
            journey=found,
            steps=[(step, progress.describe(step)) for step in steps],
            counts=progress.counts(session).get(found.id, {s.value: 0 for s in EnrolmentStatus}),
            form=form or _journey_form(found),
            kinds=StepKind,
            **_choices(),
        ),
        status,
    )


def _journey_form(found: Journey) -> dict[str, Any]:
    config = found.trigger_config or {}
    return {
        "name": found.name,
        "description": found.description,
        "trigger": found.trigger,
        "list_id": config.get("list_id"),
        "days": config.get("days") or "",
    }


@bp.route("/journeys/<int:journey_id>", methods=["POST"])
@role_required(Role.COORDINATOR)
def journey_update(journey_id: int) -> Any:
    found = _journey_or_404(journey_id)
    try:
        definitions.update_journey(db(), journey_id, _journey_input())
    except JourneyError as exc:
        _problems(exc)
        return _render_journey(_journey_or_404(journey_id), request.form.to_dict(), 400)
    _audit("journey.update", journey_id, name=found.name, trigger=found.trigger)
    db().commit()
    flash("Saved. Members already in the journey carry on from where they are.", "success")
    return redirect(url_for("admin.journey", journey_id=journey_id))


@bp.route("/journeys/<int:journey_id>/switch", methods=["POST"])
@role_required(Role.COORDINATOR)
def journey_switch(journey_id: int) -> Any:
    _journey_or_404(journey_id)
    on = request.form.get("active") == "on"
    try:
        found = definitions.set_active(db(), journey_id, on)
    except JourneyError as exc:
        _problems(exc)
        return redirect(url_for("admin.journey", journey_id=journey_id))
    _audit("journey.switch_on" if on else "journey.switch_off", journey_id)
    db().commit()
    if on:
        flash(f"“{found.name}” is on: members enter it from now on.", "success")
    else:
        flash(f"“{found.name}” is off: nobody new enters, and members in it wait where they are.", "success")
    back = request.form.get("back") == "list"
    return redirect(url_for("admin.journeys") if back else url_for("admin.journey", journey_id=journey_id))


@bp.route("/journeys/<int:journey_id>/members")
@role_required(Role.VIEWER)
def journey_members(journey_id: int) -> Any:
    found = _journey_or_404(journey_id)
    status = request.args.get("status", "")
    status = status if status in STATUS_LABELS else ""
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    rows, total = progress.journey_members(db(), journey_id, status, page)
    return render_template(
        "admin/journey_members.html",
        journey=found,
        rows=rows,
        total=total,
        status=status,
        page=page,
        pages=max(1, -(-total // progress.PAGE_SIZE)),
        counts=progress.counts(db()).get(found.id, {s.value: 0 for s in EnrolmentStatus}),
        status_labels=STATUS_LABELS,
    )


# --- steps ---------------------------------------------------------------------------------------


@bp.route("/journeys/<int:journey_id>/steps/new")
@role_required(Role.COORDINATOR)
def journey_step_new(journey_id: int) -> Any:
    kind = request.args.get("kind", "")
    if kind not in definitions.STEP_LABELS:
        abort(404, "There is no such kind of step.")
    return _render_step(_journey_or_404(journey_id), kind, None, {"template": "message"}, 200)


def _render_step(found: Journey, kind: str, key: str | None, form: dict[str, Any], status: int) -> Any:
    steps = definitions.live_steps(db(), found.id)
    return (
        render_template(
            "admin/journey_step.html",
            journey=found,
            kind=kind,
            key=key,
            form=form,
            positions=[(step.key, f"{n}. {progress.describe(step)}") for n, step in enumerate(steps, start=1)],
            **_choices(),
        ),
        status,
    )


@bp.route("/journeys/<int:journey_id>/steps", methods=["POST"])
@role_required(Role.COORDINATOR)
def journey_step_add(journey_id: int) -> Any:
    found = _journey_or_404(journey_id)
    kind = request.form.get("kind", "")
    if kind not in definitions.STEP_LABELS:
        abort(400)
    try:
        step = definitions.add_step(db(), journey_id, _step_input(kind), request.form.get("after") or None)
    except JourneyError as exc:
        _problems(exc)
        return _render_step(found, kind, None, request.form.to_dict(), 400)
    _audit("journey.step_add", journey_id, step=step.key, kind=kind)
    db().commit()
    flash(f"Step added: {progress.describe(step)}.", "success")
    return redirect(url_for("admin.journey", journey_id=journey_id))


@bp.route("/journeys/<int:journey_id>/steps/<key>")
@role_required(Role.VIEWER)
def journey_step(journey_id: int, key: str) -> Any:
    found = _journey_or_404(journey_id)
    try:
        step = definitions.get_step(db(), journey_id, key)
    except JourneyError:
        abort(404, "That step is no longer part of the journey.")
    form = {**(step.config or {}), **(step.conditions or {})}
    return _render_step(found, step.kind, step.key, form, 200)


@bp.route("/journeys/<int:journey_id>/steps/<key>", methods=["POST"])
@role_required(Role.COORDINATOR)
def journey_step_update(journey_id: int, key: str) -> Any:
    found = _journey_or_404(journey_id)
    try:
        kind = definitions.get_step(db(), journey_id, key).kind
    except JourneyError:
        abort(404, "That step is no longer part of the journey.")
    try:
        definitions.update_step(db(), journey_id, key, _step_input(kind))
    except JourneyError as exc:
        _problems(exc)
        return _render_step(found, kind, key, request.form.to_dict(), 400)
    _audit("journey.step_update", journey_id, step=key)
    db().commit()
    flash("Step saved. Members who already took it do not get it again.", "success")
    return redirect(url_for("admin.journey", journey_id=journey_id))


@bp.route("/journeys/<int:journey_id>/steps/<key>/move", methods=["POST"])
@role_required(Role.COORDINATOR)
def journey_step_move(journey_id: int, key: str) -> Any:
    _journey_or_404(journey_id)
    offset = -1 if request.form.get("direction") == "up" else 1
    try:
        definitions.move_step(db(), journey_id, key, offset)
    except JourneyError as exc:
        _problems(exc)
        return redirect(url_for("admin.journey", journey_id=journey_id))
    _audit("journey.step_move", journey_id, step=key, offset=offset)
    db().commit()
    flash("Step moved " + ("up." if offset < 0 else "down."), "success")
    return redirect(url_for("admin.journey", journey_id=journey_id) + f"#step-{key}")


@bp.route("/journeys/<int:journey_id>/steps/<key>/remove", methods=["POST"])
@role_required(Role.COORDINATOR)
def journey_step_remove(journey_id: int, key: str) -> Any:
    _journey_or_404(journey_id)
    try:
        step = definitions.remove_step(db(), journey_id, key)
    except JourneyError as exc:
        _problems(exc)
        return redirect(url_for("admin.journey", journey_id=journey_id))
    _audit("journey.step_remove", journey_id, step=key)
    db().commit()
    flash(f"Step removed: {progress.describe(step)}. Members' histories still show it where they took it.", "success")
    return redirect(url_for("admin.journey", journey_id=journey_id))
