"""Campaigns in the admin: list, a simple composer, live progress, the delivery log and steering."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import available_timezones

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import func, select

from cop_mail.models import Campaign, CampaignKind, DeliveryStatus, MailingList, Role, Segment
from cop_mail.sending import budget, jobs, report
from cop_mail.sending import campaigns as service
from cop_mail.web.admin import bp
from cop_mail.web.auth import client_ip, current_admin, role_required
from cop_mail.web.extensions import db, redis, settings

PAGE_SIZE = 50
LOG_PAGE_SIZE = 50
# Campaign kinds a coordinator starts from this page (the others come from their own pages).
KINDS = [k for k in CampaignKind if k is not CampaignKind.TRANSACTIONAL]
# The delivery log's statuses in plain words.
STATUS_WORDS = {
    DeliveryStatus.QUEUED: "queued (waiting to be sent)",
    DeliveryStatus.SENDING: "being sent",
    DeliveryStatus.SENT: "sent",
    DeliveryStatus.DEFERRED: "deferred (will retry)",
    DeliveryStatus.FAILED: "failed",
    DeliveryStatus.SUPPRESSED: "suppressed (may not receive it)",
    DeliveryStatus.UNCERTAIN: "uncertain (may have arrived)",
    DeliveryStatus.HELD: "held by the attention budget",
    DeliveryStatus.DROPPED: "dropped by the attention budget",
}


def _actor() -> str:
    admin = current_admin()
    return admin.email if admin else "unknown"


def _campaign_or_404(campaign_id: int) -> Campaign:
    campaign = service.find_campaign(db(), campaign_id)
    if campaign is None or campaign.kind == CampaignKind.TRANSACTIONAL:
        abort(404)
    return campaign


@bp.route("/campaigns")
@role_required(Role.VIEWER)
def campaigns() -> Any:
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    query = select(Campaign).where(Campaign.kind != CampaignKind.TRANSACTIONAL)
    total = db().scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db().scalars(query.order_by(Campaign.id.desc()).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
    return render_template(
        "admin/campaigns.html", campaigns=rows, page=page, pages=max(1, -(-total // PAGE_SIZE)), total=total
    )


@bp.route("/campaigns/new", methods=["GET", "POST"])
@role_required(Role.COORDINATOR)
def campaign_new() -> Any:
    form = request.form if request.method == "POST" else {}
    if request.method == "POST":
        created = _create_from_form(form)
        if created is not None:
            return redirect(url_for("admin.campaign", campaign_id=created))
    chosen = {
        "chosen_lists": set(request.form.getlist("list_ids")),
        "chosen_segments": set(request.form.getlist("segment_ids")),
    }
    status = 400 if request.method == "POST" else 200
    return render_template("admin/campaign_new.html", **_form_choices(), **chosen, form=form), status


def _form_choices() -> dict[str, Any]:
    return {
        "kinds": KINDS,
        "lists": db().scalars(select(MailingList).order_by(MailingList.name)).all(),
        "segments": db().scalars(select(Segment).order_by(Segment.name)).all(),
        "timezones": sorted(available_timezones()),
    }


def _create_from_form(form: Any) -> int | None:
    """Create, check, then send or schedule; on a problem flash it and return None (nothing is kept)."""
    session = db()
    try:
        campaign = service.create_campaign(
            session,
            name=form.get("name", ""),
            kind=form.get("kind", CampaignKind.NEWSLETTER),
            subject=form.get("subject", ""),
            preheader=form.get("preheader", ""),
            content={
                "template": "message",
                "heading": form.get("heading", "").strip(),
                "body": form.get("body", ""),
                "button": None,
            },
            list_ids=[int(i) for i in form.getlist("list_ids") if i.isdecimal()],
            segment_ids=[int(i) for i in form.getlist("segment_ids") if i.isdecimal()],
            actor=_actor(),
            resend_uncertain=form.get("resend_uncertain") == "on",
        )
        _check_content(campaign)
        when = form.get("when", "draft")
        if when == "now":
            service.send_now(session, campaign.id, _actor())
        elif when == "schedule":
            local = _parse_local(form.get("send_at", ""))
            service.schedule(session, campaign.id, local, form.get("timezone", "UTC"), _actor())
    except (service.CampaignStateError, ValueError) as exc:
        session.rollback()
        flash(str(exc), "error")
        return None
    _audit("campaign.create", campaign, when=form.get("when", "draft"))
    session.commit()
    if campaign.status == "sending":
        jobs.ring_plan(redis(), campaign.id)
    flash(f"Campaign “{campaign.name}” is {campaign.status}.", "success")
    return campaign.id


def _check_content(campaign: Campaign) -> None:
    """Compile now, so a template or Markdown problem shows in the form rather than in a worker."""
    from cop_mail.sending.pipeline import check_campaign

    check_campaign(settings(), campaign)


def _parse_local(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError("give the date and time to send, e.g. 2026-12-01 09:00") from exc


@bp.route("/campaigns/<int:campaign_id>")
@role_required(Role.VIEWER)
def campaign(campaign_id: int) -> Any:
    found = _campaign_or_404(campaign_id)
    status = request.args.get("status") or None
    search = request.args.get("q", "").strip() or None
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    rows, total = report.delivery_log(
        db(), campaign_id, status=status, search=search, page=page, per_page=LOG_PAGE_SIZE
    )
    return render_template(
        "admin/campaign.html",
        campaign=found,
        progress=report.progress(db(), campaign_id),
        budget=budget.campaign_summary(db(), campaign_id),
        format_when=budget.format_when,
        history=service.status_history(db(), campaign_id),
        rows=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // LOG_PAGE_SIZE)),
        statuses=list(DeliveryStatus),
        status_words=STATUS_WORDS,
        status=status or "",
        q=search or "",
        format_eta=report.format_eta,
        transitions=service.TRANSITIONS,
    )


@bp.route("/campaigns/<int:campaign_id>/progress.json")
@role_required(Role.VIEWER)
def campaign_progress(campaign_id: int) -> Any:
    _campaign_or_404(campaign_id)
    data = report.progress(db(), campaign_id).as_dict()
    data["eta"] = report.format_eta(data["eta_seconds"])
    return jsonify(data)


# action -> (service call, doorbell after commit, flash)
_ACTIONS: dict[str, tuple[Any, Any, str]] = {
    "send": (lambda s, cid, actor: service.send_now(s, cid, actor), jobs.ring_plan, "Sending has started."),
    "pause": (lambda s, cid, actor: service.pause(s, cid, actor), None, "Paused: no new message leaves now."),
    "resume": (lambda s, cid, actor: service.resume(s, cid, actor), jobs.ring_batches, "Sending again."),
    "cancel": (lambda s, cid, actor: service.cancel(s, cid, actor), None, "Cancelled."),
    "retry-failed": (
        lambda s, cid, actor: service.retry_failed(s, cid, actor),
        jobs.ring_batches,
        "Failed deliveries are queued again.",
    ),
}


@bp.route("/campaigns/<int:campaign_id>/<action>", methods=["POST"])
@role_required(Role.COORDINATOR)
def campaign_action(campaign_id: int, action: str) -> Any:
    found = _campaign_or_404(campaign_id)
    if action not in _ACTIONS:
        abort(404)
    change, doorbell, message = _ACTIONS[action]
    try:
        if action == "send":
            _check_content(found)
        change(db(), campaign_id, _actor())
    except (service.CampaignStateError, ValueError) as exc:
        db().rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.campaign", campaign_id=campaign_id))
    _audit(f"campaign.{action}", found)
    db().commit()
    if doorbell is not None:
        doorbell(redis(), campaign_id)
    flash(message, "success")
    return redirect(url_for("admin.campaign", campaign_id=campaign_id))


def _audit(action: str, campaign: Campaign, **detail: Any) -> None:
    from cop_mail import accounts

    accounts.audit(db(), current_admin(), action, f"campaign {campaign.id}", client_ip(), **detail)
