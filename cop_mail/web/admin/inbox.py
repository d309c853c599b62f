"""Inbox: unclear replies, quarantined messages and sender mismatches."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for

from cop_mail import accounts
from cop_mail.inbound import inbox as inbox_service
from cop_mail.inbound.parsing import parse_message
from cop_mail.inbound.safe_html import render_safe_html
from cop_mail.models import InboundMessage, Role
from cop_mail.web.admin import bp
from cop_mail.web.auth import client_ip, current_admin, role_required
from cop_mail.web.extensions import db, settings

PAGE_SIZE = 50


@bp.route("/inbox")
@role_required(Role.VIEWER)
def inbox() -> Any:
    folder = request.args.get("folder", "review")
    if folder not in inbox_service.FOLDERS:
        abort(404)
    page_number = max(request.args.get("page", 1, type=int) or 1, 1)
    page = inbox_service.folder_page(db(), folder, page_number, PAGE_SIZE)
    return render_template(
        "admin/inbox.html",
        folders=inbox_service.FOLDERS,
        folder=folder,
        page_data=page,
        page=page_number,
        pages=max(1, -(-page.total // PAGE_SIZE)),
    )


@bp.route("/inbox/<int:message_id>")
@role_required(Role.VIEWER)
def inbox_message(message_id: int) -> Any:
    message = db().get(InboundMessage, message_id) or abort(404)
    parsed = parse_message(message.raw)
    intents = inbox_service.INTRO_INTENTS if message.subject_kind == "intro" else inbox_service.FOLLOWUP_INTENTS
    return render_template(
        "admin/inbox_message.html",
        message=message,
        parsed=parsed,
        safe_html=render_safe_html(parsed.html) if parsed.html else "",
        intents=intents if message.subject_kind in ("intro", "followup") else (),
    )


@bp.route("/inbox/<int:message_id>", methods=["POST"])
@role_required(Role.COORDINATOR)
def inbox_act(message_id: int) -> Any:
    message = db().get(InboundMessage, message_id) or abort(404)
    action = request.form.get("action", "")
    try:
        if action == "discard":
            inbox_service.discard(message, request.form.get("note", ""))
            done = "Message discarded."
        elif action == "attach":
            member_id = inbox_service.attach_to_member(db(), message, request.form.get("email", ""))
            done = f"Attached to member #{member_id}."
        elif action == "intent":
            outcome = inbox_service.mark_intent(db(), settings(), message, request.form.get("intent", ""))
            done = f"Marked: {outcome}."
        else:
            abort(400)
    except inbox_service.InboxError as exc:
        db().rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.inbox_message", message_id=message_id))
    accounts.audit(db(), current_admin(), f"inbox.{action}", f"inbound:{message_id}", client_ip(), **_form_detail())
    db().commit()
    flash(done, "success")
    return redirect(url_for("admin.inbox_message", message_id=message_id))


def _form_detail() -> dict[str, str]:
    return {key: value for key, value in request.form.items() if key not in ("csrf_token", "action")}
