"""Public pages at the root: home and health. Signup, preferences, unsubscribe and the
archive add their views here as they arrive."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, render_template
from sqlalchemy import text

from cop_mail.web.extensions import db

bp = Blueprint("public", __name__)


@bp.route("/")
def home() -> Any:
    return render_template("public/home.html")


@bp.route("/healthz")
def health() -> Any:
    db().execute(text("SELECT 1"))
    return jsonify({"status": "ok"})
