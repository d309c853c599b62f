"""Stories: submission by form and email, pictures, sanitising, moderation, consent and withdrawal."""

from __future__ import annotations

import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cop_mail.models import (
    AuditEvent,
    ConsentEvent,
    Member,
    MemberEvent,
    Practice,
    Story,
    StoryConsent,
    StoryImage,
    StorySource,
    StoryStatus,
    Value,
)
from cop_mail.stories import archive, feed, images, moderation, submissions
from cop_mail.stories.submissions import StoryError, StoryInput

HOSTILE = """Hello <script>alert('x')</script> there.

<img src=x onerror="alert(1)"> <iframe src="https://evil.example"></iframe>

[click me](javascript:alert(document.cookie)) and <a href="#" onclick="steal()">this</a>

<style>body { display: none }</style> **still bold**
"""


# --- helpers other story tests import ------------------------------------------------------


def png_bytes(width: int = 64, height: int = 48, rgb: tuple[int, int, int] = (47, 111, 79)) -> bytes:
    """A real, viewable PNG of one colour."""
    row = b"\x00" + bytes(rgb) * width
    raw = zlib.compress(row * height)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def jpeg_bytes(width: int = 320, height: int = 200) -> bytes:
    """The start of a baseline JPEG: enough header for the type and size checks."""
    app0 = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", height, width) + b"\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


def add_member(session: Session, email: str = "ana@example.org", name: str = "Ana Silva", **extra: object) -> Member:
    member = Member(email=email, name=name, **extra)
    session.add(member)
    session.flush()
    return member


def add_value(session: Session, name: str, position: int = 0, description: str = "") -> Value:
    value = Value(name=name, position=position, description=description)
    session.add(value)
    session.flush()
    return value


def submit(
    session: Session,
    instance: Path,
    member: Member,
    *,
    title: str = "The handover question",
    body: str = "We asked one question at every handover.",
    consent: str = StoryConsent.PUBLIC,
    values: list[Value] | None = None,
    uploads: list[tuple[str, bytes]] | None = None,
) -> Story:
    data = StoryInput(
        title=title,
        body=body,
        consent=consent,
        value_ids=[v.id for v in values or []],
        uploads=uploads or [],
    )
    story = submissions.submit_story(session, instance, member.id, data, ip="192.0.2.7")
    session.commit()
    return story


def approved_story(session: Session, instance: Path, member: Member, **kwargs: object) -> Story:
    story = submit(session, instance, member, **kwargs)  # type: ignore[arg-type]
    moderation.approve(session, story.id, "coordinator@example.org")
    session.commit()
    return story


# --- submission ----------------------------------------------------------------------------


def test_a_story_from_the_form_records_consent_and_keeps_its_picture(db: Session, tmp_path: Path) -> None:
    member = add_member(db)
    care = add_value(db, "Care")
    db.add(Practice(name="Handovers"))
    story = submit(db, tmp_path, member, values=[care], uploads=[("garden.png", png_bytes(80, 60))])

    assert story.status == StoryStatus.SUBMITTED
    assert story.source == StorySource.WEB
    assert [v.name for v in story.values] == ["Care"]
    consent = db.scalars(select(ConsentEvent).where(ConsentEvent.member_id == member.id)).one()
    assert consent.kind == submissions.CONSENT_EVENT
    assert consent.detail == {"story_id": story.id, "level": "public"}
    assert "public archive with my name" in consent.wording
    assert consent.ip == "192.0.2.7"
    assert story.consent_recorded_at is not None
    assert db.scalars(select(MemberEvent.kind).where(MemberEvent.member_id == member.id)).all() == ["story_submitted"]

    image = db.scalars(select(StoryImage)).one()
    assert (image.content_type, image.width, image.height) == ("image/png", 80, 60)
    stored = images.image_path(images.images_folder(tmp_path), image)
    assert stored.read_bytes() == png_bytes(80, 60)  # nothing stripped or re-encoded
    assert stored.parent == tmp_path / "story-images"
    assert "garden" not in stored.name  # never the uploader's name on disk


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def live_elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    """The elements a browser would build from the HTML (escaped text builds none)."""
    parser = _Elements()
    parser.feed(html)
    return parser.found


def assert_harmless(html: str) -> None:
    for tag, attributes in live_elements(html):
        assert tag not in ("script", "iframe", "style", "img", "object", "embed", "form"), tag
        assert not any(name.startswith("on") for name in attributes), attributes
        assert not (attributes.get("href") or "").lower().startswith("javascript"), attributes


