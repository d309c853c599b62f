"""Figures for the coordinator's dashboard, all computed in SQL.

Only grouped, aggregated rows (a few hundred at most) reach Python; nothing loops over members.
Tables that later features add (introductions, connections, stories) are looked up first: while
one is missing from the database its section reads "not set up yet" instead of failing the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

from sqlalchemy import ColumnElement, Integer, and_, case, cast, exists, func, inspect, literal, or_, select, union_all
from sqlalchemy.orm import Session

from cop_mail import charts, community
from cop_mail.db import UTCDateTime, is_postgres, utcnow
from cop_mail.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    CampaignStatusChange,
    Connection,
    ConsentEvent,
    Delivery,
    DeliveryStatus,
    InboundMessage,
    InboundStatus,
    Intro,
    IntroStatus,
    Member,
    MemberEvent,
    MemberStatus,
    Story,
    StoryStatus,
    Value,
    member_values,
    story_values,
)
from cop_mail.models.audience import BLOCKED_STATUSES
from cop_mail.sending.campaigns import SYSTEM_ACTOR  # who pauses a campaign when sending keeps failing

WEEKS = 26
MONTHS = 12
RECENT_CAMPAIGNS = 8
NEWCOMER_DAYS = (30, 90)  # joined this many days ago, or longer but within the window
NEEDS_YOU_NAMES = 5
# Consent kinds that mean "less mail from us", and the events that mark a member leaving.
UNSUBSCRIBE_KINDS = ("stream_off", "unsubscribed_all", "list_unsubscribed")
LEAVING_CONSENTS = ("unsubscribed_all", "erased")
LEAVING_MEMBER_EVENTS = ("suppressed",)
OPTIONAL_TABLES = ("connections", "intros", "stories", "story_values")


# --- time buckets ----------------------------------------------------------------------------


def week_starts(now: datetime, weeks: int = WEEKS) -> list[datetime]:
    """Mondays 00:00 UTC, oldest first, the last one being this week's."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    monday = today - timedelta(days=today.weekday())
    return [monday - timedelta(weeks=weeks - 1 - i) for i in range(weeks)]


def month_starts(now: datetime, months: int = MONTHS) -> list[datetime]:
    """First days of the month 00:00 UTC, oldest first, the last one being this month's."""
    year, month = now.astimezone(UTC).year, now.astimezone(UTC).month
    starts = []
    for back in range(months - 1, -1, -1):
        y, m = divmod(month - 1 - back, 12)
        starts.append(datetime(year + y, m + 1, 1, tzinfo=UTC))
    return starts


def bucket(column: Any, starts: Sequence[datetime]) -> ColumnElement[int]:
    """The index of the bucket a time falls in: -1 before the first start, NULL when the time is NULL.

    A CASE over bound boundaries reads the same on SQLite and PostgreSQL and suits buckets of
    uneven length (months); `even_bucket` is cheaper for many buckets of one length.
    """
    whens: list[tuple[Any, int | None]] = [(column.is_(None), None), (column < starts[0], -1)]
    whens += [(column < starts[i + 1], i) for i in range(len(starts) - 1)]
    return case(*whens, else_=len(starts) - 1)


def even_bucket(session: Session, column: Any, starts: Sequence[datetime]) -> ColumnElement[int]:
    """Like `bucket` for starts a fixed step apart (weeks, hours): one division instead of a long CASE."""
    step = int((starts[1] - starts[0]).total_seconds()) if len(starts) > 1 else 1
    offset: ColumnElement[Any]
    if is_postgres(session):
        offset = func.floor(func.extract("epoch", column - literal(starts[0], UTCDateTime())) / step)
    else:
        # Whole seconds (the fraction cut off first, as SQLite would round .9999 up) and integer
        # division: exact at the boundaries; the CASE keeps negatives out, so truncating is flooring.
        seconds = cast(func.strftime("%s", func.substr(column, 1, 19)), Integer)
        offset = (seconds - int(starts[0].timestamp())) / step
    return case(
        (column.is_(None), None),
        (column < starts[0], -1),
        (column >= starts[-1], len(starts) - 1),
        else_=cast(offset, Integer),
    )


