"""The community's vocabulary: values (why members act), practices (what they do), tags,
and the lists people subscribe to. Names are unique regardless of case."""

from __future__ import annotations

import re
import unicodedata
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cop_mail.models import (
    Campaign,
    CampaignStatus,
    ListMembership,
    MailingList,
    OptIn,
    Practice,
    Tag,
    Value,
    member_practices,
    member_tags,
    member_values,
)

COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
Term = TypeVar("Term", Value, Practice, Tag)
_LINKS: dict[type[Any], tuple[Any, str]] = {
    Value: (member_values, "value_id"),
    Practice: (member_practices, "practice_id"),
    Tag: (member_tags, "tag_id"),
}
_WORD = {Value: "value", Practice: "practice", Tag: "tag", MailingList: "list"}


class TaxonomyError(ValueError):
    """A change that cannot be made; the message says why in plain words."""


class NotFound(LookupError):
    pass


def _clean_name(name: str, what: str, limit: int = 100) -> str:
    text = " ".join(name.split())
    if not text:
        raise TaxonomyError(f"Give the {what} a name.")
    if len(text) > limit:
        raise TaxonomyError(f"A {what} name can be at most {limit} characters long.")
    return text


def _check_unique(session: Session, model: type[Any], name: str, current: Any | None) -> None:
    other = session.scalar(select(model).where(func.lower(model.name) == name.lower()))
    if other is not None and other is not current:
        raise TaxonomyError(f"A {_WORD[model]} called {other.name!r} already exists.")


def get_term(session: Session, model: type[Term], term_id: int) -> Term:
    term = session.get(model, term_id)
    if term is None:
        raise NotFound(f"{_WORD[model]} #{term_id} does not exist")
    return term


def list_terms(session: Session, model: type[Term]) -> list[tuple[Term, int]]:
    """Every value, practice or tag with how many members hold it (one grouped count)."""
    table, column = _LINKS[model]
    grouped = session.execute(select(table.c[column], func.count()).group_by(table.c[column])).all()
    counts: dict[int, int] = {term_id: held for term_id, held in grouped}
    order = (Value.position, Value.name) if model is Value else (model.name,)
    return [(term, counts.get(term.id, 0)) for term in session.scalars(select(model).order_by(*order))]


def term_names(session: Session, model: type[Term]) -> dict[int, str]:
    return dict(session.execute(select(model.id, model.name).order_by(model.name)).all())


def save_value(
    session: Session, name: str, description: str = "", colour: str = "#2f6f4f", value: Value | None = None
) -> Value:
    clean = _clean_name(name, "value")
    _check_unique(session, Value, clean, value)
    if not COLOUR.match(colour.strip()):
        raise TaxonomyError("Choose the colour as #rrggbb, for example #2f6f4f.")
    target = value or Value(position=(session.scalar(select(func.max(Value.position))) or 0) + 1)
    target.name, target.description, target.colour = clean, description.strip()[:5000], colour.strip().lower()
    session.add(target)
    session.flush()
    return target


def save_practice(session: Session, name: str, description: str = "", practice: Practice | None = None) -> Practice:
    clean = _clean_name(name, "practice")
    _check_unique(session, Practice, clean, practice)
    target = practice or Practice()
    target.name, target.description = clean, description.strip()[:5000]
    session.add(target)
    session.flush()
    return target


def save_tag(session: Session, name: str, tag: Tag | None = None) -> Tag:
    clean = _clean_name(name, "tag")
    _check_unique(session, Tag, clean, tag)
    target = tag or Tag()
    target.name = clean
    session.add(target)
    session.flush()
    return target


def delete_term(session: Session, term: Value | Practice | Tag) -> int:
    """Delete a value, practice or tag; members lose it (the links cascade). Returns how many held it."""
    table, column = _LINKS[type(term)]
    held = session.scalar(select(func.count()).select_from(table).where(table.c[column] == term.id)) or 0
    session.delete(term)
    session.flush()
    return held


# --- lists ----------------------------------------------------------------------------------


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:100] or "list"


def list_lists(session: Session) -> list[tuple[MailingList, dict[str, int]]]:
    """Every list with its members by membership status (one grouped count)."""
    rows = session.execute(
        select(ListMembership.list_id, ListMembership.status, func.count()).group_by(
            ListMembership.list_id, ListMembership.status
        )
    )
    counts: dict[int, dict[str, int]] = {}
    for list_id, status, count in rows:
        counts.setdefault(list_id, {})[status] = count
    lists = session.scalars(select(MailingList).order_by(MailingList.name))
    return [(item, counts.get(item.id, {})) for item in lists]


def get_list(session: Session, list_id: int) -> MailingList:
    found = session.get(MailingList, list_id)
    if found is None:
        raise NotFound(f"list #{list_id} does not exist")
    return found


def save_list(
    session: Session,
    name: str,
    *,
    slug: str = "",
    description: str = "",
    opt_in: str = OptIn.DOUBLE,
    public: bool = False,
    form_wording: str = "",
    mailing_list: MailingList | None = None,
) -> MailingList:
    clean = _clean_name(name, "list", 200)
    _check_unique(session, MailingList, clean, mailing_list)
    slug = slug.strip().lower() or (mailing_list.slug if mailing_list else slugify(clean))
    if not SLUG.match(slug):
        raise TaxonomyError("The web address name may hold only lower-case letters, digits and dashes.")
    other = session.scalar(select(MailingList).where(MailingList.slug == slug))
    if other is not None and other is not mailing_list:
        raise TaxonomyError(f"The web address name {slug!r} is taken by the list {other.name!r}.")
    if opt_in not in {choice.value for choice in OptIn}:
        raise TaxonomyError("Choose single or double opt-in.")
    target = mailing_list or MailingList()
    target.name, target.slug, target.description = clean, slug, description.strip()[:5000]
    target.opt_in, target.public, target.form_wording = opt_in, public, form_wording.strip()[:5000]
    session.add(target)
    session.flush()
    return target


def lists_campaigns_using(session: Session, list_id: int) -> list[str]:
    open_statuses = [CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.PAUSED]
    rows = session.execute(select(Campaign.name, Campaign.list_ids).where(Campaign.status.in_(open_statuses)))
    return [name for name, ids in rows if list_id in (ids or [])]


def delete_list(session: Session, mailing_list: MailingList) -> None:
    """Only an empty list that no unfinished campaign targets: memberships carry consent records."""
    subscribed = session.scalar(
        select(func.count()).where(ListMembership.list_id == mailing_list.id, ListMembership.status != "unsubscribed")
    )
    if subscribed:
        raise TaxonomyError(f"{mailing_list.name} still has {subscribed:,} members; a list must be empty to delete it.")
    using = lists_campaigns_using(session, mailing_list.id)
    if using:
        raise TaxonomyError(f"Campaigns still send to {mailing_list.name}: {', '.join(using)}.")
    session.delete(mailing_list)
    session.flush()
