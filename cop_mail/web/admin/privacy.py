"""Owner-only GDPR actions on one member: download their data, erase them."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for

from cop_mail import accounts
from cop_mail.audience import privacy
from cop_mail.audience.consent import MemberEventKind, record_member_event
from cop_mail.models import Member, MemberStatus, Role
from cop_mail.web.admin import bp
from cop_mail.web.auth import client_ip, current_admin, role_required
from cop_mail.web.extensions import db

ERASE_CONFIRMATION = "erase"


def _member(member_id: int) -> Member:
    member = db().get(Member, member_id)
    if member is None:
        abort(404, "There is no member with that number.")
    return member


@bp.route("/members/<int:member_id>/privacy")
@role_required(Role.OWNER)
def member_privacy(member_id: int) -> Any:
    member = _member(member_id)
    return render_template(
        "admin/member_privacy.html",
        member=member,
        erased=member.status == MemberStatus.ERASED,
        confirmation=ERASE_CONFIRMATION,
    )


@bp.route("/members/<int:member_id>/export.json")
@role_required(Role.OWNER)
def member_export_data(member_id: int) -> Any:
    member = _member(member_id)
    data = privacy.export_member(db(), member.id)
    record_member_event(db(), member.id, MemberEventKind.DATA_EXPORTED, by=current_admin().email)  # type: ignore[union-attr]
    # The audit names the member by id only: the log must not hold personal data.
    accounts.audit(db(), current_admin(), "member.export", f"member:{member.id}", client_ip())
    db().commit()
    body = json.dumps(data, ensure_ascii=False, indent=2, sort_keys=False)
    response = Response(body, mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="member-{member.id}-data.json"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/members/<int:member_id>/erase", methods=["POST"])
@role_required(Role.OWNER)
def member_erase(member_id: int) -> Any:
    member = _member(member_id)
    if request.form.get("confirm", "").strip().lower() != ERASE_CONFIRMATION:
        flash(f'Type "{ERASE_CONFIRMATION}" in the box to erase this member. Nothing was changed.', "error")
        return redirect(url_for("admin.member_privacy", member_id=member.id))
    actor = current_admin()
    erased = privacy.erase_member(db(), member.id, actor=actor.email if actor else "system")
    if erased:
        accounts.audit(db(), actor, "member.erase", f"member:{member.id}", client_ip())
    db().commit()
    flash(
        "The member's personal data is erased; their address stays suppressed (as a hash only)."
        if erased
        else "This member was already erased.",
        "success",
    )
    return redirect(url_for("admin.member_privacy", member_id=member.id))
