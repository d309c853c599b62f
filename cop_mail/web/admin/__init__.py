"""The coordinators' admin. Every view declares its least role with @role_required."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, redirect, request, url_for

from cop_mail.web.auth import current_admin

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def require_login_and_role() -> Any:
    if current_admin() is None:
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or not hasattr(view, "required_role"):
        # Fail closed: an admin view that forgot to declare its role is not served.
        abort(403)
    return None


# Each module registers its views on `bp`.
from cop_mail.web.admin import (  # noqa: E402,F401
    account,
    audit_log,
    campaigns,
    community_settings,
    coverage,
    dashboard,
    email_templates,
    imports,
    inbox,
    integrations,
    intros,
    journeys,
    members,
    newsletters,
    outbox,
    privacy,
    reports,
    resources,
    segments,
    stories,
    taxonomy,
    team,
)
