"""The dashboard and campaign report pages through the test client, and what a viewer may not do."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from cop_mail.db import utcnow
from cop_mail.models import Campaign
from tests.conftest import csrf_token_from
from tests.integration.test_dashboard import seed_community


class Outline(HTMLParser):
    """Headings, links, figures and ids of a page, to check its structure without a browser."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[int] = []
        self.links: dict[str, str] = {}
        self.ids: list[str] = []
        self.svgs = 0
        self._href: str | None = None
        self._text: list[str] = []
        self._label: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.append(str(found["id"]))
        if re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))
        if tag == "svg":
            self.svgs += 1
        if tag == "a":
            self._href, self._text = found.get("href"), []
            self._label = found.get("aria-label")

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links[self._label or " ".join("".join(self._text).split())] = self._href
            self._href = None


def outline(html: str) -> Outline:
    parsed = Outline()
    parsed.feed(html)
    return parsed


def test_the_dashboard_needs_a_login(client):
    response = client.get("/admin/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_zero_data_dashboard_tells_a_new_coordinator_what_to_do(client, login):
    login("viewer")
    response = client.get("/admin/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Welcome to Test Community" in html and "Name your values" in html
    assert "Nothing needs you right now" in html
    assert "No campaign has been sent yet" in html
    # Every chart says so in words instead of drawing an empty picture.
    for words in ("No members yet.", "Nobody has joined in these weeks.", "No connections recorded yet.",
                  "No stories yet.", "No values named yet."):  # fmt: skip
        assert f'<p class="empty chart-empty">{words}</p>' in html
    assert "<svg" not in html
    page = outline(html)
    assert page.headings[0] == 1 and page.headings.count(1) == 1
    assert all(b - a <= 1 for a, b in zip(page.headings, page.headings[1:], strict=False))
    assert len(page.ids) == len(set(page.ids)), "ids must be unique on the page"


def test_seeded_dashboard_shows_figures_and_one_click_links(client, login, db):
    community = seed_community(db, utcnow())
    login("coordinator")
    html = client.get("/admin/").get_data(as_text=True)
    page = outline(html)
    assert "Welcome to" not in html
    assert page.svgs >= 5
    assert page.links["Read them: replies we could not read for sure"] == "/admin/inbox?folder=review"
    assert page.links["Moderate: stories waiting for moderation"] == "/admin/stories?status=submitted"
    assert page.links["Stuck letter"] == f"/admin/campaigns/{community.paused_id}"
    assert page.links["Ben"] == f"/admin/members/{community.ids['ben']}"
    assert page.links["Report on November letter"] == f"/admin/campaigns/{community.campaign_id}/report"
    # Every chart comes with its figures as a table, each with a caption.
    assert html.count('<details class="chart-data">') == page.svgs
    assert 'id="chart-members-title"' in html and "Members by status, week by week" in html
    assert len(page.ids) == len(set(page.ids))
    row = re.search(r"November letter</a></th>(.*?)</tr>", html, re.S)
    assert row is not None
    assert [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', row.group(1))] == [6, 2, 2, 3, 1]


def test_navigation_groups_the_four_kinds_of_work(app, client, login):
    login("owner")
    html = client.get("/admin/").get_data(as_text=True)
    nav = html[html.index('<nav class="sidenav"') : html.index("</nav>", html.index('<nav class="sidenav"'))]
    for label in ("Name", "Connect", "Resource", "Illuminate"):
        key = label.lower()
        assert f'<span class="group-label" id="nav-{key}">{label}</span>' in nav
        assert f'aria-labelledby="nav-{key}"' in nav
    assert 'href="/admin/" aria-current="page"' in nav
    for path in ("/admin/values", "/admin/intros", "/admin/resources", "/admin/stories", "/admin/outbox"):
        assert f'href="{path}"' in nav
    adapter = app.url_map.bind("cop-mail.test")
    for href in re.findall(r'href="([^"]+)"', nav):  # no dead links: each is a page of this installation
        endpoint, _ = adapter.match(href)
        assert endpoint in app.view_functions
    team = client.get("/admin/team").get_data(as_text=True)
    assert 'href="/admin/team" aria-current="page"' in team


def test_campaign_report_page(client, login, db):
    community = seed_community(db, utcnow())
    login("viewer")
    response = client.get(f"/admin/campaigns/{community.campaign_id}/report")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    page = outline(html)
    assert "Report: November letter" in html
    assert page.svgs == 5
    for title in ("Delivery funnel", "Bounces by type", "Unsubscribes by stream", "Engagement in the first 72 hours"):
        assert title in html
    assert page.links["Re: Hello"].startswith("/admin/inbox/")
    assert page.headings.count(1) == 1 and len(page.ids) == len(set(page.ids))


def test_report_of_a_campaign_never_sent(client, login, db):
    community = seed_community(db, utcnow())
    login("viewer")
    html = client.get(f"/admin/campaigns/{community.draft_id}/report").get_data(as_text=True)
    assert "Nothing to report yet" in html and "No replies yet" in html
    assert "Not sent yet." in html and "<svg" not in html


def test_report_refuses_unknown_and_transactional_campaigns(client, login, db):
    login("viewer")
    assert client.get("/admin/campaigns/999/report").status_code == 404
    db.add(Campaign(name="Welcome", kind="transactional"))
    db.commit()
    campaign_id = db.query(Campaign.id).scalar()
    assert client.get(f"/admin/campaigns/{campaign_id}/report").status_code == 404


def test_a_viewer_is_refused_owner_and_coordinator_actions(client, login, db):
    community = seed_community(db, utcnow())
    login("viewer")
    token = csrf_token_from(client.get("/admin/").get_data(as_text=True))
    assert client.get("/admin/team").status_code == 403
    refused = client.post("/admin/team", data={"email": "new@example.org", "role": "owner", "csrf_token": token})
    assert refused.status_code == 403
    paused = client.post(f"/admin/campaigns/{community.paused_id}/resume", data={"csrf_token": token})
    assert paused.status_code == 403
    assert db.get(Campaign, community.paused_id).status == "paused"
    # Reading stays open to a viewer.
    assert client.get(f"/admin/campaigns/{community.campaign_id}/report").status_code == 200


def test_navigation_offers_only_pages_the_role_may_open(client, login):
    login("viewer")
    html = client.get("/admin/").get_data(as_text=True)
    assert 'href="/admin/outbox"' in html and 'href="/admin/members"' in html
    assert 'href="/admin/team"' not in html  # owners only
