"""Consent, per introduction: invite both privately, introduce only when both said yes.

proposed -> invited -> accepted by A / by B -> introduced -> met / not met, plus declined,
expired and cancelled. Functions take a session and plain values, never commit, and return the
Delivery ids of mail to enqueue once the caller has committed (`mail.enqueue_intro_emails`).

Rules kept here, whatever the channel (reply, button, coordinator):
- a decline is never shown to the other member: the page and emails the other side sees are the
  same whether the first said no, said nothing, or left;
- nobody gets a joint email they did not agree to: both must have said yes and both must still
  take part in introductions (not unsubscribed, paused or suppressed) when the second yes arrives;
- answers are idempotent: the same answer twice changes nothing; a yes can still become a no
  until the introduction is made; a no is final;
- no answer after `intro_answer_days`: one reminder; after as many days again the introduction
  expires quietly; three unanswered invitations in a row pause a member's introductions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from cop_mail.audience.consent import ConsentKind, record_consent, record_member_event
from cop_mail.audience.suppression import member_can_receive
from cop_mail.connect import mail
from cop_mail.connect.connections import record_connection
from cop_mail.connect.states import change_status, changed_rows, get_intro
from cop_mail.db import utcnow
from cop_mail.integrations import events
from cop_mail.models import (
    AnswerChannel,
    ConnectionHow,
    FollowupAnswer,
    Intro,
    IntroAnswer,
    IntroStatus,
    Member,
    Stream,
)
from cop_mail.sending.mime import make_message_id
from cop_mail.settings import Settings

S = IntroStatus
OPEN = (S.INVITED, S.ACCEPTED_A, S.ACCEPTED_B)
JOINED = (S.INTRODUCED, S.MET, S.NOT_MET)
UNANSWERED_LIMIT = 3
BATCH = 500  # introductions per periodic pass; the next pass takes the rest


class AnswerOutcome(StrEnum):
    ACCEPTED = "accepted"  # recorded; waiting for the other member (also shown when the pair fell through)
    INTRODUCED = "introduced"  # both said yes: the joint email is on its way
    DECLINED = "declined"
    LATER = "later"
    ALREADY = "already_answered"  # the same answer again: nothing changed
    TOO_LATE = "too_late"  # a no after the introduction was made: nothing to undo
    CLOSED = "closed"  # expired, declined or cancelled before this answer
    NOT_INVITED = "not_invited"  # still a proposal under review
    NOT_A_PARTY = "not_a_party"
    UNAVAILABLE = "unavailable"  # the member no longer takes part in introductions


class FollowupOutcome(StrEnum):
    MET = "met"  # recorded, and the connection exists
    NOT_MET = "not_met"
    SKIPPED = "skipped"
    ALREADY = "already_answered"
    NOT_INTRODUCED = "not_introduced"
    NOT_A_PARTY = "not_a_party"


@dataclass
class Result:
    outcome: StrEnum
    intro_id: int
    to_send: list[int] = field(default_factory=list)  # Delivery ids to enqueue after commit


def actor_for(member_id: int, channel: AnswerChannel | str) -> str:
    return f"member:{member_id} by {channel}"


# --- inviting ----------------------------------------------------------------------------------


def invite(
    session: Session,
    settings: Settings,
    intro: Intro,
    actor: str,
    now: datetime | None = None,
    *,
    requested_by: int | None = None,
    check_cadence: bool = False,
) -> list[int]:
    """Ask both members privately; an introduction either can no longer receive is cancelled instead.

    `requested_by`: the member who asked for this introduction ("meet the storyteller"). Their
    yes is recorded now and only the other member is asked, so nobody's name travels before
    the one who did not ask agrees. `check_cadence`: a round's pairs were chosen earlier, so a member
    invited since then (another round, by hand) is not asked again sooner than their cadence allows.
    """
    now = now or utcnow()
    for member_id in (intro.member_a_id, intro.member_b_id):
        too_soon = check_cadence and _within_cadence(session, member_id, now)
        if too_soon or not member_can_receive(session, member_id, Stream.INTROS, now=now):
            change_status(
                session,
                intro,
                S.CANCELLED,
                actor,
                "a member was invited too recently" if too_soon else "a member no longer takes part in introductions",
                at=now,
                closed_at=now,
                closed_reason=f"member {member_id} "
                + ("was invited too recently for their cadence" if too_soon else "cannot receive introductions"),
            )
            return []
    threads = {
        "a_thread_id": make_message_id(settings.mail_domain),
        "b_thread_id": make_message_id(settings.mail_domain),
    }
    if not change_status(session, intro, S.INVITED, actor, at=now, invited_at=now, **threads):
        return []
    _touch_members(session, (intro.member_a_id, intro.member_b_id), last_introduced_at=now)
    ids = []
    for member_id in (intro.member_a_id, intro.member_b_id):
        record_member_event(session, member_id, "intro_invited", intro_id=intro.id, other_id=intro.other_id(member_id))
        if member_id != requested_by:
            ids.append(mail.send_intro_email(session, settings, intro.id, mail.IntroMailKind.INVITE, member_id))
    if requested_by is not None:
        ids += answer(session, settings, intro.id, requested_by, IntroAnswer.ACCEPT, AnswerChannel.LINK, now).to_send
    return [i for i in ids if i is not None]


def _within_cadence(session: Session, member_id: int, now: datetime) -> bool:
    row = session.execute(
        select(Member.last_introduced_at, Member.intro_cadence_weeks).where(Member.id == member_id)
    ).first()
    if row is None or row.last_introduced_at is None or row.intro_cadence_weeks is None:
        return False
    return bool(row.last_introduced_at + timedelta(weeks=row.intro_cadence_weeks) > now)


# --- answers -----------------------------------------------------------------------------------


def answer(
    session: Session,
    settings: Settings,
    intro_id: int,
    member_id: int,
    given: IntroAnswer | str,
    channel: AnswerChannel | str,
    now: datetime | None = None,
) -> Result:
    """Record one member's answer to their invitation; see the module docstring for the rules."""
    given, channel, now = IntroAnswer(given), AnswerChannel(channel), now or utcnow()
    intro = get_intro(session, intro_id)
    side = intro.side_of(member_id)
    if side is None:
        return Result(AnswerOutcome.NOT_A_PARTY, intro_id)
    early = _early_outcome(intro, side, given)
    if early is not None:
        return Result(early, intro_id)
    if given is IntroAnswer.ACCEPT:
        return _accept(session, settings, intro, side, member_id, channel, now)
    return _decline(session, intro, side, member_id, given, channel, now)


