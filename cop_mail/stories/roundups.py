"""Roundups: approved stories gathered into one email, grouped by value, once or on a schedule.

A roundup takes the stories approved since the last roundup that went out (or the ones a
coordinator picks). With nothing new it is recorded as skipped, with the reason, and the
coordinator is told through the audit log and the roundups page: a roundup is never sent empty.
The campaign is made through the sending pipeline; its content holds everything the `roundup`
template needs without a database, and paths rather than full URLs, so it can be rebuilt when an
author withdraws a story before the roundup leaves.

The content has the `roundup` email kind's shape. Per recipient, the "meet the storyteller" link
(and a members-only story's link) end in the `@@cm:meet_token@@` marker, filled with
`links.meet_token(settings, member_id)` (see `recipient_fields`): one signed value per member, so
the template still compiles once per campaign.
"""

from __future__ import annotations

import calendar
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cop_mail.accounts import audit
from cop_mail.db import utcnow
from cop_mail.models import (
    Admin,
    Campaign,
    CampaignKind,
    CampaignStatus,
    Roundup,
    RoundupFrequency,
    RoundupSchedule,
    RoundupStatus,
    Story,
    StoryStatus,
)
from cop_mail.settings import Settings
from cop_mail.stories import links
from cop_mail.stories.archive import author_names
from cop_mail.stories.markup import excerpt

# A roundup counts as "the last one" once its campaign is on its way or out.
GONE_OUT = (CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.PAUSED, CampaignStatus.SENT)
UNSENT = (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED)
MAX_STORIES = 40
Actor = Admin | str


class RoundupError(ValueError):
    """A roundup that cannot be made as asked; the message says why in plain words."""


# --- compiling -----------------------------------------------------------------------------


def last_cutoff(session: Session) -> datetime | None:
    """The end of the period of the last roundup that went out: the next one starts there."""
    return session.scalar(
        select(func.max(Roundup.until))
        .join(Campaign, Campaign.id == Roundup.campaign_id)
        .where(Roundup.status == RoundupStatus.COMPILED, Campaign.status.in_(GONE_OUT))
    )


def stories_between(session: Session, since: datetime | None, until: datetime) -> list[Story]:
    query = select(Story).where(Story.status == StoryStatus.APPROVED, Story.approved_at <= until)
    if since is not None:
        query = query.where(Story.approved_at > since)
    return list(session.scalars(query.order_by(Story.approved_at, Story.id).limit(MAX_STORIES)))


def approved_by_ids(session: Session, story_ids: Sequence[int]) -> list[Story]:
    found = {
        story.id: story
        for story in session.scalars(select(Story).where(Story.id.in_(story_ids), Story.status == StoryStatus.APPROVED))
    }
    missing = [str(i) for i in story_ids if i not in found]
    if missing:
        raise RoundupError(f"Only approved stories can go in a roundup; not approved: {', '.join(missing)}.")
    return [found[i] for i in dict.fromkeys(story_ids)]


def compile_roundup(
    session: Session,
    actor: Actor,
    title: str,
    *,
    story_ids: Sequence[int] | None = None,
    now: datetime | None = None,
    schedule_id: int | None = None,
    due_on: date | None = None,
) -> Roundup:
    """Gather the stories; with none, record the roundup as skipped and say why."""
    until = now or utcnow()
    if story_ids:
        since, stories, hand_picked = None, approved_by_ids(session, story_ids), True
    else:
        since = last_cutoff(session)
        stories, hand_picked = stories_between(session, since, until), False
    roundup = Roundup(
        title=" ".join(title.split())[:200] or "Roundup",
        since=since,
        until=until,
        hand_picked=hand_picked,
        story_ids=[story.id for story in stories],
        schedule_id=schedule_id,
        due_on=due_on,
        created_by=actor.email if isinstance(actor, Admin) else actor,
        status=RoundupStatus.COMPILED if stories else RoundupStatus.SKIPPED,
    )
    if not stories:
        when = f"since {since:%d %B %Y}" if since else "yet"
        roundup.note = f"No stories were approved {when}, so this roundup was skipped rather than sent empty."
    session.add(roundup)
    session.flush()
    if not stories:
        audit(session, actor, "roundup.skipped", f"roundup:{roundup.id}", note=roundup.note, schedule_id=schedule_id)
    return roundup


