"""The JSON API under /api/. Token-authenticated, so exempt from the form CSRF check."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from cop_mail import __version__
from cop_mail.web.extensions import csrf

bp = Blueprint("api", __name__, url_prefix="/api")
csrf.exempt(bp)


@bp.route("/")
def index() -> Any:
    return jsonify({"name": "cop-mail", "version": __version__})
