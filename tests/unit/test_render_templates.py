"""Every email kind compiles from its MJML template cleanly, keeps its per-recipient fields through
compilation, and carries the footer (unsubscribe, preferences, postal address) in HTML and text."""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path

import pytest

from cop_mail.rendering import (
    EMAIL_KINDS,
    RenderError,
    compile_email,
    get_kind,
    mjml_problems,
    presend_problems,
    preview_email,
    sample_recipient,
)
from cop_mail.rendering.compiler import community_data, render_mjml
from cop_mail.rendering.environment import and_list, when
from cop_mail.rendering.placeholders import RECIPIENT_FIELDS, SplitTemplate, marker, member_proxy, recipient_proxy
from cop_mail.settings import Settings

KINDS = sorted(EMAIL_KINDS)
POSTAL = "4 Mill Lane\nRiverside RV1 2AB"


def render_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "instance_path": Path("/nonexistent/instance"),
        "database_url": "sqlite://",
        "secret_key": "unit-secret-" + "x" * 40,
        "public_url": "https://community.example.org",
        "community_name": "Riverside Practice",
        "postal_address": POSTAL,
        "accent_colour": "#2f6f4f",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def settings() -> Settings:
    return render_settings()


def _mjml_source(kind: str, settings: Settings) -> str:
    email_kind = get_kind(kind)
    context = {
        **email_kind.sample(),
        "community": community_data(settings),
        "member": member_proxy(),
        "recipient": recipient_proxy(),
        "subject": "Subject",
        "preheader": "Preheader",
        "why": "Why you get this.",
    }
    return render_mjml(email_kind.template, context, settings.templates_path)


@pytest.mark.parametrize("kind", KINDS)
def test_template_is_clean_mjml(kind: str, settings: Settings):
    assert mjml_problems(_mjml_source(kind, settings)) == []


@pytest.mark.parametrize("kind", KINDS)
def test_per_recipient_fields_survive_compilation(kind: str, settings: Settings):
    compiled = compile_email(kind, get_kind(kind).sample(), settings)
    expected = {"unsubscribe_url", "preferences_url", "email", *get_kind(kind).link_fields}
    assert expected <= compiled.html.fields
    assert expected <= compiled.text.fields
    for field in expected:
        assert marker(field) in compiled.html.source
        assert marker(field) in compiled.text.source
    assert compiled.required_fields >= expected


@pytest.mark.parametrize("kind", KINDS)
def test_footer_is_in_html_and_text(kind: str, settings: Settings):
    recipient = sample_recipient(settings.public_url, number=7)
    subject, body_html, body_text = compile_email(kind, get_kind(kind).sample(), settings).fill(recipient)
    assert subject.strip()
    for field in ("unsubscribe_url", "preferences_url"):
        assert f'href="{html.escape(recipient[field])}"' in body_html
        assert recipient[field] in body_text
    assert "4 Mill Lane, Riverside RV1 2AB" in body_html
    assert "4 Mill Lane, Riverside RV1 2AB" in body_text
    assert "Unsubscribe" in body_html and "Unsubscribe" in body_text
    assert "@@cm:" not in subject + body_html + body_text


@pytest.mark.parametrize("kind", KINDS)
def test_samples_pass_the_presend_checks(kind: str, settings: Settings):
    compiled = compile_email(kind, get_kind(kind).sample(), settings)
    assert presend_problems(compiled) == []
    assert compiled.preheader.fill({}).strip()


def test_recipient_values_are_escaped_in_html_only(settings: Settings):
    compiled = compile_email("newsletter", get_kind("newsletter").sample(), settings)
    recipient = {**sample_recipient(), "first_name": '<b>Zoë & "Co"</b>', "email": "zoe@example.net"}
    _, body_html, body_text = compiled.fill(recipient)
    assert "Hi &lt;b&gt;Zoë &amp; &quot;Co&quot;&lt;/b&gt;," in body_html
    assert "<b>Zoë" not in body_html
    assert 'Hi <b>Zoë & "Co"</b>,' in body_text


