"""The template set in the admin: every kind listed and previewed with sample data at 600 and 375 px;
a broken template shows its file, line and message instead of a server error."""

from __future__ import annotations

import html as html_lib
import re
import shutil
from pathlib import Path

import pytest

from cop_mail.rendering import EMAIL_KINDS
from cop_mail.settings import PROJECT_ROOT, Settings


def test_every_kind_is_listed_for_viewers(client, login) -> None:  # type: ignore[no-untyped-def]
    login("viewer")
    page = client.get("/admin/email-templates").get_data(as_text=True)
    for kind in EMAIL_KINDS.values():
        assert f'href="/admin/email-templates/{kind.name}"' in page
        assert html_lib.escape(kind.title, quote=False) in page
    assert "Cannot be built" not in page
    assert page.count("All pass") == len(EMAIL_KINDS)
    assert "Care: What care looks like in practice" in page  # the newsletter's subject from its sample


@pytest.mark.parametrize("kind", ["newsletter", "intro_invite", "confirm_subscription"])
def test_each_kind_previews_at_desktop_and_phone_width(client, login, kind: str) -> None:  # type: ignore[no-untyped-def]
    login("viewer")
    page = client.get(f"/admin/email-templates/{kind}").get_data(as_text=True)
    frames = re.findall(r'<iframe[^>]*width="(\d+)"[^>]*srcdoc="([^"]*)"', page)
    assert [width for width, _ in frames] == ["600", "375"]
    body = html_lib.unescape(frames[0][1])
    assert body.startswith("<!doctype html>") and "Unsubscribe" in body and "@@cm:" not in body
    assert 'sandbox=""' in page
    assert page.count('class="ok"') == 5


def test_an_unknown_kind_is_not_found_and_anonymous_visitors_log_in(client, login) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/admin/email-templates").status_code == 302
    login("viewer")
    assert client.get("/admin/email-templates/nope").status_code == 404


def test_a_broken_template_shows_file_line_and_message(
    client,
    login,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    folder = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", folder)
    source = (folder / "newsletter" / "email.mjml").read_text()
    broken = source.replace("{{ value.name }}</mj-text>", "{{ value.name </mj-text>", 1)
    assert broken != source
    (folder / "newsletter" / "email.mjml").write_text(broken)
    (folder / "roundup" / "email.mjml").write_text(
        (folder / "roundup" / "email.mjml")
        .read_text()
        .replace("{% block content %}", "{% block content %}{{ nope }}", 1)
    )
    monkeypatch.setattr(Settings, "templates_path", property(lambda self: folder))
    login("viewer")

    listing = client.get("/admin/email-templates")
    assert listing.status_code == 200
    text = listing.get_data(as_text=True)
    assert "Cannot be built: newsletter/email.mjml, line 9: template syntax" in text
    assert "Cannot be built: roundup/email.mjml" in text and "nope" in text
    detail = client.get("/admin/email-templates/newsletter")
    assert detail.status_code == 200
    assert "This template cannot be built" in detail.get_data(as_text=True) and "<iframe" not in detail.get_data(
        as_text=True
    )
