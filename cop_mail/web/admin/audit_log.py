from __future__ import annotations

from typing import Any

from flask import render_template, request
from sqlalchemy import func, select

from cop_mail.models import AuditEvent, Role
from cop_mail.web.admin import bp
from cop_mail.web.auth import role_required
from cop_mail.web.extensions import db

PAGE_SIZE = 50


@bp.route("/audit")
@role_required(Role.OWNER)
def audit_log() -> Any:
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    total = db().scalar(select(func.count(AuditEvent.id))) or 0
    events = (
        db()
        .scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE))
        .all()
    )
    return render_template("admin/audit.html", events=events, page=page, pages=max(1, -(-total // PAGE_SIZE)))
