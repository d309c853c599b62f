"""The pages a member reaches from an introduction email: answer the invitation, say whether you met.

A GET only shows the question with its buttons; only the POST from a button records anything
(mail scanners follow links). Forged or tampered links get a plain 400 page, expired ones 410.
What a member sees never reveals a decline, or a departure, by the other person: while their own
answer can still matter, the page looks the same whatever the other did.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request

from cop_mail.connect import mail, workflow
from cop_mail.connect.links import IntroLinkError, read_answer_token
from cop_mail.connect.states import find_intro
from cop_mail.models import AnswerChannel, FollowupAnswer, Intro, IntroAnswer, IntroStatus, Member
from cop_mail.web.extensions import db, redis, settings

bp = Blueprint("intro_public", __name__)

S = IntroStatus
ANSWERS = {a.value for a in IntroAnswer}
FOLLOWUPS = {a.value for a in FollowupAnswer}


class _Refused(Exception):
    """A link that leads nowhere: carries the page to answer with."""

    def __init__(self, page: str, code: int):
        self.response = (page, code)


def _load(token: str) -> tuple[Intro, Member, str]:
    try:
        link = read_answer_token(settings(), token)
    except IntroLinkError as error:
        page = render_template("public/intro_link_error.html", expired=error.expired)
        raise _Refused(page, 410 if error.expired else 400) from error
    intro = find_intro(db(), link.intro_id)
    member = db().get(Member, link.member_id)
    side = intro.side_of(link.member_id) if intro is not None else None
    if intro is None or member is None or side is None:
        raise _Refused(render_template("public/intro_link_error.html", gone=True), 410)
    return intro, member, side


@bp.errorhandler(_Refused)
def _refused(error: _Refused) -> Any:
    return error.response


def _other(intro: Intro, member_id: int) -> Member | None:
    return db().get(Member, intro.other_id(member_id))


def view_state(intro: Intro, side: str) -> str:
    """What this member is shown: ask, waiting, introduced, declined (by them), closed, not_ready."""
    mine = getattr(intro, f"{side}_answer")
    status = S(intro.status)
    if status is S.PROPOSED:
        return "not_ready"
    if mine in (IntroAnswer.DECLINE, IntroAnswer.LATER):
        return "declined"
    if status in workflow.JOINED:
        return "introduced"
    if status is S.EXPIRED:
        return "closed"
    # Open, or closed by the other member's no or departure: look exactly as if still open.
    return "waiting" if mine == IntroAnswer.ACCEPT else "ask"


@bp.route("/intro/<token>", methods=["GET"])
def answer_page(token: str) -> Any:
    intro, member, side = _load(token)
    preselect = request.args.get("answer", "")
    return render_template(
        "public/intro.html",
        intro=intro,
        member=member,
        other=_other(intro, member.id),
        state=view_state(intro, side),
        preselect=preselect if preselect in ANSWERS else "",
    )


@bp.route("/intro/<token>", methods=["POST"])
def answer_post(token: str) -> Any:
    intro, member, side = _load(token)
    given = request.form.get("answer", "")
    if given not in ANSWERS:
        return render_template("error.html", code=400, message="Choose one of the buttons on the page."), 400
    hidden = view_state(intro, side) in ("ask", "waiting") and S(intro.status) in (S.DECLINED, S.CANCELLED)
    result = workflow.answer(db(), settings(), intro.id, member.id, given, AnswerChannel.LINK)
    db().commit()
    mail.enqueue_intro_emails(redis(), result.to_send)
    outcome = str(result.outcome)
    if hidden and outcome == workflow.AnswerOutcome.CLOSED:
        # The other member said no or left: never say so. Thank them as if it were still open.
        outcome = str(workflow.AnswerOutcome.ACCEPTED if given == IntroAnswer.ACCEPT else given)
        outcome = {"decline": "declined"}.get(outcome, outcome)
    return render_template("public/intro_done.html", outcome=outcome, other=_other(intro, member.id), member=member)


@bp.route("/intro/<token>/followup", methods=["GET", "POST"])
def followup(token: str) -> Any:
    intro, member, side = _load(token)
    other = _other(intro, member.id)
    if request.method == "GET":
        return render_template(
            "public/intro_followup.html",
            intro=intro,
            other=other,
            introduced=intro.status in workflow.JOINED,
            answered=getattr(intro, f"{side}_followup"),
        )
    given = request.form.get("answer", "")
    if given not in FOLLOWUPS:
        return render_template("error.html", code=400, message="Choose one of the buttons on the page."), 400
    result = workflow.answer_followup(db(), intro.id, member.id, given, AnswerChannel.LINK)
    db().commit()
    return render_template("public/intro_followup_done.html", outcome=str(result.outcome), other=other)
