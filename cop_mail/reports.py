"""A campaign's report: where its messages stand, what bounced, who replied or left, and when.

Every figure is an aggregate over the campaign's rows (deliveries, inbound replies, consent
events, member events); the 72-hour engagement is bucketed by hour in SQL. Opens and clicks
appear only while the community tracks them, or for a campaign that was sent with tracking.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, inspect, select
from sqlalchemy.orm import Session

from cop_mail import charts, community
from cop_mail.dashboard import UNSUBSCRIBE_KINDS, campaign_ref, even_bucket
from cop_mail.models import (
    Campaign,
    ConsentEvent,
    Delivery,
    DeliveryStatus,
    InboundMessage,
    MemberEvent,
    Story,
)
from cop_mail.tracking import stats as tracking_stats
from cop_mail.tracking.links import TRACKED_KINDS
from cop_mail.tracking.record import CLICK_EVENT

ENGAGEMENT_HOURS = 72
RECENT_REPLIES = 10
STATUS_ORDER = [str(s) for s in DeliveryStatus]
STREAM_LABELS = {
    "newsletters": "Newsletters",
    "intros": "Introductions",
    "roundups": "Story roundups",
    "resources": "Resources",
    "transactional": "Account messages",
    "all": "Everything (left the community's mail)",
    "list": "One list",
}


class CampaignNotFound(LookupError):
    pass


@dataclass
class ReplyRow:
    inbound_id: int
    from_address: str
    subject: str
    received_at: datetime
    status: str


@dataclass
class CampaignReport:
    campaign: Campaign
    by_status: dict[str, int]
    bounces: dict[str, int]
    replies: int
    repliers: int
    recent_replies: list[ReplyRow]
    unsubscribes: list[tuple[str, int]]  # (stream, count), largest first
    started_at: datetime | None
    hours: list[int]
    engagement: dict[str, list[int]]  # series name -> count per hour after sending
    delivered: int = 0
    tracking_enabled: bool = False  # the community's switch, now
    tracked_kind: bool = True  # a kind of campaign whose opens and clicks can be tracked
    tracking: tracking_stats.TrackingStats | None = None  # None: nothing about opens is shown

    @property
    def planned(self) -> int:
        return sum(self.by_status.values())

    @property
    def unsubscribed(self) -> int:
        return sum(n for _, n in self.unsubscribes)

    @property
    def funnel(self) -> list[tuple[str, int]]:
        """Planned -> handed to the mail server -> accepted -> not bounced back -> replied."""
        counts = self.by_status
        # Suppressed, still queued, and held or dropped by the attention budget never reached the server.
        not_tried = sum(counts.get(status, 0) for status in ("suppressed", "queued", "held", "dropped"))
        attempted = self.planned - not_tried
        return [
            ("Planned", self.planned),
            ("Attempted", max(attempted, 0)),
            ("Sent", counts.get("sent", 0)),
            ("Delivered", self.delivered),
            ("Replied", self.repliers),
        ]


def get_campaign(session: Session, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise CampaignNotFound(f"no campaign {campaign_id}")
    return campaign


def campaign_report(session: Session, campaign_id: int) -> CampaignReport:
    campaign = get_campaign(session, campaign_id)
    by_status, bounces, delivered = _delivery_counts(session, campaign_id)
    replies, repliers = _reply_counts(session, campaign_id)
    started = campaign.started_at or _first_sent(session, campaign_id)
    hours = list(range(ENGAGEMENT_HOURS))
    enabled = community.load(session).tracking_enabled
    tracked_kind = campaign.kind in TRACKED_KINDS
    shown = (enabled and tracked_kind) or tracking_stats.has_tracking(session, campaign_id)
    tracking = tracking_stats.campaign_stats(session, campaign_id) if shown else None
    return CampaignReport(
        campaign=campaign,
        by_status=by_status,
        bounces=bounces,
        replies=replies,
        repliers=repliers,
        recent_replies=_recent_replies(session, campaign_id),
        unsubscribes=_unsubscribes_by_stream(session, campaign_id),
        started_at=started,
        hours=hours,
        engagement=_engagement(session, campaign_id, started, tracking is not None) if started else {},
        delivered=delivered,
        tracking_enabled=enabled,
        tracked_kind=tracked_kind,
        tracking=tracking,
    )


def _delivery_counts(session: Session, campaign_id: int) -> tuple[dict[str, int], dict[str, int], int]:
    by_status = dict.fromkeys(STATUS_ORDER, 0)
    bounces = {"hard": 0, "soft": 0}
    delivered = 0
    rows = session.execute(
        select(Delivery.status, Delivery.bounce_type, func.count())
        .where(Delivery.campaign_id == campaign_id)
        .group_by(Delivery.status, Delivery.bounce_type)
    )
    for status, bounce_type, n in rows:
        by_status[status] = by_status.get(status, 0) + int(n)
        if bounce_type:
            bounces[bounce_type] = bounces.get(bounce_type, 0) + int(n)
        elif status == DeliveryStatus.SENT:
            delivered += int(n)
    return by_status, bounces, delivered


def _campaign_replies() -> Any:
    # The inbound processor links a reply to the campaign whose reply address it came to.
    return InboundMessage.subject_kind == "campaign"


def _reply_counts(session: Session, campaign_id: int) -> tuple[int, int]:
    total, people = session.execute(
        select(func.count(), func.count(func.distinct(InboundMessage.member_id))).where(
            _campaign_replies(), InboundMessage.subject_id == campaign_id
        )
    ).one()
    return int(total), int(people)


def _recent_replies(session: Session, campaign_id: int) -> list[ReplyRow]:
    rows = session.execute(
        select(
            InboundMessage.id,
            InboundMessage.from_address,
            InboundMessage.subject,
            InboundMessage.received_at,
            InboundMessage.status,
        )
        .where(_campaign_replies(), InboundMessage.subject_id == campaign_id)
        .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
        .limit(RECENT_REPLIES)
    )
    return [ReplyRow(*row) for row in rows]


def _unsubscribes_by_stream(session: Session, campaign_id: int) -> list[tuple[str, int]]:
    stream = case(
        (ConsentEvent.kind == "unsubscribed_all", "all"),
        (ConsentEvent.kind == "list_unsubscribed", "list"),
        else_=func.coalesce(ConsentEvent.stream, "all"),
    )
    per_event = (
        select(stream.label("stream"), campaign_ref().label("campaign_id"))
        .where(ConsentEvent.kind.in_(UNSUBSCRIBE_KINDS))
        .subquery()
    )
    rows = session.execute(
        select(per_event.c.stream, func.count())
        .where(per_event.c.campaign_id == campaign_id)
        .group_by(per_event.c.stream)
        .order_by(func.count().desc(), per_event.c.stream)
    )
    return [(str(s), int(n)) for s, n in rows]


def _first_sent(session: Session, campaign_id: int) -> datetime | None:
    return session.scalar(select(func.min(Delivery.sent_at)).where(Delivery.campaign_id == campaign_id))


def hour_starts(started: datetime, hours: int = ENGAGEMENT_HOURS) -> list[datetime]:
    return [started + timedelta(hours=h) for h in range(hours)]


def _per_hour(session: Session, column: Any, starts: list[datetime], *where: Any) -> list[int]:
    """Rows per hour after sending, for the first len(starts) hours; later ones are left out."""
    end = starts[-1] + timedelta(hours=1)
    per_row = (
        select(even_bucket(session, column, starts).label("hour"))
        .where(column >= starts[0], column < end, *where)
        .subquery()
    )
    counts = [0] * len(starts)
    for hour, n in session.execute(select(per_row.c.hour, func.count()).group_by(per_row.c.hour)):
        counts[int(hour)] = int(n)
    return counts


def _engagement(session: Session, campaign_id: int, started: datetime, tracked: bool) -> dict[str, list[int]]:
    """Replies and explicit actions (stories, other recorded actions) by hour, and unsubscribes apart;
    with tracking, the first human open and click of each message too (clicks are not other actions)."""
    starts = hour_starts(started)
    replies = _per_hour(
        session, InboundMessage.received_at, starts, _campaign_replies(), InboundMessage.subject_id == campaign_id
    )
    actions = _per_hour(
        session,
        MemberEvent.created_at,
        starts,
        MemberEvent.explicit.is_(True),
        MemberEvent.kind != CLICK_EVENT,
        MemberEvent.detail["campaign_id"].as_integer() == campaign_id,
    )
    if inspect(session.connection()).has_table("stories"):
        stories = _per_hour(session, Story.submitted_at, starts, Story.prompt_campaign_id == campaign_id)
        actions = [a + s for a, s in zip(actions, stories, strict=True)]
    unsubscribes = _per_hour(
        session,
        ConsentEvent.created_at,
        starts,
        ConsentEvent.kind.in_(UNSUBSCRIBE_KINDS),
        campaign_ref() == campaign_id,
    )
    found = {"Replies": replies, "Other actions": actions, "Unsubscribes": unsubscribes}
    if tracked:
        ours = Delivery.campaign_id == campaign_id
        found["Opens"] = _per_hour(session, Delivery.opened_at, starts, ours)
        found["Clicks"] = _per_hour(session, Delivery.clicked_at, starts, ours)
    return found


# --- charts ------------------------------------------------------------------------------------


def report_charts(report: CampaignReport) -> dict[str, charts.Chart]:
    found = {
        "funnel": charts.funnel_chart(
            "chart-funnel",
            "Delivery funnel",
            "From the messages planned for this campaign to those attempted, accepted by the receiving mail "
            "server, not bounced back afterwards, and answered with a reply.",
            report.funnel,
            empty_message="Nothing planned yet",
        ),
        "statuses": charts.bar_chart(
            "chart-statuses",
            "Where every planned message stands",
            "Bars: planned messages by delivery status.",
            [s.capitalize() for s in report.by_status],
            [charts.Series.of("Messages", list(report.by_status.values()))],
            label_header="Status",
            empty_message="Nothing planned yet",
        ),
        "bounces": charts.bar_chart(
            "chart-bounces",
            "Bounces by type",
            "Bars: hard bounces (the address does not exist; the member is suppressed) and soft bounces "
            "(a full mailbox or a passing problem).",
            [bounce.capitalize() for bounce in report.bounces],
            [charts.Series.of("Bounces", list(report.bounces.values()))],
            label_header="Type",
            empty_message="No bounces",
        ),
        "unsubscribes": charts.hbar_chart(
            "chart-unsubscribes",
            "Unsubscribes by stream",
            "Horizontal bars: members who turned a stream off, or left everything, from this campaign's links.",
            [STREAM_LABELS.get(s, s) for s, _ in report.unsubscribes],
            [charts.Series.of("Unsubscribes", [n for _, n in report.unsubscribes])],
            label_header="Stream",
            empty_message="Nobody unsubscribed",
        ),
    }
    labels = [f"{h}h" for h in report.hours] if report.engagement else []
    opens = " messages first opened and first clicked by a person," if report.tracking is not None else ""
    found["engagement"] = charts.line_chart(
        "chart-engagement",
        "Engagement in the first 72 hours",
        "Lines by hour after sending started: replies, other explicit actions (such as stories sent in),"
        f"{opens} and unsubscribes. Each line has its own dash and marker shape and is named at the right edge.",
        labels,
        [charts.Series.of(name, values) for name, values in report.engagement.items()],
        end_label="total",
        label_header="Hour after sending",
        empty_message="Not sent yet" if report.started_at is None else "No replies or actions yet",
    )
    return found
