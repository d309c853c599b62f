"""The signed-in coordinator's own account: password and email notices."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from cop_mail import accounts
from cop_mail.models import Role
from cop_mail.web.admin import bp
from cop_mail.web.auth import client_ip, current_admin, role_required, start_session
from cop_mail.web.extensions import db


@bp.route("/account")
@role_required(Role.VIEWER)
def account() -> Any:
    return render_template("admin/account.html", admin=current_admin(), min_length=accounts.MIN_PASSWORD_LENGTH)


@bp.route("/account/password", methods=["POST"])
@role_required(Role.VIEWER)
def account_password() -> Any:
    admin = current_admin()
    assert admin is not None
    try:
        accounts.change_password(
            admin,
            request.form.get("current_password", ""),
            request.form.get("new_password", ""),
            request.form.get("repeat_password", ""),
        )
    except accounts.AccountError as exc:
        db().rollback()
        flash(f"The password was not changed: {exc}.", "error")
        return redirect(url_for("admin.account"))
    accounts.audit(db(), admin, "admin.password_changed", admin.email, client_ip())
    db().commit()
    start_session(admin)  # this browser stays signed in; every other session of the account ends
    flash("Your password is changed. Any other place you were logged in has been logged out.", "success")
    return redirect(url_for("admin.account"))


@bp.route("/account/notices", methods=["POST"])
@role_required(Role.VIEWER)
def account_notices() -> Any:
    admin = current_admin()
    assert admin is not None
    admin.email_notices = request.form.get("email_notices") == "1"
    accounts.audit(db(), admin, "admin.notices", admin.email, client_ip(), on=admin.email_notices)
    db().commit()
    off = "Notices are off: we will not email you about your work."
    flash("Notices are on." if admin.email_notices else off, "success")
    return redirect(url_for("admin.account"))