@pytest.mark.parametrize("kind", ["newsletter", "intro_invite"])
def test_fill_bytes_is_fill_in_utf8(kind: str, settings: Settings):
    compiled = compile_email(kind, get_kind(kind).sample(), settings)
    recipient = {**sample_recipient(), "first_name": "Zoë <&>", "name": None}
    subject, body_html, body_text = compiled.fill(recipient)
    assert compiled.fill_bytes(recipient) == (subject, body_html.encode(), body_text.encode())
    no_name = {**recipient, "first_name": ""}
    assert compiled.fill_bytes(no_name)[1] == compiled.fill(no_name)[1].encode()


def test_missing_first_name_falls_back_to_the_default(settings: Settings):
    compiled = compile_email("story_prompt", get_kind("story_prompt").sample(), settings)
    recipient = {**sample_recipient(), "first_name": ""}
    _, body_html, body_text = compiled.fill(recipient)
    assert "Hi there," in body_html and "Hi there," in body_text


def test_missing_signed_link_is_refused(settings: Settings):
    compiled = compile_email("intro_invite", get_kind("intro_invite").sample(), settings)
    recipient = sample_recipient()
    del recipient["accept_url"]
    with pytest.raises(KeyError, match="accept_url"):
        compiled.fill(recipient)


def test_cache_is_keyed_by_content_not_identity(settings: Settings):
    first = compile_email("newsletter", get_kind("newsletter").sample(), settings)
    again = compile_email("newsletter", get_kind("newsletter").sample(), settings)  # equal data, new objects
    assert again is first
    changed = get_kind("newsletter").sample()
    changed["title"] = "Another title"
    other = compile_email("newsletter", changed, settings)
    assert other is not first and other.content_hash != first.content_hash
    elsewhere = compile_email("newsletter", get_kind("newsletter").sample(), render_settings(community_name="Other"))
    assert elsewhere.content_hash != first.content_hash


def test_coordinator_subject_and_preheader_override_defaults(settings: Settings):
    context = {
        **get_kind("newsletter").sample(),
        "subject": "{{ member.first_name | default('Friend') }}, this month: {{ value.name }}",
        "preheader": "Line one\nline two",
    }
    compiled = compile_email("newsletter", context, settings)
    assert compiled.subject.fill({"first_name": "Ana"}) == "Ana, this month: Care"
    assert compiled.subject.fill({}) == "Friend, this month: Care"
    assert compiled.preheader.fill({}) == "Line one line two"


def test_essay_markdown_is_sanitised_and_personalised(settings: Settings):
    context = {
        **get_kind("newsletter").sample(),
        "essay": "Dear {{ member.first_name | default('friend') }},\n\n<script>alert(1)</script>"
        '<a href="javascript:alert(2)" onclick="steal()">click</a>\n\n[story]({{ community.public_url }}/s)',
    }
    compiled = compile_email("newsletter", context, settings)
    _, body_html, body_text = compiled.fill({**sample_recipient(), "first_name": "Ana"})
    assert "Dear Ana," in body_html and "Dear Ana," in body_text
    assert "<script" not in body_html and "alert(1)" not in body_html
    assert "javascript:" not in body_html and "onclick" not in body_html
    assert 'href="https://community.example.org/s"' in body_html


def test_errors_in_coordinator_content_name_field_and_line(settings: Settings):
    context = {**get_kind("newsletter").sample(), "essay": "Fine line\nanother\n{{ member.first_name | upper }}"}
    with pytest.raises(RenderError) as caught:
        compile_email("newsletter", context, settings)
    assert caught.value.field == "essay" and caught.value.line == 3
    assert "filled in separately for each member" in caught.value.message

    with pytest.raises(RenderError) as caught:
        compile_email("newsletter", {**get_kind("newsletter").sample(), "subject": "Hello {{ name"}, settings)
    assert caught.value.field == "subject" and caught.value.line == 1


def test_missing_campaign_data_names_the_template_and_line(settings: Settings):
    context = get_kind("newsletter").sample()
    del context["stories"][0]["storyteller_url"]
    with pytest.raises(RenderError) as caught:
        compile_email("newsletter", context, settings)
    assert caught.value.field == "partials/blocks.mjml"
    source_lines = (settings.templates_path / "partials/blocks.mjml").read_text().splitlines()
    assert caught.value.line is not None and "storyteller_url" in source_lines[caught.value.line - 1]
    assert "storyteller_url" in caught.value.message


