"""Owner-only management of coordinator accounts."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import select

from cop_mail import accounts
from cop_mail.models import Admin, Role
from cop_mail.web.admin import bp
from cop_mail.web.auth import client_ip, current_admin, role_required
from cop_mail.web.extensions import db


@bp.route("/team")
@role_required(Role.OWNER)
def team() -> Any:
    admins = db().scalars(select(Admin).order_by(Admin.email)).all()
    return render_template("admin/team.html", admins=admins, roles=list(Role))


@bp.route("/team", methods=["POST"])
@role_required(Role.OWNER)
def team_add() -> Any:
    password = accounts.generate_password()
    try:
        role = Role(request.form.get("role", ""))
        admin = accounts.create_admin(
            db(), request.form.get("email", ""), password, role, request.form.get("name", "").strip()
        )
    except (ValueError, accounts.AccountError) as exc:
        flash(str(exc) if isinstance(exc, accounts.AccountError) else "Choose a role.", "error")
        return redirect(url_for("admin.team"))
    accounts.audit(db(), current_admin(), "admin.create", admin.email, client_ip(), role=role.value)
    db().commit()
    flash(f"Account created for {admin.email}. Their one-time password is: {password}", "success")
    return redirect(url_for("admin.team"))
