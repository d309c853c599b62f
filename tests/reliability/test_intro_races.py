"""Races and lost work: simultaneous answers from both sides, a burst of clicks, periodic jobs running
twice at once, and Redis lost with invitations waiting. Real threads on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from cop_mail.connect import mail, rounds, workflow
from cop_mail.db import utcnow
from cop_mail.models import Campaign, Delivery, DeliveryStatus, Intro, IntroStatus, IntroStatusChange
from cop_mail.queues import HIGH
from tests.conftest import add_member


@pytest.fixture
def settings(make_settings, redis_conn, engine, smtp_sink):
    return make_settings(smtp_port=smtp_sink.port)


def at_once(sessions, settings, calls: list[Callable[[Any], Any]]) -> list[Any]:
    """Run each call in its own thread and session, released together; commit each."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        session = sessions()
        try:
            barrier.wait()
            results[index] = calls[index](session)
            session.commit()
        except BaseException as exc:  # reported below, with the thread's traceback
            errors.append(exc)
        finally:
            session.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return results


def new_pair(db, settings, number: int) -> tuple[int, int, int]:
    a = add_member(db, f"Ana {number}", values=("Care",))
    b = add_member(db, f"Ben {number}", values=("Care",))
    intro, _ = rounds.introduce_by_hand(db, settings, a.id, b.id, "coordinator")
    db.commit()
    return intro.id, a.id, b.id


def joint_mail(db, intro_id: int) -> int:
    names = [
        f"intro_joint to member {m}"
        for m in db.execute(select(Intro.member_a_id, Intro.member_b_id).where(Intro.id == intro_id)).one()
    ]
    return db.scalar(select(func.count()).select_from(Campaign).where(Campaign.name.in_(names)))


def test_both_saying_yes_at_the_same_moment_introduces_them_once(db, sessions, settings):
    for number in range(5):
        intro_id, a, b = new_pair(db, settings, number)
        outcomes = at_once(
            sessions,
            settings,
            [lambda s, i=intro_id, m=m: workflow.answer(s, settings, i, m, "accept", "link").outcome for m in (a, b)],
        )
        db.expire_all()
        assert sorted(map(str, outcomes)) == ["accepted", "introduced"]
        assert db.get(Intro, intro_id).status == IntroStatus.INTRODUCED
        assert joint_mail(db, intro_id) == 2
        changes = db.scalars(select(IntroStatusChange.to_status).where(IntroStatusChange.intro_id == intro_id)).all()
        assert Counter(changes)["introduced"] == 1


def test_a_burst_of_clicks_records_one_answer(db, sessions, settings):
    intro_id, a, b = new_pair(db, settings, 0)
    workflow.answer(db, settings, intro_id, b, "accept", "link")
    db.commit()
    outcomes = at_once(
        sessions,
        settings,
        [lambda s: workflow.answer(s, settings, intro_id, a, "accept", "link").outcome for _ in range(4)],
    )
    assert Counter(map(str, outcomes)) == {"introduced": 1, "already_answered": 3}
    db.expire_all()
    assert joint_mail(db, intro_id) == 2


def test_a_yes_and_a_no_at_once_never_introduce(db, sessions, settings):
    for number in range(5):
        intro_id, a, b = new_pair(db, settings, number)
        at_once(
            sessions,
            settings,
            [
                lambda s, i=intro_id, m=a: workflow.answer(s, settings, i, m, "accept", "reply"),
                lambda s, i=intro_id, m=b: workflow.answer(s, settings, i, m, "decline", "link"),
            ],
        )
        db.expire_all()
        assert db.get(Intro, intro_id).status == IntroStatus.DECLINED
        assert joint_mail(db, intro_id) == 0


def test_periodic_passes_running_twice_at_once_remind_once(db, sessions, settings):
    pairs = [new_pair(db, settings, number) for number in range(3)]
    later = utcnow() + timedelta(days=settings.intro_answer_days, hours=1)
    results = at_once(sessions, settings, [lambda s: workflow.send_reminders(s, settings, later) for _ in range(2)])
    assert sorted(len(r) for r in results) in ([0, 6], [2, 4], [3, 3], [1, 5])
    assert len(set(results[0]) | set(results[1])) == 6
    reminders = db.scalar(
        select(func.count())
        .select_from(Delivery)
        .join(Campaign)
        .where(Campaign.name.like("intro_invite%"), Delivery.created_at > utcnow() - timedelta(minutes=5))
    )
    assert reminders == 12  # six invitations and six reminders, not twelve reminders
    expiry = later + timedelta(days=settings.intro_answer_days, hours=1)
    at_once(sessions, settings, [lambda s: workflow.expire_unanswered(s, settings, expiry) for _ in range(2)])
    db.expire_all()
    for intro_id, *_ in pairs:
        changes = db.scalars(select(IntroStatusChange.to_status).where(IntroStatusChange.intro_id == intro_id)).all()
        assert changes == ["invited", "expired"]


def test_invitations_survive_redis_restarting_empty(db, settings, redis_server, redis_conn, run_jobs, smtp_sink):
    intro_id, a, b = new_pair(db, settings, 0)
    sent = db.scalars(select(Delivery.id).order_by(Delivery.id)).all()
    mail.enqueue_intro_emails(redis_conn, sent)
    redis_server.restart_empty()  # the doorbells are gone; the rows are not
    assert run_jobs((HIGH,)) == 0
    assert smtp_sink.messages == []
    due = mail.reconcile_intro_emails(db, utcnow() + mail.LOST_JOB_AFTER + timedelta(seconds=1))
    assert due == sent
    mail.enqueue_intro_emails(redis_conn, due + due)  # a reconcile running twice rings twice
    assert run_jobs((HIGH,)) == 0
    assert sorted(m.rcpt_tos[0] for m in smtp_sink.messages) == ["ana.0@example.org", "ben.0@example.org"]
    db.expire_all()
    assert set(db.scalars(select(Delivery.status))) == {DeliveryStatus.SENT}


def test_a_send_round_job_run_twice_invites_each_pair_once(db, settings, run_jobs, redis_conn):
    for number in range(3):
        add_member(db, f"Member {number}a", values=("Care",))
        add_member(db, f"Member {number}b", values=("Care",))
    made = rounds.create_round(db, name="Twice", created_by="c", max_pairs=3)
    rounds.propose(db, made.id)
    rounds.start_sending(db, made.id)
    db.commit()
    from cop_mail.connect.jobs import send_round_job
    from cop_mail.queues import DEFAULT, enqueue

    enqueue(redis_conn, send_round_job, made.id, queue=DEFAULT)
    enqueue(redis_conn, send_round_job, made.id, queue=DEFAULT)
    assert run_jobs((DEFAULT,)) == 0
    invites = db.scalar(select(func.count()).select_from(Campaign).where(Campaign.name.like("intro_invite%")))
    assert invites == 6
