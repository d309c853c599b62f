"""Telling people's opens and clicks from privacy proxies, link scanners and fetches on arrival."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cop_mail.tracking.machine import Verdict, classify

SENT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LATER = SENT + timedelta(hours=3)
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"


@pytest.mark.parametrize(
    ("agent", "reason", "client"),
    [
        ("Mozilla/5.0", "privacy proxy", "Apple Mail privacy protection"),
        ("Mozilla/5.0 (compatible; BingPreview/1.0b)", "link scanner", "Microsoft link preview"),
        ("Barracuda Sentinel (EE)", "link scanner", "Barracuda"),
        ("Mimecast-URL-Protect", "link scanner", "Mimecast"),
        ("python-requests/2.32", "script", "Script"),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "robot", "Robot"),
        ("", "no user agent", "Unknown"),
    ],
)  # fmt: skip
def test_known_machines_are_flagged_whenever_they_come(agent: str, reason: str, client: str):
    assert classify("open", agent, "GET", SENT, LATER) == Verdict(True, reason, client)


@pytest.mark.parametrize(
    ("agent", "client"),
    [
        ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)", "Gmail"),
        ("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html", "Yahoo Mail"),
    ],
)
def test_proxies_that_fetch_when_a_person_opens_count_as_people(agent: str, client: str):
    assert classify("open", agent, "GET", SENT, LATER) == Verdict(False, "", client)
    # ...but not when they fetch on arrival.
    assert classify("open", agent, "GET", SENT, SENT + timedelta(seconds=1)).machine


def test_a_head_request_is_a_link_checker():
    assert classify("click", FIREFOX, "HEAD", SENT, LATER).machine


def test_timing_tells_a_scanner_from_a_reader():
    within = classify("click", FIREFOX, "GET", SENT, SENT + timedelta(seconds=4))
    assert within == Verdict(True, "clicked within 10 s of delivery", "Windows")
    assert not classify("click", FIREFOX, "GET", SENT, SENT + timedelta(seconds=30)).machine
    assert classify("open", FIREFOX, "GET", SENT, SENT + timedelta(seconds=1)).reason == "opened within 2 s of delivery"
    assert classify("open", FIREFOX, "GET", SENT, SENT + timedelta(seconds=5)) == Verdict(False, "", "Windows")
    assert not classify("click", FIREFOX, "GET", None, SENT).machine


def test_a_phone_named_like_a_robot_is_still_a_person():
    agent = "Mozilla/5.0 (Linux; Android 12; CUBOT X30) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36"
    assert classify("click", agent, "GET", SENT, LATER) == Verdict(False, "", "Android")
