"""Answers by email, through the inbound processing as it runs in production (stored raw message ->
parse -> route -> classify -> intent -> cop_mail.connect.replies), and the bad input the issue names:
yes only in quoted text, an auto-reply, a reply from another address."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlalchemy import select

from cop_mail.connect import mail, replies, rounds, workflow
from cop_mail.connect.replies import ReplyOutcome
from cop_mail.inbound import store
from cop_mail.inbound.intent import IntentResult
from cop_mail.inbound.processing import process_inbound
from cop_mail.models import Connection, InboundMessage, InboundStatus, Intro, IntroStatus
from tests.conftest import add_member


@pytest.fixture
def pair(db, settings):
    ana = add_member(db, "Ana Souza", values=("Reciprocity",))
    ben = add_member(db, "Ben Okafor", values=("Reciprocity",))
    intro, _ = rounds.introduce_by_hand(db, settings, ana.id, ben.id, "coordinator")
    db.commit()
    return ana, ben, intro


def reply(settings, sender: str, to: str, text: str, **headers: str) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = "Re: Would you like to meet Ben Okafor?"
    message["Message-ID"] = make_msgid(domain="mail.example.net")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(text)
    return message.as_bytes()


def deliver(db, settings, raw: bytes, to: str, sender: str) -> InboundMessage:
    stored = store.save_raw(db, raw, sender, [to], "smtp")
    db.commit()
    process_inbound(db, settings, stored.id)
    db.commit()
    db.expire_all()
    return db.get(InboundMessage, stored.id)


def intro_now(db, intro_id: int) -> Intro:
    db.expire_all()
    return db.get(Intro, intro_id)


def test_yes_by_reply_accepts(db, settings, pair):
    ana, _, intro = pair
    to = mail.reply_address(settings, "intro", intro.id, ana.id)
    inbound = deliver(db, settings, reply(settings, ana.email, to, "Yes, happy to!"), to, ana.email)
    assert inbound.status == InboundStatus.PROCESSED and inbound.intent == "accept"
    assert (inbound.subject_kind, inbound.subject_id, inbound.member_id) == ("intro", intro.id, ana.id)
    intro = intro_now(db, intro.id)
    assert (intro.status, intro.a_answer, intro.a_channel) == (IntroStatus.ACCEPTED_A, "accept", "reply")


def test_no_by_reply_declines_and_the_other_is_not_told(db, settings, pair):
    ana, ben, intro = pair
    workflow.answer(db, settings, intro.id, ben.id, "accept", "link")
    db.commit()
    to = mail.reply_address(settings, "intro", intro.id, ana.id)
    deliver(db, settings, reply(settings, ana.email, to, "No thanks, not for me."), to, ana.email)
    assert intro_now(db, intro.id).status == IntroStatus.DECLINED
    assert db.scalar(select(InboundMessage.id).where(InboundMessage.member_id == ben.id)) is None


def test_a_yes_only_in_quoted_text_does_not_accept(db, settings, pair):
    ana, _, intro = pair
    to = mail.reply_address(settings, "intro", intro.id, ana.id)
    text = (
        "Let me think about it over the weekend.\n\n"
        "On Mon, 23 Nov 2026 at 09:00, Test Community <community@cop-mail.test> wrote:\n"
        "> Would you like to meet Ben Okafor?\n"
        "> Reply YES or NO to this email, or use the buttons below.\n"
        "> YES\n"
    )
    inbound = deliver(db, settings, reply(settings, ana.email, to, text), to, ana.email)
    assert inbound.status == InboundStatus.NEEDS_REVIEW and inbound.intent == "unclear"
    assert intro_now(db, intro.id).status == IntroStatus.INVITED
    assert intro_now(db, intro.id).a_answer is None


def test_an_auto_reply_never_answers(db, settings, pair):
    ana, _, intro = pair
    to = mail.reply_address(settings, "intro", intro.id, ana.id)
    raw = reply(settings, ana.email, to, "Yes, I am out of the office until Monday.", Auto_Submitted="auto-replied")
    inbound = deliver(db, settings, raw, to, ana.email)
    assert inbound.status == InboundStatus.DISCARDED and inbound.classification == "auto_reply"
    assert intro_now(db, intro.id).a_answer is None


def test_a_reply_from_another_address_is_not_counted_and_goes_to_a_coordinator(db, settings, pair):
    ana, _, intro = pair
    to = mail.reply_address(settings, "intro", intro.id, ana.id)
    inbound = deliver(
        db, settings, reply(settings, "someone.else@example.net", to, "Yes!"), to, "someone.else@example.net"
    )
    assert inbound.status == InboundStatus.NEEDS_REVIEW and "mismatch" in inbound.reason
    assert intro_now(db, intro.id).a_answer is None


def test_met_by_reply_to_the_follow_up_records_the_connection(db, settings, pair):
    ana, ben, intro = pair
    workflow.answer(db, settings, intro.id, ana.id, "accept", "link")
    workflow.answer(db, settings, intro.id, ben.id, "accept", "link")
    db.commit()
    to = mail.reply_address(settings, "followup", intro.id, ben.id)
    inbound = deliver(db, settings, reply(settings, ben.email, to, "MET"), to, ben.email)
    assert inbound.status == InboundStatus.PROCESSED and inbound.intent == "met"
    assert intro_now(db, intro.id).status == IntroStatus.MET
    connection = db.scalar(select(Connection))
    assert (connection.member_a_id, connection.member_b_id, connection.how, connection.intro_id) == (
        min(ana.id, ben.id),
        max(ana.id, ben.id),
        "introduction",
        intro.id,
    )


# --- the function the inbound processing calls, on its own ------------------------------------


def test_handle_intro_reply_refuses_a_sender_mismatch_and_leaves_unclear_to_a_person(db, settings, pair):
    ana, _, intro = pair
    mismatch = replies.handle_intro_reply(db, settings, intro.id, ana.id, "accept", sender="Eve <eve@example.net>")
    assert (mismatch.outcome, mismatch.counted) == (ReplyOutcome.SENDER_MISMATCH, False)
    unclear = replies.handle_intro_reply(db, settings, intro.id, ana.id, "unclear", sender=f"Ana <{ana.email.upper()}>")
    assert (unclear.outcome, unclear.counted) == (ReplyOutcome.NEEDS_REVIEW, False)
    assert intro_now(db, intro.id).a_answer is None
    accepted = replies.handle_intro_reply(
        db, settings, intro.id, ana.id, IntentResult("accept", 0.9, "yes"), sender=ana.email.upper()
    )
    assert (accepted.outcome, accepted.counted) == ("accepted", True)
    again = replies.handle_intro_reply(db, settings, intro.id, ana.id, "accept")
    assert (again.outcome, again.counted) == ("already_answered", False)


def test_handle_replies_for_unknown_introductions_and_follow_up_intents(db, settings, pair):
    ana, ben, intro = pair
    assert replies.handle_intro_reply(db, settings, 999_999, ana.id, "accept").outcome == ReplyOutcome.UNKNOWN_INTRO
    early = replies.handle_followup_reply(db, settings, intro.id, ana.id, "met")
    assert (early.outcome, early.counted) == ("not_introduced", False)
    workflow.answer(db, settings, intro.id, ana.id, "accept", "link")
    both = replies.handle_intro_reply(db, settings, intro.id, ben.id, "accept")
    assert both.outcome == "introduced" and len(both.to_send) == 2
    unclear = replies.handle_followup_reply(db, settings, intro.id, ben.id, "unclear")
    assert unclear.outcome == ReplyOutcome.NEEDS_REVIEW
    assert replies.handle_followup_reply(db, settings, intro.id, ben.id, "not_met").outcome == "not_met"