def _early_outcome(intro: Intro, side: str, given: IntroAnswer) -> AnswerOutcome | None:
    """The answers that change nothing, decided from the state alone."""
    status = S(intro.status)
    mine = getattr(intro, f"{side}_answer")
    if status is S.PROPOSED:
        return AnswerOutcome.NOT_INVITED
    if mine == given:
        return AnswerOutcome.ALREADY
    if status in JOINED:
        return AnswerOutcome.TOO_LATE
    if status not in OPEN or mine in (IntroAnswer.DECLINE, IntroAnswer.LATER):
        return AnswerOutcome.CLOSED
    return None


def _set_answer(
    session: Session,
    intro: Intro,
    side: str,
    given: IntroAnswer,
    channel: AnswerChannel,
    now: datetime,
    *,
    was: str | None,
) -> bool:
    """Compare-and-set the member's answer while the introduction is open; False if it changed meanwhile."""
    column = getattr(Intro, f"{side}_answer")
    changed = changed_rows(
        session.execute(
            update(Intro)
            .where(
                Intro.id == intro.id,
                Intro.status.in_([str(s) for s in OPEN]),
                column.is_(None) if was is None else column == was,
            )
            .values(
                {
                    f"{side}_answer": str(given),
                    f"{side}_answered_at": now,
                    f"{side}_channel": str(channel),
                    "updated_at": now,
                }
            )
            .execution_options(synchronize_session=False)
        )
    )
    session.refresh(intro)
    return changed == 1


