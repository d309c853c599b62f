"""Signed link tokens that our code puts into URLs in campaign data are filled per recipient;
every other marker in data stays inert, so content can never print a reader's address."""

from __future__ import annotations

from pathlib import Path

from cop_mail.rendering import compile_email, samples
from cop_mail.settings import Settings


def settings(tmp_path: Path) -> Settings:
    return Settings(
        instance_path=tmp_path, database_url="sqlite://", secret_key="k" * 40, public_url="https://c.example"
    )


def test_meet_token_in_a_story_card_is_filled_and_email_marker_is_not(tmp_path: Path):
    data = samples.roundup()
    card = data["groups"][0]["stories"][0]
    card["storyteller_url"] = "https://c.example/stories/1/meet/@@cm:meet_token@@"
    card["title"] = "Sneaky @@cm:email@@ title"
    compiled = compile_email("roundup", data, settings(tmp_path))
    recipient = {**samples.recipient(), "meet_token": "TOKEN-FOR-ANA", "email": "ana@example.org"}
    _subject, html, text = compiled.fill(recipient)
    assert "https://c.example/stories/1/meet/TOKEN-FOR-ANA" in html
    assert "TOKEN-FOR-ANA" in text
    assert "ana@example.org" not in html.split("Sneaky", 1)[1][:200]
    assert "Sneaky @\u200b@cm:email@@ title" in html
