"""Who a campaign goes to: its lists and segments, minus whoever may not receive its stream.

The audience is the audience package's `audience_query`: one SQL selection of member ids
(on any of the lists OR matching any of the segments, and receivable for the stream), so
the planner can walk it in chunks without loading members into memory. The receiving rules
(status, stream preference, pause, the suppression hash) are `receivable_clause`, used again
at send time so a change after planning still takes effect.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select
from sqlalchemy.orm import Session

from cop_mail.audience.segments import SegmentNotFound, audience_query
from cop_mail.audience.suppression import on_lists_clause, receivable_clause
from cop_mail.models import CampaignKind, Member, Stream

STREAM_FOR_KIND = {
    CampaignKind.NEWSLETTER: Stream.NEWSLETTERS,
    CampaignKind.INTRO: Stream.INTROS,
    CampaignKind.ROUNDUP: Stream.ROUNDUPS,
    CampaignKind.STORY_PROMPT: Stream.ROUNDUPS,
    CampaignKind.RESOURCE_DIGEST: Stream.RESOURCES,
    CampaignKind.TRANSACTIONAL: Stream.TRANSACTIONAL,
}


class AudienceError(ValueError):
    """A campaign whose audience cannot be resolved (no lists or segments, a deleted segment)."""


def stream_for(kind: str) -> Stream:
    return STREAM_FOR_KIND[CampaignKind(kind)]


def receivable_now(kind: str, now: datetime) -> ColumnElement[bool]:
    return receivable_clause(stream_for(kind), now=now)


def audience_ids(
    session: Session, kind: str, list_ids: Sequence[int], segment_ids: Sequence[int], now: datetime
) -> Select[Any]:
    """Member ids the campaign should reach right now, as one SELECT (not executed here)."""
    if not list_ids and not segment_ids:
        raise AudienceError("the campaign has no lists or segments to send to")
    try:
        return audience_query(session, list(list_ids), list(segment_ids), stream=stream_for(kind), now=now)
    except SegmentNotFound as exc:
        raise AudienceError(str(exc)) from exc


def still_on_audience(list_ids: Sequence[int], segment_ids: Sequence[int]) -> ColumnElement[bool]:
    """At send time, only list membership is checked again: leaving a list stops its mail,
    while segment rules are evaluated once, when the campaign is planned."""
    if list_ids and not segment_ids:
        return on_lists_clause(list_ids)
    return Member.id.is_not(None)
