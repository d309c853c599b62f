"""Engagement tracking links: the open pixel and click redirects, signed per delivery."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("tracking", __name__, url_prefix="/t")
