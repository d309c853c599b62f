"""Login, logout and role checks for the admin."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for

from cop_mail import accounts, ratelimit
from cop_mail.models import Admin, Role
from cop_mail.web.extensions import db, redis, settings

bp = Blueprint("auth", __name__)
F = TypeVar("F", bound=Callable[..., Any])
LOGIN_WINDOW_SECONDS = 15 * 60


def role_required(role: Role) -> Callable[[F], F]:
    """Declare the least role a view needs; the admin blueprint refuses views that declare none."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            admin = current_admin()
            if admin is None:
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            if not Role(admin.role).allows(role):
                abort(403)
            return view(*args, **kwargs)

        wrapper.required_role = role  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def current_admin() -> Admin | None:
    if "admin" not in g:
        admin_id = session.get("admin_id")
        admin = db().get(Admin, admin_id) if admin_id else None
        # A password change invalidates every other session of that account.
        if admin and (not admin.active or session.get("pw") != admin.password_hash[-16:]):
            admin = None
        g.admin = admin
    return g.admin


def current_admin_may(role: Role) -> bool:
    """Whether the signed-in account's role reaches `role` (to show or hide what it may change)."""
    admin = current_admin()
    return admin is not None and Role(admin.role).allows(role)


def start_session(admin: Admin) -> None:
    """Sign `admin` in on this browser; the password mark ends sessions older than a password change."""
    session.clear()
    session.permanent = True
    session["admin_id"] = admin.id
    session["pw"] = admin.password_hash[-16:]
    g.admin = admin


def client_ip() -> str:
    return request.remote_addr or "unknown"


def safe_next(target: str | None) -> str:
    """Only same-site paths: no scheme, no host, no protocol-relative or backslash tricks."""
    default = url_for("admin.dashboard")
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if "\\" in target or any(ord(c) < 32 for c in target):
        return default
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET":
        return render_template("login.html", next=request.args.get("next", ""))
    email = request.form.get("email", "").strip().lower()
    limit = settings().login_attempts_per_15_min
    if not (
        ratelimit.hit(redis(), f"login-ip:{client_ip()}", limit * 5, LOGIN_WINDOW_SECONDS)
        and ratelimit.hit(redis(), f"login-email:{email}", limit, LOGIN_WINDOW_SECONDS)
    ):
        abort(429)
    admin = accounts.authenticate(db(), email, request.form.get("password", ""))
    if admin is None:
        flash("That email and password do not match an account.", "error")
        return render_template("login.html", next=request.form.get("next", ""), email=email), 401
    ratelimit.reset(redis(), f"login-email:{email}", LOGIN_WINDOW_SECONDS)
    start_session(admin)
    accounts.audit(db(), admin, "login", ip=client_ip())
    db().commit()
    return redirect(safe_next(request.form.get("next")))


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    admin = current_admin()
    if admin is not None:
        accounts.audit(db(), admin, "logout", ip=client_ip())
        db().commit()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))