# --- content for the roundup template ------------------------------------------------------


MEET_MARKER = "@@cm:meet_token@@"
ANONYMOUS = "A member of the community"


def story_card(public_url: str, story: Story, author_name: str | None, value_name: str) -> dict[str, Any]:
    """One story as the roundup template's story card shows it.

    A public story links to its archive page; a members-only one to the members' reading page,
    which needs the recipient's token, as does "meet the storyteller".
    """
    member_path = f"{public_url}/stories/{story.id}/%s/{MEET_MARKER}"
    return {
        "id": story.id,
        "title": story.title,
        "storyteller": (author_name if story.shows_author_name else None) or ANONYMOUS,
        "value": value_name,
        "excerpt": excerpt(story.body_html, 400),
        "url": f"{public_url}/archive/stories/{story.id}" if story.is_public else member_path % "read",
        "storyteller_url": member_path % "meet",
        "public": story.is_public,
    }


def roundup_content(session: Session, public_url: str, roundup: Roundup) -> dict[str, Any]:
    """The `roundup` template's context: story cards grouped under their first value."""
    stories = approved_stories(session, roundup.story_ids)
    names = author_names(session, stories)
    groups: dict[int | None, dict[str, Any]] = {}
    for story in stories:
        value = story.values[0] if story.values else None
        group = groups.setdefault(
            value.id if value else None,
            {
                "value": value.name if value else "More stories",
                "value_id": value.id if value else None,
                "description": value.description if value else "",
                "stories": [],
            },
        )
        group["stories"].append(story_card(public_url, story, names.get(story.author_id), group["value"]))
    ordered = [group for key, group in groups.items() if key is not None]
    if None in groups:
        ordered.append(groups[None])
    count = len(stories)
    return {
        "title": roundup.title,
        "teaser": f"{count} {'story' if count == 1 else 'stories'} from members, grouped by the values they show",
        "intro": "",
        "groups": ordered,
        "roundup_id": roundup.id,
        "story_ids": [story.id for story in stories],
        "public_url": public_url,
    }


def approved_stories(session: Session, story_ids: Sequence[int]) -> list[Story]:
    """The roundup's stories still approved now, in the roundup's order (a withdrawn one drops out)."""
    if not story_ids:
        return []
    found = {
        story.id: story
        for story in session.scalars(select(Story).where(Story.id.in_(story_ids), Story.status == StoryStatus.APPROVED))
    }
    return [found[i] for i in story_ids if i in found]


def recipient_fields(settings: Settings, member_id: int) -> dict[str, str]:
    """Per-recipient values a roundup needs besides the usual ones: the `meet_token` marker's value."""
    return {"meet_token": links.meet_token(settings, member_id)}


def default_subject(community_name: str, when: datetime) -> str:
    return f"Stories from {community_name}, {when:%B %Y}"


def create_campaign_for(
    session: Session,
    public_url: str,
    roundup: Roundup,
    actor: Actor,
    *,
    subject: str,
    list_ids: Sequence[int] = (),
    segment_ids: Sequence[int] = (),
) -> Campaign:
    """The roundup's campaign, as a draft, through the sending pipeline."""
    from cop_mail.sending.campaigns import create_campaign

    if roundup.status != RoundupStatus.COMPILED or roundup.campaign_id is not None:
        raise RoundupError("This roundup has no stories or already has its campaign.")
    count = len(roundup.story_ids)
    campaign = create_campaign(
        session,
        name=roundup.title,
        kind=CampaignKind.ROUNDUP,
        subject=subject,
        preheader=f"{count} {'story' if count == 1 else 'stories'} from members of the community",
        actor=actor.email if isinstance(actor, Admin) else actor,
        content=roundup_content(session, public_url, roundup),
        list_ids=list_ids,
        segment_ids=segment_ids,
    )
    roundup.campaign_id = campaign.id
    session.flush()
    return campaign


