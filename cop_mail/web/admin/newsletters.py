"""Newsletters in the admin: the list, and the composer (theme value, essay, stories, resources,
spotlight, events) with a live preview at desktop and phone widths, "preview as member", "send a
test", the pre-send checks, saving as a draft, and sending or scheduling.

The form works without JavaScript: its buttons post it back (Preview, Search, Send a test, Save).
composer.js only refreshes the preview as the coordinator types and searches the pickers in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from cop_mail import ratelimit
from cop_mail.accounts import audit
from cop_mail.compose import ComposeError, Problem
from cop_mail.compose import newsletter as composer
from cop_mail.compose.preview import PreviewResult, preview_campaign, preview_newsletter
from cop_mail.compose.test_send import send_test
from cop_mail.models import Admin, Campaign, CampaignKind, CampaignStatus, MailingList, Role, Segment, Value
from cop_mail.sending import campaigns as service
from cop_mail.sending import jobs
from cop_mail.web.admin import bp
from cop_mail.web.auth import client_ip, current_admin, role_required
from cop_mail.web.extensions import db, redis, settings

PAGE_SIZE = 50
# A pasted picture can make an essay megabytes long: let it reach the composer, which explains
# what to do, instead of failing in form parsing with a bare "too large".
COMPOSER_FORM_BYTES = 16 * 1024 * 1024
_BIG_FORMS = frozenset({"admin.newsletter_create", "admin.newsletter_update", "admin.newsletter_preview"})
TEST_SENDS_PER_HOUR = 30
FIELD_LABELS = {
    "title": "Title",
    "theme_value_id": "Value",
    "essay": "Essay",
    "essay_author": "Signature",
    "subject": "Subject",
    "preheader": "Preheader",
    "story_ids": "Stories",
    "resource_ids": "Resources",
    "spotlight_email": "Spotlight",
    "spotlight_text": "Spotlight",
    "events": "Events",
    "preview_email": "Preview as member",
    "send_at": "When",
}


@bp.url_value_preprocessor
def _allow_long_essays(endpoint: str | None, _values: dict[str, Any] | None) -> None:
    # Runs before the CSRF check reads the form, so the raised limit applies to it too.
    if endpoint in _BIG_FORMS and request.method == "POST":
        request.max_form_memory_size = COMPOSER_FORM_BYTES


def _admin() -> Admin:
    admin = current_admin()
    assert admin is not None  # role_required turned everyone else away
    return admin


def _can_edit(campaign: Campaign | None) -> bool:
    allowed = Role(_admin().role).allows(Role.COORDINATOR)
    return allowed and (campaign is None or campaign.status in composer.EDITABLE)


# --- list --------------------------------------------------------------------------------------


@bp.route("/newsletters")
@role_required(Role.VIEWER)
def newsletters() -> Any:
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    query = select(Campaign).where(Campaign.kind == CampaignKind.NEWSLETTER)
    total = db().scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db().scalars(query.order_by(Campaign.id.desc()).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
    return render_template(
        "admin/newsletters.html",
        newsletters=rows,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        total=total,
        can_create=Role(_admin().role).allows(Role.COORDINATOR),
        editable=composer.EDITABLE,
    )


# --- the composer --------------------------------------------------------------------------


def _ids(form: Any, name: str) -> list[int]:
    return [int(v) for v in form.getlist(name) if v.strip().isdecimal()][:100]


def _form_input(form: Any) -> composer.NewsletterInput:
    """Shape only: the compose package checks meaning."""
    theme = form.get("theme_value_id", "").strip()
    return composer.NewsletterInput(
        title=form.get("title", ""),
        theme_value_id=int(theme) if theme.isdecimal() else None,
        essay=form.get("essay", ""),
        essay_author=form.get("essay_author", ""),
        subject=form.get("subject", ""),
        preheader=form.get("preheader", ""),
        name=form.get("name", ""),
        story_ids=_ids(form, "story_ids"),
        resource_ids=_ids(form, "resource_ids"),
        spotlight_email=form.get("spotlight_email", ""),
        spotlight_text=form.get("spotlight_text", ""),
        events=form.get("events", ""),
        list_ids=_ids(form, "list_ids"),
        segment_ids=_ids(form, "segment_ids"),
    )


def _form_from_campaign(campaign: Campaign) -> MultiDict[str, str]:
    data = composer.input_from_campaign(campaign)
    form: MultiDict[str, str] = MultiDict(
        {
            "title": data.title,
            "theme_value_id": str(data.theme_value_id or ""),
            "essay": data.essay,
            "essay_author": data.essay_author,
            "subject": data.subject,
            "preheader": data.preheader,
            "name": data.name,
            "spotlight_email": composer.spotlight_email(db(), data.spotlight_member_id),
            "spotlight_text": data.spotlight_text,
            "events": data.events,
            "when": "schedule" if campaign.status == CampaignStatus.SCHEDULED else "draft",
            "timezone": campaign.schedule_timezone or "UTC",
            "send_at": _local_send_at(campaign),
        }
    )
    for name, ids in (
        ("story_ids", data.story_ids),
        ("resource_ids", data.resource_ids),
        ("list_ids", data.list_ids),
        ("segment_ids", data.segment_ids),
    ):
        form.setlist(name, [str(i) for i in ids])
    return form


def _local_send_at(campaign: Campaign) -> str:
    """A scheduled time back in the coordinator's zone, as the datetime-local field wants it."""
    if campaign.status != CampaignStatus.SCHEDULED or campaign.scheduled_at is None:
        return ""
    try:
        zone = ZoneInfo(campaign.schedule_timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return campaign.scheduled_at.astimezone(zone).strftime("%Y-%m-%dT%H:%M")


def _page(
    form: Any,
    campaign: Campaign | None,
    preview: PreviewResult | None,
    problems: Sequence[Problem] = (),
    code: int = 200,
) -> Any:
    session = db()
    problems = list(problems) + (preview.errors if preview else [])
    by_field: dict[str, list[str]] = {}
    for problem in problems:
        message = f"Line {problem.line}: {problem.message}" if problem.line else problem.message
        by_field.setdefault(problem.field or "", []).append(message)
    story_ids, resource_ids = _ids(form, "story_ids"), _ids(form, "resource_ids")
    return render_template(
        "admin/newsletter_compose.html",
        form=form,
        campaign=campaign,
        preview=preview,
        problems=problems,
        by_field=by_field,
        labels=FIELD_LABELS,
        can_edit=_can_edit(campaign),
        admin=_admin(),
        values=session.scalars(select(Value).order_by(Value.position, Value.name)).all(),
        stories=composer.story_choices(session, form.get("story_q", "")[:200], include=story_ids),
        resources=composer.resource_choices(session, form.get("resource_q", "")[:200], include=resource_ids),
        picked_stories={str(i) for i in story_ids},
        picked_resources={str(i) for i in resource_ids},
        lists=session.scalars(select(MailingList).order_by(MailingList.name)).all(),
        segments=session.scalars(select(Segment).order_by(Segment.name)).all(),
        timezones=sorted(available_timezones()),
    ), code


@bp.route("/newsletters/new")
@role_required(Role.COORDINATOR)
def newsletter_new() -> Any:
    form: MultiDict[str, str] = MultiDict({"when": "draft", "timezone": "UTC"})
    return _page(form, None, None)


@bp.route("/newsletters/<int:campaign_id>")
@role_required(Role.VIEWER)
def newsletter(campaign_id: int) -> Any:
    campaign = composer.find_newsletter(db(), campaign_id)
    if campaign is None:
        abort(404)
    return _page(_form_from_campaign(campaign), campaign, preview_campaign(db(), settings(), campaign))


@bp.route("/newsletters/new", methods=["POST"])
@role_required(Role.COORDINATOR)
def newsletter_create() -> Any:
    return _act(None)


@bp.route("/newsletters/<int:campaign_id>", methods=["POST"])
@role_required(Role.COORDINATOR)
def newsletter_update(campaign_id: int) -> Any:
    campaign = composer.find_newsletter(db(), campaign_id)
    if campaign is None:
        abort(404)
    return _act(campaign)


def _act(campaign: Campaign | None) -> Any:
    form = request.form
    action = form.get("action", "preview")
    if action == "save":
        return _save(form, campaign)
    if action == "test":
        return _test(form, campaign)
    # "preview" and "search": show the form again with a fresh preview (and filtered pickers).
    return _page(form, campaign, _preview(form, campaign))


def _preview(form: Any, campaign: Campaign | None) -> PreviewResult:
    return preview_newsletter(
        db(), settings(), _form_input(form), form.get("preview_email", ""), campaign.id if campaign else None
    )


def _test(form: Any, campaign: Campaign | None) -> Any:
    admin = _admin()
    session = db()
    if not ratelimit.hit(redis(), f"newsletter-test:{admin.id}", TEST_SENDS_PER_HOUR, 3600):
        flash(f"You have sent {TEST_SENDS_PER_HOUR} tests this hour; wait a while before the next.", "error")
        return _page(form, campaign, _preview(form, campaign), code=429)
    try:
        info = composer.newsletter_info(session, settings(), _form_input(form), campaign.id if campaign else None)
        target = f"campaign {campaign.id}" if campaign else "newsletter draft"
        result = send_test(session, settings(), info, admin, ip=client_ip(), target=target)
    except ComposeError as exc:
        session.rollback()
        return _page(form, campaign, None, exc.problems, 400)
    session.commit()
    if result.sent:
        flash(f"A test went to {result.to}: “{result.subject}”.", "success")
    else:
        flash(f"The test could not be sent to {result.to}. The mail server said: {result.reply}", "error")
    return _page(form, campaign, _preview(form, campaign), code=200 if result.sent else 502)


def _save(form: Any, campaign: Campaign | None) -> Any:
    session = db()
    actor = _admin().email
    try:
        saved = composer.save_newsletter(
            session, settings(), _form_input(form), actor, campaign.id if campaign else None
        )
    except ComposeError as exc:
        session.rollback()
        return _page(form, campaign, None, exc.problems, 400)
    action = "newsletter.create" if campaign is None else "newsletter.update"
    audit(session, _admin(), action, f"campaign {saved.id}", client_ip(), status=saved.status)
    session.commit()
    when = form.get("when", "draft")
    if when not in ("now", "schedule"):
        flash("Saved as a draft.", "success")
        return redirect(url_for("admin.newsletter", campaign_id=saved.id))
    try:
        _send_or_schedule(saved, when, form)
    except (service.CampaignStateError, ValueError) as exc:
        session.rollback()
        problem = Problem("send_at" if when == "schedule" else None, None, str(exc))
        flash("Saved as a draft; it was not sent or scheduled: see below.", "error")
        return _page(form, saved, preview_campaign(session, settings(), saved), [problem], 400)
    action = "newsletter.send" if when == "now" else "newsletter.schedule"
    audit(session, _admin(), action, f"campaign {saved.id}", client_ip(), status=saved.status)
    session.commit()
    if saved.status == CampaignStatus.SENDING:
        jobs.ring_plan(redis(), saved.id)
    flash(f"“{saved.name}” is {saved.status}.", "success")
    return redirect(url_for("admin.campaign", campaign_id=saved.id))


def _send_or_schedule(campaign: Campaign, when: str, form: Any) -> None:
    """The same checks as the campaign page: compile and pre-send checks, then the status change."""
    from cop_mail.sending.pipeline import check_campaign

    session, actor = db(), _admin().email
    check_campaign(settings(), campaign)
    if when == "now":
        service.send_now(session, campaign.id, actor)
        return
    text = form.get("send_at", "").strip()
    try:
        local = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("give the date and time to send, e.g. 2026-12-01 09:00") from None
    service.schedule(session, campaign.id, local, form.get("timezone", "UTC"), actor)


# --- JSON for composer.js ----------------------------------------------------------------------


@bp.route("/newsletters/preview", methods=["POST"])
@role_required(Role.VIEWER)
def newsletter_preview() -> Any:
    """The live preview: never changes anything, so viewers may use it too."""
    campaign_id = request.args.get("campaign_id", type=int)
    campaign = composer.find_newsletter(db(), campaign_id) if campaign_id else None
    data = _preview(request.form, campaign).as_dict()
    db().rollback()  # nothing a preview loads is kept
    for error in data["errors"]:  # name the form's field as the form labels it
        label = FIELD_LABELS.get(error["field"] or "", error["field"])
        error["text"] = Problem(label, error["line"], error["message"]).describe()
    return jsonify(data)


@bp.route("/newsletters/search")
@role_required(Role.VIEWER)
def newsletter_search() -> Any:
    kind = request.args.get("kind", "stories")
    query = request.args.get("q", "")[:200]
    include = [int(i) for i in request.args.getlist("include") if i.isdecimal()][:100]
    if kind == "stories":
        results = composer.story_choices(db(), query, value_id=request.args.get("value", type=int), include=include)
    elif kind == "resources":
        results = composer.resource_choices(db(), query, include=include)
    elif kind == "members":
        results = composer.member_choices(db(), query)
    else:
        abort(404)
    return jsonify({"kind": kind, "query": query, "results": results})
