"""Was an open or click made by a person, or by a machine acting for the mailbox?

Apple Mail Privacy Protection fetches images on delivery whether or not anyone reads the
message, and security scanners follow every link within seconds of delivery. Counting those
as people would make the numbers lie, so each hit gets a verdict with a short reason, kept
beside the event. Gmail's and Yahoo's image proxies are different: they fetch when a person
opens the message (to hide the reader's address), so their opens count as people's.

Only a coarse client family is kept, never the user agent itself nor the IP address.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# Faster than anyone opens a message and then clicks in it.
CLICK_SECONDS = 10
# Faster than any person opens a message: a fetch on arrival.
OPEN_SECONDS = 2

# (lower-case piece of a user agent, client family, reason): the first match decides.
KNOWN_MACHINES: tuple[tuple[str, str, str], ...] = (
    ("bingpreview", "Microsoft link preview", "link scanner"),
    ("safelinks", "Microsoft Safe Links", "link scanner"),
    ("barracuda", "Barracuda", "link scanner"),
    ("proofpoint", "Proofpoint", "link scanner"),
    ("mimecast", "Mimecast", "link scanner"),
    ("symantec", "Symantec", "link scanner"),
    ("trendmicro", "Trend Micro", "link scanner"),
    ("forcepoint", "Forcepoint", "link scanner"),
    ("sophos", "Sophos", "link scanner"),
    ("fortiguard", "Fortinet", "link scanner"),
    ("headlesschrome", "Headless browser", "automated browser"),
    ("python-", "Script", "script"),
    ("curl/", "Script", "script"),
    ("wget/", "Script", "script"),
    ("go-http-client", "Script", "script"),
    ("okhttp", "Script", "script"),
    ("java/", "Script", "script"),
    ("libwww", "Script", "script"),
    ("bot/", "Robot", "robot"),
    ("bot;", "Robot", "robot"),
    ("robot", "Robot", "robot"),
    ("crawler", "Robot", "robot"),
    ("spider", "Robot", "robot"),
)
# Apple Mail Privacy Protection's proxy presents a user agent with nothing after the product.
BARE_AGENTS = frozenset({"mozilla/5.0", "mozilla/5.0 (compatible)"})

# People's clients, coarsely: enough to see which kinds of client a community reads with.
PEOPLE_CLIENTS: tuple[tuple[str, str], ...] = (
    ("googleimageproxy", "Gmail"),
    ("yahoomailproxy", "Yahoo Mail"),
    ("ymailproxy", "Yahoo Mail"),
    ("outlook", "Outlook"),
    ("microsoft office", "Outlook"),
    ("thunderbird", "Thunderbird"),
    ("android", "Android"),
    ("iphone", "iOS"),
    ("ipad", "iOS"),
    ("macintosh", "macOS"),
    ("windows", "Windows"),
    ("linux", "Linux"),
)


@dataclass(frozen=True)
class Verdict:
    machine: bool
    reason: str  # why a machine; empty for a person
    client: str  # a coarse family, never the user agent itself


def classify(kind: str, user_agent: str, method: str, sent_at: datetime | None, now: datetime) -> Verdict:
    """`kind` is "open" or "click"; `sent_at` is when the message went out, if known."""
    agent = " ".join(user_agent.split()).lower()
    if method.upper() == "HEAD":
        return Verdict(True, "HEAD request (a link checker)", _machine_client(agent) or "Link checker")
    for piece, client, reason in KNOWN_MACHINES:
        if piece in agent:
            return Verdict(True, reason, client)
    if not agent:
        return Verdict(True, "no user agent", "Unknown")
    if agent in BARE_AGENTS:
        return Verdict(True, "privacy proxy", "Apple Mail privacy protection")
    client = _person_client(agent)
    if sent_at is not None:
        seconds = CLICK_SECONDS if kind == "click" else OPEN_SECONDS
        if now - sent_at < timedelta(seconds=seconds):
            return Verdict(True, f"{kind}ed within {seconds} s of delivery", client)
    return Verdict(False, "", client)


def _machine_client(agent: str) -> str:
    return next((client for piece, client, _ in KNOWN_MACHINES if piece in agent), "")


def _person_client(agent: str) -> str:
    return next((client for piece, client in PEOPLE_CLIENTS if piece in agent), "Other")