def _accept(
    session: Session,
    settings: Settings,
    intro: Intro,
    side: str,
    member_id: int,
    channel: AnswerChannel,
    now: datetime,
) -> Result:
    if not member_can_receive(session, member_id, Stream.INTROS, now=now):
        return Result(AnswerOutcome.UNAVAILABLE, intro.id)
    if not _set_answer(session, intro, side, IntroAnswer.ACCEPT, channel, now, was=None):
        # Another request for this member won the race (a double click): answer from the new state.
        return Result(_early_outcome(intro, side, IntroAnswer.ACCEPT) or AnswerOutcome.CLOSED, intro.id)
    _engaged(session, member_id, "intro_accepted", intro.id, channel, now)
    events.emit_intro_accepted(session, intro.id, member_id)
    other = "b" if side == "a" else "a"
    if getattr(intro, f"{other}_answer") != IntroAnswer.ACCEPT:
        change_status(
            session, intro, S.ACCEPTED_A if side == "a" else S.ACCEPTED_B, actor_for(member_id, channel), at=now
        )
        return Result(AnswerOutcome.ACCEPTED, intro.id)
    return _introduce(session, settings, intro, actor_for(member_id, channel), now)


def _introduce(session: Session, settings: Settings, intro: Intro, actor: str, now: datetime) -> Result:
    for member_id in (intro.member_a_id, intro.member_b_id):
        if not member_can_receive(session, member_id, Stream.INTROS, now=now):
            # Said yes, then left: no joint email. The one who is still here sees only "recorded".
            change_status(
                session,
                intro,
                S.CANCELLED,
                actor,
                "a member left introductions before both said yes",
                at=now,
                closed_at=now,
                closed_reason=f"member {member_id} no longer takes part",
            )
            return Result(AnswerOutcome.ACCEPTED, intro.id)
    joint = make_message_id(settings.mail_domain)
    if not change_status(session, intro, S.INTRODUCED, actor, at=now, introduced_at=now, joint_message_id=joint):
        return Result(AnswerOutcome.ACCEPTED, intro.id)
    _touch_members(session, (intro.member_a_id, intro.member_b_id), last_introduced_at=now)
    ids = []
    for member_id in (intro.member_a_id, intro.member_b_id):
        record_member_event(
            session, member_id, "intro_introduced", intro_id=intro.id, other_id=intro.other_id(member_id)
        )
        ids.append(mail.send_intro_email(session, settings, intro.id, mail.IntroMailKind.JOINT, member_id))
    return Result(AnswerOutcome.INTRODUCED, intro.id, [i for i in ids if i is not None])


def _decline(
    session: Session,
    intro: Intro,
    side: str,
    member_id: int,
    given: IntroAnswer,
    channel: AnswerChannel,
    now: datetime,
) -> Result:
    was = getattr(intro, f"{side}_answer")  # None, or a yes being taken back
    if not _set_answer(session, intro, side, given, channel, now, was=was):
        return Result(_early_outcome(intro, side, given) or AnswerOutcome.CLOSED, intro.id)
    _engaged(
        session, member_id, "intro_declined" if given is IntroAnswer.DECLINE else "intro_later", intro.id, channel, now
    )
    words = "said no" if given is IntroAnswer.DECLINE else "said not now"
    change_status(
        session,
        intro,
        S.DECLINED,
        actor_for(member_id, channel),
        f"member {member_id} {words}",
        at=now,
        closed_at=now,
        closed_reason=f"member {member_id} {words}",
    )
    outcome = AnswerOutcome.DECLINED if given is IntroAnswer.DECLINE else AnswerOutcome.LATER
    return Result(outcome, intro.id)


# --- reminders, expiry and the pause after three unanswered invitations ------------------------


