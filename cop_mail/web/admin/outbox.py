"""The Outbox: messages caught by the local mail catcher of the embedded default."""

from __future__ import annotations

from typing import Any

from flask import abort, render_template, request

from cop_mail import mailcatcher
from cop_mail.models import Role
from cop_mail.web.admin import bp
from cop_mail.web.auth import role_required
from cop_mail.web.extensions import settings

PAGE_SIZE = 50


@bp.route("/outbox")
@role_required(Role.VIEWER)
def outbox() -> Any:
    folder = settings().outbox_dir
    if folder is None:
        return render_template("admin/outbox.html", messages=[], total=0, page=1, pages=1, configured=False)
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    total, messages = mailcatcher.list_messages(folder, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    return render_template(
        "admin/outbox.html",
        messages=messages,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        configured=True,
    )


@bp.route("/outbox/<key>")
@role_required(Role.VIEWER)
def outbox_message(key: str) -> Any:
    folder = settings().outbox_dir
    caught = mailcatcher.find_message(folder, key) if folder else None
    if caught is None:
        abort(404)
    text, html = caught.bodies()
    return render_template("admin/outbox_message.html", caught=caught, text=text, html=html)
