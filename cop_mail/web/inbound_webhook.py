"""Raw MIME from a provider's inbound webhook, for hosts that cannot run the SMTP receiver.

Authenticated with `Authorization: Bearer <INBOUND_WEBHOOK_SECRET>`; disabled when
the secret is unset. The message is stored and committed before anything else,
exactly like mail arriving over SMTP.
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, abort, jsonify, request

from cop_mail.inbound import store
from cop_mail.web.extensions import csrf, db, redis, settings

bp = Blueprint("inbound_webhook", __name__, url_prefix="/api/inbound")
csrf.exempt(bp)


@bp.route("/raw", methods=["POST"])
def receive_raw() -> Any:
    secret = settings().inbound_webhook_secret
    if not secret:
        abort(404)
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), secret.encode()):
        return jsonify({"error": {"code": 401, "message": "A valid bearer token is required."}}), 401
    if (request.content_length or 0) > settings().inbound_max_bytes:
        abort(413)
    raw = request.get_data(cache=False)
    if not raw.strip():
        return jsonify({"error": {"code": 400, "message": "The request body must be a raw MIME message."}}), 400
    recipients = request.args.getlist("to")
    sender = request.args.get("from", "")
    if any("\x00" in value or len(value) > 500 for value in (*recipients, sender)):
        return jsonify({"error": {"code": 400, "message": "Envelope addresses must be plain text."}}), 400
    message = store.save_raw(db(), raw, sender, recipients, "webhook")
    db().commit()
    store.enqueue_processing(redis(), message.id)
    return jsonify({"id": message.id, "status": "received"}), 202