def drop_story_from_unsent(session: Session, story_id: int, actor: str = "system") -> list[int]:
    """After a withdrawal: rebuild every roundup not yet gone out that holds the story.

    A roundup left with no stories has its campaign cancelled and is marked skipped.
    Returns the ids of the campaigns changed.
    """
    from cop_mail.sending.campaigns import CampaignStateError, cancel

    changed = []
    rows = session.execute(
        select(Roundup, Campaign)
        .join(Campaign, Campaign.id == Roundup.campaign_id)
        .where(Roundup.status == RoundupStatus.COMPILED, Campaign.status.in_(UNSENT))
    ).all()
    for roundup, campaign in rows:
        if story_id not in roundup.story_ids:
            continue
        roundup.story_ids = [i for i in roundup.story_ids if i != story_id]
        public_url = str(campaign.content.get("public_url", ""))
        # Replace the stories only: the title, teaser and intro may be a coordinator's words.
        fresh = roundup_content(session, public_url, roundup)
        campaign.content = {**campaign.content, "groups": fresh["groups"], "story_ids": fresh["story_ids"]}
        if not roundup.story_ids:
            roundup.status = RoundupStatus.SKIPPED
            roundup.note = "Its only story was withdrawn by the author, so the roundup was not sent."
            # If it started sending meanwhile, the content rebuilt above still leaves the story out.
            with contextlib.suppress(CampaignStateError):
                cancel(session, campaign.id, actor, "the roundup has no stories left")
        changed.append(campaign.id)
    session.flush()
    return changed


# --- schedules -----------------------------------------------------------------------------


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RoundupError(f"Unknown time zone {name!r}.") from exc


def nth_weekday(year: int, month: int, weekday: int, nth: int) -> date:
    """The nth (1-4, or -1 for the last) given weekday of a month."""
    if nth == -1:
        last = date(year, month, calendar.monthrange(year, month)[1])
        return last - timedelta(days=(last.weekday() - weekday) % 7)
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (nth - 1))


def next_occurrence(schedule: RoundupSchedule, after: datetime) -> datetime:
    """The first run strictly after `after`, at the schedule's hour in its time zone, in UTC."""
    zone = _zone(schedule.timezone)
    local = after.astimezone(zone)
    if schedule.frequency == RoundupFrequency.WEEKLY:
        day = local.date() + timedelta(days=(schedule.weekday - local.weekday()) % 7)
        candidates = [day, day + timedelta(days=7)]
    else:
        year, month = local.year, local.month
        candidates = []
        for _ in range(3):
            candidates.append(nth_weekday(year, month, schedule.weekday, schedule.nth))
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    for day in candidates:
        moment = datetime(day.year, day.month, day.day, schedule.hour, tzinfo=zone)
        if moment > after:
            return moment.astimezone(ZoneInfo("UTC"))
    raise RoundupError("The schedule has no next date.")  # unreachable for valid schedules


def check_schedule(schedule: RoundupSchedule) -> None:
    problems = []
    if not schedule.name.strip():
        problems.append("Give the schedule a name.")
    if schedule.frequency not in set(RoundupFrequency):
        problems.append("Choose monthly or weekly.")
    if not 0 <= schedule.weekday <= 6:
        problems.append("Choose a day of the week.")
    if schedule.nth not in (1, 2, 3, 4, -1):
        problems.append("Choose the first, second, third, fourth or last week of the month.")
    if not 0 <= schedule.hour <= 23:
        problems.append("Choose an hour from 0 to 23.")
    if not schedule.list_ids and not schedule.segment_ids:
        problems.append("Choose at least one list or segment to send to.")
    if problems:
        raise RoundupError(" ".join(problems))
    _zone(schedule.timezone)


