"""The attention budget end to end: real campaigns planned and sent by RQ jobs into a real SMTP
sink, introductions through their own sender, and the periodic reconcile bringing held mail out
in the member's next window. Time passing is simulated by moving every recorded time back."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select, update

from cop_mail import community
from cop_mail.connect import mail, rounds, workflow
from cop_mail.db import utcnow
from cop_mail.models import (
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    Intro,
    IntroStatus,
    ListMembership,
    MailingList,
)
from cop_mail.queues import HIGH
from cop_mail.sending import budget, campaigns, jobs, pipeline, planner, reconcile, transactional
from tests.conftest import add_member, seed_list_members

D = DeliveryStatus
OWNER = "owner@example.org"


@pytest.fixture
def settings(make_settings, redis_conn, engine, smtp_sink):
    return make_settings(smtp_port=smtp_sink.port, smtp_timeout=5)


def set_budget(db, cap: int, days: int = 7, **over: str) -> None:
    prefs = community.load(db)
    community.update(
        db, OWNER, budget_max_emails=cap, budget_window_days=days, budget_over={**prefs.budget_over, **over}
    )
    db.commit()


def make_campaign(db, list_id: int, kind: str = "newsletter", name: str = "Letter") -> int:
    campaign = campaigns.create_campaign(
        db,
        name=name,
        kind=kind,
        subject=f"{name} for {{{{ member.first_name | default('you') }}}}",
        actor=OWNER,
        content={"template": "message", "heading": name, "body": "Hello.", "button": None},
        list_ids=[list_id],
    )
    db.commit()
    return campaign.id


def send_with_jobs(db, redis_conn, run_jobs, campaign_id: int) -> None:
    """Press send: the real status change, planner job and batch jobs."""
    campaigns.send_now(db, campaign_id, OWNER)
    db.commit()
    jobs.ring_plan(redis_conn, campaign_id)
    assert run_jobs() == 0


def plan_only(db, campaign_id: int) -> None:
    campaigns.send_now(db, campaign_id, OWNER)
    db.commit()
    planner.plan_campaign(db, campaign_id)
    db.commit()


def reconcile_with_jobs(db, redis_conn, run_jobs) -> reconcile.ReconcileReport:
    report = reconcile.reconcile(
        db,
        ring_plan=lambda cid: jobs.ring_plan(redis_conn, cid),
        ring_batches=lambda cid: jobs.ring_batches(redis_conn, cid),
    )
    assert run_jobs() == 0
    return report


def statuses(db, campaign_id: int) -> Counter[str]:
    db.expire_all()
    return Counter(db.scalars(select(Delivery.status).where(Delivery.campaign_id == campaign_id)))


def recipients(sink) -> Counter[str]:
    return Counter(rcpt for message in sink.messages for rcpt in message.rcpt_tos)


def let_time_pass(db, until) -> None:
    """As if the clock had reached `until` (plus a second): every recorded time moves back by the difference."""
    shift = until - utcnow() + timedelta(seconds=1)
    db.expire_all()
    for row in db.scalars(select(Delivery)):
        for name in ("sent_at", "data_sent_at", "next_attempt_at", "created_at"):
            if getattr(row, name) is not None:
                setattr(row, name, getattr(row, name) - shift)
    for intro in db.scalars(select(Intro)):
        for name in ("invited_at", "reminded_at"):
            if getattr(intro, name) is not None:
                setattr(intro, name, getattr(intro, name) - shift)
    db.commit()


def campaign_status(db, campaign_id: int) -> str:
    db.expire_all()
    return db.get(Campaign, campaign_id).status


# --- campaigns ---------------------------------------------------------------------------------


def test_over_budget_newsletter_is_held_then_sent_in_the_next_window(
    db, engine, settings, smtp_sink, redis_conn, run_jobs
):
    list_id = seed_list_members(engine, 3)
    set_budget(db, 2, 7)
    first, second, third = (make_campaign(db, list_id, name=n) for n in ("First", "Second", "Third"))
    send_with_jobs(db, redis_conn, run_jobs, first)
    send_with_jobs(db, redis_conn, run_jobs, second)
    assert len(smtp_sink.messages) == 6

    send_with_jobs(db, redis_conn, run_jobs, third)

    assert len(smtp_sink.messages) == 6, "nobody gets a third email within the week"
    assert statuses(db, third) == {D.HELD: 3}
    held = db.scalars(select(Delivery).where(Delivery.campaign_id == third)).all()
    oldest = db.scalar(select(func.min(Delivery.sent_at)).where(Delivery.campaign_id == first))
    for row in held:
        assert row.attempts == 0 and row.sent_at is None
        assert row.last_error.startswith("Attention budget (2 emails per 7 days): 2 already sent; held until ")
        assert budget.format_when(row.next_attempt_at) in row.last_error
        assert oldest + timedelta(days=7) <= row.next_attempt_at <= oldest + timedelta(days=7, seconds=5)
    # Held is not finished: the campaign stays sending, and the reconciler leaves it so.
    report = reconcile_with_jobs(db, redis_conn, run_jobs)
    assert third not in report.finished and third not in report.rung
    assert campaign_status(db, third) == CampaignStatus.SENDING
    summary = budget.campaign_summary(db, third)
    assert (summary.held, summary.dropped) == (3, 0) and summary.next_window == min(r.next_attempt_at for r in held)

    let_time_pass(db, max(r.next_attempt_at for r in held))
    report = reconcile_with_jobs(db, redis_conn, run_jobs)

    assert third in report.rung
    assert statuses(db, third) == {D.SENT: 3}
    assert set(recipients(smtp_sink).values()) == {3}
    reconcile_with_jobs(db, redis_conn, run_jobs)
    assert campaign_status(db, third) == CampaignStatus.SENT


def test_a_stream_set_to_drop_is_dropped_and_never_sent(db, engine, settings, smtp_sink, redis_conn, run_jobs):
    list_id = seed_list_members(engine, 2)
    set_budget(db, 1, 7, resources="drop")
    send_with_jobs(db, redis_conn, run_jobs, make_campaign(db, list_id, name="News"))
    digest = make_campaign(db, list_id, kind="resource_digest", name="Digest")

    send_with_jobs(db, redis_conn, run_jobs, digest)

    assert statuses(db, digest) == {D.DROPPED: 2}
    reasons = set(db.scalars(select(Delivery.last_error).where(Delivery.campaign_id == digest)))
    assert reasons == {"Attention budget (1 email per 7 days): 1 already sent; dropped (this stream's setting)"}
    assert len(smtp_sink.messages) == 2
    # Dropped is an outcome: the campaign is done, and stays so when the window frees.
    reconcile_with_jobs(db, redis_conn, run_jobs)
    assert campaign_status(db, digest) == CampaignStatus.SENT
    let_time_pass(db, utcnow() + timedelta(days=8))
    reconcile_with_jobs(db, redis_conn, run_jobs)
    assert statuses(db, digest) == {D.DROPPED: 2} and len(smtp_sink.messages) == 2


def test_higher_priority_mail_waiting_goes_first(db, engine, settings, smtp_sink, redis_conn, run_jobs):
    list_id = seed_list_members(engine, 2)
    set_budget(db, 2, 7)
    send_with_jobs(db, redis_conn, run_jobs, make_campaign(db, list_id, name="Earlier"))
    roundup = make_campaign(db, list_id, kind="roundup", name="Roundup")
    newsletter = make_campaign(db, list_id, name="Newsletter")
    plan_only(db, roundup)
    plan_only(db, newsletter)

    # The newsletter's batch runs first, but a roundup is waiting for the same members.
    pipeline.send_batch(engine, settings, redis_conn, newsletter, "test-worker")
    assert statuses(db, newsletter) == {D.HELD: 2}
    reason = db.scalar(select(Delivery.last_error).where(Delivery.campaign_id == newsletter).limit(1))
    assert reason.startswith("Attention budget (2 emails per 7 days): 1 already sent, 1 more important waiting; held")
    result = pipeline.send_batch(engine, settings, redis_conn, roundup, "test-worker")
    assert (result.sent, result.held) == (2, 0)
    assert statuses(db, roundup) == {D.SENT: 2}
    assert len(smtp_sink.messages) == 4


def test_an_earlier_campaign_of_the_same_stream_goes_first(db, engine, settings, smtp_sink, redis_conn):
    list_id = seed_list_members(engine, 1)
    set_budget(db, 1, 7)
    older, newer = make_campaign(db, list_id, name="Older"), make_campaign(db, list_id, name="Newer")
    plan_only(db, older)
    plan_only(db, newer)
    pipeline.send_batch(engine, settings, redis_conn, newer, "test-worker")
    pipeline.send_batch(engine, settings, redis_conn, older, "test-worker")
    assert statuses(db, newer) == {D.HELD: 1} and statuses(db, older) == {D.SENT: 1}


def test_transactional_mail_is_never_held_and_answers_do_not_count(db, engine, settings, smtp_sink, redis_conn):
    list_id = seed_list_members(engine, 2)
    set_budget(db, 2, 7)
    pipeline_sent = make_campaign(db, list_id, name="Earlier")
    plan_only(db, pipeline_sent)
    pipeline.send_batch(engine, settings, redis_conn, pipeline_sent, "test-worker")
    # Member 1 also got a story confirmation (counted); member 2 asked for a manage link (an answer).
    notice = transactional.queue_transactional(db, "story_confirm", 1, {"story_id": 1, "version": 1})
    answer = transactional.queue_transactional(db, "manage_link", 2, {})
    db.execute(update(Delivery).where(Delivery.id == notice).values(status=D.SENT, sent_at=utcnow()))
    db.commit()
    assert transactional.deliver_transactional(db, settings, answer) == D.SENT

    # Member 1 is at the cap, but a transactional message (never held) still goes.
    confirmation = transactional.queue_transactional(db, "manage_link", 1, {})
    db.commit()
    assert transactional.deliver_transactional(db, settings, confirmation) == D.SENT

    newsletter = make_campaign(db, list_id, name="Newsletter")
    plan_only(db, newsletter)
    pipeline.send_batch(engine, settings, redis_conn, newsletter, "test-worker")
    by_member = dict(
        db.execute(select(Delivery.member_id, Delivery.status).where(Delivery.campaign_id == newsletter)).all()
    )
    assert by_member == {1: D.HELD, 2: D.SENT}


def test_without_a_cap_the_budget_asks_nothing(db, engine, settings, smtp_sink, redis_conn, run_jobs):
    list_id = seed_list_members(engine, 3)
    set_budget(db, 0, 7)
    for name in ("One", "Two", "Three"):
        send_with_jobs(db, redis_conn, run_jobs, make_campaign(db, list_id, name=name))
    assert set(recipients(smtp_sink).values()) == {3}

    statements: list[str] = []
    listener = lambda conn, cursor, statement, *args: statements.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        fourth = make_campaign(db, list_id, name="Four")
        plan_only(db, fourth)
        result = pipeline.send_batch(engine, settings, redis_conn, fourth, "test-worker")
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert result.sent == 3 and (result.held, result.dropped) == (0, 0)
    assert not [s for s in statements if "GROUP BY deliveries.member_id" in s]
    # With a cap, the same batch asks once, grouped over the batch's members.
    set_budget(db, 10, 7)
    fifth = make_campaign(db, list_id, name="Five")
    plan_only(db, fifth)
    statements.clear()
    event.listen(engine, "before_cursor_execute", listener)
    try:
        assert pipeline.send_batch(engine, settings, redis_conn, fifth, "test-worker").sent == 3
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert len([s for s in statements if "GROUP BY deliveries.member_id" in s]) == 1


def test_a_bigger_budget_releases_held_mail_at_the_next_pass(db, engine, settings, smtp_sink, redis_conn, run_jobs):
    list_id = seed_list_members(engine, 2)
    set_budget(db, 1, 7)
    send_with_jobs(db, redis_conn, run_jobs, make_campaign(db, list_id, name="First"))
    second = make_campaign(db, list_id, name="Second")
    send_with_jobs(db, redis_conn, run_jobs, second)
    assert statuses(db, second) == {D.HELD: 2}
    set_budget(db, 5, 7)
    assert budget.release_held(db) == 2
    db.commit()
    reconcile_with_jobs(db, redis_conn, run_jobs)
    assert statuses(db, second) == {D.SENT: 2}


# --- introductions -----------------------------------------------------------------------------


@pytest.fixture
def pair(db, engine, settings, redis_conn, run_jobs):
    """Ana and Ben on one list; Ana already had one newsletter this week, Ben none."""
    ana = add_member(db, "Ana Souza", values=("Reciprocity",))
    ben = add_member(db, "Ben Okafor", values=("Reciprocity",))
    everyone = MailingList(name="Everyone", slug="everyone", opt_in="single")
    db.add(everyone)
    db.flush()
    db.add_all([ListMembership(list_id=everyone.id, member_id=m.id) for m in (ana, ben)])
    db.commit()
    letter = make_campaign(db, everyone.id, name="Letter")
    db.add(Delivery(campaign_id=letter, member_id=ana.id, status=D.SENT, sent_at=utcnow() - timedelta(days=1)))
    db.commit()
    return ana, ben, everyone.id


def intro_deliveries(db, intro_id: int) -> dict[int, Delivery]:
    db.expire_all()
    rows = db.scalars(
        select(Delivery).join(Campaign, Campaign.id == Delivery.campaign_id).where(Campaign.kind == "transactional")
    ).all()
    return {row.member_id: row for row in rows if row.campaign_id and _intro_of(db, row) == intro_id}


def _intro_of(db, row: Delivery) -> int:
    return int(db.get(Campaign, row.campaign_id).content["context"]["intro_id"])


def test_an_invitation_over_budget_waits_and_the_answer_clock_waits_with_it(
    db, settings, pair, smtp_sink, redis_conn, run_jobs
):
    ana, ben, _ = pair
    set_budget(db, 1, 7)
    intro, sent = rounds.introduce_by_hand(db, settings, ana.id, ben.id, "coordinator")
    db.commit()
    mail.enqueue_intro_emails(redis_conn, sent)
    assert run_jobs((HIGH,)) == 0

    assert set(recipients(smtp_sink)) == {"ben.okafor@example.org"}
    rows = intro_deliveries(db, intro.id)
    held = rows[ana.id]
    assert held.status == D.HELD and held.attempts == 0
    assert held.last_error.startswith("Attention budget (1 email per 7 days): 1 already sent; held until")
    db.expire_all()
    assert db.get(Intro, intro.id).invited_at == held.next_attempt_at
    # No reminder while Ana has not been asked yet.
    assert workflow.send_reminders(db, settings, utcnow() + timedelta(days=settings.intro_answer_days, hours=1)) == []

    let_time_pass(db, held.next_attempt_at)
    assert mail.reconcile_intro_emails(db) == [held.id]
    mail.enqueue_intro_emails(redis_conn, [held.id])
    assert run_jobs((HIGH,)) == 0
    assert recipients(smtp_sink) == Counter({"ben.okafor@example.org": 1, "ana.souza@example.org": 1})
    assert intro_deliveries(db, intro.id)[ana.id].status == D.SENT


def test_a_dropped_invitation_cancels_the_introduction(db, settings, pair, smtp_sink, redis_conn, run_jobs):
    ana, ben, _ = pair
    set_budget(db, 1, 7, intros="drop")
    intro, sent = rounds.introduce_by_hand(db, settings, ana.id, ben.id, "coordinator")
    db.commit()
    mail.enqueue_intro_emails(redis_conn, sent)
    assert run_jobs((HIGH,)) == 0

    rows = intro_deliveries(db, intro.id)
    assert rows[ana.id].status == D.DROPPED and "dropped" in rows[ana.id].last_error
    found = db.get(Intro, intro.id)
    assert found.status == IntroStatus.CANCELLED
    assert found.closed_reason == f"member {ana.id}'s invitation was dropped by the attention budget"
    # Ben's invitation, next in line, finds the introduction closed: nobody is asked about it.
    assert rows[ben.id].status == D.SUPPRESSED and "cancelled" in rows[ben.id].last_error
    assert smtp_sink.messages == []
    assert mail.reconcile_intro_emails(db, utcnow() + timedelta(days=30)) == []


def test_the_joint_introduction_answers_their_yes_and_is_never_held(
    db, settings, pair, smtp_sink, redis_conn, run_jobs
):
    ana, ben, _ = pair
    intro, sent = rounds.introduce_by_hand(db, settings, ana.id, ben.id, "coordinator")
    db.commit()
    mail.enqueue_intro_emails(redis_conn, sent)
    assert run_jobs((HIGH,)) == 0
    set_budget(db, 1, 7)  # now both are at (or over) their budget
    workflow.answer(db, settings, intro.id, ana.id, "accept", "link")
    result = workflow.answer(db, settings, intro.id, ben.id, "accept", "link")
    db.commit()
    mail.enqueue_intro_emails(redis_conn, result.to_send)
    assert run_jobs((HIGH,)) == 0
    assert recipients(smtp_sink) == Counter({"ben.okafor@example.org": 2, "ana.souza@example.org": 2})


def test_a_waiting_invitation_makes_a_newsletter_yield(db, engine, settings, pair, smtp_sink, redis_conn):
    ana, ben, list_id = pair
    set_budget(db, 2, 7)
    rounds.introduce_by_hand(db, settings, ana.id, ben.id, "coordinator")  # invitations queued, not sent
    db.commit()
    newsletter = make_campaign(db, list_id, name="News")
    plan_only(db, newsletter)

    pipeline.send_batch(engine, settings, redis_conn, newsletter, "test-worker")

    # Ana: one sent this week plus her invitation waiting fill her budget of two; Ben has room.
    by_member = dict(
        db.execute(select(Delivery.member_id, Delivery.status).where(Delivery.campaign_id == newsletter)).all()
    )
    assert by_member == {ana.id: D.HELD, ben.id: D.SENT}
    assert "1 more important waiting" in db.scalar(
        select(Delivery.last_error).where(Delivery.member_id == ana.id, Delivery.campaign_id == newsletter)
    )