def test_scripts_and_hostile_html_never_survive(db: Session, tmp_path: Path) -> None:
    story = submit(db, tmp_path, add_member(db), body=HOSTILE, title="<b>Title</b>")
    assert_harmless(story.body_html)
    assert {tag for tag, _ in live_elements(story.body_html)} <= {"p", "strong", "br"}
    assert "<strong>still bold</strong>" in story.body_html
    assert "&lt;script&gt;" in story.body_html  # shown as text, harmlessly
    assert story.title == "<b>Title</b>"  # titles are text; templates escape them


def test_a_30_mb_picture_is_refused_in_plain_words(db: Session, tmp_path: Path) -> None:
    member = add_member(db)
    huge = png_bytes()[:33] + b"\x00" * (30 * 1024 * 1024)
    with pytest.raises(StoryError) as refused:
        submit(db, tmp_path, member, uploads=[("holiday.png", huge)])
    db.rollback()
    assert refused.value.problems == [
        "“holiday.png” is 30.0 MB; pictures can be at most 10.0 MB. Please send a smaller version."
    ]
    assert db.scalar(select(Story.id)) is None
    assert not (tmp_path / "story-images").exists()


@pytest.mark.parametrize(
    "content",
    [
        b"%PDF-1.7 not a picture at all",
        b"\x89PNG\r\n\x1a\n",
        b"GIF8",
        b"\xff\xd8\xff\xe0 no frame",
        b"RIFF\0\0\0\0WEBPjunk",
    ],
    ids=["pdf", "png-magic-only", "gif-short", "jpeg-without-frame", "webp-without-chunk"],
)
def test_a_file_that_claims_to_be_a_picture_but_is_not_is_refused(db: Session, tmp_path: Path, content: bytes) -> None:
    with pytest.raises(StoryError) as refused:
        submit(db, tmp_path, add_member(db), uploads=[("photo.jpg", content)])
    db.rollback()
    assert refused.value.problems == [
        "“photo.jpg” does not look like a picture. Only PNG, JPEG, GIF and WebP images can be added."
    ]
    assert db.scalar(select(Story.id)) is None


def test_every_problem_is_reported_at_once(db: Session, tmp_path: Path) -> None:
    with pytest.raises(StoryError) as refused:
        submissions.submit_story(
            db, tmp_path, add_member(db).id,
            StoryInput(title="", body=" ", consent="everyone", value_ids=[999], uploads=[("a.gif", b"nope")]),
        )  # fmt: skip
    assert len(refused.value.problems) == 5


def test_known_picture_types_and_their_sizes_are_read_from_the_bytes() -> None:
    assert images.sniff(jpeg_bytes(320, 200)) == images.ImageInfo("image/jpeg", "jpg", 320, 200)
    gif = b"GIF89a" + struct.pack("<HH", 7, 9) + b"\x00" * 8
    assert images.sniff(gif) == images.ImageInfo("image/gif", "gif", 7, 9)
    vp8x = b"RIFF\0\0\0\0WEBPVP8X" + b"\0" * 8 + (99).to_bytes(3, "little") + (49).to_bytes(3, "little")
    assert images.sniff(vp8x) == images.ImageInfo("image/webp", "webp", 100, 50)


# --- by email --------------------------------------------------------------------------------


def test_an_emailed_story_reads_its_sharing_line_and_keeps_only_real_pictures(db: Session, tmp_path: Path) -> None:
    member = add_member(db)
    add_value(db, "Care")
    add_value(db, "Courage", 1)
    text = "Share: public without my name\nValues: care, Courage\n\nWe planted the garden together.\n"
    attachments = [
        ("garden.png", "image/png", png_bytes()),
        ("minutes.pdf", "application/pdf", b"%PDF-1.4"),
        ("fake.jpg", "image/jpeg", b"MZ\x90\x00 an executable"),
    ]
    story = submissions.create_story_from_email(
        db, member.id, "Fwd: RE: Our garden", text, attachments, instance_path=tmp_path
    )
    db.commit()

    assert story.title == "Our garden"
    assert story.body == "We planted the garden together."
    assert story.source == StorySource.EMAIL
    assert story.consent == StoryConsent.PUBLIC_ANONYMOUS
    assert [v.name for v in story.values] == ["Care", "Courage"]
    assert len(story.images) == 1
    assert "“minutes.pdf” is not a picture" in story.intake_note
    assert "“fake.jpg” does not look like a picture" in story.intake_note
    consent = db.scalars(select(ConsentEvent)).one()
    assert "sharing line" in consent.wording


