"""Introductions in the admin: rounds (create, review by hand, send), introductions and connections
by hand, and the community map. Views only read forms and call cop_mail.connect."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cop_mail import accounts
from cop_mail.audience.segments import SegmentNotFound
from cop_mail.audience.suppression import find_member_by_email
from cop_mail.connect import graph, mail, map_svg, requests, rounds, workflow
from cop_mail.connect.connections import ConnectionRefused, record_connection
from cop_mail.connect.schedule import ScheduleError, weekly_rule
from cop_mail.connect.states import find_intro, history
from cop_mail.models import (
    ConnectionHow,
    Intro,
    IntroKind,
    IntroRound,
    IntroStatus,
    Member,
    Role,
    RoundStatus,
    Segment,
)
from cop_mail.queues import DEFAULT, enqueue
from cop_mail.web.admin import bp
from cop_mail.web.auth import client_ip, current_admin, role_required
from cop_mail.web.extensions import db, redis, settings

ROUNDS_SHOWN = 50


def _actor() -> str:
    admin = current_admin()
    return admin.email if admin is not None else "coordinator"


def find_member_ref(session: Session, text: str) -> Member | None:
    """A member named by id ("12" or "#12") or by email address."""
    text = (text or "").strip()
    if text.lstrip("#").isdecimal():
        return session.get(Member, int(text.lstrip("#")))
    return find_member_by_email(session, text) if "@" in text else None


def _members(*fields: str) -> list[Member] | None:
    found = [find_member_ref(db(), request.form.get(name, "")) for name in fields]
    if any(m is None for m in found):
        flash("Name each member by their email address or member number.", "error")
        return None
    return found  # type: ignore[return-value]


def _names(ids: set[int]) -> dict[int, str]:
    rows = db().execute(select(Member.id, Member.preferred_name, Member.name, Member.email).where(Member.id.in_(ids)))
    return {r.id: r.preferred_name or r.name or r.email for r in rows}


# --- overview -------------------------------------------------------------------------------------


@bp.route("/intros")
@role_required(Role.VIEWER)
def intros() -> Any:
    all_rounds = db().scalars(select(IntroRound).order_by(IntroRound.id.desc()).limit(ROUNDS_SHOWN)).all()
    counts = {
        round_id: count
        for round_id, count in db().execute(
            select(Intro.round_id, func.count())
            .where(Intro.round_id.in_([r.id for r in all_rounds]))
            .group_by(Intro.round_id)
        )
    }
    by_status = {
        status: count for status, count in db().execute(select(Intro.status, func.count()).group_by(Intro.status))
    }
    waiting = workflow.waiting_on_one_side(db(), limit=50)
    asked = requests.pending_requests(db())
    names = _names(
        {m for i in waiting for m in (i.member_a_id, i.member_b_id)}
        | {m for r in asked for m in (r.requester_id, r.other_id)}
    )
    return render_template(
        "admin/intros.html",
        rounds=all_rounds,
        counts=counts,
        by_status=by_status,
        waiting=waiting,
        asked=asked,
        names=names,
        segments=db().scalars(select(Segment).order_by(Segment.name)).all(),
        kinds=list(IntroKind),
    )


# --- rounds ---------------------------------------------------------------------------------------


@bp.route("/intros/rounds", methods=["POST"])
@role_required(Role.COORDINATOR)
def intro_round_create() -> Any:
    form = request.form
    try:
        segment_id = int(form["segment_id"]) if form.get("segment_id") else None
        rule = _schedule_from_form()
        created = rounds.create_round(
            db(),
            name=form.get("name", ""),
            created_by=_actor(),
            kind=form.get("kind", IntroKind.PEER),
            segment_id=segment_id,
            max_pairs=int(form.get("max_pairs") or 20),
            rules={
                "same_language": form.get("same_language") == "on",
                "same_location": form.get("same_location") == "on",
                "timezone_window_hours": form.get("timezone_window_hours") or None,
                "never_pairs": _never_pairs(form.get("never_pairs", "")),
            },
            note=form.get("note", ""),
            seed=form.get("seed") or None,
            schedule_rule=rule,
            schedule_timezone=form.get("schedule_timezone") or "UTC",
            auto_send=form.get("auto_send") == "on",
        )
    except (rounds.RoundError, ScheduleError, SegmentNotFound, ValueError) as exc:
        db().rollback()
        flash(str(exc) or "Check the numbers in the form.", "error")
        return redirect(url_for("admin.intros"))
    accounts.audit(db(), current_admin(), "intro_round.create", f"round:{created.id}", client_ip(), name=created.name)
    db().commit()
    flash(f"Round “{created.name}” created. Propose pairs to review them.", "success")
    return redirect(url_for("admin.intro_round", round_id=created.id))


def _schedule_from_form() -> str | None:
    every = request.form.get("every_weeks", "")
    if not every:
        return None
    return weekly_rule(int(every), int(request.form.get("weekday") or 0), int(request.form.get("hour") or 9))


def _never_pairs(text: str) -> list[list[int]]:
    """Lines like "ana@example.org, ben@example.org" or "12, 40": members who must not be paired."""
    pairs = []
    for line in text.splitlines():
        parts = [p for p in line.replace(";", ",").split(",") if p.strip()]
        if not parts:
            continue
        found = [find_member_ref(db(), p) for p in parts]
        if len(found) != 2 or None in found:
            raise rounds.RoundError(f"'never pair' line {line.strip()!r} must name two members")
        pairs.append([found[0].id, found[1].id])  # type: ignore[union-attr]
    return pairs


@bp.route("/intros/rounds/<int:round_id>")
@role_required(Role.VIEWER)
def intro_round(round_id: int) -> Any:
    found = rounds.find_round(db(), round_id)
    if found is None:
        abort(404)
    pairs = rounds.proposals(db(), round_id)
    unmatched = found.unmatched or []
    names = _names({m for i in pairs for m in (i.member_a_id, i.member_b_id)} | {u["member_id"] for u in unmatched})
    segment = db().get(Segment, found.segment_id) if found.segment_id else None
    return render_template(
        "admin/intro_round.html",
        round=found,
        pairs=pairs,
        open_pairs=[p for p in pairs if p.status == IntroStatus.PROPOSED],
        unmatched=unmatched,
        names=names,
        segment=segment,
        reviewing=found.status == RoundStatus.REVIEWING,
    )


def _round_action(round_id: int, action: str, do: Any, done: str) -> Any:
    try:
        do()
    except (rounds.RoundError, ScheduleError, SegmentNotFound) as exc:
        db().rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.intro_round", round_id=round_id))
    detail = {k: v for k, v in request.form.items() if k != "csrf_token"}
    accounts.audit(db(), current_admin(), f"intro_round.{action}", f"round:{round_id}", client_ip(), **detail)
    db().commit()
    flash(done, "success")
    return redirect(url_for("admin.intro_round", round_id=round_id))


@bp.route("/intros/rounds/<int:round_id>/propose", methods=["POST"])
@role_required(Role.COORDINATOR)
def intro_round_propose(round_id: int) -> Any:
    result: dict[str, Any] = {}

    def do() -> None:
        result["match"] = rounds.propose(db(), round_id)

    response = _round_action(round_id, "propose", do, "Pairs proposed. Review them before sending.")
    if "match" in result:
        flash(f"{len(result['match'].proposals)} pairs; {len(result['match'].unmatched)} members not paired.", "info")
    return response


@bp.route("/intros/rounds/<int:round_id>/pairs/<int:intro_id>/remove", methods=["POST"])
@role_required(Role.COORDINATOR)
def intro_round_remove(round_id: int, intro_id: int) -> Any:
    return _round_action(
        round_id, "remove", lambda: rounds.remove_proposal(db(), round_id, intro_id, _actor()), "Pair removed."
    )


@bp.route("/intros/rounds/<int:round_id>/pairs/<int:intro_id>/swap", methods=["POST"])
@role_required(Role.COORDINATOR)
def intro_round_swap(round_id: int, intro_id: int) -> Any:
    found = _members("old_member", "new_member")
    if found is None:
        return redirect(url_for("admin.intro_round", round_id=round_id))
    old, new = found
    return _round_action(
        round_id,
        "swap",
        lambda: rounds.swap_member(db(), round_id, intro_id, old.id, new.id, _actor()),
        f"{new.display_name} now takes {old.display_name}'s place.",
    )


@bp.route("/intros/rounds/<int:round_id>/pairs", methods=["POST"])
@role_required(Role.COORDINATOR)
def intro_round_add(round_id: int) -> Any:
    found = _members("member_a", "member_b")
    if found is None:
        return redirect(url_for("admin.intro_round", round_id=round_id))
    a, b = found
    return _round_action(
        round_id, "add", lambda: rounds.add_pair(db(), round_id, a.id, b.id, _actor()), "Pair added by hand."
    )


@bp.route("/intros/rounds/<int:round_id>/schedule", methods=["POST"])
@role_required(Role.COORDINATOR)
def intro_round_schedule(round_id: int) -> Any:
    def do() -> None:
        found = rounds.get_round(db(), round_id)
        rule = None if request.form.get("stop") else _schedule_from_form()
        timezone = request.form.get("schedule_timezone") or found.schedule_timezone
        rounds.set_schedule(db(), found, rule, timezone, request.form.get("auto_send") == "on")

    return _round_action(round_id, "schedule", do, "Schedule saved.")


@bp.route("/intros/rounds/<int:round_id>/send", methods=["POST"])
@role_required(Role.COORDINATOR)
def intro_round_send(round_id: int) -> Any:
    response = _round_action(
        round_id, "send", lambda: rounds.start_sending(db(), round_id), "Sending invitations to every pair."
    )
    found = rounds.find_round(db(), round_id)
    if found is not None and found.status == RoundStatus.SENDING:
        from cop_mail.connect.jobs import send_round_job

        enqueue(redis(), send_round_job, round_id, queue=DEFAULT, job_id=f"send-round-{round_id}")
    return response


# --- by hand ----------------------------------------------------------------------------------------


@bp.route("/intros/introduce", methods=["POST"])
@role_required(Role.COORDINATOR)
def intro_introduce() -> Any:
    found = _members("member_a", "member_b")
    if found is None:
        return redirect(url_for("admin.intros"))
    a, b = found
    try:
        intro, to_send = rounds.introduce_by_hand(db(), settings(), a.id, b.id, _actor(), request.form.get("note", ""))
    except rounds.RoundError as exc:
        db().rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.intros"))
    accounts.audit(db(), current_admin(), "intro.introduce", f"intro:{intro.id}", client_ip(), a=a.id, b=b.id)
    db().commit()
    mail.enqueue_intro_emails(redis(), to_send)
    if intro.status == IntroStatus.CANCELLED:
        flash(f"Not sent: {intro.closed_reason}.", "error")
    else:
        flash(f"Both {a.display_name} and {b.display_name} are asked privately whether they'd like to meet.", "success")
    return redirect(url_for("admin.intro_detail", intro_id=intro.id))


@bp.route("/intros/requests/<int:event_id>", methods=["POST"])
@role_required(Role.COORDINATOR)
def intro_request_act(event_id: int) -> Any:
    """Act on a member's own request to meet someone: their yes stands; only the other is asked."""
    found = requests.find_request(db(), event_id)
    if found is None:
        flash("That request has been dealt with already, or one of the two has left.", "info")
        return redirect(url_for("admin.intros"))
    note = "They read your story and asked to meet you." if found.story_id else ""
    try:
        intro, to_send = rounds.introduce_by_hand(
            db(), settings(), found.requester_id, found.other_id, _actor(), note, requested_by=found.requester_id
        )
    except rounds.RoundError as exc:
        db().rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.intros"))
    accounts.audit(db(), current_admin(), "intro.request", f"intro:{intro.id}", client_ip(), event=event_id)
    db().commit()
    mail.enqueue_intro_emails(redis(), to_send)
    flash("Asked privately; you'll see the answer here.", "success")
    return redirect(url_for("admin.intro_detail", intro_id=intro.id))


