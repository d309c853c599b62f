"""Engagement tracking links: the open pixel and click redirects, signed per delivery.

The pixel always answers with a 1x1 GIF that nobody caches, whatever its token (a broken image
in someone's mail helps nobody); it records only for a valid token while tracking is on.
A click redirects only to a link stored for the campaign of the delivery its token names;
a tampered token or a position that message never had gets a plain 404 and no redirect. A link
sent while tracking was on keeps working after it is switched off, but records nothing.
Nothing about the request is kept beyond a coarse client family (never the IP address).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, abort, redirect, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.urls import iri_to_uri

from cop_mail import community
from cop_mail.tokens import TokenError
from cop_mail.tracking import record
from cop_mail.tracking.links import read_delivery_token
from cop_mail.web.extensions import db, settings

bp = Blueprint("tracking", __name__, url_prefix="/t")
log = logging.getLogger("cop_mail.web.tracking")

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0, private",
    "Pragma": "no-cache",
    "Expires": "0",
    "Referrer-Policy": "no-referrer",
}
NOWHERE = "This link does not lead anywhere. It may have been changed or cut short when it was copied."
LARGEST_POSITION = 2**31 - 1  # the column is a 32-bit integer on PostgreSQL


def _delivery_id(token: str) -> int | None:
    try:
        return read_delivery_token(settings().secret_key, token)
    except TokenError:
        return None


def _hit() -> record.Hit:
    return record.Hit(user_agent=request.headers.get("User-Agent", "")[:500], method=request.method)


@bp.route("/o/<token>.gif", methods=["GET"])
def pixel(token: str) -> Any:
    delivery_id = _delivery_id(token)
    if delivery_id is not None:
        _count(lambda: record.record_open(db(), delivery_id, _hit()))
    return Response(PIXEL, mimetype="image/gif", headers=NO_STORE)


@bp.route("/c/<token>/<int:position>", methods=["GET"])
def click(token: str, position: int) -> Any:
    delivery_id = _delivery_id(token)
    if delivery_id is None or position > LARGEST_POSITION:
        abort(404, NOWHERE)
    link = record.find_link(db(), delivery_id, position)
    if link is None:
        abort(404, NOWHERE)
    url = link.url
    _count(lambda: record.record_click(db(), delivery_id, link, _hit()))
    response = redirect(iri_to_uri(url), 302)
    response.headers.update(NO_STORE)
    return response


def _count(record_hit: Callable[[], object]) -> None:
    """Record a hit if the community tracks; a failure to count never fails the member's request."""
    session = db()
    try:
        if community.load(session).tracking_enabled:
            record_hit()
            session.commit()
    except SQLAlchemyError:
        session.rollback()
        log.exception("a tracking hit could not be recorded")