def test_an_emailed_story_without_a_sharing_line_stays_with_members(db: Session, tmp_path: Path) -> None:
    story = submissions.create_story_from_email(
        db, add_member(db).id, "", "First line\nmore", [], instance_path=tmp_path
    )
    db.commit()
    assert story.title == "First line"
    assert story.consent == StoryConsent.MEMBERS_ONLY
    moderation.approve(db, story.id, "coordinator@example.org")
    db.commit()
    assert story.status == StoryStatus.APPROVED
    assert not story.is_public
    assert archive.find_public_story(db, story.id) is None


def test_a_reply_to_a_story_prompt_becomes_a_draft(db: Session, tmp_path: Path) -> None:
    from cop_mail.sending.campaigns import create_campaign

    prompt = create_campaign(db, name="Prompt", kind="story_prompt", subject="What worked?", actor="c@example.org")
    story = submissions.create_draft_story_from_reply(
        db, add_member(db).id, prompt.id, "Re: What worked?", "The Friday check-in.", instance_path=tmp_path
    )
    db.commit()
    assert (story.status, story.source, story.prompt_campaign_id) == ("draft", "prompt", prompt.id)
    assert story.submitted_at is None
    moderation.submit_draft(db, story.id, "coordinator@example.org")
    assert story.status == StoryStatus.SUBMITTED


# --- moderation and consent ------------------------------------------------------------------


def test_approving_as_the_author_chose_publishes_at_once(db: Session, tmp_path: Path) -> None:
    story = approved_story(db, tmp_path, add_member(db))
    assert story.is_public
    assert [s.id for s in archive.public_stories(db)] == [story.id]
    assert db.scalars(select(AuditEvent.action)).all() == ["story.approve"]


def test_sharing_wider_than_the_author_chose_waits_for_their_confirmation(db: Session, tmp_path: Path) -> None:
    member = add_member(db)
    story = submit(db, tmp_path, member, consent=StoryConsent.MEMBERS_ONLY)
    outcome = moderation.approve(db, story.id, "coordinator@example.org", StoryConsent.PUBLIC)
    db.commit()
    assert outcome.needs_author
    assert story.status == StoryStatus.PENDING_AUTHOR_CONFIRMATION
    assert story.consent == StoryConsent.MEMBERS_ONLY
    assert archive.find_public_story(db, story.id) is None

    with pytest.raises(moderation.ModerationError, match="another member"):
        moderation.confirm_proposal(db, story.id, member.id + 1, story.proposal_version)
    with pytest.raises(moderation.ModerationError, match="earlier change"):
        moderation.confirm_proposal(db, story.id, member.id, story.proposal_version - 1)

    moderation.confirm_proposal(db, story.id, member.id, story.proposal_version, ip="198.51.100.4")
    db.commit()
    assert story.status == StoryStatus.APPROVED
    assert story.consent == StoryConsent.PUBLIC
    assert story.is_public
    levels = db.scalars(select(ConsentEvent.detail).order_by(ConsentEvent.id)).all()
    assert [d["level"] for d in levels] == ["members_only", "public"]


def test_a_coordinators_edit_replaces_the_text_only_when_the_author_confirms(db: Session, tmp_path: Path) -> None:
    member = add_member(db)
    story = submit(db, tmp_path, member, body="Original words.")
    outcome = moderation.propose_edit(db, story.id, "c@example.org", "Better title", "Edited *words*.", "Shorter")
    db.commit()
    assert outcome.needs_author
    assert (story.title, story.body) == ("The handover question", "Original words.")
    first_version = story.proposal_version

    moderation.decline_proposal(db, story.id, member.id, first_version)
    db.commit()
    assert (story.status, story.title, story.proposed_body) == ("submitted", "The handover question", None)

    moderation.propose_edit(db, story.id, "c@example.org", "Better title", "Edited *words*.")
    with pytest.raises(moderation.ModerationError):
        moderation.confirm_proposal(db, story.id, member.id, first_version)  # a link for the old edit
    moderation.confirm_proposal(db, story.id, member.id, story.proposal_version)
    db.commit()
    assert (story.title, story.status) == ("Better title", "approved")
    assert "<em>words</em>" in story.body_html


def test_an_edit_that_changes_nothing_is_refused(db: Session, tmp_path: Path) -> None:
    story = submit(db, tmp_path, add_member(db))
    with pytest.raises(moderation.ModerationError, match="Nothing was changed"):
        moderation.propose_edit(db, story.id, "c@example.org", story.title, story.body)


