"""The suppression list and the send-time receiving rules, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from cop_mail.audience.suppression import (
    InvalidEmail,
    is_suppressed,
    lift_suppression,
    member_can_receive,
    normalise_email,
    receivable_clause,
    suppress,
    suppressed_hashes,
    suppression_hash,
    suppression_reason,
)
from cop_mail.db import utcnow
from cop_mail.models import ListMembership, MailingList, Member, MemberEvent, MemberStatus, Stream, Suppression
from cop_mail.tokens import address_hash


def add_member(db, email: str, **fields) -> Member:
    member = Member(email=email, attributes={}, **fields)
    db.add(member)
    db.flush()
    return member


def test_normalise_email_lowers_case_and_unifies_idn_domains():
    assert normalise_email("  Ana.Maria@Example.ORG ") == "ana.maria@example.org"
    assert normalise_email("ana@xn--bcher-kva.example") == "ana@bücher.example"
    assert normalise_email("Ana@BÜCHER.example") == "ana@bücher.example"
    with pytest.raises(InvalidEmail):
        normalise_email("not an address")


def test_suppression_hash_matches_for_every_spelling_of_an_address():
    expected = address_hash("ana@bücher.example")
    assert suppression_hash("ana@xn--bcher-kva.example") == expected
    assert suppression_hash("ANA@Bücher.Example") == expected
    assert suppression_hash("Plain@Example.org") == address_hash("plain@example.org")


def test_suppress_is_idempotent_and_stores_only_a_hash(db):
    assert suppress(db, "Gone@Example.org", "bounced") is True
    assert suppress(db, "gone@example.org", "complained") is False
    db.commit()
    rows = db.scalars(select(Suppression)).all()
    assert len(rows) == 1
    assert rows[0].email_hash == address_hash("gone@example.org")
    assert rows[0].reason == "bounced"  # the first reason stays
    assert "gone" not in rows[0].email_hash
    assert is_suppressed(db, "GONE@example.org")
    assert suppression_reason(db, "gone@example.org") == "bounced"
    assert not is_suppressed(db, "other@example.org")


@pytest.mark.parametrize(
    ("reason", "status"),
    [("bounced", "bounced"), ("complained", "complained"), ("manual", "unsubscribed"), ("imported", "unsubscribed")],
)
def test_suppress_stops_the_member_and_records_it(db, reason, status):
    member = add_member(db, "ana@example.org")
    suppress(db, "Ana@Example.org", reason)
    db.commit()
    assert member.status == status
    event = db.scalar(select(MemberEvent).where(MemberEvent.member_id == member.id))
    assert event is not None and event.kind == "suppressed" and event.detail == {"reason": reason}


def test_suppress_never_turns_an_erased_member_into_another_status(db):
    member = add_member(db, "erased-1@invalid", status=MemberStatus.ERASED)
    suppress(db, "erased-1@invalid", "bounced")
    assert member.status == MemberStatus.ERASED


def test_unknown_reason_is_refused(db):
    with pytest.raises(ValueError):
        suppress(db, "a@example.org", "because")


def test_suppressed_hashes_in_bulk_and_lifting(db):
    for address in ("a@example.org", "b@example.org"):
        suppress(db, address, "imported")
    db.commit()
    wanted = [address_hash(f"{c}@example.org") for c in "abc"] * 400
    assert suppressed_hashes(db, wanted) == {address_hash("a@example.org"), address_hash("b@example.org")}
    assert lift_suppression(db, "A@example.org") is True
    assert lift_suppression(db, "a@example.org") is False
    assert not is_suppressed(db, "a@example.org")


def receivable_ids(db, stream, **kwargs) -> set[int]:
    return set(db.scalars(select(Member.id).where(receivable_clause(stream, **kwargs))))


def test_receiving_rules_for_each_status_and_stream(db):
    members = {status: add_member(db, f"{status}@example.org", status=status) for status in MemberStatus}
    db.commit()
    active, pending, unsubscribed = (members[s].id for s in ("active", "pending", "unsubscribed"))
    for stream in (Stream.NEWSLETTERS, Stream.INTROS, Stream.ROUNDUPS, Stream.RESOURCES):
        assert receivable_ids(db, stream) == {active}, stream
    # Mail the member asked for (a confirmation, a manage link) reaches pending and unsubscribed addresses.
    assert receivable_ids(db, Stream.TRANSACTIONAL) == {active, pending, unsubscribed}
    for status, member in members.items():
        assert member_can_receive(db, member.id, "newsletters") is (status == "active")


def test_stream_switches_pause_and_cadence(db):
    now = utcnow()
    plain = add_member(db, "plain@example.org")
    no_news = add_member(db, "nonews@example.org", wants_newsletters=False)
    paused = add_member(db, "paused@example.org", paused_until=now + timedelta(days=3))
    pause_over = add_member(db, "back@example.org", paused_until=now - timedelta(minutes=1))
    no_intros = add_member(db, "nointros@example.org")
    no_intros.intro_cadence_weeks = None  # "no introductions" (set after the insert, which applies the default)
    db.commit()
    assert receivable_ids(db, Stream.NEWSLETTERS) == {plain.id, paused.id, pause_over.id, no_intros.id} - {paused.id}
    assert receivable_ids(db, Stream.INTROS) == {plain.id, no_news.id, pause_over.id}
    # A pause holds back every stream but what the member asked for.
    assert member_can_receive(db, paused.id, Stream.TRANSACTIONAL)
    assert not member_can_receive(db, paused.id, Stream.ROUNDUPS)
    assert member_can_receive(db, paused.id, Stream.ROUNDUPS, now=now + timedelta(days=4))


def test_a_suppressed_hash_wins_even_over_an_active_status(db):
    member = add_member(db, "ana@example.org")
    db.add(Suppression(email_hash=address_hash("ana@example.org"), reason="imported"))
    db.commit()
    assert member.status == MemberStatus.ACTIVE
    assert receivable_ids(db, Stream.NEWSLETTERS) == set()
    assert receivable_ids(db, Stream.TRANSACTIONAL) == set()
    assert not member_can_receive(db, member.id, Stream.TRANSACTIONAL)


def test_list_membership_is_checked_at_send_time(db):
    members = add_member(db, "on@example.org"), add_member(db, "left@example.org"), add_member(db, "p@example.org")
    mailing_list = MailingList(name="Weekly", slug="weekly")
    db.add(mailing_list)
    db.flush()
    for member, status in zip(members, ("subscribed", "unsubscribed", "pending"), strict=True):
        db.add(ListMembership(list_id=mailing_list.id, member_id=member.id, status=status))
    db.commit()
    assert receivable_ids(db, Stream.NEWSLETTERS, list_ids=[mailing_list.id]) == {members[0].id}
    assert member_can_receive(db, members[0].id, Stream.NEWSLETTERS, list_ids=[mailing_list.id])
    assert not member_can_receive(db, members[1].id, Stream.NEWSLETTERS, list_ids=[mailing_list.id])
    assert not member_can_receive(db, members[0].id, Stream.NEWSLETTERS, list_ids=[mailing_list.id + 1])
    assert not member_can_receive(db, 999_999, Stream.NEWSLETTERS)