def send_reminders(session: Session, settings: Settings, now: datetime | None = None) -> list[int]:
    """One reminder to each member who has not answered after `intro_answer_days`."""
    now = now or utcnow()
    cutoff = now - timedelta(days=settings.intro_answer_days)
    due = session.scalars(
        select(Intro)
        .where(Intro.status.in_([str(s) for s in OPEN]), Intro.reminded_at.is_(None), Intro.invited_at <= cutoff)
        .order_by(Intro.id)
        .limit(BATCH)
    ).all()
    ids: list[int] = []
    for intro in due:
        claimed = changed_rows(
            session.execute(
                update(Intro)
                .where(Intro.id == intro.id, Intro.reminded_at.is_(None))
                .values(reminded_at=now, updated_at=now)
                .execution_options(synchronize_session=False)
            )
        )
        session.refresh(intro)
        if claimed != 1:
            continue
        for side, member_id in (("a", intro.member_a_id), ("b", intro.member_b_id)):
            if getattr(intro, f"{side}_answer") is None and member_can_receive(session, member_id, Stream.INTROS):
                delivery = mail.send_intro_email(session, settings, intro.id, mail.IntroMailKind.REMINDER, member_id)
                ids += [delivery] if delivery is not None else []
    return ids


def expire_unanswered(session: Session, settings: Settings, now: datetime | None = None) -> list[int]:
    """Let introductions go quietly `intro_answer_days` after the reminder; returns pause notices to send."""
    now = now or utcnow()
    cutoff = now - timedelta(days=settings.intro_answer_days)
    due = session.scalars(
        select(Intro)
        .where(Intro.status.in_([str(s) for s in OPEN]), Intro.reminded_at <= cutoff)
        .order_by(Intro.id)
        .limit(BATCH)
    ).all()
    ids: list[int] = []
    for intro in due:
        silent = [
            m
            for side, m in (("a", intro.member_a_id), ("b", intro.member_b_id))
            if getattr(intro, f"{side}_answer") is None
        ]
        reason = "no answer from " + " and ".join(f"member {m}" for m in silent)
        if not change_status(session, intro, S.EXPIRED, "system", reason, at=now, closed_at=now, closed_reason=reason):
            continue
        for member_id in silent:
            record_member_event(session, member_id, "intro_unanswered", intro_id=intro.id)
            notice = _pause_if_unresponsive(session, settings, member_id, intro.id, now)
            ids += [notice] if notice is not None else []
    return ids


def unanswered_streak(session: Session, member_id: int) -> int:
    """How many of the member's latest invitations in a row expired without their answer."""
    rows = session.execute(
        select(Intro.status, Intro.member_a_id, Intro.a_answer, Intro.b_answer)
        .where(or_(Intro.member_a_id == member_id, Intro.member_b_id == member_id), Intro.invited_at.is_not(None))
        .order_by(Intro.invited_at.desc(), Intro.id.desc())
        .limit(UNANSWERED_LIMIT)
    ).all()
    streak = 0
    for status, a_id, a_answer, b_answer in rows:
        mine = a_answer if a_id == member_id else b_answer
        if status != S.EXPIRED or mine is not None:
            break
        streak += 1
    return streak


def _pause_if_unresponsive(
    session: Session, settings: Settings, member_id: int, intro_id: int, now: datetime
) -> int | None:
    if unanswered_streak(session, member_id) < UNANSWERED_LIMIT:
        return None
    member = session.get(Member, member_id)
    if member is None or not member.wants_intros:
        return None
    member.wants_intros = False
    record_consent(
        session,
        member_id,
        ConsentKind.STREAM_OFF,
        stream=Stream.INTROS,
        at=now,
        wording="Introductions paused after three invitations in a row went unanswered",
        source="unanswered invitations",
    )
    record_member_event(session, member_id, "intros_paused", reason="three invitations unanswered", intro_id=intro_id)
    return mail.send_intro_email(session, settings, intro_id, mail.IntroMailKind.PAUSED, member_id)


# --- follow-up ----------------------------------------------------------------------------------


