"""The member's pages behind signed links: tell a story, confirm an edit, withdraw, meet, resources."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cop_mail.models import MemberEvent, Resource, Story, StoryConsent, StoryStatus
from cop_mail.resources import library
from cop_mail.resources.links import resources_token
from cop_mail.settings import Settings
from cop_mail.stories import links, moderation
from tests.conftest import csrf_token_from
from tests.integration.test_stories import (
    HOSTILE,
    add_member,
    add_value,
    approved_story,
    assert_harmless,
    png_bytes,
    submit,
)


def form_token(client, path: str) -> str:  # type: ignore[no-untyped-def]
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)
    return csrf_token_from(response.get_data(as_text=True))


def multipart(fields: dict[str, object], files: list[tuple[bytes, str]]) -> tuple[bytes, str]:
    """The body a browser sends. Built here because the test client spools big bodies to a file it never closes."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{item}\r\n'.encode())
    for content, filename in files:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="{filename}"\r\n'
            "Content-Type: image/png\r\n\r\n"
        )
        parts.append(head.encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def post_story(client, path: str, files: list[tuple[bytes, str]] | None = None, **fields: object):  # type: ignore[no-untyped-def]
    data: dict[str, object] = {
        "csrf_token": form_token(client, path), "title": "Our garden", "body": "We dug together.",
        "consent": "public",
    }  # fmt: skip
    data.update(fields)
    body, content_type = multipart(data, files or [])
    return client.post(path, data=body, content_type=content_type)


def test_a_member_tells_a_story_through_the_link(client, db: Session, settings: Settings) -> None:
    member = add_member(db)
    care = add_value(db, "Care")
    db.commit()
    path = f"/stories/submit/{links.submit_token(settings, member.id)}"
    html = client.get(path).get_data(as_text=True)
    assert "Tell your story" in html and "Care" in html and "without my name" in html

    response = post_story(client, path, [(png_bytes(), "garden.png")], body=HOSTILE, value_ids=[str(care.id)])
    assert response.status_code == 200, response.get_data(as_text=True)
    page = response.get_data(as_text=True)
    assert "Thank you for your story" in page
    story = db.scalars(select(Story)).one()
    assert (story.author_id, story.status, story.consent) == (member.id, StoryStatus.SUBMITTED, StoryConsent.PUBLIC)
    assert [v.name for v in story.values] == ["Care"] and len(story.images) == 1
    assert_harmless(story.body_html)
    assert f"/stories/{story.id}/withdraw/" in page
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_a_30_mb_picture_gets_the_form_back_with_plain_words(client, db: Session, settings: Settings) -> None:
    member = add_member(db)
    db.commit()
    path = f"/stories/submit/{links.submit_token(settings, member.id)}"
    huge = png_bytes()[:33] + b"\0" * (30 * 1024 * 1024)
    response = post_story(client, path, [(huge, "holiday.png")])
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "“holiday.png” is 30.0 MB; pictures can be at most 10.0 MB." in page
    assert 'value="Our garden"' in page  # what they wrote is kept
    assert db.scalar(select(Story.id)) is None


def test_a_file_pretending_to_be_a_picture_is_refused(client, db: Session, settings: Settings) -> None:
    member = add_member(db)
    db.commit()
    path = f"/stories/submit/{links.submit_token(settings, member.id)}"
    response = post_story(client, path, [(b"<?php system($_GET['x']); ?>", "cat.gif")])
    assert response.status_code == 400
    assert "“cat.gif” does not look like a picture" in response.get_data(as_text=True)
    assert db.scalar(select(Story.id)) is None


@pytest.mark.parametrize("prefix", ["/stories/submit/", "/resources/"])
def test_forged_and_expired_links_get_a_plain_page(
    client, db: Session, settings: Settings, monkeypatch, prefix: str
) -> None:
    member = add_member(db)
    db.commit()
    token = links.submit_token(settings, member.id) if "submit" in prefix else resources_token(settings, member.id)
    forged = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")
    response = client.get(prefix + forged)
    assert response.status_code == 400
    assert "This link is not valid" in response.get_data(as_text=True)
    assert client.post(prefix + forged, data={}).status_code == 400  # CSRF or link: refused either way
    assert client.get(prefix + "not-a-token").status_code == 400
    other_purpose = links.withdraw_token(settings, 1, member.id)
    assert client.get(prefix + other_purpose).status_code == 400

    monkeypatch.setattr(links, "SUBMIT_MAX_AGE", -1)
    monkeypatch.setattr("cop_mail.resources.links.MAX_AGE", -1)
    response = client.get(prefix + token)
    assert response.status_code == 410
    assert "This link has expired" in response.get_data(as_text=True)


def test_the_author_confirms_a_coordinators_edit(client, db: Session, settings: Settings) -> None:
    member = add_member(db)
    story = submit(db, settings.instance_path, member, consent=StoryConsent.MEMBERS_ONLY, body="Mine.")
    moderation.propose_edit(db, story.id, "c@example.org", "Better", "Edited.", "Tidied", StoryConsent.PUBLIC)
    db.commit()
    path = f"/stories/{story.id}/confirm/{links.confirm_token(settings, story.id, member.id, story.proposal_version)}"
    html = client.get(path).get_data(as_text=True)
    assert "Public, with my name" in html and "Edited." in html and "Mine." in html and "Tidied" in html

    token = csrf_token_from(html)
    response = client.post(path, data={"csrf_token": token, "action": "confirm"})
    assert response.status_code == 200 and "approved as shown" in response.get_data(as_text=True)
    db.refresh(story)
    assert (story.status, story.title, story.consent) == ("approved", "Better", "public")
    assert client.get(f"/archive/stories/{story.id}").status_code == 200
    # The link has done its work.
    assert client.get(path).status_code == 410
    # A confirm link made for another story is refused.
    wrong = links.confirm_token(settings, story.id + 1, member.id, story.proposal_version)
    assert client.get(f"/stories/{story.id}/confirm/{wrong}").status_code == 400


def test_withdrawing_consent_takes_the_story_off_the_archive_and_feed(client, db: Session, settings: Settings) -> None:
    member = add_member(db)
    story = approved_story(db, settings.instance_path, member, title="Soon withdrawn")
    assert "Soon withdrawn" in client.get("/archive/feed.atom").get_data(as_text=True)
    path = f"/stories/{story.id}/withdraw/{links.withdraw_token(settings, story.id, member.id)}"
    html = client.get(path).get_data(as_text=True)
    assert "Withdraw your story?" in html
    assert client.get(f"/archive/stories/{story.id}").status_code == 200  # a GET changes nothing

    response = client.post(path, data={"csrf_token": csrf_token_from(html)})
    assert response.status_code == 200 and "withdrawn" in response.get_data(as_text=True)
    assert client.get(f"/archive/stories/{story.id}").status_code == 410
    assert "Soon withdrawn" not in client.get("/archive/feed.atom").get_data(as_text=True)
    assert "Soon withdrawn" not in client.get("/archive/stories").get_data(as_text=True)
    # Someone else's withdraw link does not work on this story.
    other = links.withdraw_token(settings, story.id, member.id + 1)
    assert client.get(f"/stories/{story.id}/withdraw/{other}").status_code == 400


def test_a_member_asks_to_meet_a_storyteller(client, db: Session, settings: Settings) -> None:
    author = add_member(db, "ana@example.org", "Ana Silva")
    reader = add_member(db, "bo@example.org", "Bo Berg")
    story = approved_story(db, settings.instance_path, author, consent=StoryConsent.MEMBERS_ONLY, title="Inner")
    token = links.meet_token(settings, reader.id)

    read = client.get(f"/stories/{story.id}/read/{token}").get_data(as_text=True)
    assert "Inner" in read and "Told by Ana Silva" in read
    path = f"/stories/{story.id}/meet/{token}"
    html = client.get(path).get_data(as_text=True)
    assert "Would you like to be introduced to Ana Silva" in html
    for _ in range(2):
        response = client.post(path, data={"csrf_token": csrf_token_from(html)})
        assert response.status_code == 200
    events = db.scalars(select(MemberEvent).where(MemberEvent.kind == "intro_request")).all()
    assert [(e.member_id, e.detail["with_member_id"], e.detail["story_id"]) for e in events] == [
        (reader.id, author.id, story.id)
    ]
    own = links.meet_token(settings, author.id)
    response = client.post(f"/stories/{story.id}/meet/{own}", data={"csrf_token": csrf_token_from(html)})
    assert response.status_code == 400 and "your own story" in response.get_data(as_text=True)


def test_the_members_library_searches_and_takes_suggestions(client, db: Session, settings: Settings) -> None:
    member = add_member(db)
    library.add_resource(db, library.ResourceInput(kind="tool", title="Shift planner"), "c@example.org")
    library.add_resource(db, library.ResourceInput(kind="reading", title="On care"), "c@example.org")
    db.commit()
    path = f"/resources/{resources_token(settings, member.id)}"
    html = client.get(path, query_string={"q": "planner"}).get_data(as_text=True)
    assert "Shift planner" in html and "On care" not in html

    response = client.post(
        path, data={"csrf_token": csrf_token_from(html), "kind": "method", "title": "Walk and talk", "url": "ftp://x"}
    )
    assert response.status_code == 400 and "http:// or https://" in response.get_data(as_text=True)
    response = client.post(path, data={"csrf_token": csrf_token_from(html), "kind": "method", "title": "Walk and talk"})
    assert response.status_code == 200
    suggestion = db.scalars(select(Resource).where(Resource.title == "Walk and talk")).one()
    assert (suggestion.status, suggestion.contributed_by_member_id) == ("pending", member.id)
    assert "Walk and talk" not in client.get(path).get_data(as_text=True)  # not until a coordinator publishes


def test_a_story_sent_from_a_prompts_link_remembers_the_prompt(client, db: Session, settings: Settings) -> None:
    from cop_mail.sending.campaigns import create_campaign

    member = add_member(db)
    prompt = create_campaign(db, name="Prompt", kind="story_prompt", subject="What worked?", actor="c@example.org")
    db.commit()
    response = post_story(client, f"/stories/submit/{links.submit_token(settings, member.id, prompt.id)}")
    assert response.status_code == 200
    story = db.scalars(select(Story)).one()
    assert (story.prompt_campaign_id, story.source) == (prompt.id, "web")
    # A link naming a campaign that is gone still takes the story.
    response = post_story(client, f"/stories/submit/{links.submit_token(settings, member.id, 999_999)}", title="Two")
    assert response.status_code == 200
    assert db.scalars(select(Story.prompt_campaign_id).where(Story.title == "Two")).one() is None
