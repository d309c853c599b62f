from __future__ import annotations

from typing import Any

from flask import render_template

from cop_mail.models import Role
from cop_mail.web.admin import bp
from cop_mail.web.auth import role_required
from cop_mail.web.extensions import db


@bp.route("/")
@role_required(Role.VIEWER)
def dashboard() -> Any:
    from cop_mail import dashboard as summary

    return render_template("admin/dashboard.html", summary=summary.overview(db()))
