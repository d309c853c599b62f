"""The welcome journey cop-mail ships: for a community of practice the welcome is the first
connection, so it introduces the community's values, offers a first introduction, and later
invites a first story.

It is made the first time the journeys page is opened, switched off: a coordinator reads it,
rewords what they like and switches it on. Making it is idempotent (its `builtin_key` is unique).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cop_mail.journeys.definitions import new_key
from cop_mail.models import Journey, JourneyStep, JourneyTrigger, StepKind

WELCOME_KEY = "welcome"
NAMES = ("Welcome", "Welcome (built in)")

WELCOME_SUBJECT = "{{ member.first_name | default('Hello') }}, welcome to {{ community.name }}"
WELCOME_BODY = """We're glad you're here.

{{ community.name }} is a community of practice: people who do different work, in different places,
and hold the same values. We learn from one another by meeting and by telling what happened.

In a few days we will offer to introduce you to another member. Later we will ask you for a story:
a few lines about something you did that shows what you care about.

These are the values we hold in common:"""
INTRO_NOTE = "One of you joined the community recently: a first conversation is the best welcome there is."
STORY_QUESTION = "What is one thing you did recently that shows what you care about?"
STORY_NOTE = "It can be small. Your story helps other members see what our values look like in practice."

WELCOME_STEPS: tuple[tuple[StepKind, dict[str, Any], dict[str, Any]], ...] = (
    (StepKind.SEND_TEMPLATE, {"template": "welcome", "subject": WELCOME_SUBJECT, "body": WELCOME_BODY}, {}),
    (StepKind.WAIT, {"days": 3}, {}),
    (StepKind.OFFER_INTRO, {"note": INTRO_NOTE}, {"skip_if_introduced": True}),
    (StepKind.WAIT, {"days": 7}, {}),
    (StepKind.STORY_PROMPT, {"question": STORY_QUESTION, "note": STORY_NOTE, "value_id": None}, {}),
)


def find_welcome_journey(session: Session) -> Journey | None:
    return session.scalar(select(Journey).where(Journey.builtin_key == WELCOME_KEY))


def ensure_welcome_journey(session: Session) -> Journey:
    """The welcome journey, made (switched off) and committed if it does not exist yet.

    Safe when two requests make it at the same moment: the loser finds the winner's.
    """
    found = find_welcome_journey(session)
    if found is not None:
        return found
    taken = set(session.scalars(select(Journey.name).where(Journey.name.in_(NAMES))))
    name = next((n for n in NAMES if n not in taken), f"Welcome ({WELCOME_KEY})")
    journey = Journey(
        name=name,
        description="Introduces the community's values, offers a first introduction, then invites a first story.",
        trigger=str(JourneyTrigger.JOINED_LIST),
        trigger_config={"list_id": None},
        active=False,
        builtin_key=WELCOME_KEY,
        created_by="cop-mail",
    )
    session.add(journey)
    try:
        session.flush()
        for position, (kind, config, conditions) in enumerate(WELCOME_STEPS, start=1):
            step = JourneyStep(journey_id=journey.id, key=new_key(), position=position, kind=str(kind))
            step.config, step.conditions = dict(config), dict(conditions)
            session.add(step)
        session.commit()
    except IntegrityError:
        session.rollback()
        found = find_welcome_journey(session)
        if found is None:
            raise
        return found
    return journey
