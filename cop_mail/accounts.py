"""Coordinator accounts and the audit log."""

from __future__ import annotations

import secrets
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from cop_mail.db import utcnow
from cop_mail.models import Admin, AuditEvent, Role

MIN_PASSWORD_LENGTH = 10
# Compared against when the email is unknown, so a wrong address costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not-a-real-password", method="scrypt")


class AccountError(ValueError):
    pass


def generate_password() -> str:
    return secrets.token_urlsafe(15)


def normalise_admin_email(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise AccountError(f"{email!r} is not a valid email address: {exc}") from exc


def create_admin(session: Session, email: str, password: str, role: Role = Role.COORDINATOR, name: str = "") -> Admin:
    address = normalise_admin_email(email)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters long")
    if find_admin_by_email(session, address):
        raise AccountError(f"an account for {address} already exists")
    admin = Admin(
        email=address, name=name, role=Role(role), password_hash=generate_password_hash(password, method="scrypt")
    )
    session.add(admin)
    session.flush()
    return admin


def find_admin_by_email(session: Session, email: str) -> Admin | None:
    return session.scalar(select(Admin).where(Admin.email == email.strip().lower()))


def count_admins(session: Session) -> int:
    return session.scalar(select(func.count(Admin.id))) or 0


def authenticate(session: Session, email: str, password: str) -> Admin | None:
    admin = find_admin_by_email(session, email)
    if admin is None or not admin.active:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(admin.password_hash, password):
        return None
    admin.last_login_at = utcnow()
    return admin


def set_password(admin: Admin, password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters long")
    admin.password_hash = generate_password_hash(password, method="scrypt")


def change_password(admin: Admin, current: str, new: str, repeated: str) -> None:
    """A coordinator changing their own password must know the current one."""
    if not check_password_hash(admin.password_hash, current):
        raise AccountError("the current password is not right")
    if new != repeated:
        raise AccountError("the two new passwords are not the same")
    if new == current:
        raise AccountError("the new password is the same as the current one")
    set_password(admin, new)


def audit(
    session: Session, actor: Admin | str | None, action: str, target: str = "", ip: str | None = None, **detail: Any
) -> AuditEvent:
    """Record an admin action; the caller's commit makes it durable together with the action itself."""
    event = AuditEvent(
        admin_id=actor.id if isinstance(actor, Admin) else None,
        actor=actor.email if isinstance(actor, Admin) else (actor or "system"),
        action=action,
        target=target,
        ip=ip,
        detail=detail,
    )
    session.add(event)
    return event
