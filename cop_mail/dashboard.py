"""Figures for the coordinator's dashboard, all computed in SQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cop_mail.models import Campaign, Member, MemberStatus


def overview(session: Session) -> dict[str, Any]:
    by_status = dict(session.execute(select(Member.status, func.count()).group_by(Member.status)).all())
    unconnected = session.scalar(
        select(func.count()).where(Member.status == MemberStatus.ACTIVE, Member.connections_count == 0)
    )
    campaigns = session.scalars(select(Campaign).order_by(Campaign.created_at.desc()).limit(5)).all()
    return {
        "members_by_status": {status.value: by_status.get(status.value, 0) for status in MemberStatus},
        "active_members": by_status.get(MemberStatus.ACTIVE.value, 0),
        "unconnected_members": unconnected or 0,
        "recent_campaigns": campaigns,
    }
