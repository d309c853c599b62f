"""Planning: turn a campaign's audience into one queued Delivery row per member.

The audience is resolved in SQL and copied with INSERT ... SELECT in member-id ranges,
so no member is ever loaded into Python and memory stays flat however large the list.
Each range commits on its own (sending can start after the first one), and the unique
(campaign, member) pair with ON CONFLICT DO NOTHING makes a re-run after a crash add
only what is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from cop_mail.db import is_postgres, utcnow
from cop_mail.models import Campaign, CampaignStatus, Delivery, Member
from cop_mail.sending.audience import AudienceError, audience_ids
from cop_mail.sending.campaigns import SYSTEM_ACTOR, change_status, get_campaign

log = logging.getLogger("cop_mail.sending.planner")
PLAN_CHUNK = 5000
# Planning goes on while a campaign is paused (so resuming finds every row), never once it has ended.
PLANNABLE = frozenset({CampaignStatus.SENDING, CampaignStatus.PAUSED})


def plan_campaign(
    session: Session,
    campaign_id: int,
    *,
    chunk: int = PLAN_CHUNK,
    now: datetime | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> int:
    """Insert the missing delivery rows; returns how many were added. Commits once per chunk."""
    campaign = get_campaign(session, campaign_id)
    if campaign.status not in PLANNABLE or campaign.planned_at is not None:
        return 0
    moment = now or utcnow()
    try:
        audience = audience_ids(session, campaign.kind, campaign.list_ids, campaign.segment_ids, moment)
    except AudienceError as exc:
        # Never a silently smaller audience: the campaign stops and says why.
        change_status(session, campaign_id, CampaignStatus.FAILED, SYSTEM_ACTOR, f"The audience is gone: {exc}")
        session.commit()
        return 0
    after, added = 0, 0
    while (upper := _chunk_end(session, audience, after, chunk)) is not None:
        added += _insert_range(session, campaign_id, audience, after, upper)
        session.commit()
        after = upper
        if on_chunk is not None:
            on_chunk(added)
    # planned_at tells the reconciler that "no rows left" really means finished.
    session.execute(update(Campaign).where(Campaign.id == campaign_id).values(planned_at=utcnow()))
    session.commit()
    log.info("campaign %s planned: %d delivery rows added", campaign_id, added)
    return added


def _chunk_end(session: Session, audience: Select[Any], after: int, chunk: int) -> int | None:
    ids = audience.where(Member.id > after).order_by(Member.id).limit(chunk).subquery()
    return session.scalar(select(func.max(ids.c.id)))


def _insert_range(session: Session, campaign_id: int, audience: Select[Any], after: int, upper: int) -> int:
    rows = audience.with_only_columns(literal(campaign_id), Member.id).where(Member.id > after, Member.id <= upper)
    insert = pg_insert(Delivery) if is_postgres(session) else sqlite_insert(Delivery)
    statement = insert.from_select(["campaign_id", "member_id"], rows).on_conflict_do_nothing()
    result = session.execute(statement, execution_options={"preserve_rowcount": True})
    return max(int(result.rowcount or 0), 0)  # type: ignore[attr-defined]
