"""Story moderation and roundups: the Illuminate side of the admin."""

from __future__ import annotations

import logging
from typing import Any

from flask import abort, flash, redirect, render_template, request, send_file, url_for
from sqlalchemy import func, select

from cop_mail.db import utcnow
from cop_mail.models import (
    Admin,
    MailingList,
    Member,
    Practice,
    Role,
    RoundupFrequency,
    RoundupSchedule,
    RoundupStatus,
    Segment,
    Story,
    StoryConsent,
    StoryImage,
    StoryStatus,
    Value,
)
from cop_mail.sending.campaigns import CampaignStateError, send_now
from cop_mail.stories import images, moderation, notify, roundups
from cop_mail.stories.submissions import CONSENT_LABELS
from cop_mail.web.admin import bp
from cop_mail.web.auth import client_ip, current_admin, role_required
from cop_mail.web.extensions import db, redis, settings

log = logging.getLogger("cop_mail.web.admin.stories")
PAGE_SIZE = 30
STATUS_LABELS = {
    StoryStatus.SUBMITTED: "To moderate",
    StoryStatus.PENDING_AUTHOR_CONFIRMATION: "Waiting for the author",
    StoryStatus.DRAFT: "Prompt replies",
    StoryStatus.APPROVED: "Approved",
    StoryStatus.REJECTED: "Rejected",
    StoryStatus.WITHDRAWN: "Withdrawn",
}
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
NTH = {1: "first", 2: "second", 3: "third", 4: "fourth", -1: "last"}


def _after_commit_notify(delivery_id: int | None) -> None:
    """Ring the transactional doorbell; if Redis is away, its reconciler sends the message later."""
    if delivery_id is None:
        flash("The author cannot receive email, so they were not asked.", "error")
        return
    try:
        from cop_mail.sending.transactional import enqueue_transactional

        enqueue_transactional(redis(), delivery_id)
    except RuntimeError:
        log.warning("no Redis configured; delivery %s waits for the reconciler", delivery_id)


def _after_commit_plan(campaign_id: int) -> None:
    try:
        from cop_mail.sending.jobs import ring_plan

        ring_plan(redis(), campaign_id)
    except RuntimeError:
        log.warning("no Redis configured; campaign %s waits for the reconciler", campaign_id)


def _actor() -> Admin:
    """The signed-in coordinator (role_required has already turned everyone else away)."""
    admin = current_admin()
    assert admin is not None
    return admin


# --- the moderation queue ------------------------------------------------------------------


@bp.route("/stories")
@role_required(Role.VIEWER)
def stories() -> Any:
    session = db()
    status = request.args.get("status", StoryStatus.SUBMITTED)
    if status not in STATUS_LABELS:
        status = StoryStatus.SUBMITTED
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    counts = dict(session.execute(select(Story.status, func.count()).group_by(Story.status)).all())
    rows = session.execute(
        select(Story, Member.name, Member.preferred_name, Member.email)
        .join(Member, Member.id == Story.author_id)
        .where(Story.status == status)
        .order_by(Story.submitted_at.desc().nulls_last(), Story.id.desc())
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    ).all()
    total = int(counts.get(status, 0))
    return render_template(
        "admin/stories.html",
        rows=rows,
        status=status,
        labels=STATUS_LABELS,
        counts=counts,
        consent_labels=CONSENT_LABELS,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
    )


def _story_or_404(story_id: int) -> Story:
    story = moderation.find_story(db(), story_id)
    if story is None:
        abort(404)
    return story


@bp.route("/stories/<int:story_id>")
@role_required(Role.VIEWER)
def story(story_id: int) -> Any:
    session = db()
    found = _story_or_404(story_id)
    return render_template(
        "admin/stories_detail.html",
        story=found,
        author=session.get(Member, found.author_id),
        values=session.scalars(select(Value).order_by(Value.position, Value.name)).all(),
        practices=session.scalars(select(Practice).order_by(Practice.name)).all(),
        consent_labels=CONSENT_LABELS,
        levels=list(StoryConsent),
        labels=STATUS_LABELS,
    )


