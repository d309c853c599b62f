"""What members offer help with and ask for help with, for mentor introductions.

The preference centre (or a reply to an asks-and-offers email) calls `set_topics` with the
member's whole list for one kind; matching compares topics case- and space-insensitively.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cop_mail.models import HelpTopic, HelpTopicKind

MAX_TOPICS = 20
MAX_CHARS = 200


def clean_topics(raw: Iterable[str]) -> list[str]:
    """One spelling per topic (spaces collapsed), case-insensitive duplicates dropped, order kept."""
    seen: set[str] = set()
    found = []
    for item in raw:
        topic = " ".join(str(item).split())[:MAX_CHARS]
        if topic and topic.casefold() not in seen:
            seen.add(topic.casefold())
            found.append(topic)
    return found[:MAX_TOPICS]


def set_topics(session: Session, member_id: int, kind: HelpTopicKind | str, topics: Iterable[str]) -> list[str]:
    """Replace the member's topics of this kind; the caller commits."""
    kind = HelpTopicKind(kind)
    wanted = clean_topics(topics)
    session.execute(delete(HelpTopic).where(HelpTopic.member_id == member_id, HelpTopic.kind == str(kind)))
    session.add_all(HelpTopic(member_id=member_id, kind=str(kind), topic=topic) for topic in wanted)
    session.flush()
    return wanted


def topics_of(session: Session, member_id: int) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {str(HelpTopicKind.OFFER): [], str(HelpTopicKind.ASK): []}
    rows = session.execute(
        select(HelpTopic.kind, HelpTopic.topic).where(HelpTopic.member_id == member_id).order_by(HelpTopic.id)
    )
    for kind, topic in rows:
        found[kind].append(topic)
    return found
