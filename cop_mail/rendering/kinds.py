"""The email kinds: which template each uses, its default subject and preheader, its stream,
which context fields hold coordinator Markdown, which signed links each recipient needs, and
sample data for previews.

Subjects and preheaders are sandboxed Jinja (a coordinator can override both per campaign by
putting `subject` / `preheader` in the context). `why` is the "why you get this" line in the
footer; `{community}` is replaced by the community's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cop_mail.rendering import samples


class Stream(StrEnum):
    """Kinds of mail, used for Feedback-ID, List-Id and whether a message is bulk."""

    NEWSLETTER = "newsletter"
    INTROS = "intros"
    STORIES = "stories"
    RESOURCES = "resources"
    TRANSACTIONAL = "transactional"
    NOTICES = "notices"


BULK_STREAMS = frozenset({Stream.NEWSLETTER, Stream.STORIES, Stream.RESOURCES})


@dataclass(frozen=True)
class EmailKind:
    name: str
    title: str
    template: str
    subject: str
    preheader: str
    stream: Stream
    why: str
    sample: Callable[[], dict[str, Any]]
    markdown_fields: tuple[str, ...] = ()
    link_fields: tuple[str, ...] = field(default=())

    @property
    def bulk(self) -> bool:
        """Bulk mail gets `Precedence: bulk`; person-to-person and transactional mail does not."""
        return self.stream in BULK_STREAMS


_SUBSCRIBED = "You get this because you subscribed to {community}'s {what}."

_KINDS = (
    EmailKind(
        name="newsletter",
        title="Newsletter (value-themed)",
        template="newsletter/email.mjml",
        subject="{{ value.name }}: {{ title }}",
        preheader="{{ teaser | default('Stories, practices and events around ' ~ value.name | lower) }}",
        stream=Stream.NEWSLETTER,
        why=_SUBSCRIBED.replace("{what}", "newsletter"),
        sample=samples.newsletter,
        markdown_fields=("essay",),
        link_fields=("story_url",),
    ),
    EmailKind(
        name="intro_invite",
        title="Introduction invitation",
        template="intro_invite/email.mjml",
        subject="Would you like to meet {{ other.name }}?",
        preheader="An introduction from {{ community.name }}: say yes or no with one click",
        stream=Stream.INTROS,
        why="You get this because you take part in {community}'s introductions.",
        sample=samples.intro_invite,
        markdown_fields=("note",),
        link_fields=("accept_url", "decline_url"),
    ),
    EmailKind(
        name="intro_joint",
        title="Joint introduction",
        template="intro_joint/email.mjml",
        subject="Meet each other: {{ people[0].name }} and {{ people[1].name }}",
        preheader="You both said yes, so here you are",
        stream=Stream.INTROS,
        why="You get this because you both agreed to an introduction through {community}.",
        sample=samples.intro_joint,
        markdown_fields=("note",),
    ),
    EmailKind(
        name="intro_followup",
        title="Introduction follow-up",
        template="intro_followup/email.mjml",
        subject="How did it go with {{ other.name }}?",
        preheader="One click to tell us, and a place to share what came of it",
        stream=Stream.INTROS,
        why="You get this because you take part in {community}'s introductions.",
        sample=samples.intro_followup,
        link_fields=("met_url", "story_url"),
    ),
    EmailKind(
        name="roundup",
        title="Story roundup",
        template="roundup/email.mjml",
        subject="{{ title }}",
        preheader="{{ teaser | default('Stories from members, grouped by the values they show') }}",
        stream=Stream.STORIES,
        why=_SUBSCRIBED.replace("{what}", "story roundups"),
        sample=samples.roundup,
        markdown_fields=("intro",),
        link_fields=("story_url",),
    ),
    EmailKind(
        name="story_prompt",
        title="Story prompt",
        template="story_prompt/email.mjml",
        subject="{{ question }}",
        preheader="A question about {{ value.name | lower }}: a few lines are plenty",
        stream=Stream.STORIES,
        why=_SUBSCRIBED.replace("{what}", "story prompts"),
        sample=samples.story_prompt,
        markdown_fields=("note",),
        link_fields=("story_url",),
    ),
    EmailKind(
        name="confirm_subscription",
        title="Confirm subscription",
        template="confirm_subscription/email.mjml",
        subject="Please confirm your subscription to {{ community.name }}",
        preheader="One click and you're in; ignore this email if you didn't ask",
        stream=Stream.TRANSACTIONAL,
        why="You get this because someone (hopefully you) asked to subscribe this address to {community}.",
        sample=samples.confirm_subscription,
        link_fields=("confirm_url",),
    ),
    EmailKind(
        name="manage_link",
        title="Link to manage subscriptions",
        template="manage_link/email.mjml",
        subject="Your link to manage what {{ community.name }} sends you",
        preheader="See and change your subscriptions",
        stream=Stream.TRANSACTIONAL,
        why="You get this because someone asked for a link to manage this address's subscriptions at {community}.",
        sample=samples.manage_link,
        link_fields=("manage_url",),
    ),
    EmailKind(
        name="story_confirm",
        title="Confirm a change to your story",
        template="story_confirm/email.mjml",
        subject="Please confirm the change to \u201c{{ story.title }}\u201d",
        preheader="Nothing changes until you confirm",
        stream=Stream.TRANSACTIONAL,
        why="You get this because you shared a story with {community}.",
        sample=samples.story_confirm,
        link_fields=("confirm_url",),
    ),
    EmailKind(
        name="notice_campaign_finished",
        title="Notice: campaign finished",
        template="notice_campaign_finished/email.mjml",
        subject="Sent: {{ campaign.title }}",
        preheader="{{ counts.sent }} sent, {{ counts.failed }} failed",
        stream=Stream.NOTICES,
        why="You get this because you coordinate {community}.",
        sample=samples.notice_campaign_finished,
    ),
    EmailKind(
        name="notice_import_report",
        title="Notice: import report",
        template="notice_import_report/email.mjml",
        subject="Import finished: {{ import.filename }}",
        preheader="{{ import.created }} new, {{ import.updated }} updated, {{ import.skipped }} skipped",
        stream=Stream.NOTICES,
        why="You get this because you coordinate {community}.",
        sample=samples.notice_import_report,
    ),
    EmailKind(
        name="resource_digest",
        title="Resource digest",
        template="resource_digest/email.mjml",
        subject="{{ title }}",
        preheader="New in the {{ community.name }} library",
        stream=Stream.RESOURCES,
        why=_SUBSCRIBED.replace("{what}", "resource digest"),
        sample=samples.resource_digest,
        markdown_fields=("intro",),
    ),
    EmailKind(
        name="message",
        title="Message",
        template="message/email.mjml",
        subject="{{ heading }}",
        preheader="A message from {{ community.name }}",
        stream=Stream.TRANSACTIONAL,
        why="You get this because you are a member of {community}.",
        sample=samples.message,
        markdown_fields=("body",),
    ),
)

EMAIL_KINDS: dict[str, EmailKind] = {kind.name: kind for kind in _KINDS}


def get_kind(name: str) -> EmailKind:
    try:
        return EMAIL_KINDS[name]
    except KeyError:
        raise KeyError(f"unknown email kind {name!r}; known kinds: {', '.join(EMAIL_KINDS)}") from None
