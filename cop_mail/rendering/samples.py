"""Sample campaign data for previews of each email kind (and for tests and the benchmark).

Each function returns fresh plain data, shaped like what the composer passes to `compile_email`.
"""

from __future__ import annotations

from typing import Any

SITE = "https://community.example.org"

_ESSAY = """Care is the quiet part of our work. It rarely shows up in reports, yet it is what
people remember: the colleague who **noticed**, the mentor who made time, the team that
stayed an extra ten minutes to make sure the handover was right.

This month we asked what care looks like *in practice*. Your answers were concrete:

- a checklist that starts with "who might this affect?"
- a standing fifteen minutes each Friday to ask how people are doing
- writing the second draft for the reader, not for yourself

> Care is a practice, not a feeling. You get better at it by doing it.

Below you'll find four stories that show it, two practices worth trying, and a member
whose work with new volunteers is a lesson in patience. If something here sparks a story of
your own, [tell us]({{ community.public_url }}/stories/new): we read every one.
"""

_STORY = (
    "When the new intake arrived in the middle of a storm, we had no plan for the first week. "
    "What we did have was a habit of asking one question at every handover: who is carrying "
    "too much right now? That question turned a chaotic week into one people still talk about. "
)


def _story(number: int, value: str = "Care") -> dict[str, Any]:
    return {
        "title": f"The handover question, part {number}",
        "storyteller": ["Amira Haddad", "Jonas Øberg", "Li Wei", "Sam O'Neill"][number % 4],
        "value": value,
        "excerpt": _STORY * 2,
        "url": f"{SITE}/stories/{100 + number}",
        "storyteller_url": f"{SITE}/members/{200 + number}",
    }


def newsletter() -> dict[str, Any]:
    return {
        "title": "What care looks like in practice",
        "issue_label": "November's value",
        "teaser": "Four stories, two practices and a member who makes time",
        "value": {
            "name": "Care",
            "description": "Paying attention to the people our work touches, and acting on what we notice.",
        },
        "essay": _ESSAY,
        "essay_author": "Rosa Martínez, coordinator",
        "archive_url": f"{SITE}/archive/2026-11",
        "stories": [_story(n) for n in range(1, 5)],
        "practices": [
            {
                "title": "The Friday fifteen",
                "summary": "Fifteen minutes each week to ask how people are doing, and to act on the answers.",
                "url": f"{SITE}/practices/friday-fifteen",
            },
            {
                "title": "Second-draft-for-the-reader",
                "summary": "Rewrite once with only the reader in mind.",
                "url": f"{SITE}/practices/second-draft",
            },
        ],
        "resources": [
            {
                "title": "A field guide to handovers (PDF, 12 pages)",
                "summary": "Checklists from three teams.",
                "url": f"{SITE}/resources/handover-guide",
            },
            {
                "title": "Recording: care in hybrid teams",
                "summary": "45-minute talk and discussion.",
                "url": f"{SITE}/resources/hybrid-care",
            },
            {"title": "Reading list: attention at work", "summary": "", "url": f"{SITE}/resources/attention"},
        ],
        "spotlight": {
            "name": "Kwame Mensah",
            "role": "Volunteer coordinator, Riverside food bank",
            "bio": "Kwame has welcomed more than two hundred new volunteers. His secret, he says, is a "
            "ten-minute walk around the building with each of them before anyone hands them an apron.",
            "photo_url": f"{SITE}/media/members/kwame.jpg",
            "practices": ["Onboarding", "Mentoring"],
            "url": f"{SITE}/members/kwame-mensah",
        },
        "events": [
            {
                "title": "Story circle: care",
                "starts_at": "2026-12-03T18:00:00",
                "place": "Online",
                "url": f"{SITE}/events/story-circle-care",
            },
            {
                "title": "Practice lab: the Friday fifteen",
                "starts_at": "2026-12-10T12:30:00",
                "place": "Community hall, 4 Mill Lane",
                "url": f"{SITE}/events/practice-lab",
            },
        ],
    }


def _person(name: str, first: str, bio: str, practices: list[str], number: int) -> dict[str, Any]:
    return {
        "name": name,
        "first_name": first,
        "role": "Member since 2024",
        "bio": bio,
        "practices": practices,
        "photo_url": f"{SITE}/media/members/{number}.jpg",
        "email": f"{first.lower()}@example.net",
    }


_AMIRA = _person("Amira Haddad", "Amira", "Runs peer-support circles for night-shift nurses.", ["Peer support"], 1)
_JONAS = _person("Jonas Øberg", "Jonas", "Builds handover checklists with care teams.", ["Handovers"], 2)


def intro_invite() -> dict[str, Any]:
    other = dict(_JONAS)
    other.pop("email")
    return {
        "other": other,
        "shared_values": ["care", "clarity"],
        "note": "You both wrote about **handovers** this year, from two very different sides. "
        "I think you'd enjoy comparing notes.",
        "coordinator": "Rosa, for the community",
    }


