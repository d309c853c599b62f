"""The resource library: what works, tagged with the values and practices it serves.

Coordinators add resources that are published at once; members suggest resources that wait for
a coordinator. Search is one LIKE per word over a lower-cased `search_text` column kept up to
date on every save, so it behaves the same on SQLite and PostgreSQL and stays cheap at library
sizes (thousands of rows). Functions never commit; the caller does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from cop_mail.accounts import audit
from cop_mail.audience.consent import record_member_event
from cop_mail.db import utcnow
from cop_mail.models import (
    Admin,
    Campaign,
    CampaignKind,
    Member,
    Practice,
    Resource,
    ResourceKind,
    ResourceStatus,
    Value,
    resource_practices,
    resource_values,
)
from cop_mail.stories.markup import excerpt, markdown_to_html

MAX_TITLE = 200
MAX_DESCRIPTION = 20_000
MAX_URL = 2000
KIND_LABELS = {
    ResourceKind.METHOD: "Method",
    ResourceKind.TOOL: "Tool",
    ResourceKind.READING: "Reading",
    ResourceKind.TEMPLATE: "Template",
    ResourceKind.MENTOR: "Mentor",
}
Actor = Admin | str


class ResourceError(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(" ".join(problems))


class ResourceNotFound(LookupError):
    pass


@dataclass
class ResourceInput:
    kind: str
    title: str
    description: str = ""
    url: str = ""
    value_ids: Sequence[int] = field(default_factory=list)
    practice_ids: Sequence[int] = field(default_factory=list)
    mentor_member_id: int | None = None


def problems_with(session: Session, data: ResourceInput) -> list[str]:
    problems = []
    if data.kind not in set(ResourceKind):
        problems.append("Choose what kind of resource it is.")
    if not data.title.strip():
        problems.append("Give the resource a title.")
    elif len(data.title.strip()) > MAX_TITLE:
        problems.append(f"The title can be at most {MAX_TITLE} characters.")
    if len(data.description) > MAX_DESCRIPTION:
        problems.append(f"The description can be at most {MAX_DESCRIPTION:,} characters.")
    url = data.url.strip()
    if url and (len(url) > MAX_URL or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc):
        problems.append("The link must be a web address starting with http:// or https://.")
    if len(_existing(session, Value, data.value_ids)) != len(set(data.value_ids)):
        problems.append("One of the values chosen does not exist any more.")
    if len(_existing(session, Practice, data.practice_ids)) != len(set(data.practice_ids)):
        problems.append("One of the practices chosen does not exist any more.")
    if data.mentor_member_id is not None and session.get(Member, data.mentor_member_id) is None:
        problems.append("The mentor chosen is not a member.")
    return problems


def _existing(session: Session, model: Any, ids: Sequence[int]) -> list[Any]:
    wanted = {int(i) for i in ids}
    return list(session.scalars(select(model).where(model.id.in_(wanted)))) if wanted else []


def _apply(session: Session, resource: Resource, data: ResourceInput) -> None:
    problems = problems_with(session, data)
    if problems:
        raise ResourceError(problems)
    resource.kind = str(ResourceKind(data.kind))
    resource.title = " ".join(data.title.split())
    resource.description = data.description.strip()
    resource.description_html = markdown_to_html(resource.description) if resource.description else ""
    resource.url = data.url.strip()
    resource.mentor_member_id = data.mentor_member_id
    resource.values = sorted(_existing(session, Value, data.value_ids), key=lambda v: (v.position, v.id))
    resource.practices = sorted(_existing(session, Practice, data.practice_ids), key=lambda p: p.name)
    resource.search_text = search_text(resource)


def search_text(resource: Resource) -> str:
    parts = [resource.title, resource.description, resource.kind, resource.url]
    parts += [value.name for value in resource.values] + [practice.name for practice in resource.practices]
    return " ".join(" ".join(parts).lower().split())


def add_resource(session: Session, data: ResourceInput, actor: Actor, ip: str | None = None) -> Resource:
    """A coordinator's resource: published at once."""
    resource = Resource(contributed_by_admin=actor.email if isinstance(actor, Admin) else actor)
    _apply(session, resource, data)
    resource.status = ResourceStatus.PUBLISHED
    resource.published_at = utcnow()
    session.add(resource)
    session.flush()
    audit(session, actor, "resource.add", f"resource:{resource.id}", ip)
    return resource