@bp.route("/intros/connections", methods=["POST"])
@role_required(Role.COORDINATOR)
def intro_connection_add() -> Any:
    found = _members("member_a", "member_b")
    if found is None:
        return redirect(url_for("admin.intros"))
    a, b = found
    how = request.form.get("how", ConnectionHow.COORDINATOR)
    try:
        created = record_connection(
            db(),
            a.id,
            b.id,
            how if how in set(ConnectionHow) else ConnectionHow.OTHER,
            created_by=_actor(),
            note=request.form.get("note", "")[:2000],
        )
    except ConnectionRefused as exc:
        db().rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.intros"))
    accounts.audit(db(), current_admin(), "connection.add", f"members:{a.id},{b.id}", client_ip(), how=how)
    db().commit()
    flash(
        f"{a.display_name} and {b.display_name} are connected." if created else "They were already connected.",
        "success" if created else "info",
    )
    return redirect(url_for("admin.intros"))


@bp.route("/intros/<int:intro_id>")
@role_required(Role.VIEWER)
def intro_detail(intro_id: int) -> Any:
    intro = find_intro(db(), intro_id)
    if intro is None:
        abort(404)
    return render_template(
        "admin/intro_detail.html",
        intro=intro,
        names=_names({intro.member_a_id, intro.member_b_id}),
        changes=history(db(), intro_id),
    )


# --- the community map --------------------------------------------------------------------------------


@bp.route("/community-map")
@role_required(Role.VIEWER)
def community_map() -> Any:
    data = graph.community_map(db())
    return render_template(
        "admin/community_map.html",
        data=data,
        svg=Markup(map_svg.render(data)),  # noqa: S704 - every value in it is escaped by map_svg
        description=map_svg.describe(data),
        band_words=map_svg.BAND_WORDS,
        bands=graph.Band.ORDER,
        months_max=max([count for _, count in data.per_month] + [1]),
    )


@bp.route("/community-map.svg")
@role_required(Role.VIEWER)
def community_map_svg() -> Any:
    return Response(map_svg.render(graph.community_map(db())), mimetype="image/svg+xml")
