"""Stories coming in: from the member form, from an email to the stories address, from prompt replies.

Whatever the way in, the author's choice of how widely the story may be shared is recorded as a
ConsentEvent with the wording they saw, at the moment they made it. Email cannot show a form, so
a story sent by email is shared with members only unless its text carries a sharing line
("Share: public"); a coordinator who wants it public asks the author through a confirm link.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cop_mail.audience.consent import record_consent, record_member_event
from cop_mail.db import utcnow
from cop_mail.integrations import events
from cop_mail.models import Member, MemberStatus, Practice, Story, StoryConsent, StorySource, StoryStatus, Value
from cop_mail.stories import images
from cop_mail.stories.markup import markdown_to_html

MAX_TITLE = 200
MAX_BODY = 50_000
CONSENT_EVENT = "story_consent"
CONSENT_WITHDRAWN_EVENT = "story_consent_withdrawn"

CONSENT_WORDING = {
    StoryConsent.MEMBERS_ONLY: "Share my story with the members of the community only.",
    StoryConsent.PUBLIC: "Share my story with the members and publish it in the public archive with my name.",
    StoryConsent.PUBLIC_ANONYMOUS: (
        "Share my story with the members and publish it in the public archive without my name."
    ),
}
CONSENT_LABELS = {
    StoryConsent.MEMBERS_ONLY: "Members only",
    StoryConsent.PUBLIC: "Public, with my name",
    StoryConsent.PUBLIC_ANONYMOUS: "Public, without my name",
}


class StoryError(ValueError):
    """A submission that cannot be taken; `problems` lists every reason in plain words."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(" ".join(problems))


@dataclass
class StoryInput:
    title: str
    body: str
    consent: str = StoryConsent.MEMBERS_ONLY
    value_ids: Sequence[int] = ()
    practice_id: int | None = None
    uploads: list[tuple[str, bytes]] = field(default_factory=list)  # (filename, bytes)
    alt_texts: list[str] = field(default_factory=list)


def problems_with(session: Session, data: StoryInput) -> list[str]:
    problems = []
    if not data.title.strip():
        problems.append("Give your story a title.")
    elif len(data.title.strip()) > MAX_TITLE:
        problems.append(f"The title can be at most {MAX_TITLE} characters.")
    if not data.body.strip():
        problems.append("Write your story in the text box.")
    elif len(data.body) > MAX_BODY:
        problems.append(f"The story can be at most {MAX_BODY:,} characters.")
    if data.consent not in set(StoryConsent):
        problems.append("Choose who may read your story.")
    if data.value_ids and len(_existing(session, Value, data.value_ids)) != len(set(data.value_ids)):
        problems.append("One of the values chosen does not exist any more.")
    if data.practice_id is not None and session.get(Practice, data.practice_id) is None:
        problems.append("The practice chosen does not exist any more.")
    return problems + images.check_all(data.uploads)


def submit_story(
    session: Session,
    instance_path: Path,
    member_id: int,
    data: StoryInput,
    *,
    source: StorySource = StorySource.WEB,
    status: StoryStatus = StoryStatus.SUBMITTED,
    ip: str | None = None,
    consent_wording: str | None = None,
    campaign_id: int | None = None,
    inbound_message_id: int | None = None,
) -> Story:
    """Create the story with its pictures and record the author's consent. The caller commits."""
    member = _author(session, member_id)
    if submitted_today(session, member_id) >= MAX_PER_DAY:
        raise StoryError([f"You have sent {MAX_PER_DAY} stories today; please send the next one tomorrow."])
    problems = problems_with(session, data)
    if problems:
        raise StoryError(problems)
    now = utcnow()
    story = Story(
        author_id=member.id,
        title=" ".join(data.title.split())[:MAX_TITLE],
        body=data.body.strip(),
        body_html=markdown_to_html(data.body.strip()),
        practice_id=data.practice_id,
        status=str(status),
        source=str(source),
        consent=str(data.consent),
        consent_recorded_at=now,
        prompt_campaign_id=campaign_id,
        inbound_message_id=inbound_message_id,
        submitted_at=now if status == StoryStatus.SUBMITTED else None,
    )
    story.values = _existing(session, Value, data.value_ids)
    session.add(story)
    session.flush()
    folder = images.images_folder(instance_path)
    for index, (filename, content) in enumerate(data.uploads):
        alt = data.alt_texts[index] if index < len(data.alt_texts) else ""
        images.add_image(session, folder, story, filename, content, alt)
    wording = consent_wording or CONSENT_WORDING[StoryConsent(data.consent)]
    record_consent(
        session, member.id, CONSENT_EVENT, wording=wording, ip=ip, at=now, story_id=story.id, level=story.consent
    )
    record_member_event(session, member.id, "story_submitted", explicit=True, at=now, story_id=story.id)
    member.last_engaged_at = now
    if story.status == StoryStatus.SUBMITTED:
        events.emit_story_submitted(session, story.id)
    return story