@bp.route("/stories/<int:story_id>/images/<int:image_id>")
@role_required(Role.VIEWER)
def story_image(story_id: int, image_id: int) -> Any:
    image = db().get(StoryImage, image_id)
    if image is None or image.story_id != story_id:
        abort(404)
    path = images.image_path(images.images_folder(settings().instance_path), image)
    if not path.is_file():
        abort(404)
    return send_file(path, mimetype=image.content_type, max_age=0)


def _moderate(story_id: int, action: Any, success: str) -> Any:
    """Run one moderation action, commit, then ring the author's doorbell if they must confirm."""
    session = db()
    _story_or_404(story_id)
    try:
        outcome = action(session)
    except moderation.ModerationError as exc:
        session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.story", story_id=story_id))
    delivery_id = None
    needs_author = isinstance(outcome, moderation.Outcome) and outcome.needs_author
    if needs_author:
        delivery_id = notify.request_author_confirmation(session, outcome.story)
    session.commit()
    if needs_author:
        _after_commit_notify(delivery_id)
        success = "The author was sent the change to confirm; nothing is public until they do."
    flash(success, "success")
    return redirect(url_for("admin.story", story_id=story_id))


@bp.route("/stories/<int:story_id>/approve", methods=["POST"])
@role_required(Role.COORDINATOR)
def story_approve(story_id: int) -> Any:
    share_as = request.form.get("share_as") or None
    if share_as is not None and share_as not in set(StoryConsent):
        abort(400)
    return _moderate(
        story_id,
        lambda s: moderation.approve(s, story_id, _actor(), share_as, client_ip()),
        "Approved.",
    )


@bp.route("/stories/<int:story_id>/edit", methods=["POST"])
@role_required(Role.COORDINATOR)
def story_edit(story_id: int) -> Any:
    form = request.form
    share_as = form.get("share_as") or None
    if share_as is not None and share_as not in set(StoryConsent):
        abort(400)
    return _moderate(
        story_id,
        lambda s: moderation.propose_edit(
            s,
            story_id,
            _actor(),
            form.get("title", ""),
            form.get("body", ""),
            form.get("note", ""),
            share_as,
            client_ip(),
        ),  # fmt: skip
        "Edit saved.",
    )


@bp.route("/stories/<int:story_id>/tags", methods=["POST"])
@role_required(Role.COORDINATOR)
def story_tags(story_id: int) -> Any:
    value_ids = [int(v) for v in request.form.getlist("value_ids") if v.isdecimal()]
    practice_id = request.form.get("practice_id", type=int) or None
    return _moderate(
        story_id,
        lambda s: moderation.set_tags(s, story_id, _actor(), value_ids, practice_id, client_ip()),
        "Values and practice saved.",
    )


@bp.route("/stories/<int:story_id>/reject", methods=["POST"])
@role_required(Role.COORDINATOR)
def story_reject(story_id: int) -> Any:
    note = request.form.get("note", "")
    return _moderate(
        story_id,
        lambda s: moderation.reject(s, story_id, _actor(), note, client_ip()),
        "Rejected, with your note.",
    )


@bp.route("/stories/<int:story_id>/feature", methods=["POST"])
@role_required(Role.COORDINATOR)
def story_feature(story_id: int) -> Any:
    featured = request.form.get("featured") == "1"
    return _moderate(
        story_id,
        lambda s: moderation.set_featured(s, story_id, _actor(), featured, client_ip()),
        "Featured on the archive." if featured else "No longer featured.",
    )


@bp.route("/stories/<int:story_id>/submit-draft", methods=["POST"])
@role_required(Role.COORDINATOR)
def story_submit_draft(story_id: int) -> Any:
    return _moderate(
        story_id,
        lambda s: moderation.submit_draft(s, story_id, _actor(), client_ip()),
        "Moved to the moderation queue.",
    )


# --- roundups ------------------------------------------------------------------------------


def _audiences() -> dict[str, Any]:
    session = db()
    return {
        "lists": session.scalars(select(MailingList).order_by(MailingList.name)).all(),
        "segments": session.scalars(select(Segment).order_by(Segment.name)).all(),
    }


