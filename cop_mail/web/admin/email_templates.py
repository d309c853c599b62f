"""The email templates in the admin: every kind with its sample data, previewed at 600 and 375 px.

A template a designer broke shows its file, line and message here rather than a server error.
"""

from __future__ import annotations

from typing import Any

from flask import abort, render_template

from cop_mail.compose.preview import preview_kind
from cop_mail.models import Role
from cop_mail.rendering import EMAIL_KINDS
from cop_mail.web.admin import bp
from cop_mail.web.auth import role_required
from cop_mail.web.extensions import settings


@bp.route("/email-templates")
@role_required(Role.VIEWER)
def email_templates() -> Any:
    kinds = sorted(EMAIL_KINDS.values(), key=lambda kind: (kind.stream, kind.title))
    previews = {kind.name: preview_kind(settings(), kind.name) for kind in kinds}
    return render_template("admin/email_templates.html", kinds=kinds, previews=previews)


@bp.route("/email-templates/<kind>")
@role_required(Role.VIEWER)
def email_template(kind: str) -> Any:
    if kind not in EMAIL_KINDS:
        abort(404)
    return render_template("admin/email_template.html", kind=EMAIL_KINDS[kind], preview=preview_kind(settings(), kind))
