"""Pages a member reaches from a signed link in an email: tell a story, confirm a coordinator's
edit, withdraw consent, read a members-only story, meet a storyteller, and the resource library.

The link is the key; a forged link gets a plain-words page (400) and an old one says so (410).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, make_response, render_template, request
from sqlalchemy import select

from cop_mail.models import Campaign, Member, Practice, ResourceKind, Story, StoryConsent, StoryStatus, Value
from cop_mail.resources import library
from cop_mail.resources.links import ResourceLinkError, read_resources_token
from cop_mail.stories import links, meet, moderation, submissions
from cop_mail.stories.archive import author_names
from cop_mail.stories.images import MAX_IMAGE_BYTES, MAX_IMAGES_PER_STORY, describe_size
from cop_mail.web.auth import client_ip
from cop_mail.web.extensions import db, settings

bp = Blueprint("story_public", __name__)


@bp.after_request
def _private(response: Any) -> Any:
    # Signed links must not leak to other sites or sit in shared caches.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def link_error(error: links.StoryLinkError | ResourceLinkError) -> Response:
    code = 410 if error.expired else 400
    return make_response(render_template("stories/link_error.html", expired=error.expired), code)


def plain_page(heading: str, message: str, code: int = 200) -> Response:
    return make_response(render_template("stories/message.html", heading=heading, message=message), code)


def _choices() -> dict[str, Any]:
    session = db()
    return {
        "values": session.scalars(select(Value).order_by(Value.position, Value.name)).all(),
        "practices": session.scalars(select(Practice).order_by(Practice.name)).all(),
        "consents": [(level, submissions.CONSENT_WORDING[level]) for level in StoryConsent],
        "max_images": MAX_IMAGES_PER_STORY,
        "max_image_size": describe_size(MAX_IMAGE_BYTES),
    }


# --- tell a story ----------------------------------------------------------------------------


@bp.route("/stories/submit/<token>", methods=["GET"])
def submit_form(token: str) -> Any:
    try:
        link = links.read_submit_token(settings(), token)
    except links.StoryLinkError as exc:
        return link_error(exc)
    member = db().get(Member, link.member_id)
    if member is None:
        return plain_page("This link has no member any more", "The member it was made for has left.", 410)
    return render_template("stories/submit.html", form={}, problems=[], member=member, **_choices())


def _form_input() -> submissions.StoryInput:
    form = request.form
    uploads = [(f.filename or "", f.read()) for f in request.files.getlist("images") if f and f.filename]
    practice = form.get("practice_id", type=int)
    return submissions.StoryInput(
        title=form.get("title", ""),
        body=form.get("body", ""),
        consent=form.get("consent", ""),
        value_ids=[int(v) for v in form.getlist("value_ids") if v.isdecimal()],
        practice_id=practice or None,
        uploads=uploads,
        alt_texts=[form.get("alt_text", "")] * len(uploads),
    )


@bp.route("/stories/submit/<token>", methods=["POST"])
def submit(token: str) -> Any:
    try:
        link = links.read_submit_token(settings(), token)
    except links.StoryLinkError as exc:
        return link_error(exc)
    data = _form_input()
    session = db()
    try:
        # The email the link came from (a story prompt, a roundup), when it still exists.
        campaign_id = link.campaign_id if link.campaign_id and session.get(Campaign, link.campaign_id) else None
        story = submissions.submit_story(
            session, settings().instance_path, link.member_id, data, ip=client_ip(), campaign_id=campaign_id
        )
    except submissions.StoryError as exc:
        session.rollback()
        member = session.get(Member, link.member_id)
        form = {**request.form.to_dict(), "value_ids": data.value_ids}
        context = _choices()
        return render_template("stories/submit.html", form=form, problems=exc.problems, member=member, **context), 400
    session.commit()
    withdraw = links.withdraw_url(settings(), story.id, link.member_id)
    return render_template("stories/thanks.html", story=story, withdraw_url=withdraw)


# --- the author confirms an edit, or withdraws -----------------------------------------------


@bp.route("/stories/<int:story_id>/confirm/<token>", methods=["GET", "POST"])
def confirm(story_id: int, token: str) -> Any:
    try:
        link = links.read_confirm_token(settings(), token, story_id)
    except links.StoryLinkError as exc:
        return link_error(exc)
    session = db()
    story = session.get(Story, story_id)
    if story is None or story.author_id != link.member_id:
        return link_error(links.StoryLinkError("invalid"))
    if story.status != StoryStatus.PENDING_AUTHOR_CONFIRMATION or story.proposal_version != link.version:
        return plain_page(
            "Nothing is waiting for you here",
            "This link is for a change you already answered, or one the coordinators replaced. "
            "If they changed it again, a newer email is on its way.",
            410,
        )
    if request.method == "GET":
        return render_template("stories/confirm.html", story=story, labels=submissions.CONSENT_LABELS)
    action = request.form.get("action")
    if action == "confirm":
        moderation.confirm_proposal(session, story_id, link.member_id, link.version, client_ip())
        session.commit()
        return plain_page("Thank you", "Your story is approved as shown. Thank you for sharing it.")
    if action == "decline":
        moderation.decline_proposal(session, story_id, link.member_id, link.version, client_ip())
        session.commit()
        return plain_page("Your version stays", "Nothing was changed. The coordinators will see your answer.")
    return render_template("stories/confirm.html", story=story, labels=submissions.CONSENT_LABELS), 400


@bp.route("/stories/<int:story_id>/withdraw/<token>", methods=["GET", "POST"])
def withdraw(story_id: int, token: str) -> Any:
    try:
        member_id = links.read_withdraw_token(settings(), token, story_id)
    except links.StoryLinkError as exc:
        return link_error(exc)
    session = db()
    story = session.get(Story, story_id)
    if story is None or story.author_id != member_id:
        return link_error(links.StoryLinkError("invalid"))
    if story.status == StoryStatus.WITHDRAWN:
        return plain_page("Your story is withdrawn", "It is no longer shared anywhere. Nothing else to do.")
    if request.method == "GET":
        return render_template("stories/withdraw.html", story=story)
    moderation.withdraw(session, story_id, member_id, client_ip())
    session.commit()
    return plain_page(
        "Your story is withdrawn",
        "It has left the public archive, the feed and any roundup not yet sent. "
        "Emails already delivered cannot be called back.",
    )


# --- members read and meet -------------------------------------------------------------------


def _member_story(story_id: int, token: str) -> tuple[int, Story] | Response:
    """(member id, story), or the page to answer with when the link or the story does not hold."""
    try:
        member_id = links.read_meet_token(settings(), token)
    except links.StoryLinkError as exc:
        return link_error(exc)
    try:
        return member_id, meet.readable_story(db(), story_id, member_id)
    except meet.MeetError as exc:
        return plain_page("This story is not available", str(exc), 410)


@bp.route("/stories/<int:story_id>/read/<token>")
def read(story_id: int, token: str) -> Any:
    found = _member_story(story_id, token)
    if not isinstance(found, tuple):
        return found
    _member_id, story = found
    name = author_names(db(), [story]).get(story.author_id)
    return render_template("stories/read.html", story=story, author_name=name, token=token)


@bp.route("/stories/<int:story_id>/meet/<token>", methods=["GET", "POST"])
def meet_storyteller(story_id: int, token: str) -> Any:
    found = _member_story(story_id, token)
    if not isinstance(found, tuple):
        return found
    member_id, story = found
    name = author_names(db(), [story]).get(story.author_id)
    if request.method == "GET":
        return render_template("stories/meet.html", story=story, author_name=name)
    try:
        outcome = meet.request_introduction(db(), member_id, story_id)
    except meet.MeetError as exc:
        return plain_page("No introduction needed", str(exc), 400)
    db().commit()
    who = name or "the storyteller"
    if not outcome.created:
        return plain_page("You asked already", f"Your request to meet {who} is with the coordinators.")
    return plain_page(
        "Request sent", f"We will ask {who} whether they would like to be introduced, and let you both know."
    )


# --- the members' resource library ------------------------------------------------------------


def _resource_member(token: str) -> int | Response:
    try:
        return read_resources_token(settings(), token)
    except ResourceLinkError as exc:
        return link_error(exc)


def _library_page(token: str, suggestion: dict[str, Any], problems: list[str], code: int = 200) -> Any:
    session = db()
    query = request.args.get("q", "")[:200]
    kind = request.args.get("kind") or None
    value_id = request.args.get("value", type=int)
    found, total = library.search(
        session, query, kind=kind if kind in set(ResourceKind) else None, value_id=value_id, limit=50
    )
    return render_template(
        "stories/resources.html",
        resources=found,
        total=total,
        query=query,
        kind=kind,
        value_id=value_id,
        kinds=library.KIND_LABELS,
        values=session.scalars(select(Value).order_by(Value.position, Value.name)).all(),
        practices=session.scalars(select(Practice).order_by(Practice.name)).all(),
        suggestion=suggestion,
        problems=problems,
        token=token,
    ), code


@bp.route("/resources/<token>", methods=["GET"])
def resources(token: str) -> Any:
    member_id = _resource_member(token)
    if not isinstance(member_id, int):
        return member_id
    return _library_page(token, {}, [])


@bp.route("/resources/<token>", methods=["POST"])
def suggest_resource(token: str) -> Any:
    member_id = _resource_member(token)
    if not isinstance(member_id, int):
        return member_id
    form = request.form
    data = library.ResourceInput(
        kind=form.get("kind", ""),
        title=form.get("title", ""),
        description=form.get("description", ""),
        url=form.get("url", ""),
        value_ids=[int(v) for v in form.getlist("value_ids") if v.isdecimal()],
        practice_ids=[int(p) for p in form.getlist("practice_ids") if p.isdecimal()],
    )
    try:
        library.suggest_resource(db(), member_id, data)
    except library.ResourceError as exc:
        db().rollback()
        return _library_page(token, form.to_dict(), exc.problems, 400)
    db().commit()
    return plain_page(
        "Thank you for the suggestion", "A coordinator will look at it soon; once published, everyone can find it."
    )
