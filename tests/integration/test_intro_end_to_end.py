"""A round through real SMTP both ways: invitations go out, one member replies "Yes, happy to!" by
email to the running inbound receiver, the other clicks accept, the joint email reaches both, the
follow-up reply "MET" records the connection, and the community map shows it.

Real pieces only: the admin pages, RQ jobs run by a worker, an aiosmtpd sink for outgoing mail,
the inbound SMTP receiver on its own port, PostgreSQL or SQLite.
"""

from __future__ import annotations

import email
import email.policy
import re
import smtplib
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlalchemy import select, update

from cop_mail.db import utcnow
from cop_mail.inbound import receiver
from cop_mail.models import Connection, InboundMessage, Intro, IntroRound, IntroStatus
from cop_mail.queues import ALL_QUEUES, DEFAULT, enqueue
from tests.conftest import add_member, csrf_token_from, free_port


@pytest.fixture
def settings(make_settings, redis_conn, engine, smtp_sink):
    return make_settings(smtp_port=smtp_sink.port, inbound_port=free_port())


@pytest.fixture
def inbound(settings):
    controller = receiver.start(settings, "127.0.0.1", settings.inbound_port)
    yield controller
    controller.stop()


def received(sink, address: str, subject_part: str) -> email.message.EmailMessage:
    for message in reversed(sink.messages):
        parsed = email.message_from_bytes(message.data, policy=email.policy.default)
        if message.rcpt_tos == [address] and subject_part in parsed["Subject"]:
            return parsed
    raise AssertionError(f"no message to {address} about {subject_part!r}; the sink has {len(sink.messages)}")


def answer_by_email(settings, to_message: email.message.EmailMessage, sender: str, text: str) -> None:
    """Reply the way a mail program does: to the Reply-To, threaded, quoting the original."""
    reply = EmailMessage()
    reply["From"] = sender
    reply["To"] = str(to_message["Reply-To"])
    reply["Subject"] = "Re: " + to_message["Subject"]
    reply["Message-ID"] = make_msgid(domain="mail.example.net")
    reply["In-Reply-To"] = to_message["Message-ID"]
    reply["References"] = to_message["Message-ID"]
    quoted = "\n".join("> " + line for line in to_message.get_body(("plain",)).get_content().splitlines())
    reply.set_content(f"{text}\n\nOn Monday, {to_message['From']} wrote:\n{quoted}\n")
    with smtplib.SMTP("127.0.0.1", settings.inbound_port, timeout=10) as client:
        client.send_message(reply, from_addr=sender, to_addrs=[to_message["Reply-To"].addresses[0].addr_spec])


def test_a_round_through_real_smtp_both_ways(client, db, login, settings, smtp_sink, inbound, run_jobs, redis_conn):
    ana = add_member(
        db, "Ana Souza", values=("Reciprocity",), practices=("Facilitation",), joined_at=utcnow() - timedelta(days=12)
    )
    ben = add_member(
        db,
        "Ben Okafor",
        values=("Reciprocity",),
        practices=("Gardening",),
        joined_at=utcnow() - timedelta(days=400),
        connections_count=0,
    )
    db.commit()
    login("coordinator")

    # The coordinator creates a round, proposes pairs and sends.
    token = csrf_token_from(client.get("/admin/intros").get_data(as_text=True))
    client.post("/admin/intros/rounds", data={"name": "First round", "max_pairs": "1", "csrf_token": token})
    made = db.scalar(select(IntroRound))
    token = csrf_token_from(client.get(f"/admin/intros/rounds/{made.id}").get_data(as_text=True))
    client.post(f"/admin/intros/rounds/{made.id}/propose", data={"csrf_token": token})
    page = client.get(f"/admin/intros/rounds/{made.id}").get_data(as_text=True)
    assert "both hold Reciprocity" in page and "Ana Souza joined 12 days ago and has no connections yet" in page
    client.post(f"/admin/intros/rounds/{made.id}/send", data={"csrf_token": csrf_token_from(page)})
    assert run_jobs(ALL_QUEUES) == 0

    # Invitations went out over SMTP.
    smtp_sink.wait_for(2)
    to_ana = received(smtp_sink, ana.email, "Would you like to meet Ben Okafor?")
    to_ben = received(smtp_sink, ben.email, "Would you like to meet Ana Souza?")
    intro = db.scalar(select(Intro))
    assert intro.status == IntroStatus.INVITED

    # Ana answers by email, over SMTP, to the inbound receiver.
    answer_by_email(settings, to_ana, ana.email, "Yes, happy to!")
    assert run_jobs(ALL_QUEUES) == 0
    stored = db.scalar(select(InboundMessage))
    assert stored is not None and stored.intent == "accept", stored and stored.reason
    db.expire_all()
    intro = db.get(Intro, intro.id)
    side = intro.side_of(ana.id)
    assert intro.status == f"accepted_{side}" and getattr(intro, f"{side}_channel") == "reply"

    # Ben clicks the button in his invitation.
    link = re.search(r"http://cop-mail\.test(/intro/[\w.-]+)", to_ben.get_body(("plain",)).get_content()).group(1)
    client.get("/logout")
    page = client.get(link).get_data(as_text=True)
    response = client.post(link, data={"answer": "accept", "csrf_token": csrf_token_from(page)})
    assert "You're introduced!" in response.get_data(as_text=True)
    assert run_jobs(ALL_QUEUES) == 0

    # The joint email reaches both, threaded, each with Reply-To the other.
    smtp_sink.wait_for(4)
    joint_ana = received(smtp_sink, ana.email, "Meet each other")
    joint_ben = received(smtp_sink, ben.email, "Meet each other")
    assert joint_ana["Message-ID"] == joint_ben["Message-ID"]
    assert joint_ana["Reply-To"].addresses[0].addr_spec == ben.email

    # Weeks later the follow-up goes out from the periodic job; Ben replies "MET".
    db.execute(update(Intro).where(Intro.id == intro.id).values(introduced_at=utcnow() - timedelta(days=22)))
    db.commit()
    from cop_mail.connect.jobs import intro_followups_job

    enqueue(redis_conn, intro_followups_job, queue=DEFAULT)
    assert run_jobs(ALL_QUEUES) == 0
    smtp_sink.wait_for(6)
    followup = received(smtp_sink, ben.email, "How did it go with Ana Souza?")
    assert followup["In-Reply-To"] == joint_ben["Message-ID"]
    answer_by_email(settings, followup, ben.email, "MET")
    assert run_jobs(ALL_QUEUES) == 0
    db.expire_all()
    assert db.get(Intro, intro.id).status == IntroStatus.MET
    connection = db.scalar(select(Connection))
    assert {connection.member_a_id, connection.member_b_id} == {ana.id, ben.id} and connection.intro_id == intro.id

    # The map shows it.
    login("viewer")
    page = client.get("/admin/community-map").get_data(as_text=True)
    assert "2 members and 1 connection" in page
    assert "Ana Souza: 1 connection, periphery (one connection), Reciprocity" in page
    assert "Ben Okafor: 1 connection" in page