def _week_label(start: datetime) -> str:
    return f"{start.day} {start:%b}"


def _month_label(start: datetime) -> str:
    return f"{start:%b %y}"


def existing_tables(session: Session) -> set[str]:
    names = inspect(session.connection()).get_table_names()
    return {name for name in OPTIONAL_TABLES if name in names}


# --- members -------------------------------------------------------------------------------


@dataclass
class MemberHistory:
    weeks: list[datetime]
    by_status: dict[str, list[int]]  # status -> count at the end of each week
    joined: list[int]  # new members in each week
    current: dict[str, int]


def _leaving_times() -> Any:
    """When each member left (unsubscribed from everything, erased, suppressed): the latest such event."""
    consents = select(ConsentEvent.member_id.label("member_id"), ConsentEvent.created_at.label("at")).where(
        ConsentEvent.kind.in_(LEAVING_CONSENTS), ConsentEvent.member_id.is_not(None)
    )
    events = select(MemberEvent.member_id.label("member_id"), MemberEvent.created_at.label("at")).where(
        MemberEvent.kind.in_(LEAVING_MEMBER_EVENTS)
    )
    both = union_all(consents, events).subquery("leaving_events")
    return select(both.c.member_id, func.max(both.c.at).label("left_at")).group_by(both.c.member_id).subquery("leaving")


def member_history(session: Session, now: datetime, weeks: int = WEEKS) -> MemberHistory:
    """Members by status at the end of each week, and new members per week.

    A member counts from `joined_at` in the status they hold now; one who has since left (an
    unsubscribe from everything, a bounce, a complaint, an erasure) counts as active until the
    recorded time of leaving, then in their present status. One grouped query; the running
    totals are added up over its few hundred rows.
    """
    starts = week_starts(now, weeks)
    leaving = _leaving_times()
    left_at = case(
        (Member.status.in_([str(s) for s in BLOCKED_STATUSES]), func.coalesce(leaving.c.left_at, Member.updated_at)),
        else_=None,
    )
    per_member = (
        select(
            Member.status.label("status"),
            even_bucket(session, Member.joined_at, starts).label("joined_week"),
            even_bucket(session, left_at, starts).label("left_week"),
        )
        .outerjoin(leaving, leaving.c.member_id == Member.id)
        .subquery("per_member")
    )
    rows = session.execute(
        select(per_member.c.status, per_member.c.joined_week, per_member.c.left_week, func.count()).group_by(
            per_member.c.status, per_member.c.joined_week, per_member.c.left_week
        )
    ).all()
    return _history_from(starts, [(str(s), j, lw, int(n)) for s, j, lw, n in rows])


def _history_from(starts: list[datetime], rows: list[tuple[str, int, int | None, int]]) -> MemberHistory:
    """Running totals from (status, week joined, week left, count) rows, by adding up changes per week."""
    count = len(starts)
    joined = [0] * count
    changes = {str(s): [0] * (count + 1) for s in MemberStatus}
    current = dict.fromkeys(changes, 0)
    for status, joined_week, left_week, n in rows:
        changes.setdefault(status, [0] * (count + 1))
        current[status] = current.get(status, 0) + n
        if 0 <= joined_week < count:
            joined[joined_week] += n
        start = max(joined_week, 0)
        if left_week is not None:
            switch = max(left_week, start)
            changes[MemberStatus.ACTIVE][start] += n
            changes[MemberStatus.ACTIVE][switch] -= n
            changes[status][switch] += n
        else:
            held = status if status == MemberStatus.PENDING else MemberStatus.ACTIVE
            changes[held][start] += n
    by_status = {status: list(accumulate(steps[:count])) for status, steps in changes.items()}
    return MemberHistory(starts, by_status, joined, current)


# --- connections and introductions -----------------------------------------------------------


