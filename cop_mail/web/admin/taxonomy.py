"""Values, practices, tags and lists: the community's vocabulary and its mailing lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for

from cop_mail import accounts
from cop_mail.audience import taxonomy
from cop_mail.models import MailingList, OptIn, Practice, Role, Tag, Value
from cop_mail.web.admin import bp
from cop_mail.web.auth import client_ip, current_admin, current_admin_may, role_required
from cop_mail.web.extensions import db


def _term_or_404(model: type[Any], term_id: int) -> Any:
    try:
        return taxonomy.get_term(db(), model, term_id)
    except taxonomy.NotFound:
        abort(404)


def _save(action: str, target: str, save: Callable[[], Any], back: str, **detail: Any) -> Any:
    """Run one change, audit it and commit; a TaxonomyError becomes a flash message."""
    try:
        saved = save()
    except taxonomy.TaxonomyError as exc:
        db().rollback()
        flash(str(exc), "error")
        return redirect(back)
    accounts.audit(db(), current_admin(), action, target or getattr(saved, "name", ""), client_ip(), **detail)
    db().commit()
    return saved


# --- values ---------------------------------------------------------------------------------


@bp.route("/values")
@role_required(Role.VIEWER)
def values() -> Any:
    return render_template(
        "admin/values.html", values=taxonomy.list_terms(db(), Value), can_edit=current_admin_may(Role.COORDINATOR)
    )


@bp.route("/values", methods=["POST"])
@role_required(Role.COORDINATOR)
def value_create() -> Any:
    form = request.form
    result = _save(
        "value.create",
        "",
        lambda: taxonomy.save_value(db(), form.get("name", ""), form.get("description", ""), form.get("colour", "")),
        url_for("admin.values"),
    )
    if isinstance(result, Value):
        flash(f"The value {result.name} is added.", "success")
        return redirect(url_for("admin.values"))
    return result


@bp.route("/values/<int:value_id>")
@role_required(Role.VIEWER)
def value_edit(value_id: int) -> Any:
    return render_template(
        "admin/values_edit.html", value=_term_or_404(Value, value_id), can_edit=current_admin_may(Role.COORDINATOR)
    )


@bp.route("/values/<int:value_id>", methods=["POST"])
@role_required(Role.COORDINATOR)
def value_update(value_id: int) -> Any:
    value, form = _term_or_404(Value, value_id), request.form
    result = _save(
        "value.update",
        "",
        lambda: taxonomy.save_value(
            db(), form.get("name", ""), form.get("description", ""), form.get("colour", ""), value
        ),
        url_for("admin.value_edit", value_id=value_id),
    )
    if isinstance(result, Value):
        flash(f"The value {result.name} is saved.", "success")
        return redirect(url_for("admin.values"))
    return result


@bp.route("/values/<int:value_id>/delete", methods=["POST"])
@role_required(Role.COORDINATOR)
def value_delete(value_id: int) -> Any:
    value = _term_or_404(Value, value_id)
    name = value.name
    held = taxonomy.delete_term(db(), value)
    accounts.audit(db(), current_admin(), "value.delete", name, client_ip(), held_by=held)
    db().commit()
    flash(f"The value {name} is deleted; {held:,} members held it.", "success")
    return redirect(url_for("admin.values"))


# --- practices and tags -----------------------------------------------------------------------


@bp.route("/practices")
@role_required(Role.VIEWER)
def practices() -> Any:
    return render_template(
        "admin/practices.html",
        practices=taxonomy.list_terms(db(), Practice),
        tags=taxonomy.list_terms(db(), Tag),
        can_edit=current_admin_may(Role.COORDINATOR),
    )


@bp.route("/practices", methods=["POST"])
@role_required(Role.COORDINATOR)
def practice_create() -> Any:
    form = request.form
    result = _save(
        "practice.create",
        "",
        lambda: taxonomy.save_practice(db(), form.get("name", ""), form.get("description", "")),
        url_for("admin.practices"),
    )
    if isinstance(result, Practice):
        flash(f"The practice {result.name} is added.", "success")
        return redirect(url_for("admin.practices"))
    return result


@bp.route("/practices/<int:practice_id>")
@role_required(Role.VIEWER)
def practice_edit(practice_id: int) -> Any:
    practice = _term_or_404(Practice, practice_id)
    return render_template("admin/practices_edit.html", practice=practice, can_edit=current_admin_may(Role.COORDINATOR))


@bp.route("/practices/<int:practice_id>", methods=["POST"])
@role_required(Role.COORDINATOR)
def practice_update(practice_id: int) -> Any:
    practice, form = _term_or_404(Practice, practice_id), request.form
    result = _save(
        "practice.update",
        "",
        lambda: taxonomy.save_practice(db(), form.get("name", ""), form.get("description", ""), practice),
        url_for("admin.practice_edit", practice_id=practice_id),
    )
    if isinstance(result, Practice):
        flash(f"The practice {result.name} is saved.", "success")
        return redirect(url_for("admin.practices"))
    return result


@bp.route("/practices/<int:practice_id>/delete", methods=["POST"])
@role_required(Role.COORDINATOR)
def practice_delete(practice_id: int) -> Any:
    practice = _term_or_404(Practice, practice_id)
    name = practice.name
    held = taxonomy.delete_term(db(), practice)
    accounts.audit(db(), current_admin(), "practice.delete", name, client_ip(), held_by=held)
    db().commit()
    flash(f"The practice {name} is deleted; {held:,} members had it.", "success")
    return redirect(url_for("admin.practices"))


@bp.route("/tags", methods=["POST"])
@role_required(Role.COORDINATOR)
def tag_create() -> Any:
    result = _save(
        "tag.create",
        "",
        lambda: taxonomy.save_tag(db(), request.form.get("name", "")),
        url_for("admin.practices"),
    )
    if isinstance(result, Tag):
        flash(f"The tag {result.name} is added.", "success")
        return redirect(url_for("admin.practices"))
    return result


@bp.route("/tags/<int:tag_id>", methods=["POST"])
@role_required(Role.COORDINATOR)
def tag_update(tag_id: int) -> Any:
    tag = _term_or_404(Tag, tag_id)
    old = tag.name
    result = _save(
        "tag.rename",
        old,
        lambda: taxonomy.save_tag(db(), request.form.get("name", ""), tag),
        url_for("admin.practices"),
        new_name=request.form.get("name", "").strip(),
    )
    if isinstance(result, Tag):
        flash(f"The tag {old} is now called {result.name}.", "success")
        return redirect(url_for("admin.practices"))
    return result


@bp.route("/tags/<int:tag_id>/delete", methods=["POST"])
@role_required(Role.COORDINATOR)
def tag_delete(tag_id: int) -> Any:
    tag = _term_or_404(Tag, tag_id)
    name = tag.name
    held = taxonomy.delete_term(db(), tag)
    accounts.audit(db(), current_admin(), "tag.delete", name, client_ip(), held_by=held)
    db().commit()
    flash(f"The tag {name} is deleted; {held:,} members had it.", "success")
    return redirect(url_for("admin.practices"))


# --- lists ----------------------------------------------------------------------------------


def _list_or_404(list_id: int) -> MailingList:
    try:
        return taxonomy.get_list(db(), list_id)
    except taxonomy.NotFound:
        abort(404)


def _list_fields() -> dict[str, Any]:
    form = request.form
    return {
        "slug": form.get("slug", ""),
        "description": form.get("description", ""),
        "opt_in": form.get("opt_in", OptIn.DOUBLE),
        "public": form.get("public") == "on",
        "form_wording": form.get("form_wording", ""),
    }


@bp.route("/lists")
@role_required(Role.VIEWER)
def lists() -> Any:
    return render_template(
        "admin/lists.html", lists=taxonomy.list_lists(db()), can_edit=current_admin_may(Role.COORDINATOR), opt_ins=OptIn
    )


@bp.route("/lists", methods=["POST"])
@role_required(Role.COORDINATOR)
def list_create() -> Any:
    result = _save(
        "list.create",
        "",
        lambda: taxonomy.save_list(db(), request.form.get("name", ""), **_list_fields()),
        url_for("admin.lists"),
    )
    if isinstance(result, MailingList):
        flash(f"The list {result.name} is created.", "success")
        return redirect(url_for("admin.lists"))
    return result


@bp.route("/lists/<int:list_id>")
@role_required(Role.VIEWER)
def list_edit(list_id: int) -> Any:
    return render_template(
        "admin/lists_edit.html", item=_list_or_404(list_id), can_edit=current_admin_may(Role.COORDINATOR), opt_ins=OptIn
    )


@bp.route("/lists/<int:list_id>", methods=["POST"])
@role_required(Role.COORDINATOR)
def list_update(list_id: int) -> Any:
    item = _list_or_404(list_id)
    result = _save(
        "list.update",
        "",
        lambda: taxonomy.save_list(db(), request.form.get("name", ""), **_list_fields(), mailing_list=item),
        url_for("admin.list_edit", list_id=list_id),
    )
    if isinstance(result, MailingList):
        flash(f"The list {result.name} is saved.", "success")
        return redirect(url_for("admin.lists"))
    return result


@bp.route("/lists/<int:list_id>/delete", methods=["POST"])
@role_required(Role.COORDINATOR)
def list_delete(list_id: int) -> Any:
    item = _list_or_404(list_id)
    name = item.name
    result = _save(
        "list.delete", name, lambda: taxonomy.delete_list(db(), item), url_for("admin.list_edit", list_id=list_id)
    )
    if result is None:
        flash(f"The list {name} is deleted.", "success")
        return redirect(url_for("admin.lists"))
    return result