def test_markers_in_campaign_data_stay_inert(settings: Settings):
    context = get_kind("roundup").sample()
    context["groups"][0]["stories"][0]["excerpt"] = "Send it to @@cm:email@@ or @@cm:unsubscribe_url@@"
    compiled = compile_email("roundup", context, settings)
    _, body_html, body_text = compiled.fill(sample_recipient())
    assert "Send it to @\u200b@cm:email@@ or @\u200b@cm:unsubscribe_url@@" in body_html
    assert sample_recipient()["email"] not in body_html.split("Send it to", 1)[1].split("</div>", 1)[0]


def test_unknown_kind_is_refused(settings: Settings):
    with pytest.raises(KeyError, match="unknown email kind"):
        compile_email("nope", {}, settings)


def test_logo_or_name_heads_every_email(settings: Settings):
    _, body_html, _ = preview_email("message", settings)
    assert "Riverside Practice</a>" in body_html
    with_logo = render_settings(logo_url="https://community.example.org/logo.png")
    _, body_html, _ = preview_email("message", with_logo)
    assert 'src="https://community.example.org/logo.png"' in body_html
    assert 'alt="Riverside Practice"' in body_html


def test_accent_colour_reaches_buttons(settings: Settings):
    _, body_html, _ = preview_email("confirm_subscription", render_settings(accent_colour="#aa3366"))
    assert "#aa3366" in body_html


def test_placeholder_template_fill():
    template = SplitTemplate(f"a {marker('first_name', 'friend & co')} b {marker('email')} c", escape_defaults=True)
    assert template.fill({"email": "x@y"}) == "a friend &amp; co b x@y c"
    assert template.fields == {"first_name", "email"}
    assert set(RECIPIENT_FIELDS) >= template.fields


def test_and_list_reads_like_a_sentence():
    assert [and_list(x) for x in ([], ["a"], ["a", "b"], ["a", "b", "c"])] == ["", "a", "a and b", "a, b and c"]


def test_when_formats_dates():
    assert when("2026-12-03T18:00:00") == "Thursday 3 December 2026, 18:00"
    assert when("2026-12-03") == "Thursday 3 December 2026"
    assert when("soon") == "soon"


def _with_html(compiled, source: str):  # type: ignore[no-untyped-def]
    return dataclasses.replace(compiled, html=SplitTemplate(source, escape_defaults=True))


def test_presend_reports_each_problem_in_plain_words(settings: Settings):
    compiled = compile_email("message", get_kind("message").sample(), settings)
    broken = _with_html(
        compiled,
        '<a href="/relative">Read more</a><img src="https://x.org/a.png"><p>' + "x" * 110_000 + "</p>",
    )
    broken = dataclasses.replace(broken, subject=SplitTemplate("  "), preheader=SplitTemplate(""))
    problems = presend_problems(broken)
    text = "\n".join(problems)
    assert "The subject is empty." in problems
    assert "preheader" in text
    assert "unsubscribe link is missing from the HTML version" in text
    assert "preference-centre link is missing from the HTML version" in text
    assert "postal address is missing" in text
    assert "Gmail cuts off emails over 102 KB" in text
    assert "The link “Read more” goes to “/relative”" in text
    assert "has no description (alt text)" in text


def test_mjml_checker_finds_what_mjml_python_ignores():
    source = """<mjml>
  <mj-body>
    <mj-section>
      <mj-colum><mj-text>typo</mj-text></mj-colum>
      <mj-text>text outside a column</mj-text>
      <mj-column><mj-text colour="red">x</mj-text><mj-image src="https://x.org/a.png" /></mj-column>
      <mj-column><div>html outside text</div></mj-column>
    </mj-section>
  </mj-body>"""
    problems = "\n".join(mjml_problems(source))
    assert "line 4: unknown MJML tag <mj-colum>" in problems
    assert "line 5: <mj-text> cannot be placed inside <mj-section>" in problems
    assert "line 6: <mj-text> has no attribute 'colour'" in problems
    assert "line 6: <mj-image> needs alt text" in problems
    assert "unknown HTML tag outside <mj-text>, <mj-button> or <mj-raw> <div>" in problems
    assert "<mjml> is never closed" in problems