@dataclass
class Connections:
    months: list[datetime]
    per_month: list[int]
    active_members: int
    unconnected: int

    @property
    def unconnected_share(self) -> float:
        return 100.0 * self.unconnected / self.active_members if self.active_members else 0.0


def connections(session: Session, now: datetime, tables: set[str], months: int = MONTHS) -> Connections:
    starts = month_starts(now, months)
    per_month = [0] * months
    if "connections" in tables:
        per_connection = select(bucket(Connection.began_at, starts).label("month")).subquery()
        for month, n in session.execute(
            select(per_connection.c.month, func.count())
            .where(per_connection.c.month >= 0)
            .group_by(per_connection.c.month)
        ):
            per_month[int(month)] = int(n)
    active, unconnected = session.execute(
        select(func.count(), func.coalesce(func.sum(case((Member.connections_count == 0, 1), else_=0)), 0)).where(
            Member.status == MemberStatus.ACTIVE
        )
    ).one()
    return Connections(starts, per_month, int(active), int(unconnected))


@dataclass
class IntroWaiting:
    invited: int  # asked, nobody has answered yet
    waiting_on_one: int  # one said yes, the other has not answered
    oldest_waiting: datetime | None


def intros_waiting(session: Session, tables: set[str]) -> IntroWaiting | None:
    if "intros" not in tables:
        return None
    one_side = or_(
        and_(Intro.status == IntroStatus.ACCEPTED_A, Intro.b_answer.is_(None)),
        and_(Intro.status == IntroStatus.ACCEPTED_B, Intro.a_answer.is_(None)),
    )
    invited, waiting, oldest = session.execute(
        select(
            func.coalesce(func.sum(case((Intro.status == IntroStatus.INVITED, 1), else_=0)), 0),
            func.coalesce(func.sum(case((one_side, 1), else_=0)), 0),
            func.min(case((one_side, Intro.invited_at), else_=None)),
        ).where(Intro.status.in_([IntroStatus.INVITED, IntroStatus.ACCEPTED_A, IntroStatus.ACCEPTED_B]))
    ).one()
    return IntroWaiting(int(invited), int(waiting), oldest)


# --- stories and values -----------------------------------------------------------------------


@dataclass
class StoryFlow:
    months: list[datetime]
    submitted: list[int]
    published: list[int]
    to_moderate: int


def story_flow(session: Session, now: datetime, tables: set[str], months: int = MONTHS) -> StoryFlow | None:
    if "stories" not in tables:
        return None
    starts = month_starts(now, months)
    submitted, published = [0] * months, [0] * months
    per_story = select(
        bucket(Story.submitted_at, starts).label("submitted"),
        bucket(case((Story.status == StoryStatus.APPROVED, Story.approved_at), else_=None), starts).label("published"),
    ).subquery()
    for column, target in ((per_story.c.submitted, submitted), (per_story.c.published, published)):
        for month, n in session.execute(select(column, func.count()).where(column >= 0).group_by(column)):
            target[int(month)] = int(n)
    to_moderate = session.scalar(select(func.count()).where(Story.status == StoryStatus.SUBMITTED)) or 0
    return StoryFlow(starts, submitted, published, int(to_moderate))


@dataclass
class ValueRow:
    value_id: int
    name: str
    members: int
    stories: int | None  # None while stories are not set up


def values_coverage(session: Session, tables: set[str]) -> list[ValueRow]:
    """Active members holding each value, and approved stories illustrating it."""
    held = (
        select(member_values.c.value_id, func.count().label("n"))
        .join(Member, Member.id == member_values.c.member_id)
        .where(Member.status == MemberStatus.ACTIVE)
        .group_by(member_values.c.value_id)
        .subquery()
    )
    columns: list[Any] = [Value.id, Value.name, func.coalesce(held.c.n, 0)]
    query = select(*columns).outerjoin(held, held.c.value_id == Value.id)
    if {"stories", "story_values"} <= tables:
        told = (
            select(story_values.c.value_id, func.count().label("n"))
            .join(Story, Story.id == story_values.c.story_id)
            .where(Story.status == StoryStatus.APPROVED)
            .group_by(story_values.c.value_id)
            .subquery()
        )
        query = query.add_columns(func.coalesce(told.c.n, 0)).outerjoin(told, told.c.value_id == Value.id)
    else:
        query = query.add_columns(literal(None))
    rows = session.execute(query.order_by(Value.position, Value.name)).all()
    return [ValueRow(int(i), name, int(m), None if s is None else int(s)) for i, name, m, s in rows]


