"""Introduction emails through real RQ jobs into a real SMTP sink: what each says, its headers
(Reply-To, threading), and the consent check at the moment of sending."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import timedelta

import pytest
from rq import Queue
from sqlalchemy import select

from cop_mail.audience import subscriptions
from cop_mail.connect import mail, rounds, workflow
from cop_mail.db import utcnow
from cop_mail.models import Delivery, DeliveryStatus, Intro
from cop_mail.queues import HIGH
from cop_mail.tokens import read_address_token
from tests.conftest import TEST_SECRET, add_member


@pytest.fixture
def settings(make_settings, redis_conn, engine, smtp_sink):
    return make_settings(smtp_port=smtp_sink.port)


@pytest.fixture
def pair(db, settings, redis_conn):
    ana = add_member(db, "Ana Souza", values=("Reciprocity",), practices=("Facilitation",))
    ben = add_member(
        db,
        "Ben Okafor",
        values=("Reciprocity",),
        practices=("Gardening",),
        attributes={"bio": "Runs the seed library."},
    )
    intro, sent = rounds.introduce_by_hand(db, settings, ana.id, ben.id, "coordinator", note="You'd get on.")
    db.commit()
    return ana, ben, intro, sent


def parsed(message):
    return email.message_from_bytes(message.data, policy=email.policy.default)


def by_recipient(sink) -> dict[str, email.message.EmailMessage]:
    return {m.rcpt_tos[0]: parsed(m) for m in sink.messages}


def body(message) -> str:
    return message.get_body(("plain",)).get_content()


def reply_token(message) -> tuple[str, int, int]:
    address = message["Reply-To"].addresses[0].addr_spec
    local = address.split("@")[0]
    assert local.startswith("reply+")
    return read_address_token(TEST_SECRET, local.removeprefix("reply+"))


def test_invitations_are_private_and_answerable_by_reply_or_button(db, settings, pair, smtp_sink, run_jobs, redis_conn):
    ana, ben, intro, sent = pair
    mail.enqueue_intro_emails(redis_conn, sent)
    assert run_jobs((HIGH,)) == 0
    received = by_recipient(smtp_sink)
    assert set(received) == {"ana.souza@example.org", "ben.okafor@example.org"}
    to_ana = received["ana.souza@example.org"]
    assert to_ana["Subject"] == "Would you like to meet Ben Okafor?"
    assert reply_token(to_ana) == ("intro", intro.id, ana.id)
    assert to_ana["Message-ID"] == intro.a_thread_id
    assert to_ana["Auto-Submitted"] == "auto-generated" and "One-Click" in to_ana["List-Unsubscribe-Post"]
    text = body(to_ana)
    assert "Reply YES or NO" in text and "You'd get on." in text and "Runs the seed library." in text
    assert re.search(r"http://cop-mail\.test/intro/[\w.-]+", text)
    # Nothing is shared before both agree: Ana's invitation holds no address of Ben's.
    assert "ben.okafor@example.org" not in to_ana.as_string()
    assert smtp_sink.messages[0].mail_from.startswith("bounces+")
    statuses = db.scalars(select(Delivery.status).where(Delivery.id.in_(sent))).all()
    assert statuses == [DeliveryStatus.SENT, DeliveryStatus.SENT]


def test_the_joint_email_reaches_both_threaded_with_reply_to_the_other(
    db, settings, pair, smtp_sink, run_jobs, redis_conn
):
    ana, ben, intro, _ = pair
    workflow.answer(db, settings, intro.id, ana.id, "accept", "reply")
    result = workflow.answer(db, settings, intro.id, ben.id, "accept", "link")
    db.commit()
    mail.enqueue_intro_emails(redis_conn, result.to_send)
    assert run_jobs((HIGH,)) == 0
    received = by_recipient(smtp_sink)
    db.expire_all()
    joint_id = db.get(Intro, intro.id).joint_message_id
    to_ana, to_ben = received["ana.souza@example.org"], received["ben.okafor@example.org"]
    assert to_ana["Message-ID"] == to_ben["Message-ID"] == joint_id
    assert to_ana["Reply-To"].addresses[0].addr_spec == "ben.okafor@example.org"
    assert to_ben["Reply-To"].addresses[0].addr_spec == "ana.souza@example.org"
    assert to_ana["Subject"] == "Meet each other: Ana Souza and Ben Okafor"
    assert "Auto-Submitted" not in to_ana
    for message in (to_ana, to_ben):
        assert "ana.souza@example.org" in body(message) and "ben.okafor@example.org" in body(message)


def test_reminder_and_follow_up_thread_onto_earlier_messages(db, settings, pair, smtp_sink, run_jobs, redis_conn):
    ana, ben, intro, _ = pair
    reminders = workflow.send_reminders(db, settings, utcnow() + timedelta(days=settings.intro_answer_days, hours=1))
    db.commit()
    mail.enqueue_intro_emails(redis_conn, reminders)
    assert run_jobs((HIGH,)) == 0
    to_ana = by_recipient(smtp_sink)["ana.souza@example.org"]
    assert to_ana["Subject"] == "A gentle reminder: would you like to meet Ben Okafor?"
    assert to_ana["In-Reply-To"] == intro.a_thread_id and to_ana["Message-ID"] != intro.a_thread_id
    smtp_sink.messages.clear()
    workflow.answer(db, settings, intro.id, ana.id, "accept", "link")
    workflow.answer(db, settings, intro.id, ben.id, "accept", "link")
    db.commit()
    followups = workflow.send_followups(db, settings, utcnow() + timedelta(days=settings.intro_followup_days, hours=1))
    db.commit()
    mail.enqueue_intro_emails(redis_conn, followups)
    assert run_jobs((HIGH,)) == 0
    db.expire_all()
    joint_id = db.get(Intro, intro.id).joint_message_id
    to_ben = by_recipient(smtp_sink)["ben.okafor@example.org"]
    assert to_ben["In-Reply-To"] == joint_id and to_ben["References"] == joint_id
    assert reply_token(to_ben) == ("followup", intro.id, ben.id)
    assert "MET, NOT YET or SKIP" in to_ben["Subject"]
    assert "/intro/" in body(to_ben) and "/followup" in body(to_ben)


def test_nobody_gets_a_joint_email_after_leaving_between_the_yes_and_the_send(
    db, settings, pair, smtp_sink, run_jobs, redis_conn
):
    ana, ben, intro, _ = pair
    workflow.answer(db, settings, intro.id, ana.id, "accept", "link")
    result = workflow.answer(db, settings, intro.id, ben.id, "accept", "link")
    db.commit()
    # Ana unsubscribes in the moment between Ben's yes and the joint email leaving.
    subscriptions.unsubscribe_all(db, ana.id, source="test")
    db.commit()
    mail.enqueue_intro_emails(redis_conn, result.to_send)
    assert run_jobs((HIGH,)) == 0
    assert smtp_sink.messages == []
    rows = db.execute(select(Delivery.status, Delivery.last_error).where(Delivery.id.in_(result.to_send))).all()
    assert [status for status, _ in rows] == [DeliveryStatus.SUPPRESSED, DeliveryStatus.SUPPRESSED]
    assert all(error for _, error in rows)


def test_a_reminder_is_not_sent_to_someone_who_answered_meanwhile(db, settings, pair, smtp_sink, run_jobs, redis_conn):
    ana, _, intro, _ = pair
    reminders = workflow.send_reminders(db, settings, utcnow() + timedelta(days=settings.intro_answer_days, hours=1))
    db.commit()
    workflow.answer(db, settings, intro.id, ana.id, "accept", "link")
    db.commit()
    mail.enqueue_intro_emails(redis_conn, reminders)
    assert run_jobs((HIGH,)) == 0
    assert [m.rcpt_tos for m in smtp_sink.messages] == [["ben.okafor@example.org"]]


def test_nothing_more_goes_out_once_an_introduction_closed(db, settings, pair, smtp_sink, run_jobs, redis_conn):
    ana, _, intro, _ = pair
    reminders = workflow.send_reminders(db, settings, utcnow() + timedelta(days=settings.intro_answer_days, hours=1))
    db.commit()
    workflow.answer(db, settings, intro.id, ana.id, "decline", "link")
    db.commit()
    mail.enqueue_intro_emails(redis_conn, reminders)
    assert run_jobs((HIGH,)) == 0
    # Ben's reminder would have hinted at Ana's no: it is dropped, with the reason on the row.
    assert smtp_sink.messages == []
    assert set(db.scalars(select(Delivery.status).where(Delivery.id.in_(reminders)))) == {DeliveryStatus.SUPPRESSED}


def test_sending_twice_sends_once(db, settings, pair, smtp_sink, run_jobs, redis_conn):
    _, _, _, sent = pair
    mail.enqueue_intro_emails(redis_conn, sent + sent)
    assert run_jobs((HIGH,)) == 0
    assert len(smtp_sink.messages) == 2


def test_a_lost_job_is_found_again_and_a_deferred_message_retried(db, settings, pair, smtp_sink, run_jobs, redis_conn):
    _, _, _, sent = pair
    # Never enqueued (as if Redis lost the job): too fresh at first, found once LOST_JOB_AFTER passed.
    assert mail.reconcile_intro_emails(db) == []
    assert mail.reconcile_intro_emails(db, utcnow() + mail.LOST_JOB_AFTER + timedelta(seconds=1)) == sent
    smtp_sink.responder = lambda message: "451 4.3.0 try again later"
    mail.enqueue_intro_emails(redis_conn, sent)
    assert run_jobs((HIGH,)) == 0
    assert smtp_sink.messages == []
    db.expire_all()
    assert set(db.scalars(select(Delivery.status).where(Delivery.id.in_(sent)))) == {DeliveryStatus.DEFERRED}
    # Each job rang again for when its retry is due (the RQ scheduler runs it then).
    assert Queue(HIGH, connection=redis_conn).scheduled_job_registry.count == 2
    smtp_sink.responder = None
    due = mail.reconcile_intro_emails(db, utcnow() + mail.BACKOFF[0] + timedelta(seconds=1))
    assert due == sent
    with pytest.MonkeyPatch.context() as patch:
        # The retry is due by the database's clock; let the claim see that moment.
        patch.setattr(mail, "utcnow", lambda: utcnow() + mail.BACKOFF[0] + timedelta(seconds=1))
        mail.enqueue_intro_emails(redis_conn, due)
        assert run_jobs((HIGH,)) == 0
    assert len(smtp_sink.messages) == 2


def test_a_hard_bounce_at_rcpt_suppresses_the_member(db, settings, pair, smtp_sink, run_jobs, redis_conn):
    ana, _, _, sent = pair
    smtp_sink.responder = lambda m: "550 5.1.1 no such mailbox" if "ana" in m.rcpt_tos[0] else None
    mail.enqueue_intro_emails(redis_conn, sent)
    assert run_jobs((HIGH,)) == 0
    from cop_mail.audience.suppression import is_suppressed

    assert is_suppressed(db, ana.email)