def intro_joint() -> dict[str, Any]:
    return {
        "people": [dict(_AMIRA), dict(_JONAS)],
        "shared_values": ["care", "clarity"],
        "note": "Amira, Jonas runs the handover lab; Jonas, Amira's circles are the ones I mentioned.",
        "coordinator": "Rosa, for the community",
    }


def intro_followup() -> dict[str, Any]:
    return {"other": {"name": "Jonas Øberg", "first_name": "Jonas"}, "coordinator": "Rosa, for the community"}


def roundup() -> dict[str, Any]:
    return {
        "title": "Stories from October",
        "teaser": "Five stories of care, courage and curiosity",
        "intro": "Here are the stories members shared this month. Thank you to everyone who wrote in.",
        "groups": [
            {"value": "Care", "description": "Paying attention and acting on it.", "stories": [_story(1), _story(2)]},
            {"value": "Courage", "description": "", "stories": [_story(3, "Courage")]},
            {
                "value": "Curiosity",
                "description": "Asking the next question.",
                "stories": [_story(4, "Curiosity"), _story(5, "Curiosity")],
            },
        ],
    }


def story_prompt() -> dict[str, Any]:
    return {
        "value": {"name": "Courage"},
        "question": "When did speaking up change how your team worked?",
        "note": "It can be small: a question in a meeting, a *no* that needed saying.",
    }


def confirm_subscription() -> dict[str, Any]:
    return {"lists": ["the monthly newsletter", "story roundups"]}


def manage_link() -> dict[str, Any]:
    return {"valid_for": "7 days"}


def story_confirm() -> dict[str, Any]:
    return {
        "story": {"title": "The tool library that runs itself"},
        "edits_text": True,
        "sharing": "Public, with my name",
        "note": "I shortened the second paragraph.",
        "withdraw_url": f"{SITE}/stories/12/withdraw/eyJzIjoxMn0.c2lnbmF0dXJl",
        "expires_in_days": 14,
    }


def notice_campaign_finished() -> dict[str, Any]:
    return {
        "campaign": {
            "title": "What care looks like in practice",
            "finished_at": "2026-11-14T09:42:00",
            "url": f"{SITE}/admin/campaigns/42",
        },
        "counts": {"sent": 9812, "failed": 23, "suppressed": 4, "uncertain": 1},
    }


def notice_import_report() -> dict[str, Any]:
    return {
        "import": {
            "filename": "members-2026-11.csv",
            "created": 312,
            "updated": 57,
            "skipped": 3,
            "problems": [
                {"row": 14, "message": "the address 'jo@@example.org' is not valid"},
                {"row": 88, "message": "no email address"},
                {"row": 301, "message": "this address unsubscribed and stays suppressed"},
            ],
            "more_problems": 0,
            "url": f"{SITE}/admin/members",
        }
    }


def resource_digest() -> dict[str, Any]:
    return {
        "title": "New in the library",
        "intro": "Six new resources this month, picked by members.",
        "library_url": f"{SITE}/resources",
        "groups": [
            {
                "name": "Handovers",
                "resources": [
                    {
                        "title": "A field guide to handovers",
                        "summary": "Checklists from three teams.",
                        "url": f"{SITE}/resources/handover-guide",
                    },
                    {"title": "Shift-change template", "summary": "", "url": f"{SITE}/resources/shift-template"},
                ],
            },
            {
                "name": "Peer support",
                "resources": [
                    {
                        "title": "Starting a peer circle",
                        "summary": "A one-page guide.",
                        "url": f"{SITE}/resources/peer-circle",
                    },
                ],
            },
        ],
    }


def message() -> dict[str, Any]:
    return {
        "heading": "The community hall is closed on Friday",
        "body": "Hi {{ member.first_name | default('there') }},\n\nThe hall is closed this Friday for repairs. "
        "The **practice lab** moves online: the link is on the [events page]({{ community.public_url }}/events).",
        "button": {"label": "See the events", "url": f"{SITE}/events"},
    }


def recipient(public_url: str = SITE, number: int = 1) -> dict[str, str]:
    """A recipient with every per-recipient field filled, with realistic lengths of signed links."""
    token = f"eyJtIjo{number:07d}fQ.ZmFrZS1zaWduYXR1cmUtZm9yLXByZXZpZXdz.aGVsbG8"
    base = public_url.rstrip("/")
    return {
        "first_name": "Alex",
        "name": "Alex Rivera",
        "email": f"alex.rivera{number}@example.net",
        "unsubscribe_url": f"{base}/u/{token}",
        "meet_token": token,
        "resources_token": token,
        "preferences_url": f"{base}/p/{token}",
        "view_url": f"{base}/view/{token}",
        "accept_url": f"{base}/intro/accept/{token}",
        "decline_url": f"{base}/intro/decline/{token}",
        "met_url": f"{base}/intro/met/{token}",
        "story_url": f"{base}/stories/new/{token}",
        "confirm_url": f"{base}/confirm/{token}",
        "manage_url": f"{base}/manage/{token}",
        "tracking_id": f"t{number}",
    }