# --- campaigns --------------------------------------------------------------------------------


@dataclass
class CampaignFigures:
    campaign_id: int
    name: str
    kind: str
    status: str
    started_at: datetime | None
    recipients: int = 0
    delivered: int = 0
    bounced: int = 0
    failed: int = 0
    replies: int = 0
    unsubscribes: int = 0
    opened: int = 0  # messages first opened by a person (tracking only)
    clicked: int = 0  # messages with a click by a person (tracking only)


def campaign_ref() -> ColumnElement[int]:
    """The campaign an unsubscribe came from, as recorded in the consent event's detail."""
    return ConsentEvent.detail["campaign_id"].as_integer()


def recent_campaigns(session: Session, limit: int = RECENT_CAMPAIGNS) -> list[CampaignFigures]:
    """The last campaigns that started sending, with delivered, bounced, replies and unsubscribes, and
    opens and clicks by people (zero unless they were sent with tracking)."""
    found = session.execute(
        select(Campaign.id, Campaign.name, Campaign.kind, Campaign.status, Campaign.started_at)
        .where(Campaign.kind != CampaignKind.TRANSACTIONAL, Campaign.started_at.is_not(None))
        .order_by(Campaign.started_at.desc(), Campaign.id.desc())
        .limit(limit)
    ).all()
    figures = {row.id: CampaignFigures(row.id, row.name, row.kind, row.status, row.started_at) for row in found}
    if not figures:
        return []
    ids = list(figures)
    sent = Delivery.status == DeliveryStatus.SENT
    for campaign_id, total, delivered, bounced, failed, opened, clicked in session.execute(
        select(
            Delivery.campaign_id,
            func.count(),
            func.sum(case((and_(sent, Delivery.bounce_type.is_(None)), 1), else_=0)),
            func.sum(case((Delivery.bounce_type.is_not(None), 1), else_=0)),
            func.sum(case((Delivery.status == DeliveryStatus.FAILED, 1), else_=0)),
            func.count(Delivery.opened_at),
            func.count(Delivery.clicked_at),
        )
        .where(Delivery.campaign_id.in_(ids))
        .group_by(Delivery.campaign_id)
    ):
        row = figures[campaign_id]
        row.recipients, row.delivered, row.bounced, row.failed = int(total), int(delivered), int(bounced), int(failed)
        row.opened, row.clicked = int(opened), int(clicked)
    for campaign_id, n in session.execute(
        select(InboundMessage.subject_id, func.count())
        .where(InboundMessage.subject_kind == "campaign", InboundMessage.subject_id.in_(ids))
        .group_by(InboundMessage.subject_id)
    ):
        figures[campaign_id].replies = int(n)
    for campaign_id, n in unsubscribes_by_campaign(session, ids):
        figures[campaign_id].unsubscribes = n
    return list(figures.values())


def unsubscribes_by_campaign(session: Session, ids: list[int]) -> list[tuple[int, int]]:
    ref = campaign_ref()
    per_event = (
        select(ref.label("campaign_id")).where(ConsentEvent.kind.in_(UNSUBSCRIBE_KINDS)).subquery("unsubscribes")
    )
    rows = session.execute(
        select(per_event.c.campaign_id, func.count())
        .where(per_event.c.campaign_id.in_(ids))
        .group_by(per_event.c.campaign_id)
    )
    return [(int(c), int(n)) for c, n in rows]


# --- what needs a coordinator -------------------------------------------------------------------