def save_schedule(session: Session, schedule: RoundupSchedule, actor: Actor, now: datetime | None = None) -> None:
    check_schedule(schedule)
    if schedule.active is None:  # a new row, before the column default applies
        schedule.active = True
    schedule.next_run_at = next_occurrence(schedule, now or utcnow()) if schedule.active else None
    session.add(schedule)
    session.flush()
    audit(session, actor, "roundup.schedule", f"roundup_schedule:{schedule.id}", next_run_at=str(schedule.next_run_at))


def due_schedule_ids(session: Session, now: datetime) -> list[int]:
    return list(
        session.scalars(
            select(RoundupSchedule.id)
            .where(RoundupSchedule.active.is_(True), RoundupSchedule.next_run_at <= now)
            .order_by(RoundupSchedule.id)
        )
    )


@dataclass(frozen=True)
class ScheduledRun:
    roundup: Roundup | None  # None: this date's roundup already existed (a repeated job)
    campaign_id: int | None
    started: bool  # the campaign was set sending: the caller enqueues its planner after commit


def run_schedule(session: Session, settings: Settings, schedule_id: int, now: datetime | None = None) -> ScheduledRun:
    """Make the roundup a schedule is due for. One per schedule and day, however often this runs."""
    from cop_mail.sending.campaigns import CampaignStateError, send_now

    now = now or utcnow()
    schedule = session.get(RoundupSchedule, schedule_id)
    if schedule is None or not schedule.active or schedule.next_run_at is None or schedule.next_run_at > now:
        return ScheduledRun(None, None, False)
    due_on = schedule.next_run_at.astimezone(_zone(schedule.timezone)).date()
    # A scheduler that was down for weeks runs once, not once per missed date.
    schedule.next_run_at = next_occurrence(schedule, max(now, schedule.next_run_at))
    if session.scalar(select(Roundup.id).where(Roundup.schedule_id == schedule.id, Roundup.due_on == due_on)):
        return ScheduledRun(None, None, False)
    actor = f"schedule:{schedule.id}"
    roundup = compile_roundup(
        session, actor, f"{schedule.name}, {due_on:%d %B %Y}", now=now, schedule_id=schedule.id, due_on=due_on
    )
    if roundup.status == RoundupStatus.SKIPPED:
        return ScheduledRun(roundup, None, False)
    campaign = create_campaign_for(
        session, settings.public_url, roundup, actor,
        subject=schedule.subject or default_subject(settings.community_name, now),
        list_ids=schedule.list_ids, segment_ids=schedule.segment_ids,
    )  # fmt: skip
    if not schedule.send_automatically:
        return ScheduledRun(roundup, campaign.id, False)
    try:
        send_now(session, campaign.id, actor)
    except CampaignStateError as exc:
        roundup.note = f"The roundup was made but not sent: {exc}. It waits as a draft."
        audit(session, actor, "roundup.not_sent", f"roundup:{roundup.id}", reason=str(exc))
        return ScheduledRun(roundup, campaign.id, False)
    return ScheduledRun(roundup, campaign.id, True)


# --- what the admin shows ------------------------------------------------------------------


@dataclass(frozen=True)
class RoundupRow:
    roundup: Roundup
    campaign_status: str | None


def recent_roundups(session: Session, limit: int = 50, offset: int = 0) -> list[RoundupRow]:
    rows = session.execute(
        select(Roundup, Campaign.status)
        .outerjoin(Campaign, Campaign.id == Roundup.campaign_id)
        .order_by(Roundup.created_at.desc(), Roundup.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return [RoundupRow(roundup, status) for roundup, status in rows]


def count_roundups(session: Session) -> int:
    return int(session.scalar(select(func.count(Roundup.id))) or 0)
