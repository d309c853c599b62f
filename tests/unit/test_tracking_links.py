"""Which links a tracked message rewrites, the HTML it gets, and the per-delivery token."""

from __future__ import annotations

from pathlib import Path

import pytest

from cop_mail.rendering import compile_email, samples
from cop_mail.settings import Settings
from cop_mail.tokens import TokenError, sign_link
from cop_mail.tracking import links

BASE = "https://c.example"


def settings(tmp_path: Path) -> Settings:
    return Settings(instance_path=tmp_path, database_url="sqlite://", secret_key="k" * 40, public_url=BASE + "/")


def test_web_links_are_found_once_with_their_text_and_per_recipient_links_are_not():
    source = (
        '<a href="https://example.org/a?b=1&amp;c=2" rel="noopener"><b>The</b>  guide</a>'
        '<a href="mailto:hi@example.org">Write</a>'
        '<a href="@@cm:unsubscribe_url@@">Unsubscribe</a>'
        '<a href="https://c.example/stories/1/meet/@@cm:meet_token@@">Meet</a>'
        '<a href=\'HTTPS://example.org/img\'><img src="x.png" alt="Our logo"></a>'
        '<a href="https://example.org/a?b=1&amp;c=2">Again</a>'
        '<a href="javascript:alert(1)">Bad</a><a href="https://example.org/x y">Space</a><a name="top">Top</a>'
    )
    assert links.find_links(source) == [
        links.FoundLink("https://example.org/a?b=1&c=2", "The guide"),
        links.FoundLink("HTTPS://example.org/img", "Our logo"),
    ]


def test_rewrite_points_links_at_redirects_and_adds_one_pixel_before_the_body_ends():
    source = (
        '<html><body><a href="https://example.org/a?b=1&amp;c=2" style="x">A</a>'
        '<a href="@@cm:unsubscribe_url@@">U</a><a href="https://example.org/untracked">N</a></body></html>'
    )
    out = links.rewrite(source, {"https://example.org/a?b=1&c=2": 4}, BASE)
    assert '<a href="https://c.example/t/c/@@cm:tracking_id@@/4" style="x">A</a>' in out
    assert '<a href="@@cm:unsubscribe_url@@">U</a>' in out and 'href="https://example.org/untracked"' in out
    pixel = '<img src="https://c.example/t/o/@@cm:tracking_id@@.gif" width="1" height="1" alt=""'
    assert out.count(pixel) == 1 and out.index(pixel) < out.index("</body>")


def test_a_tracked_email_needs_a_token_per_recipient_and_keeps_plain_text_links(tmp_path: Path):
    data = {"heading": "Hi", "body": "See [the guide](https://example.org/guide).", "button": None}
    compiled = compile_email("message", data, settings(tmp_path))
    found = links.find_links(compiled.html.source)
    assert [link.url for link in found] == [BASE, "https://example.org/guide"]
    plan = links.LinkPlan(((BASE, 1), ("https://example.org/guide", 2)))
    tracked = links.track_email(compiled, plan, BASE + "/")
    assert "tracking_id" in tracked.required_fields and "tracking_id" not in compiled.fields
    without_token = {name: value for name, value in samples.recipient(BASE).items() if name != "tracking_id"}
    with pytest.raises(KeyError, match="tracking_id"):
        tracked.fill(without_token)
    _, html, text = tracked.fill({**samples.recipient(BASE), "tracking_id": "TOKEN"})
    assert 'href="https://c.example/t/c/TOKEN/2"' in html and '<img src="https://c.example/t/o/TOKEN.gif"' in html
    assert "https://example.org/guide" not in html
    assert "https://example.org/guide" in text and "TOKEN" not in text
    assert text == compiled.fill(samples.recipient(BASE))[2]


def test_delivery_tokens_are_signed_for_tracking_only():
    token = links.delivery_token("s" * 40, 42)
    assert links.read_delivery_token("s" * 40, token) == 42
    for bad in (token[:-2] + "xx", "garbage", links.delivery_token("other" * 10, 42)):
        with pytest.raises(TokenError):
            links.read_delivery_token("s" * 40, bad)
    with pytest.raises(TokenError):  # a token signed for another purpose
        links.read_delivery_token("s" * 40, sign_link("s" * 40, "unsubscribe", 42))
    with pytest.raises(TokenError):  # signed, but not a delivery id
        links.read_delivery_token("s" * 40, sign_link("s" * 40, links.LINK_PURPOSE, [42]))