MAX_PER_DAY = 20


def submitted_today(session: Session, member_id: int) -> int:
    since = utcnow() - timedelta(days=1)
    return int(
        session.scalar(select(func.count(Story.id)).where(Story.author_id == member_id, Story.created_at >= since)) or 0
    )


def _author(session: Session, member_id: int) -> Member:
    member = session.get(Member, member_id)
    if member is None or member.status == MemberStatus.ERASED:
        raise StoryError(["This link belongs to a member who is no longer in the community."])
    return member


def _existing(session: Session, model: type[Value], ids: Iterable[int]) -> list[Value]:
    wanted = {int(i) for i in ids}
    if not wanted:
        return []
    return list(session.scalars(select(model).where(model.id.in_(wanted)).order_by(model.position)))


# --- by email ------------------------------------------------------------------------------

_SHARE_LINE = re.compile(r"^\s*(?:share|sharing|consent|visibility)\s*:\s*(.+?)\s*$", re.IGNORECASE)
_VALUES_LINE = re.compile(r"^\s*values?\s*:\s*(.+?)\s*$", re.IGNORECASE)
_PRACTICE_LINE = re.compile(r"^\s*practice\s*:\s*(.+?)\s*$", re.IGNORECASE)
_SUBJECT_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|wg|sv|tr)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".webp")


def read_sharing(words: str) -> StoryConsent | None:
    text = " ".join(words.lower().replace("-", " ").split())
    if "without my name" in text or "anonym" in text or "no name" in text:
        return StoryConsent.PUBLIC_ANONYMOUS
    if "members" in text or "private" in text:
        return StoryConsent.MEMBERS_ONLY
    if text.startswith("public"):
        return StoryConsent.PUBLIC
    return None


@dataclass
class EmailedStory:
    title: str
    body: str
    consent: StoryConsent | None
    value_names: list[str]
    practice_name: str | None


def read_email_text(subject: str, text: str) -> EmailedStory:
    """Title from the subject; "Share:", "Values:" and "Practice:" lines are read and taken out."""
    consent: StoryConsent | None = None
    value_names: list[str] = []
    practice_name: str | None = None
    kept = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if (match := _SHARE_LINE.match(line)) and read_sharing(match.group(1)):
            consent = read_sharing(match.group(1))
        elif match := _VALUES_LINE.match(line):
            value_names += [name.strip() for name in re.split(r"[,;]", match.group(1)) if name.strip()]
        elif match := _PRACTICE_LINE.match(line):
            practice_name = match.group(1)
        else:
            kept.append(line)
    body = "\n".join(kept).strip()
    title = _SUBJECT_PREFIX.sub("", subject or "").strip()
    if not title:
        first = next((line.strip() for line in body.split("\n") if line.strip()), "")
        title = first[:80] or "A story"
    return EmailedStory(title[:MAX_TITLE], body, consent, value_names, practice_name)