def suggest_resource(session: Session, member_id: int, data: ResourceInput) -> Resource:
    """A member's suggestion: it waits for a coordinator before anyone else sees it."""
    if session.get(Member, member_id) is None:
        raise ResourceError(["This link belongs to a member who is no longer in the community."])
    data.mentor_member_id = None  # members suggest; linking a mentor to a member is a coordinator's call
    resource = Resource(contributed_by_member_id=member_id, status=ResourceStatus.PENDING)
    _apply(session, resource, data)
    session.add(resource)
    session.flush()
    record_member_event(session, member_id, "resource_suggested", explicit=True, resource_id=resource.id)
    return resource


def get_resource(session: Session, resource_id: int) -> Resource:
    resource = session.get(Resource, resource_id)
    if resource is None:
        raise ResourceNotFound(f"there is no resource {resource_id}")
    return resource


def find_resource(session: Session, resource_id: int) -> Resource | None:
    return session.get(Resource, resource_id)


def update_resource(
    session: Session, resource_id: int, data: ResourceInput, actor: Actor, ip: str | None = None
) -> Resource:
    resource = get_resource(session, resource_id)
    _apply(session, resource, data)
    audit(session, actor, "resource.update", f"resource:{resource.id}", ip)
    session.flush()
    return resource


def publish(session: Session, resource_id: int, actor: Actor, ip: str | None = None) -> Resource:
    resource = get_resource(session, resource_id)
    resource.status = ResourceStatus.PUBLISHED
    resource.published_at = resource.published_at or utcnow()
    resource.moderation_note = ""
    audit(session, actor, "resource.publish", f"resource:{resource.id}", ip)
    session.flush()
    return resource


def reject(session: Session, resource_id: int, actor: Actor, note: str, ip: str | None = None) -> Resource:
    resource = get_resource(session, resource_id)
    if not note.strip():
        raise ResourceError(["Write a note saying why, so other coordinators know."])
    resource.status = ResourceStatus.REJECTED
    resource.moderation_note = note.strip()
    audit(session, actor, "resource.reject", f"resource:{resource.id}", ip)
    session.flush()
    return resource


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _search_query(
    query: str, kind: str | None, value_id: int | None, practice_id: int | None, status: str | None
) -> Select[Any]:
    statement = select(Resource)
    if status:
        statement = statement.where(Resource.status == status)
    if kind:
        statement = statement.where(Resource.kind == kind)
    if value_id:
        statement = statement.where(
            Resource.id.in_(select(resource_values.c.resource_id).where(resource_values.c.value_id == value_id))
        )
    if practice_id:
        statement = statement.where(
            Resource.id.in_(
                select(resource_practices.c.resource_id).where(resource_practices.c.practice_id == practice_id)
            )
        )
    for term in query.lower().split()[:10]:
        statement = statement.where(Resource.search_text.like(f"%{_escape_like(term)}%", escape="\\"))
    return statement


def search(
    session: Session,
    query: str = "",
    *,
    kind: str | None = None,
    value_id: int | None = None,
    practice_id: int | None = None,
    status: str | None = ResourceStatus.PUBLISHED,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Resource], int]:
    """Resources matching every word, newest first, and how many match in all."""
    statement = _search_query(query, kind, value_id, practice_id, status)
    total = int(session.scalar(statement.with_only_columns(func.count(Resource.id)).order_by(None)) or 0)
    ordered = statement.order_by(Resource.published_at.desc().nulls_last(), Resource.id.desc())
    return list(session.scalars(ordered.limit(limit).offset(offset))), total


