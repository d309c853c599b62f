"""Markdown from coordinators and members becomes safe email HTML."""

from __future__ import annotations

import base64

import pytest

from cop_mail.rendering import RenderError, markdown_to_html
from cop_mail.rendering.placeholders import marker
from cop_mail.rendering.richtext import MAX_INLINE_IMAGE


@pytest.mark.parametrize(
    ("source", "forbidden"),
    [
        ("<script>alert(1)</script>", ["<script", "alert(1)"]),
        ("<img src=x onerror=alert(1)>", ["onerror", "alert"]),
        ('<a href="#" onclick="steal()">x</a>', ["onclick", "steal"]),
        ("[x](javascript:alert(1))", ['href="javascript']),
        ('<a href="JaVaScRiPt:alert(1)">x</a>', ["javascript", "JaVaScRiPt"]),
        ('<a href="vbscript:msgbox(1)">x</a>', ["vbscript"]),
        ('<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>', ["data:"]),
        ("<iframe src=https://evil.example></iframe>", ["<iframe"]),
        ("<style>body{display:none}</style>", ["<style", "display:none"]),
        ('<p style="position:fixed;top:0">x</p>', ["style="]),
        ("<svg><script>alert(1)</script></svg>", ["<svg", "<script"]),
        ('<form action="https://evil.example"><input name=p></form>', ["<form", "<input"]),
        ("<object data=x></object><embed src=x>", ["<object", "<embed"]),
    ],
)
def test_dangerous_markup_is_removed(source: str, forbidden: list[str]):
    cleaned = markdown_to_html(source, base_url="https://community.example.org")
    for needle in forbidden:
        assert needle not in cleaned


def test_ordinary_markdown_survives():
    cleaned = markdown_to_html(
        "# Title\n\n**bold** and _em_ and [a link](https://example.org/x?a=1&b=2)\n\n- one\n- two"
    )
    assert "<h1>Title</h1>" in cleaned
    assert "<strong>bold</strong>" in cleaned and "<em>em</em>" in cleaned
    assert 'href="https://example.org/x?a=1&amp;b=2"' in cleaned
    assert "<li>one</li>" in cleaned


def test_relative_links_become_absolute_and_markers_are_kept():
    story = marker("story_url")
    cleaned = markdown_to_html(
        f"[events](/events) [tell us]({story}) ![map](img/map.png)", base_url="https://community.example.org"
    )
    assert 'href="https://community.example.org/events"' in cleaned
    assert f'href="{story}"' in cleaned
    assert 'src="https://community.example.org/img/map.png"' in cleaned


def test_a_pasted_ten_megabyte_image_is_refused_with_a_clear_message():
    pasted = base64.b64encode(b"\x89PNG" + b"\0" * 7_500_000).decode()
    with pytest.raises(RenderError) as caught:
        markdown_to_html(f"Intro\n\nSee this:\n![photo](data:image/png;base64,{pasted})", field="essay")
    error = caught.value
    assert error.field == "essay" and error.line == 4
    assert "10.0 MB" in error.message
    assert "uploaded and linked" in error.message


def test_a_pasted_image_in_raw_html_is_refused_too():
    pasted = "A" * (MAX_INLINE_IMAGE + 10)
    with pytest.raises(RenderError, match="uploaded and linked"):
        markdown_to_html(f'<img alt="x" src="data:image/jpeg;base64,{pasted}">')


def test_a_tiny_inline_icon_is_kept_but_never_as_a_link():
    icon = "data:image/png;base64,iVBORw0KGgo="
    cleaned = markdown_to_html(f"![dot]({icon}) [click]({icon})")
    assert f'<img src="{icon}" alt="dot">' in cleaned
    assert cleaned.count("data:") == 1


def test_member_text_has_its_html_escaped():
    cleaned = markdown_to_html("<b>hi</b>\nsecond line", allow_html=False)
    assert "&lt;b&gt;hi&lt;/b&gt;<br>" in cleaned
    assert "<b>" not in cleaned