@dataclass
class NeedsYou:
    """Work waiting for a person; `endpoint`/`args` say where one click takes them."""

    key: str
    label: str
    count: int
    endpoint: str
    args: dict[str, Any] = field(default_factory=dict)
    action: str = "Open"
    items: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (text, endpoint, args)


def needs_you(session: Session, now: datetime, tables: set[str]) -> list[NeedsYou]:
    found = [_unclear_replies(session), _paused_campaigns(session)]
    if "stories" in tables:
        found.append(_stories_to_moderate(session))
    found.append(_newcomers_without_intro(session, now, tables))
    return [item for item in found if item.count]


def _unclear_replies(session: Session) -> NeedsYou:
    count = session.scalar(select(func.count()).where(InboundMessage.status == InboundStatus.NEEDS_REVIEW)) or 0
    return NeedsYou(
        "replies", "Replies we could not read for sure", int(count), "admin.inbox", {"folder": "review"},
        "Read them",
    )  # fmt: skip


def _stories_to_moderate(session: Session) -> NeedsYou:
    count = session.scalar(select(func.count()).where(Story.status == StoryStatus.SUBMITTED)) or 0
    return NeedsYou(
        "stories", "Stories waiting for moderation", int(count), "admin.stories", {"status": "submitted"},
        "Moderate",
    )  # fmt: skip


def _paused_campaigns(session: Session) -> NeedsYou:
    """Campaigns the sending workers paused because messages kept failing (not a coordinator's pause)."""
    last_pause = (
        select(CampaignStatusChange.campaign_id, func.max(CampaignStatusChange.id).label("change_id"))
        .where(CampaignStatusChange.to_status == CampaignStatus.PAUSED)
        .group_by(CampaignStatusChange.campaign_id)
        .subquery()
    )
    rows = session.execute(
        select(Campaign.id, Campaign.name)
        .join(last_pause, last_pause.c.campaign_id == Campaign.id)
        .join(CampaignStatusChange, CampaignStatusChange.id == last_pause.c.change_id)
        .where(Campaign.status == CampaignStatus.PAUSED, CampaignStatusChange.actor == SYSTEM_ACTOR)
        .order_by(Campaign.id.desc())
    ).all()
    items = [(name, "admin.campaign", {"campaign_id": cid}) for cid, name in rows]
    return NeedsYou(
        "paused", "Campaigns paused because sending failed", len(rows), "admin.campaigns", {}, "See campaigns",
        items[:NEEDS_YOU_NAMES],
    )  # fmt: skip


def newcomer_clause(now: datetime, tables: set[str]) -> ColumnElement[bool]:
    """Active members who joined 30 to 90 days ago, want introductions and have had none."""
    newest, oldest = (now - timedelta(days=d) for d in NEWCOMER_DAYS)
    clause = and_(
        Member.status == MemberStatus.ACTIVE,
        Member.wants_intros.is_(True),
        Member.joined_at <= newest,
        Member.joined_at > oldest,
        Member.last_introduced_at.is_(None),
        Member.connections_count == 0,
    )
    if "intros" in tables:
        asked = exists().where(
            or_(Intro.member_a_id == Member.id, Intro.member_b_id == Member.id),
            Intro.status.not_in([IntroStatus.PROPOSED, IntroStatus.CANCELLED]),
        )
        clause = and_(clause, ~asked)
    return clause


def _newcomers_without_intro(session: Session, now: datetime, tables: set[str]) -> NeedsYou:
    clause = newcomer_clause(now, tables)
    count = session.scalar(select(func.count()).where(clause)) or 0
    rows = session.execute(
        select(Member.id, Member.preferred_name, Member.name, Member.email)
        .where(clause)
        .order_by(Member.joined_at, Member.id)
        .limit(NEEDS_YOU_NAMES)
    ).all()
    items = [(p or n or e.split("@", 1)[0], "admin.member_detail", {"member_id": i}) for i, p, n, e in rows]
    return NeedsYou(
        "newcomers", f"Newcomers with no introduction {NEWCOMER_DAYS[0]} days after joining", int(count),
        "admin.intros", {}, "Start an introduction round", items,
    )  # fmt: skip


