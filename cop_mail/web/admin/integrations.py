"""Integrations in the admin: API tokens (secret shown once) and webhooks with their delivery log.

Coordinators may look; only owners create, change, revoke, replay or delete, and every
change is in the audit log (never a secret).
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for

from cop_mail import accounts
from cop_mail.integrations import jobs as webhook_jobs
from cop_mail.integrations import tokens, webhooks
from cop_mail.integrations.events import EVENT_LABELS
from cop_mail.models import Role, WebhookDeliveryStatus
from cop_mail.web.admin import bp
from cop_mail.web.auth import client_ip, current_admin, current_admin_may, role_required
from cop_mail.web.extensions import db, redis

LOG_PAGE_SIZE = 50


def _audit(action: str, target: str, **detail: Any) -> None:
    accounts.audit(db(), current_admin(), action, target, client_ip(), **detail)


def _actor() -> str:
    admin = current_admin()
    return admin.email if admin else "unknown"


def _overview(status: int = 200, keep_form: bool = False, **extra: Any) -> Any:
    """The page; after a refused form its values are kept so nothing has to be typed again."""
    return render_template(
        "admin/integrations.html",
        api_tokens=tokens.list_tokens(db()),
        scopes=tokens.SCOPES,
        webhooks=webhooks.list_webhooks(db()),
        events=EVENT_LABELS,
        can_change=current_admin_may(Role.OWNER),
        form=request.form if keep_form else {},
        **extra,
    ), status


@bp.route("/integrations")
@role_required(Role.COORDINATOR)
def integrations() -> Any:
    return _overview()


# --- API tokens ----------------------------------------------------------------------------


@bp.route("/integrations/tokens", methods=["POST"])
@role_required(Role.OWNER)
def integrations_token_create() -> Any:
    try:
        token, secret = tokens.create_token(
            db(), request.form.get("name", ""), request.form.getlist("scopes"), _actor()
        )
    except tokens.TokenError as exc:
        db().rollback()
        flash(f"The token was not created: {exc}.", "error")
        return _overview(400, keep_form=True)
    _audit("api_token.create", f"api token {token.id}", name=token.name, scopes=token.scopes)
    db().commit()
    # Rendered, not redirected: the secret must not travel through the session cookie.
    return _overview(new_token=token, new_token_secret=secret)


@bp.route("/integrations/tokens/<int:token_id>/revoke", methods=["POST"])
@role_required(Role.OWNER)
def integrations_token_revoke(token_id: int) -> Any:
    try:
        changed = tokens.revoke_token(db(), token_id)
    except tokens.TokenNotFound:
        abort(404, "There is no API token with that number.")
    if changed:
        _audit("api_token.revoke", f"api token {token_id}")
        db().commit()
        flash("The token is revoked: requests with it are refused from now on.", "success")
    return redirect(url_for("admin.integrations"))


# --- webhooks ------------------------------------------------------------------------------


def _webhook_or_404(webhook_id: int) -> Any:
    try:
        return webhooks.get_webhook(db(), webhook_id)
    except webhooks.WebhookNotFound:
        abort(404, "There is no webhook with that number.")


@bp.route("/integrations/webhooks", methods=["POST"])
@role_required(Role.OWNER)
def integrations_webhook_create() -> Any:
    try:
        webhook = webhooks.register_webhook(
            db(),
            request.form.get("url", ""),
            request.form.getlist("events"),
            _actor(),
            description=request.form.get("description", ""),
        )
    except webhooks.WebhookError as exc:
        db().rollback()
        flash(f"The webhook was not registered: {exc}.", "error")
        return _overview(400, keep_form=True)
    _audit("webhook.create", f"webhook {webhook.id}", url=webhook.url, events=webhook.events)
    db().commit()
    return _webhook_page(webhook, new_secret=webhook.secret)


def _webhook_page(webhook: Any, status: int = 200, **extra: Any) -> Any:
    state = request.args.get("status", "")
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    rows, total = webhooks.delivery_log(db(), webhook.id, state or None, page, LOG_PAGE_SIZE)
    return render_template(
        "admin/integrations_webhook.html",
        webhook=webhook,
        events=EVENT_LABELS,
        deliveries=rows,
        total=total,
        status=state,
        statuses=list(WebhookDeliveryStatus),
        page=page,
        pages=max(1, -(-total // LOG_PAGE_SIZE)),
        can_change=current_admin_may(Role.OWNER),
        **extra,
    ), status


@bp.route("/integrations/webhooks/<int:webhook_id>")
@role_required(Role.COORDINATOR)
def integrations_webhook(webhook_id: int) -> Any:
    return _webhook_page(_webhook_or_404(webhook_id))


@bp.route("/integrations/webhooks/<int:webhook_id>", methods=["POST"])
@role_required(Role.OWNER)
def integrations_webhook_update(webhook_id: int) -> Any:
    webhook = _webhook_or_404(webhook_id)
    try:
        changed = webhooks.update_webhook(
            db(),
            webhook.id,
            url=request.form.get("url", ""),
            events=request.form.getlist("events"),
            active=request.form.get("active") == "on",
            description=request.form.get("description", ""),
        )
    except webhooks.WebhookError as exc:
        db().rollback()
        flash(f"Nothing was saved: {exc}.", "error")
        return _webhook_page(webhook, 400)
    if changed:
        _audit("webhook.update", f"webhook {webhook.id}", fields=changed, url=webhook.url, events=webhook.events)
        db().commit()
        flash("The webhook is saved.", "success")
    return redirect(url_for("admin.integrations_webhook", webhook_id=webhook.id))


@bp.route("/integrations/webhooks/<int:webhook_id>/secret", methods=["POST"])
@role_required(Role.OWNER)
def integrations_webhook_secret(webhook_id: int) -> Any:
    webhook = _webhook_or_404(webhook_id)
    webhooks.update_webhook(db(), webhook.id, rotate_secret=True)
    _audit("webhook.rotate_secret", f"webhook {webhook.id}")
    db().commit()
    return _webhook_page(webhook, new_secret=webhook.secret)


@bp.route("/integrations/webhooks/<int:webhook_id>/delete", methods=["POST"])
@role_required(Role.OWNER)
def integrations_webhook_delete(webhook_id: int) -> Any:
    webhook = _webhook_or_404(webhook_id)
    url = webhook.url
    webhooks.delete_webhook(db(), webhook.id)
    _audit("webhook.delete", f"webhook {webhook_id}", url=url)
    db().commit()
    flash("The webhook and its delivery log are deleted.", "success")
    return redirect(url_for("admin.integrations"))


@bp.route("/integrations/webhooks/<int:webhook_id>/test", methods=["POST"])
@role_required(Role.OWNER)
def integrations_webhook_test(webhook_id: int) -> Any:
    webhook = _webhook_or_404(webhook_id)
    delivery_id = webhooks.send_test(db(), webhook.id)
    _audit("webhook.test", f"webhook {webhook.id}", delivery_id=delivery_id)
    db().commit()
    webhook_jobs.ring(redis(), [delivery_id])
    flash("A test event is on its way; its answer appears in the log below.", "success")
    return redirect(url_for("admin.integrations_webhook", webhook_id=webhook.id))


@bp.route("/integrations/deliveries/<int:delivery_id>/replay", methods=["POST"])
@role_required(Role.OWNER)
def integrations_delivery_replay(delivery_id: int) -> Any:
    try:
        delivery = webhooks.replay(db(), delivery_id)
    except webhooks.DeliveryNotFound:
        abort(404, "There is no webhook delivery with that number.")
    _audit("webhook.replay", f"webhook delivery {delivery.id}", webhook_id=delivery.webhook_id, event=delivery.event)
    db().commit()
    webhook_jobs.ring(redis(), [delivery.id])
    flash(f"Delivery {delivery.id} is queued again.", "success")
    return redirect(url_for("admin.integrations_webhook", webhook_id=delivery.webhook_id))
