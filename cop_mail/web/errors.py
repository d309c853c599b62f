"""Errors in plain words, as HTML for people and JSON under /api/."""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

MESSAGES = {
    400: "The request could not be understood.",
    403: "Your account is not allowed to do that. Ask an owner of this community if you need it.",
    404: "There is nothing at this address.",
    405: "That action is not available here.",
    413: "The upload is too large.",
    429: "Too many attempts. Please wait a few minutes and try again.",
    500: "Something went wrong on our side. The error was logged.",
}


def register(app: Flask) -> None:
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)


def _respond(code: int, message: str, headers: list[tuple[str, str]] | None = None) -> ResponseReturnValue:
    if request.path.startswith("/api/"):
        return jsonify({"error": {"code": code, "message": message}}), code, headers or []
    return render_template("error.html", code=code, message=message), code, headers or []


def _csrf_error(exc: CSRFError) -> ResponseReturnValue:
    return _respond(400, "This form has expired or did not come from this site. Reload the page and try again.")


def _http_error(exc: HTTPException) -> ResponseReturnValue:
    code = exc.code or 500
    description = exc.description if exc.description and not exc.description.startswith(("The ", "You ")) else None
    # Keep headers such as Allow (405) and Retry-After (429), but not the default content type.
    kept = [(name, value) for name, value in exc.get_headers() if name.lower() != "content-type"]
    return _respond(code, description or MESSAGES.get(code, exc.name), kept)
