"""The consent state machine on SQLite and PostgreSQL: invite, answers, introduction, follow-up,
reminders, expiry and the pause after three unanswered invitations."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from cop_mail.audience import subscriptions
from cop_mail.connect import rounds, workflow
from cop_mail.connect.states import IntroStateError, change_status, history
from cop_mail.connect.workflow import AnswerOutcome, FollowupOutcome
from cop_mail.db import utcnow
from cop_mail.models import (
    Campaign,
    ConsentEvent,
    Delivery,
    Intro,
    IntroStatus,
    Member,
    MemberEvent,
)
from tests.conftest import add_member


def queued_kinds(db, delivery_ids) -> list[tuple[int, str, str]]:
    """(member id, recorded kind, logical kind) of the given deliveries."""
    rows = db.execute(
        select(Delivery.member_id, Campaign.content)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(Delivery.id.in_(delivery_ids))
        .order_by(Delivery.id)
    ).all()
    return [(member_id, content["template"], content["context"]["intro_kind"]) for member_id, content in rows]


@pytest.fixture
def ana_ben(db, settings):
    ana = add_member(db, "Ana Souza", values=("Reciprocity",), practices=("Facilitation",))
    ben = add_member(db, "Ben Okafor", values=("Reciprocity",), practices=("Gardening",))
    intro, sent = rounds.introduce_by_hand(db, settings, ana.id, ben.id, "coordinator@example.org")
    db.commit()
    return ana, ben, intro, sent


def fresh(db, model, id_):
    db.expire_all()
    return db.get(model, id_)


def test_introducing_by_hand_invites_both_privately(db, settings, ana_ben):
    ana, ben, intro, sent = ana_ben
    assert intro.status == IntroStatus.INVITED and intro.invited_at is not None
    assert queued_kinds(db, sent) == [
        (ana.id, "intro_invite", "intro_invite"),
        (ben.id, "intro_invite", "intro_invite"),
    ]
    assert intro.a_thread_id and intro.b_thread_id and intro.a_thread_id != intro.b_thread_id
    assert "both hold Reciprocity" in intro.reason and intro.reason.startswith("Introduced by hand by")
    assert fresh(db, Member, ana.id).last_introduced_at is not None
    assert [(c.from_status, c.to_status, c.actor) for c in history(db, intro.id)] == [
        ("proposed", "invited", "coordinator@example.org")
    ]


def test_both_yes_sends_one_joint_email_to_each_and_records_every_change(db, settings, ana_ben):
    ana, ben, intro, _ = ana_ben
    first = workflow.answer(db, settings, intro.id, ana.id, "accept", "reply")
    db.commit()
    assert first.outcome is AnswerOutcome.ACCEPTED and first.to_send == []
    assert fresh(db, Intro, intro.id).status == IntroStatus.ACCEPTED_A
    second = workflow.answer(db, settings, intro.id, ben.id, "accept", "link")
    db.commit()
    assert second.outcome is AnswerOutcome.INTRODUCED
    assert queued_kinds(db, second.to_send) == [
        (ana.id, "intro_joint", "intro_joint"),
        (ben.id, "intro_joint", "intro_joint"),
    ]
    intro = fresh(db, Intro, intro.id)
    assert intro.status == IntroStatus.INTRODUCED and intro.joint_message_id and intro.introduced_at
    assert (intro.a_answer, intro.a_channel, intro.b_answer, intro.b_channel) == ("accept", "reply", "accept", "link")
    assert [c.to_status for c in history(db, intro.id)] == ["invited", "accepted_a", "introduced"]
    assert history(db, intro.id)[-1].actor == f"member:{ben.id} by link"
    # Explicit actions count as engagement, and go on the timeline.
    assert fresh(db, Member, ben.id).last_engaged_at is not None
    kinds = set(db.scalars(select(MemberEvent.kind).where(MemberEvent.member_id == ben.id, MemberEvent.explicit)))
    assert kinds == {"intro_accepted"}


def test_the_same_answer_twice_changes_nothing(db, settings, ana_ben):
    ana, ben, intro, _ = ana_ben
    workflow.answer(db, settings, intro.id, ana.id, "accept", "link")
    db.commit()
    again = workflow.answer(db, settings, intro.id, ana.id, "accept", "link")
    db.commit()
    assert again.outcome is AnswerOutcome.ALREADY and again.to_send == []
    workflow.answer(db, settings, intro.id, ben.id, "accept", "link")
    db.commit()
    third = workflow.answer(db, settings, intro.id, ben.id, "accept", "reply")
    db.commit()
    assert third.outcome is AnswerOutcome.ALREADY and third.to_send == []
    joint = db.scalars(select(Campaign).where(Campaign.name.like("intro_joint%"))).all()
    assert len(joint) == 2  # one per member, not one per click


def test_a_decline_closes_quietly_and_a_later_yes_cannot_reopen_it(db, settings, ana_ben):
    ana, ben, intro, _ = ana_ben
    workflow.answer(db, settings, intro.id, ana.id, "accept", "link")
    result = workflow.answer(db, settings, intro.id, ben.id, "decline", "reply")
    db.commit()
    assert result.outcome is AnswerOutcome.DECLINED and result.to_send == []
    intro = fresh(db, Intro, intro.id)
    assert intro.status == IntroStatus.DECLINED and f"member {ben.id} said no" in intro.closed_reason
    # Nothing was queued for Ana: she is never told.
    assert db.scalar(select(Campaign.id).where(Campaign.name == f"intro_joint to member {ana.id}")) is None
    assert workflow.answer(db, settings, intro.id, ben.id, "accept", "link").outcome is AnswerOutcome.CLOSED
    assert workflow.answer(db, settings, intro.id, ana.id, "accept", "link").outcome is AnswerOutcome.ALREADY


def test_a_yes_can_be_taken_back_before_the_introduction(db, settings, ana_ben):
    ana, ben, intro, _ = ana_ben
    workflow.answer(db, settings, intro.id, ana.id, "accept", "link")
    taken_back = workflow.answer(db, settings, intro.id, ana.id, "decline", "link")
    assert taken_back.outcome is AnswerOutcome.DECLINED
    assert workflow.answer(db, settings, intro.id, ben.id, "accept", "link").outcome is AnswerOutcome.CLOSED
    db.commit()
    assert fresh(db, Intro, intro.id).status == IntroStatus.DECLINED


def test_not_now_closes_without_a_no(db, settings, ana_ben):
    ana, _, intro, _ = ana_ben
    assert workflow.answer(db, settings, intro.id, ana.id, "later", "reply").outcome is AnswerOutcome.LATER
    db.commit()
    intro = fresh(db, Intro, intro.id)
    assert (intro.status, intro.a_answer) == (IntroStatus.DECLINED, "later")
    assert "not now" in intro.closed_reason


def test_a_member_who_unsubscribes_between_invitation_and_acceptance_gets_no_joint_email(db, settings, ana_ben):
    ana, ben, intro, _ = ana_ben
    workflow.answer(db, settings, intro.id, ana.id, "accept", "link")
    db.commit()
    subscriptions.unsubscribe_all(db, ana.id, source="test")
    db.commit()
    result = workflow.answer(db, settings, intro.id, ben.id, "accept", "link")
    db.commit()
    # Ben sees the same as if Ana had simply not answered yet.
    assert result.outcome is AnswerOutcome.ACCEPTED and result.to_send == []
    intro = fresh(db, Intro, intro.id)
    assert intro.status == IntroStatus.CANCELLED and f"member {ana.id}" in intro.closed_reason
    assert db.scalar(select(Campaign.id).where(Campaign.name.like("intro_joint%"))) is None


def test_a_member_who_turned_introductions_off_cannot_accept(db, settings, ana_ben):
    ana, _, intro, _ = ana_ben
    subscriptions.unsubscribe_stream(db, ana.id, "intros", source="test")
    db.commit()
    assert workflow.answer(db, settings, intro.id, ana.id, "accept", "link").outcome is AnswerOutcome.UNAVAILABLE
    assert fresh(db, Intro, intro.id).a_answer is None


def test_answers_from_outsiders_and_to_proposals_change_nothing(db, settings, ana_ben):
    ana, ben, intro, _ = ana_ben
    carla = add_member(db, "Carla Diaz")
    proposal = Intro(member_a_id=ana.id, member_b_id=carla.id, status=IntroStatus.PROPOSED)
    db.add(proposal)
    db.commit()
    assert workflow.answer(db, settings, intro.id, carla.id, "accept", "link").outcome is AnswerOutcome.NOT_A_PARTY
    assert workflow.answer(db, settings, proposal.id, ana.id, "accept", "link").outcome is AnswerOutcome.NOT_INVITED


def test_the_state_machine_refuses_impossible_changes(db, settings, ana_ben):
    _, _, intro, _ = ana_ben
    with pytest.raises(IntroStateError):
        change_status(db, intro, IntroStatus.MET, "test")


def test_reminder_once_then_quiet_expiry_then_acceptance_is_closed(db, settings, ana_ben):
    ana, ben, intro, _ = ana_ben
    workflow.answer(db, settings, intro.id, ana.id, "accept", "link")
    db.commit()
    later = utcnow() + timedelta(days=settings.intro_answer_days, minutes=1)
    reminders = workflow.send_reminders(db, settings, later)
    db.commit()
    assert queued_kinds(db, reminders) == [(ben.id, "intro_invite", "intro_reminder")]
    assert workflow.send_reminders(db, settings, later + timedelta(days=1)) == []  # only one reminder
    assert workflow.expire_unanswered(db, settings, later + timedelta(days=1)) == []  # not yet
    workflow.expire_unanswered(db, settings, later + timedelta(days=settings.intro_answer_days, minutes=1))
    db.commit()
    intro = fresh(db, Intro, intro.id)
    assert intro.status == IntroStatus.EXPIRED and intro.closed_reason == f"no answer from member {ben.id}"
    assert workflow.answer(db, settings, intro.id, ben.id, "accept", "link").outcome is AnswerOutcome.CLOSED
    assert db.scalar(select(Campaign.id).where(Campaign.name.like("intro_joint%"))) is None


def test_three_unanswered_invitations_pause_introductions_and_say_how_to_come_back(db, settings):
    quiet = add_member(db, "Quinn Quiet", values=("Care",))
    others = [add_member(db, f"Other {i}", values=("Care",)) for i in range(3)]
    db.commit()
    now = utcnow()
    notices: list[int] = []
    for number, other in enumerate(others):
        start = now + timedelta(days=30 * number)
        intro, _ = rounds.introduce_by_hand(db, settings, quiet.id, other.id, "coordinator", now=start)
        workflow.answer(db, settings, intro.id, other.id, "accept", "link", start)
        workflow.send_reminders(db, settings, start + timedelta(days=6))
        notices += workflow.expire_unanswered(db, settings, start + timedelta(days=12))
        db.commit()
        assert workflow.unanswered_streak(db, quiet.id) == number + 1
    member = fresh(db, Member, quiet.id)
    assert member.wants_intros is False
    assert queued_kinds(db, notices) == [(quiet.id, "intro_paused", "intro_paused")]
    consent = db.scalar(select(ConsentEvent).where(ConsentEvent.member_id == quiet.id))
    assert consent.kind == "stream_off" and consent.stream == "intros" and "three invitations" in consent.wording
    # The ones who answered are not paused.
    assert all(fresh(db, Member, o.id).wants_intros for o in others)


def test_an_answer_breaks_the_unanswered_streak(db, settings):
    quiet = add_member(db, "Quinn Quiet")
    others = [add_member(db, f"Other {i}") for i in range(3)]
    now = utcnow()
    for number, other in enumerate(others):
        start = now + timedelta(days=30 * number)
        intro, _ = rounds.introduce_by_hand(db, settings, quiet.id, other.id, "coordinator", now=start)
        if number == 1:
            workflow.answer(db, settings, intro.id, quiet.id, "later", "reply", start)
        workflow.send_reminders(db, settings, start + timedelta(days=6))
        workflow.expire_unanswered(db, settings, start + timedelta(days=12))
        db.commit()
    assert workflow.unanswered_streak(db, quiet.id) == 1
    assert fresh(db, Member, quiet.id).wants_intros is True


def introduced(db, settings, ana, ben, intro, at=None):
    workflow.answer(db, settings, intro.id, ana.id, "accept", "link", at)
    workflow.answer(db, settings, intro.id, ben.id, "accept", "reply", at)
    db.commit()


def test_follow_up_goes_out_after_the_set_days_and_met_records_the_connection(db, settings, ana_ben):
    ana, ben, intro, _ = ana_ben
    introduced(db, settings, ana, ben, intro)
    assert workflow.send_followups(db, settings, utcnow() + timedelta(days=1)) == []
    due = utcnow() + timedelta(days=settings.intro_followup_days, minutes=1)
    sent = workflow.send_followups(db, settings, due)
    db.commit()
    assert queued_kinds(db, sent) == [
        (ana.id, "intro_followup", "intro_followup"),
        (ben.id, "intro_followup", "intro_followup"),
    ]
    assert workflow.send_followups(db, settings, due) == []
    not_yet = workflow.answer_followup(db, intro.id, ana.id, "not_met", "reply")
    db.commit()
    assert not_yet.outcome is FollowupOutcome.NOT_MET and fresh(db, Intro, intro.id).status == IntroStatus.NOT_MET
    met = workflow.answer_followup(db, intro.id, ben.id, "met", "link")
    db.commit()
    assert met.outcome is FollowupOutcome.MET
    assert fresh(db, Intro, intro.id).status == IntroStatus.MET
    assert [fresh(db, Member, m).connections_count for m in (ana.id, ben.id)] == [1, 1]
    # Saying MET again (or from the other side) never makes a second connection.
    workflow.answer_followup(db, intro.id, ana.id, "met", "reply")
    assert workflow.answer_followup(db, intro.id, ana.id, "met", "reply").outcome is FollowupOutcome.ALREADY
    db.commit()
    assert [fresh(db, Member, m).connections_count for m in (ana.id, ben.id)] == [1, 1]


def test_skip_records_the_answer_and_nothing_else(db, settings, ana_ben):
    ana, ben, intro, _ = ana_ben
    introduced(db, settings, ana, ben, intro)
    assert workflow.answer_followup(db, intro.id, ana.id, "skip", "reply").outcome is FollowupOutcome.SKIPPED
    db.commit()
    intro = fresh(db, Intro, intro.id)
    assert (intro.status, intro.a_followup) == (IntroStatus.INTRODUCED, "skip")
    assert fresh(db, Member, ana.id).connections_count == 0


def test_a_follow_up_answer_to_an_introduction_that_never_happened_is_refused(db, settings, ana_ben):
    ana, _, intro, _ = ana_ben
    assert workflow.answer_followup(db, intro.id, ana.id, "met", "reply").outcome is FollowupOutcome.NOT_INTRODUCED


def test_waiting_on_one_side_lists_who_said_yes(db, settings, ana_ben):
    ana, ben, intro, _ = ana_ben
    assert workflow.waiting_on_one_side(db) == []
    workflow.answer(db, settings, intro.id, ben.id, "accept", "link")
    db.commit()
    assert [i.id for i in workflow.waiting_on_one_side(db)] == [intro.id]
