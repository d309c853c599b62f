"""The community's settings kept in the database: engagement tracking and the attention budget.

Operators set the environment (`cop_mail.settings`); coordinators with the owner role set
these in the admin. Every reader gets a complete, typed `CommunityPrefs` with defaults for
what was never saved, so adding a setting needs no migration.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from sqlalchemy.orm import Session

from cop_mail.models import CommunitySettings, Stream

ROW_ID = 1


class OverBudget:
    """What happens to a stream's message that would go over a member's attention budget."""

    DEFER = "defer"  # held until the member's next window opens
    DROP = "drop"  # not sent; recorded as dropped in the delivery log

    CHOICES = (DEFER, DROP)


# Highest first: transactional mail and answers to the member's own actions always go out.
PRIORITY: tuple[Stream, ...] = (
    Stream.TRANSACTIONAL,
    Stream.INTROS,
    Stream.ROUNDUPS,
    Stream.NEWSLETTERS,
    Stream.RESOURCES,
)


def _default_over_budget() -> dict[str, str]:
    return {
        Stream.INTROS.value: OverBudget.DEFER,
        Stream.ROUNDUPS.value: OverBudget.DEFER,
        Stream.NEWSLETTERS.value: OverBudget.DEFER,
        Stream.RESOURCES.value: OverBudget.DROP,
    }


@dataclass(frozen=True)
class CommunityPrefs:
    # Opens and clicks: off until an owner switches them on.
    tracking_enabled: bool = False
    # At most `budget_max_emails` emails to one member per `budget_window_days`; 0 means no cap.
    budget_max_emails: int = 0
    budget_window_days: int = 7
    # Stream value -> OverBudget.DEFER or OverBudget.DROP, for every stream below transactional.
    budget_over: dict[str, str] = field(default_factory=_default_over_budget)

    @property
    def budget_enabled(self) -> bool:
        return self.budget_max_emails > 0


def load(session: Session) -> CommunityPrefs:
    row = session.get(CommunitySettings, ROW_ID)
    stored = dict(row.values) if row is not None else {}
    known = {f.name for f in fields(CommunityPrefs)}
    prefs = CommunityPrefs(**{key: value for key, value in stored.items() if key in known})
    # A stream missing from a stored document keeps its default.
    return replace(prefs, budget_over={**_default_over_budget(), **prefs.budget_over})


def save(session: Session, prefs: CommunityPrefs, actor: str) -> CommunityPrefs:
    """Store the whole document (the caller validated it); does not commit."""
    row = session.get(CommunitySettings, ROW_ID)
    if row is None:
        row = CommunitySettings(id=ROW_ID)
        session.add(row)
    row.values = asdict(prefs)
    row.updated_by = actor
    session.flush()
    return prefs


def update(session: Session, actor: str, **changes: Any) -> CommunityPrefs:
    return save(session, replace(load(session), **changes), actor)