@bp.route("/roundups", endpoint="roundups")
@role_required(Role.VIEWER)
def roundups_page() -> Any:
    session = db()
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    since = roundups.last_cutoff(session)
    waiting = roundups.stories_between(session, since, utcnow())
    approved = session.scalars(
        select(Story).where(Story.status == StoryStatus.APPROVED).order_by(Story.approved_at.desc()).limit(100)
    ).all()
    total = roundups.count_roundups(session)
    return render_template(
        "admin/roundups.html",
        rows=roundups.recent_roundups(session, PAGE_SIZE, (page - 1) * PAGE_SIZE),
        since=since,
        waiting=waiting,
        approved=approved,
        schedules=session.scalars(select(RoundupSchedule).order_by(RoundupSchedule.id)).all(),
        weekdays=WEEKDAYS,
        nth=NTH,
        frequencies=list(RoundupFrequency),
        default_subject=roundups.default_subject(settings().community_name, utcnow()),
        skipped=RoundupStatus.SKIPPED,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        **_audiences(),
    )


def _ids(name: str) -> list[int]:
    return [int(v) for v in request.form.getlist(name) if v.isdecimal()]


@bp.route("/roundups", methods=["POST"])
@role_required(Role.COORDINATOR)
def roundup_create() -> Any:
    session = db()
    form = request.form
    admin = _actor()
    picked = _ids("story_ids") if form.get("mode") == "picked" else None
    if form.get("mode") == "picked" and not picked:
        flash("Pick at least one story, or choose “stories since the last roundup”.", "error")
        return redirect(url_for("admin.roundups"))
    try:
        roundup = roundups.compile_roundup(session, admin, form.get("title", "") or "Roundup", story_ids=picked)
        if roundup.status == RoundupStatus.SKIPPED:
            session.commit()
            flash(f"Roundup skipped: {roundup.note}", "error")
            return redirect(url_for("admin.roundups"))
        campaign = roundups.create_campaign_for(
            session, settings().public_url, roundup, admin, subject=form.get("subject", ""),
            list_ids=_ids("list_ids"), segment_ids=_ids("segment_ids"),
        )  # fmt: skip
        sending = form.get("send_now") == "1"
        if sending:
            send_now(session, campaign.id, admin.email)
    except (roundups.RoundupError, CampaignStateError) as exc:
        session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.roundups"))
    session.commit()
    if sending:
        _after_commit_plan(campaign.id)
    count = len(roundup.story_ids)
    what = "and sending" if sending else "as a draft campaign"
    flash(f"Roundup made with {count} {'story' if count == 1 else 'stories'}, {what}.", "success")
    return redirect(url_for("admin.roundups"))


@bp.route("/roundups/schedules", methods=["POST"])
@role_required(Role.COORDINATOR)
def roundup_schedule_create() -> Any:
    form = request.form
    admin = _actor()
    schedule = RoundupSchedule(
        name=form.get("name", "").strip()[:200],
        frequency=form.get("frequency", RoundupFrequency.MONTHLY),
        weekday=form.get("weekday", 0, type=int),
        nth=form.get("nth", 1, type=int),
        hour=form.get("hour", 9, type=int),
        timezone=form.get("timezone", "UTC").strip() or "UTC",
        subject=form.get("subject", "").strip()[:500],
        list_ids=_ids("list_ids"),
        segment_ids=_ids("segment_ids"),
        send_automatically=form.get("send_automatically") == "1",
        active=True,
        created_by=admin.email,
    )
    try:
        roundups.save_schedule(db(), schedule, admin)
    except roundups.RoundupError as exc:
        db().rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.roundups"))
    db().commit()
    flash(f"Scheduled: the next roundup is made on {schedule.next_run_at:%A %d %B %Y at %H:%M} UTC.", "success")
    return redirect(url_for("admin.roundups"))


@bp.route("/roundups/schedules/<int:schedule_id>/active", methods=["POST"])
@role_required(Role.COORDINATOR)
def roundup_schedule_active(schedule_id: int) -> Any:
    schedule = db().get(RoundupSchedule, schedule_id)
    if schedule is None:
        abort(404)
    schedule.active = request.form.get("active") == "1"
    roundups.save_schedule(db(), schedule, _actor())
    db().commit()
    flash("Schedule switched on." if schedule.active else "Schedule paused.", "success")
    return redirect(url_for("admin.roundups"))
