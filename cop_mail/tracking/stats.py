"""A campaign's opens and clicks: people apart from machines, and clicks per link.

People are counted once per delivery, from the first human open and click kept on the delivery
row; machine hits are counted from the events (deliveries a machine touched, and why). A few
grouped queries over indexed columns, whatever the campaign's size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import case, exists, func, select
from sqlalchemy.orm import Session

from cop_mail.models import Delivery, TrackedLink, TrackingEvent, TrackingKind

E = TrackingEvent


@dataclass(frozen=True)
class LinkClicks:
    link_id: int
    position: int
    url: str
    label: str
    people: int  # deliveries with a human click on this link
    clicks: int  # human clicks, repeats included
    machine: int  # clicks by scanners and proxies


@dataclass
class TrackingStats:
    opened: int = 0  # deliveries opened by a person (a click counts as an open)
    clicked: int = 0  # deliveries with a human click
    machine_opened: int = 0  # deliveries whose pixel a machine fetched
    machine_clicked: int = 0  # deliveries whose links a machine followed
    machine_reasons: list[tuple[str, int]] = field(default_factory=list)  # (reason, events), most first
    links: list[LinkClicks] = field(default_factory=list)

    @property
    def has_data(self) -> bool:
        return bool(self.links or self.opened or self.machine_opened or self.machine_clicked)


def has_tracking(session: Session, campaign_id: int) -> bool:
    """Whether the campaign was ever sent with tracking: it stored links or got hits."""
    links = exists().where(TrackedLink.campaign_id == campaign_id)
    events = exists().where(E.campaign_id == campaign_id)
    return bool(session.scalar(select(links | events)))


def campaign_stats(session: Session, campaign_id: int) -> TrackingStats:
    opened, clicked = session.execute(
        select(func.count(Delivery.opened_at), func.count(Delivery.clicked_at)).where(
            Delivery.campaign_id == campaign_id
        )
    ).one()
    stats = TrackingStats(opened=int(opened), clicked=int(clicked))
    for kind, deliveries in session.execute(
        select(E.kind, func.count(func.distinct(E.delivery_id)))
        .where(E.campaign_id == campaign_id, E.machine.is_(True))
        .group_by(E.kind)
    ):
        if kind == TrackingKind.OPEN:
            stats.machine_opened = int(deliveries)
        elif kind == TrackingKind.CLICK:
            stats.machine_clicked = int(deliveries)
    stats.machine_reasons = [
        (str(reason), int(n))
        for reason, n in session.execute(
            select(E.machine_reason, func.count())
            .where(E.campaign_id == campaign_id, E.machine.is_(True))
            .group_by(E.machine_reason)
            .order_by(func.count().desc(), E.machine_reason)
        )
    ]
    stats.links = link_clicks(session, campaign_id)
    return stats


def link_clicks(session: Session, campaign_id: int) -> list[LinkClicks]:
    """Every tracked link of the campaign with its clicks, most clicked by people first."""
    human = E.machine.is_(False)
    per_link = (
        select(
            E.link_id.label("link_id"),
            func.count(func.distinct(case((human, E.delivery_id), else_=None))).label("people"),
            func.sum(case((human, 1), else_=0)).label("clicks"),
            func.sum(case((human, 0), else_=1)).label("machine"),
        )
        .where(E.campaign_id == campaign_id, E.kind == TrackingKind.CLICK)
        .group_by(E.link_id)
        .subquery("per_link")
    )
    people = func.coalesce(per_link.c.people, 0)
    rows = session.execute(
        select(
            TrackedLink.id,
            TrackedLink.position,
            TrackedLink.url,
            TrackedLink.label,
            people,
            func.coalesce(per_link.c.clicks, 0),
            func.coalesce(per_link.c.machine, 0),
        )
        .outerjoin(per_link, per_link.c.link_id == TrackedLink.id)
        .where(TrackedLink.campaign_id == campaign_id)
        .order_by(people.desc(), TrackedLink.position)
    )
    return [LinkClicks(int(i), int(p), url, label or "", int(n), int(c), int(m)) for i, p, url, label, n, c, m in rows]