def count_pending(session: Session) -> int:
    return int(session.scalar(select(func.count(Resource.id)).where(Resource.status == ResourceStatus.PENDING)) or 0)


# --- newsletters and digests ---------------------------------------------------------------


def resource_card(resource: Resource) -> dict[str, Any]:
    """What a newsletter or a digest shows of a resource; the composer inserts these."""
    return {
        "id": resource.id,
        "kind": resource.kind,
        "kind_label": KIND_LABELS.get(ResourceKind(resource.kind), resource.kind),
        "title": resource.title,
        "summary": excerpt(resource.description_html, 300) if resource.description_html else "",
        "description_html": resource.description_html,
        "url": resource.url,
        "values": [value.name for value in resource.values],
        "practices": [practice.name for practice in resource.practices],
    }


def resources_for_composer(session: Session, query: str = "", limit: int = 10) -> list[dict[str, Any]]:
    """Published resources matching a search, as cards the newsletter composer can insert."""
    found, _ = search(session, query, limit=limit)
    return [resource_card(resource) for resource in found]


def published_cards(session: Session, resource_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Cards for the given ids that are published now, in the given order."""
    if not resource_ids:
        return []
    rows = {
        r.id: r
        for r in session.scalars(
            select(Resource).where(Resource.id.in_(resource_ids), Resource.status == ResourceStatus.PUBLISHED)
        )
    }
    return [resource_card(rows[i]) for i in dict.fromkeys(resource_ids) if i in rows]


LIBRARY_MARKER = "@@cm:resources_token@@"


def library_url(public_url: str) -> str:
    """The members' library page; the marker is filled per recipient with their signed token."""
    return f"{public_url}/resources/{LIBRARY_MARKER}"


def digest_content(session: Session, public_url: str, resource_ids: Sequence[int], intro: str = "") -> dict[str, Any]:
    """The `resource_digest` template's context: resources grouped under their first practice."""
    resources = {r.id: r for r in _existing(session, Resource, resource_ids) if r.status == ResourceStatus.PUBLISHED}
    chosen = [resources[i] for i in dict.fromkeys(resource_ids) if i in resources]
    if not chosen:
        raise ResourceError(["Choose at least one published resource for the digest."])
    groups: dict[str, dict[str, Any]] = {}
    for resource in chosen:
        name = resource.practices[0].name if resource.practices else "More resources"
        group = groups.setdefault(name, {"name": name, "label": "Practice", "resources": []})
        card = resource_card(resource)
        card["url"] = resource.url or library_url(public_url)
        group["resources"].append(card)
    return {
        "title": "From the resource library",
        "intro": intro.strip(),
        "library_url": library_url(public_url),
        "groups": list(groups.values()),
        "resource_ids": [resource.id for resource in chosen],
        "public_url": public_url,
    }


def create_resource_digest(
    session: Session,
    public_url: str,
    actor: Actor,
    *,
    resource_ids: Sequence[int],
    subject: str,
    list_ids: Sequence[int] = (),
    segment_ids: Sequence[int] = (),
    intro: str = "",
    name: str = "",
) -> Campaign:
    """A resource digest campaign (a draft) for a segment or list, through the sending pipeline."""
    from cop_mail.sending.campaigns import create_campaign

    content = digest_content(session, public_url, resource_ids, intro)
    campaign = create_campaign(
        session,
        name=name or f"Resource digest: {subject}",
        kind=CampaignKind.RESOURCE_DIGEST,
        subject=subject,
        actor=actor.email if isinstance(actor, Admin) else actor,
        preheader=f"{len(content['resource_ids'])} resources that members found useful",
        content=content,
        list_ids=list_ids,
        segment_ids=segment_ids,
    )
    audit(session, actor, "resource.digest", f"campaign:{campaign.id}", resource_ids=content["resource_ids"])
    return campaign
