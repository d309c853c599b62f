"""The community's settings page: engagement tracking and the attention budget.

Everyone signed in may read it; only owners change it. The operator's environment settings that
shape the mail (name, address, server, DKIM) are shown beside them, read-only and never a secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from flask import flash, redirect, render_template, request, url_for

from cop_mail import accounts, community
from cop_mail.community import CommunityPrefs, OverBudget
from cop_mail.models import Role, Stream
from cop_mail.sending import budget
from cop_mail.web.admin import bp
from cop_mail.web.auth import client_ip, current_admin, current_admin_may, role_required
from cop_mail.web.extensions import db, settings

MAX_EMAILS = 100
WINDOW_DAYS = (1, 31)
# The streams a budget can hold back, highest priority first, with the words the page uses.
BUDGET_STREAMS = (
    (Stream.INTROS, "Introductions"),
    (Stream.ROUNDUPS, "Story roundups"),
    (Stream.NEWSLETTERS, "Newsletters"),
    (Stream.RESOURCES, "Resources"),
)


@bp.route("/settings", endpoint="settings")
@role_required(Role.VIEWER)
def settings_page() -> Any:
    return _page(community.load(db()))


@bp.route("/settings", methods=["POST"])
@role_required(Role.OWNER)
def settings_save() -> Any:
    before = community.load(db())
    changes, errors = read_form(request.form)
    if errors:
        flash("Nothing was saved: " + " ".join(errors.values()), "error")
        return _page(before, form=request.form, errors=errors, status=400)
    after = community.update(db(), _actor(), **changes)
    changed = {key: value for key, value in asdict(after).items() if asdict(before)[key] != value}
    if not changed:
        db().rollback()
        flash("Nothing changed.", "info")
        return redirect(url_for("admin.settings"))
    if _budget_changed(before, after):
        # Held mail is checked against the new budget at the next sending pass.
        budget.release_held(db())
    accounts.audit(db(), current_admin(), "settings.update", "community settings", client_ip(), changed=changed)
    db().commit()
    flash("The settings are saved.", "success")
    return redirect(url_for("admin.settings"))


def read_form(form: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(changes for community.update, field -> plain-words problem)."""
    errors: dict[str, str] = {}
    cap = _whole_number(form.get("budget_max_emails", ""), 0, MAX_EMAILS)
    if cap is None:
        errors["budget_max_emails"] = f"Give the most emails a member gets as a whole number from 0 to {MAX_EMAILS}."
    days = _whole_number(form.get("budget_window_days", ""), *WINDOW_DAYS)
    if days is None:
        errors["budget_window_days"] = "Give the number of days as a whole number from 1 to 31."
    over: dict[str, str] = {}
    for stream, label in BUDGET_STREAMS:
        choice = form.get(f"over_{stream.value}", "")
        if choice not in OverBudget.CHOICES:
            errors[f"over_{stream.value}"] = f"Choose whether {label.lower()} over the budget wait or are dropped."
        over[stream.value] = choice
    changes = {
        "tracking_enabled": form.get("tracking_enabled") == "on",
        "budget_max_emails": cap,
        "budget_window_days": days,
        "budget_over": over,
    }
    return changes, errors


def _whole_number(text: str, low: int, high: int) -> int | None:
    # int(), not str.isdigit(): "²" is a digit to isdigit but no number to int.
    try:
        number = int(text.strip())
    except ValueError:
        return None
    return number if low <= number <= high else None


def _budget_changed(before: CommunityPrefs, after: CommunityPrefs) -> bool:
    keys = ("budget_max_emails", "budget_window_days", "budget_over")
    return any(getattr(before, key) != getattr(after, key) for key in keys)


def _page(
    prefs: CommunityPrefs,
    *,
    form: Mapping[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Any:
    return render_template(
        "admin/settings.html",
        prefs=prefs,
        form=form,
        errors=errors or {},
        streams=BUDGET_STREAMS,
        max_emails=MAX_EMAILS,
        window_days=WINDOW_DAYS,
        can_change=current_admin_may(Role.OWNER),
        environment=_environment(),
    ), status


def _environment() -> list[tuple[str, str]]:
    """What the operator set that shapes the mail; secrets (passwords, keys) are never shown."""
    env = settings()
    dkim = (
        f"on (selector {env.dkim_selector}, domain {env.dkim_domain or env.mail_domain})"
        if env.dkim_private_key and env.dkim_selector
        else "off"
    )
    return [
        ("Community name", env.community_name),
        ("Public address", env.public_url),
        ("Mail from", env.mail_from),
        ("Mail domain", env.mail_domain),
        ("Mail server (SMTP)", f"{env.smtp_host}:{env.smtp_port}, encryption: {env.smtp_tls}"),
        ("DKIM signing", dkim),
    ]


def _actor() -> str:
    admin = current_admin()
    return admin.email if admin else "unknown"