def _by_names(session: Session, model: type[Value] | type[Practice], names: Iterable[str]) -> list[Any]:
    wanted = {name.casefold() for name in names}
    if not wanted:
        return []
    rows: list[Any] = list(session.scalars(select(model)))
    return [row for row in rows if row.name.casefold() in wanted]


def _pictures(attachments: Iterable[tuple[str, str, bytes]]) -> tuple[list[tuple[str, bytes]], list[str]]:
    """Attachments that claim to be pictures and are; plain words for every one left out."""
    kept: list[tuple[str, bytes]] = []
    notes: list[str] = []
    for filename, content_type, data in attachments:
        claims_image = (content_type or "").lower().startswith("image/") or (filename or "").lower().endswith(
            IMAGE_EXTENSIONS
        )
        if not claims_image:
            notes.append(f"{images.display_name(filename)} is not a picture and was not kept.")
            continue
        if len(kept) >= images.MAX_IMAGES_PER_STORY:
            notes.append(f"{images.display_name(filename)} was not kept: a story takes {images.MAX_IMAGES_PER_STORY}.")
            continue
        try:
            images.check_image(data, filename)
        except images.ImageRejected as exc:
            notes.append(f"Not kept: {exc}")
            continue
        kept.append((filename, data))
    return kept, notes


def create_story_from_email(
    session: Session,
    member_id: int,
    subject: str,
    text: str,
    attachments: Sequence[tuple[str, str, bytes]],
    *,
    instance_path: Path | None = None,
    inbound_message_id: int | None = None,
    status: StoryStatus = StoryStatus.SUBMITTED,
    campaign_id: int | None = None,
) -> Story:
    """A story emailed to the stories address. Pictures that fail their checks are left out, not fatal.

    attachments: (filename, content type, bytes). The caller commits.
    """
    emailed = read_email_text(subject, text)
    pictures, notes = _pictures(attachments)
    consent = emailed.consent or StoryConsent.MEMBERS_ONLY
    source = StorySource.PROMPT if campaign_id is not None else StorySource.EMAIL
    how = "a reply to a story prompt" if campaign_id is not None else "an email to the stories address"
    wording = (
        f"{CONSENT_WORDING[consent]} (Given by a sharing line in {how}.)"
        if emailed.consent
        else f"{CONSENT_WORDING[consent]} (Sent as {how}; without a sharing line a story stays with members.)"
    )
    practices = _by_names(session, Practice, [emailed.practice_name] if emailed.practice_name else [])
    data = StoryInput(
        title=emailed.title,
        body=emailed.body or "(The email had no text.)",
        consent=consent,
        value_ids=[value.id for value in _by_names(session, Value, emailed.value_names)],
        practice_id=practices[0].id if practices else None,
        uploads=pictures,
    )
    story = submit_story(
        session,
        instance_path or _job_instance_path(),
        member_id,
        data,
        source=source,
        status=status,
        consent_wording=wording,
        campaign_id=campaign_id,
        inbound_message_id=inbound_message_id,
    )
    if emailed.consent:
        notes.insert(0, f"Sharing chosen in the email: {CONSENT_LABELS[consent]}.")
    story.intake_note = "\n".join(notes)
    return story


def create_draft_story_from_reply(
    session: Session,
    member_id: int,
    campaign_id: int,
    subject: str,
    text: str,
    attachments: Sequence[tuple[str, str, bytes]] = (),
    *,
    instance_path: Path | None = None,
    inbound_message_id: int | None = None,
) -> Story:
    """A reply to a story prompt: kept as a draft a coordinator can turn into a story."""
    return create_story_from_email(
        session,
        member_id,
        subject,
        text,
        attachments,
        instance_path=instance_path,
        inbound_message_id=inbound_message_id,
        status=StoryStatus.DRAFT,
        campaign_id=campaign_id,
    )


def _job_instance_path() -> Path:
    # Inbound processing runs in a worker; its settings say where the instance folder is.
    from cop_mail.jobs import job_settings

    return job_settings().instance_path
