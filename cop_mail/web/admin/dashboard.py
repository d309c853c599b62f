"""The admin's home: how the community is doing, and what needs a coordinator now."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, render_template

from cop_mail import dashboard as summary
from cop_mail.models import Role
from cop_mail.web.admin import bp
from cop_mail.web.auth import role_required
from cop_mail.web.extensions import db


@bp.route("/")
@role_required(Role.VIEWER)
def dashboard() -> Any:
    data = summary.overview(db())
    return render_template("admin/dashboard.html", summary=data, charts=summary.dashboard_charts(data))


@bp.app_context_processor
def navigation_helpers() -> dict[str, Any]:
    return {"can_open": can_open}


def can_open(endpoint: str) -> bool:
    """Whether the signed-in account may open a page: the navigation offers only those."""
    view = current_app.view_functions.get(endpoint)
    if view is None:
        return False
    needed = getattr(view, "required_role", None)
    admin = g.get("admin")
    return needed is None or admin is None or Role(admin.role).allows(needed)