# --- the whole page ------------------------------------------------------------------------------


@dataclass
class Overview:
    now: datetime
    members: MemberHistory
    connections: Connections
    intros: IntroWaiting | None
    stories: StoryFlow | None
    values: list[ValueRow]
    campaigns: list[CampaignFigures]
    needs_you: list[NeedsYou]
    tables: set[str]
    tracking: bool = False  # the community tracks opens and clicks: the campaigns table shows them

    @property
    def active_members(self) -> int:
        return self.members.current.get(MemberStatus.ACTIVE, 0)

    @property
    def total_members(self) -> int:
        return sum(self.members.current.values())

    @property
    def new_this_week(self) -> int:
        return self.members.joined[-1] if self.members.joined else 0


def overview(session: Session, now: datetime | None = None) -> Overview:
    now = now or utcnow()
    tables = existing_tables(session)
    return Overview(
        now=now,
        members=member_history(session, now),
        connections=connections(session, now, tables),
        intros=intros_waiting(session, tables),
        stories=story_flow(session, now, tables),
        values=values_coverage(session, tables),
        campaigns=recent_campaigns(session),
        needs_you=needs_you(session, now, tables),
        tables=tables,
        tracking=community.load(session).tracking_enabled,
    )


# --- charts ---------------------------------------------------------------------------------------

STATUS_LABELS = {
    "active": "Active",
    "pending": "Pending",
    "unsubscribed": "Unsubscribed",
    "bounced": "Bounced",
    "complained": "Complained",
    "erased": "Erased",
}


def dashboard_charts(data: Overview) -> dict[str, charts.Chart]:
    weeks = [_week_label(start) for start in data.members.weeks]
    shown = [s for s in STATUS_LABELS if s == MemberStatus.ACTIVE or any(data.members.by_status.get(s, []))]
    found = {
        "members": charts.line_chart(
            "chart-members",
            "Members by status, week by week",
            f"Stacked areas: how many members were in each status at the end of each of the last {len(weeks)} "
            "weeks. Each status has its own fill pattern and is named at the right edge.",
            weeks,
            [charts.Series.of(STATUS_LABELS[s], data.members.by_status[s]) for s in shown],
            stacked_area=True,
            label_header="Week starting",
            empty_message="No members yet",
        ),
        "joined": charts.bar_chart(
            "chart-joined",
            "New members per week",
            f"Bars: members who joined in each of the last {len(weeks)} weeks.",
            weeks,
            [charts.Series.of("New members", data.members.joined)],
            label_header="Week starting",
            empty_message="Nobody has joined in these weeks",
        ),
        "connections": charts.bar_chart(
            "chart-connections",
            "Connections made per month",
            "Bars: new connections between members in each of the last 12 months.",
            [_month_label(m) for m in data.connections.months],
            [charts.Series.of("Connections", data.connections.per_month)],
            label_header="Month",
            empty_message="No connections recorded yet",
        ),
        "values": charts.hbar_chart(
            "chart-values",
            "Values coverage",
            "Horizontal bars per value: active members who hold it"
            + (", and approved stories that illustrate it." if _has_story_counts(data) else "."),
            [row.name for row in data.values],
            [charts.Series.of("Members", [row.members for row in data.values])]
            + (
                [charts.Series.of("Stories", [row.stories or 0 for row in data.values])]
                if _has_story_counts(data)
                else []
            ),
            label_header="Value",
            empty_message="No values named yet",
        ),
    }
    if data.stories is not None:
        found["stories"] = charts.bar_chart(
            "chart-stories",
            "Stories submitted and published per month",
            "Grouped bars per month: stories members submitted, and stories approved for sharing.",
            [_month_label(m) for m in data.stories.months],
            [
                charts.Series.of("Submitted", data.stories.submitted),
                charts.Series.of("Published", data.stories.published),
            ],
            label_header="Month",
            empty_message="No stories yet",
        )
    return found


def _has_story_counts(data: Overview) -> bool:
    return bool(data.values) and data.values[0].stories is not None
