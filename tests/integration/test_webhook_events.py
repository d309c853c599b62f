"""The events other systems subscribe to are emitted where the change happens, in its transaction."""

from __future__ import annotations

from sqlalchemy import select

from cop_mail.audience import subscriptions
from cop_mail.connect.connections import record_connection
from cop_mail.integrations.webhooks import register_webhook
from cop_mail.models import Member, WebhookDelivery


def events_sent(db) -> list[str]:
    db.expire_all()
    return [d.event for d in db.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))]


def test_unsubscribe_and_connection_emit_events(db):
    register_webhook(
        db, "https://hooks.example.org/cop", ["member.unsubscribed", "connection.made"], created_by="owner@example.org"
    )
    ana, ben = Member(email="ana@example.org"), Member(email="ben@example.org")
    db.add_all([ana, ben])
    db.commit()
    subscriptions.unsubscribe_stream(db, ana.id, "newsletters", source="link")
    subscriptions.unsubscribe_stream(db, ana.id, "newsletters", source="link")  # no change, no event
    record_connection(db, ana.id, ben.id, how="coordinator")
    db.commit()
    assert events_sent(db) == ["member.unsubscribed", "connection.made"]


def test_a_rolled_back_change_emits_nothing(db):
    register_webhook(db, "https://hooks.example.org/cop", ["member.unsubscribed"], created_by="owner@example.org")
    ana = Member(email="ana@example.org")
    db.add(ana)
    db.commit()
    subscriptions.unsubscribe_all(db, ana.id, source="link")
    db.rollback()
    assert events_sent(db) == []