def test_rejecting_needs_a_note(db: Session, tmp_path: Path) -> None:
    story = submit(db, tmp_path, add_member(db))
    with pytest.raises(moderation.ModerationError, match="note"):
        moderation.reject(db, story.id, "c@example.org", "  ")
    moderation.reject(db, story.id, "c@example.org", "Not about our community.")
    assert (story.status, story.rejection_note) == ("rejected", "Not about our community.")


def test_a_coordinator_may_share_less_widely_but_never_more(db: Session, tmp_path: Path) -> None:
    story = submit(db, tmp_path, add_member(db), consent=StoryConsent.PUBLIC)
    moderation.approve(db, story.id, "c@example.org", StoryConsent.PUBLIC_ANONYMOUS)
    db.commit()
    assert story.is_public and not story.shows_author_name
    assert archive.find_public_story(db, story.id).author_name is None  # type: ignore[union-attr]
    moderation.approve(db, story.id, "c@example.org", StoryConsent.MEMBERS_ONLY)
    db.commit()
    assert archive.find_public_story(db, story.id) is None


def test_only_approved_stories_are_featured(db: Session, tmp_path: Path) -> None:
    story = submit(db, tmp_path, add_member(db))
    with pytest.raises(moderation.ModerationError):
        moderation.set_featured(db, story.id, "c@example.org", True)
    moderation.approve(db, story.id, "c@example.org")
    moderation.set_featured(db, story.id, "c@example.org", True)
    db.commit()
    assert [s.id for s in archive.public_stories(db, featured=True)] == [story.id]


def test_names_are_shown_only_where_allowed_and_never_an_address(db: Session, tmp_path: Path) -> None:
    named = approved_story(db, tmp_path, add_member(db, preferred_name="Ana"), title="Named")
    anonymous = approved_story(
        db, tmp_path, add_member(db, "bo@example.org", "Bo Berg"), consent=StoryConsent.PUBLIC_ANONYMOUS
    )
    nameless = approved_story(db, tmp_path, add_member(db, "cy@example.org", ""), title="Nameless")
    found = {s.id: s.author_name for s in archive.public_stories(db)}
    assert found == {named.id: "Ana", anonymous.id: None, nameless.id: None}


def test_withdrawing_after_publication_removes_the_story_from_archive_and_feed_at_once(
    db: Session, tmp_path: Path, make_settings
) -> None:
    member = add_member(db)
    story = approved_story(db, tmp_path, member, title="A story to withdraw")
    settings = make_settings()
    assert b"A story to withdraw" in feed.render_feed(db, settings)

    moderation.withdraw(db, story.id, member.id, ip="203.0.113.9")
    db.commit()

    assert story.status == StoryStatus.WITHDRAWN and not story.featured
    assert archive.find_public_story(db, story.id) is None
    assert archive.was_withdrawn(db, story.id)
    assert archive.count_public_stories(db) == 0
    assert b"A story to withdraw" not in feed.render_feed(db, settings)
    withdrawn = db.scalars(select(ConsentEvent).where(ConsentEvent.kind == submissions.CONSENT_WITHDRAWN_EVENT)).one()
    assert withdrawn.detail["story_id"] == story.id
    # Safe to repeat; nobody else can withdraw it.
    moderation.withdraw(db, story.id, member.id)
    with pytest.raises(moderation.ModerationError):
        moderation.withdraw(db, story.id, member.id + 1)
    with pytest.raises(moderation.ModerationError):
        moderation.approve(db, story.id, "c@example.org")


def test_erasing_a_member_deletes_their_stories_and_the_clean_up_their_pictures(db: Session, tmp_path: Path) -> None:
    from datetime import timedelta

    from cop_mail.audience.privacy import erase_member

    member = add_member(db)
    story = approved_story(db, tmp_path, member, uploads=[("p.png", png_bytes())])
    stored = images.image_path(images.images_folder(tmp_path), story.images[0])
    erase_member(db, member.id)
    db.commit()
    assert db.scalar(select(Story.id)) is None and db.scalar(select(StoryImage.id)) is None
    assert images.remove_orphans(db, images.images_folder(tmp_path)) == 0  # too young: may be mid-submission
    assert stored.exists()
    assert images.remove_orphans(db, images.images_folder(tmp_path), older_than=timedelta(0)) == 1
    assert not stored.exists()