def send_followups(session: Session, settings: Settings, now: datetime | None = None) -> list[int]:
    """Ask both members whether they met, `intro_followup_days` after the joint email."""
    now = now or utcnow()
    cutoff = now - timedelta(days=settings.intro_followup_days)
    due = session.scalars(
        select(Intro)
        .where(Intro.status == S.INTRODUCED, Intro.followed_up_at.is_(None), Intro.introduced_at <= cutoff)
        .order_by(Intro.id)
        .limit(BATCH)
    ).all()
    ids: list[int] = []
    for intro in due:
        claimed = changed_rows(
            session.execute(
                update(Intro)
                .where(Intro.id == intro.id, Intro.followed_up_at.is_(None))
                .values(followed_up_at=now, updated_at=now)
                .execution_options(synchronize_session=False)
            )
        )
        if claimed != 1:
            continue
        for member_id in (intro.member_a_id, intro.member_b_id):
            if member_can_receive(session, member_id, Stream.INTROS):
                delivery = mail.send_intro_email(session, settings, intro.id, mail.IntroMailKind.FOLLOWUP, member_id)
                ids += [delivery] if delivery is not None else []
    return ids


def answer_followup(
    session: Session,
    intro_id: int,
    member_id: int,
    given: FollowupAnswer | str,
    channel: AnswerChannel | str,
    now: datetime | None = None,
) -> Result:
    """MET records the connection (once, whoever says it first); NOT YET and SKIP record the answer."""
    given, channel, now = FollowupAnswer(given), AnswerChannel(channel), now or utcnow()
    intro = get_intro(session, intro_id)
    side = intro.side_of(member_id)
    if side is None:
        return Result(FollowupOutcome.NOT_A_PARTY, intro_id)
    if intro.status not in JOINED:
        return Result(FollowupOutcome.NOT_INTRODUCED, intro_id)
    if getattr(intro, f"{side}_followup") == given:
        return Result(FollowupOutcome.ALREADY, intro_id)
    session.execute(
        update(Intro)
        .where(Intro.id == intro.id)
        .values({f"{side}_followup": str(given), "updated_at": now})
        .execution_options(synchronize_session=False)
    )
    session.refresh(intro)
    _engaged(session, member_id, f"intro_followup_{given}", intro.id, channel, now)
    actor = actor_for(member_id, channel)
    if given is FollowupAnswer.MET:
        record_connection(
            session,
            intro.member_a_id,
            intro.member_b_id,
            ConnectionHow.INTRODUCTION,
            began_at=now,
            intro_id=intro.id,
            created_by=actor,
        )
        if intro.status != S.MET:
            change_status(session, intro, S.MET, actor, at=now)
        return Result(FollowupOutcome.MET, intro_id)
    if given is FollowupAnswer.NOT_MET:
        if intro.status == S.INTRODUCED:
            change_status(session, intro, S.NOT_MET, actor, at=now)
        return Result(FollowupOutcome.NOT_MET, intro_id)
    return Result(FollowupOutcome.SKIPPED, intro_id)


# --- helpers --------------------------------------------------------------------------------------


def _engaged(session: Session, member_id: int, kind: str, intro_id: int, channel: AnswerChannel, now: datetime) -> None:
    """An explicit action: it counts for the periphery (last_engaged_at) and goes on the timeline."""
    _touch_members(session, (member_id,), last_engaged_at=now)
    record_member_event(session, member_id, kind, explicit=True, at=now, intro_id=intro_id, channel=str(channel))


def _touch_members(session: Session, member_ids: tuple[int, ...], **values: datetime) -> None:
    session.execute(
        update(Member).where(Member.id.in_(member_ids)).values(**values).execution_options(synchronize_session="fetch")
    )


def waiting_on_one_side(session: Session, limit: int = 200) -> list[Intro]:
    """Introductions where one member said yes and the other has not answered yet, oldest first."""
    return list(
        session.scalars(
            select(Intro)
            .where(
                or_(
                    and_(Intro.status == S.ACCEPTED_A, Intro.b_answer.is_(None)),
                    and_(Intro.status == S.ACCEPTED_B, Intro.a_answer.is_(None)),
                )
            )
            .order_by(Intro.invited_at, Intro.id)
            .limit(limit)
        )
    )
