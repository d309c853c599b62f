"""Signup, confirmation and unsubscribing as plain functions, on SQLite and PostgreSQL.

Each signup outcome of cop_mail.audience.subscriptions is pinned here, including a
second signup of an unsubscribed, bounced, complained, erased or suppressed address.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from cop_mail.audience import subscriptions as subs
from cop_mail.audience.links import ConfirmLink
from cop_mail.audience.suppression import suppress
from cop_mail.models import (
    Campaign,
    ConsentEvent,
    Delivery,
    ListMembership,
    MailingList,
    Member,
    MemberEvent,
    MemberStatus,
    Practice,
    Value,
)


@pytest.fixture
def lists(db):
    double = MailingList(
        name="Practitioners",
        slug="practitioners",
        opt_in="double",
        public=True,
        form_wording="Yes, email me the Practitioners letters.",
    )
    single = MailingList(name="Events", slug="events", opt_in="single", public=True)
    db.add_all([double, single])
    db.add_all([Value(name="Reciprocity"), Value(name="Care"), Practice(name="Facilitation")])
    db.commit()
    return double, single


def ids(db, model) -> tuple[int, ...]:
    return tuple(db.scalars(select(model.id).order_by(model.id)))


def deliveries(db) -> int:
    return db.scalar(select(func.count(Delivery.id))) or 0


def consents(db, member_id, kind=None) -> list[ConsentEvent]:
    query = select(ConsentEvent).where(ConsentEvent.member_id == member_id).order_by(ConsentEvent.id)
    if kind:
        query = query.where(ConsentEvent.kind == kind)
    return list(db.scalars(query))


def request(email="ana@example.org", **kwargs) -> subs.SignupRequest:
    return subs.SignupRequest(email=email, ip="203.0.113.5", **kwargs)


def confirm_latest(db, member_id, ip="198.51.100.7") -> subs.ConfirmOutcome:
    event = consents(db, member_id, "signup_requested")[-1]
    outcome = subs.confirm_subscription(db, ConfirmLink(member_id, event.list_id, event.id), ip=ip)
    db.commit()
    return outcome


def test_single_opt_in_subscribes_at_once_with_the_wording_and_ip(db, lists):
    _double, single = lists
    value_ids, practice_ids = ids(db, Value), ids(db, Practice)
    result = subs.sign_up(
        db, single, request(" Ana@Example.ORG", name="Ana Lima", value_ids=value_ids[:1], practice_ids=practice_ids)
    )
    db.commit()
    assert result.outcome is subs.SignupOutcome.SUBSCRIBED and result.delivery_id is None
    member = db.get(Member, result.member_id)
    assert (member.email, member.name, member.status) == ("ana@example.org", "Ana Lima", "active")
    assert [v.name for v in member.values] == ["Reciprocity"]
    assert [p.name for p in member.practices] == ["Facilitation"]
    assert subs.find_membership(db, member.id, single.id).status == "subscribed"
    [event] = consents(db, member.id)
    assert event.kind == "subscribed" and event.ip == "203.0.113.5" and event.list_id == single.id
    assert "Events" in event.wording and "unsubscribe" in event.wording
    assert deliveries(db) == 0


def test_double_opt_in_creates_a_pending_member_and_queues_one_confirmation(db, lists):
    double, _single = lists
    result = subs.sign_up(db, double, request(name="Ana", value_ids=ids(db, Value)))
    db.commit()
    assert result.outcome is subs.SignupOutcome.CONFIRMATION_SENT and result.delivery_id
    member = db.get(Member, result.member_id)
    assert member.status == MemberStatus.PENDING
    assert subs.find_membership(db, member.id, double.id).status == "pending"
    [event] = consents(db, member.id)
    assert event.kind == "signup_requested" and event.wording == "Yes, email me the Practitioners letters."
    delivery = db.get(Delivery, result.delivery_id)
    campaign = db.get(Campaign, delivery.campaign_id)
    assert (delivery.member_id, delivery.status) == (member.id, "queued")
    assert campaign.kind == "transactional"
    assert campaign.content == {
        "template": "confirm_subscription",
        "context": {"list_id": double.id, "request_id": event.id},
    }


def test_confirming_records_time_ip_and_the_forms_wording(db, lists):
    double, _single = lists
    result = subs.sign_up(db, double, request())
    db.commit()
    assert confirm_latest(db, result.member_id) is subs.ConfirmOutcome.CONFIRMED
    member = db.get(Member, result.member_id)
    membership = subs.find_membership(db, member.id, double.id)
    assert member.status == "active" and membership.status == "subscribed" and membership.confirmed_at
    confirmed = consents(db, member.id, "confirmed")[0]
    assert confirmed.ip == "198.51.100.7"
    assert confirmed.wording == "Yes, email me the Practitioners letters."
    assert confirmed.detail["requested_ip"] == "203.0.113.5" and confirmed.created_at
    # A second press (double click, a link scanner that POSTs) changes nothing.
    assert confirm_latest(db, member.id) is subs.ConfirmOutcome.ALREADY_CONFIRMED
    assert len(consents(db, member.id, "confirmed")) == 1


def test_a_link_whose_ids_do_not_match_a_request_is_invalid(db, lists):
    double, single = lists
    result = subs.sign_up(db, double, request())
    db.commit()
    event = consents(db, result.member_id)[0]
    assert (
        subs.confirm_subscription(db, ConfirmLink(result.member_id, single.id, event.id)) is subs.ConfirmOutcome.INVALID
    )
    assert subs.confirm_subscription(db, ConfirmLink(result.member_id + 1, double.id, event.id)) is (
        subs.ConfirmOutcome.INVALID
    )


@pytest.mark.parametrize("reason", ["bounced", "complained", "manual", "erased"])
def test_a_suppressed_address_gets_the_same_outcome_and_no_mail(db, lists, reason):
    double, single = lists
    suppress(db, "ana@example.org", reason)
    db.commit()
    for mailing_list in (double, single):
        result = subs.sign_up(db, mailing_list, request("ANA@example.org"))
        assert result.outcome is subs.SignupOutcome.REFUSED
    db.commit()
    assert db.scalar(select(func.count(Member.id))) == 0 and deliveries(db) == 0


@pytest.mark.parametrize("status", ["bounced", "complained"])
def test_a_bounced_or_complained_member_is_refused_quietly_and_it_shows_on_their_timeline(db, lists, status):
    double, _single = lists
    member = Member(email="ana@example.org", status=status, attributes={})
    db.add(member)
    db.commit()
    assert subs.sign_up(db, double, request()).outcome is subs.SignupOutcome.REFUSED
    db.commit()
    assert deliveries(db) == 0 and member.status == status
    assert db.scalar(select(MemberEvent.kind).where(MemberEvent.member_id == member.id)) == "signup_refused"


def test_an_unsubscribed_member_signing_up_again_must_confirm_even_on_a_single_opt_in_list(db, lists):
    _double, single = lists
    first = subs.sign_up(db, single, request())
    subs.unsubscribe_all(db, first.member_id, ip="203.0.113.5")
    db.commit()
    again = subs.sign_up(db, single, request())
    db.commit()
    member = db.get(Member, first.member_id)
    assert again.outcome is subs.SignupOutcome.CONFIRMATION_SENT and again.delivery_id
    assert member.status == "unsubscribed"  # the form alone does not bring them back
    assert subs.find_membership(db, member.id, single.id).status == "unsubscribed"
    assert confirm_latest(db, member.id) is subs.ConfirmOutcome.CONFIRMED
    assert member.status == "active"
    assert subs.find_membership(db, member.id, single.id).status == "subscribed"
    assert consents(db, member.id, "confirmed")[0].detail["returning"] is True


def test_an_active_member_already_on_the_list_gets_nothing(db, lists):
    _double, single = lists
    subs.sign_up(db, single, request())
    db.commit()
    assert subs.sign_up(db, single, request()).outcome is subs.SignupOutcome.ALREADY_SUBSCRIBED
    assert deliveries(db) == 0


def test_a_form_cannot_change_an_existing_members_profile_until_they_confirm(db, lists):
    double, single = lists
    care, reciprocity = (
        db.scalar(select(Value).where(Value.name == "Care")),
        db.scalar(select(Value).where(Value.name == "Reciprocity")),
    )
    first = subs.sign_up(db, single, request(name="Ana Lima", value_ids=(care.id,)))
    db.commit()
    second = subs.sign_up(db, double, request(name="Someone Else", value_ids=(reciprocity.id,)))
    db.commit()
    member = db.get(Member, first.member_id)
    assert second.outcome is subs.SignupOutcome.CONFIRMATION_SENT
    assert member.name == "Ana Lima" and [v.name for v in member.values] == ["Care"]
    confirm_latest(db, member.id)
    assert member.name == "Ana Lima"  # a name is only filled in, never replaced
    assert sorted(v.name for v in member.values) == ["Care", "Reciprocity"]


def test_confirmation_mails_to_one_address_are_capped(db, lists):
    double, _single = lists
    outcomes = [subs.sign_up(db, double, request()).outcome for _ in range(subs.CONFIRMATIONS_PER_HOUR + 2)]
    db.commit()
    assert outcomes.count(subs.SignupOutcome.CONFIRMATION_SENT) == subs.CONFIRMATIONS_PER_HOUR
    assert outcomes[-1] is subs.SignupOutcome.CONFIRMATION_THROTTLED
    assert deliveries(db) == subs.CONFIRMATIONS_PER_HOUR


def test_invalid_addresses_and_names_are_refused_in_plain_words(db, lists):
    double, _single = lists
    for bad in ("", "ana", "ana@", "a b@example.org", "ana@@example.org"):
        with pytest.raises(subs.SubscriptionError, match="does not look right"):
            subs.sign_up(db, double, request(bad))
    with pytest.raises(subs.SubscriptionError, match="too long"):
        subs.sign_up(db, double, request(name="x" * 201))


def test_an_old_confirmation_link_never_undoes_a_later_unsubscribe(db, lists):
    double, _single = lists
    result = subs.sign_up(db, double, request())
    db.commit()
    event = consents(db, result.member_id)[0]
    link = ConfirmLink(result.member_id, double.id, event.id)
    # Unsubscribed before confirming: the link must not subscribe them.
    subs.unsubscribe_all(db, result.member_id)
    db.commit()
    assert subs.confirm_subscription(db, link) is subs.ConfirmOutcome.WITHDRAWN
    # Confirmed, then unsubscribed, then the same link pressed again.
    again = subs.sign_up(db, double, request())
    db.commit()
    assert confirm_latest(db, again.member_id) is subs.ConfirmOutcome.CONFIRMED
    subs.unsubscribe_list(db, again.member_id, double.id)
    db.commit()
    assert confirm_latest(db, again.member_id) is subs.ConfirmOutcome.WITHDRAWN
    assert subs.find_membership(db, again.member_id, double.id).status == "unsubscribed"


def test_confirming_after_the_address_bounced_is_not_possible(db, lists):
    double, _single = lists
    result = subs.sign_up(db, double, request())
    suppress(db, "ana@example.org", "bounced")
    db.commit()
    assert confirm_latest(db, result.member_id) is subs.ConfirmOutcome.NOT_POSSIBLE
    assert db.get(Member, result.member_id).status == "bounced"


def test_unsubscribing_per_stream_is_recorded_and_idempotent(db, lists):
    _double, single = lists
    member_id = subs.sign_up(db, single, request()).member_id
    assert subs.unsubscribe_stream(db, member_id, "intros", ip="192.0.2.1", source="one-click", campaign_id=7)
    assert not subs.unsubscribe_stream(db, member_id, "intros")
    db.commit()
    member = db.get(Member, member_id)
    assert member.wants_intros is False and member.wants_newsletters is True and member.status == "active"
    [event] = consents(db, member_id, "stream_off")
    assert (event.stream, event.ip, event.detail) == ("intros", "192.0.2.1", {"source": "one-click", "campaign_id": 7})
    assert subs.subscribe_stream(db, member_id, "intros") and member.wants_intros
    with pytest.raises(subs.SubscriptionError):
        subs.unsubscribe_stream(db, member_id, "transactional")


def test_unsubscribing_from_everything_and_coming_back_restores_the_lists(db, lists):
    double, single = lists
    member_id = subs.sign_up(db, single, request()).member_id
    subs.sign_up(db, double, request())
    confirm_latest(db, member_id)
    other = MailingList(name="Old", slug="old")
    db.add(other)
    db.flush()
    db.add(ListMembership(list_id=other.id, member_id=member_id, status="unsubscribed"))
    db.commit()
    assert subs.unsubscribe_all(db, member_id, ip="192.0.2.1")
    assert not subs.unsubscribe_all(db, member_id)
    db.commit()
    statuses = {lst.slug: m.status for lst, m in subs.memberships(db, member_id)}
    assert statuses == {"events": "unsubscribed", "practitioners": "unsubscribed", "old": "unsubscribed"}
    assert db.get(Member, member_id).status == "unsubscribed"
    assert subs.resubscribe(db, member_id, ip="192.0.2.1")
    db.commit()
    statuses = {lst.slug: m.status for lst, m in subs.memberships(db, member_id)}
    assert statuses == {"events": "subscribed", "practitioners": "subscribed", "old": "unsubscribed"}
    kinds = [e.kind for e in consents(db, member_id)]
    assert kinds[-2:] == ["unsubscribed_all", "resubscribed"]


def test_stream_for_campaign_kind():
    assert subs.stream_for_campaign_kind("newsletter") == "newsletters"
    assert subs.stream_for_campaign_kind("story_prompt") == "roundups"
    assert subs.stream_for_campaign_kind("resource_digest") == "resources"


def test_two_signups_of_one_new_address_at_once_make_one_member(db, sessions, lists):
    import threading
    import time

    _double, single = lists
    first = sessions()
    result_first = subs.sign_up(first, first.get(MailingList, single.id), request())  # inserted, not committed
    outcome: dict[str, object] = {}

    def second_signup() -> None:
        session = sessions()
        try:
            outcome["result"] = subs.sign_up_and_commit(session, single.id, request())
        except Exception as exc:  # reported below
            outcome["error"] = exc
        finally:
            session.close()

    thread = threading.Thread(target=second_signup)
    thread.start()
    time.sleep(0.5)  # the second signup now waits on the first one's row
    first.commit()
    first.close()
    thread.join(30)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"].outcome is subs.SignupOutcome.ALREADY_SUBSCRIBED
    assert outcome["result"].member_id == result_first.member_id
    assert db.scalar(select(func.count(Member.id))) == 1
