"""Opens and clicks on the campaign report and the dashboard: shown with tracking, absent without."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy.orm import Session

from cop_mail import community
from cop_mail.db import utcnow
from cop_mail.models import Delivery, TrackedLink, TrackingEvent
from tests.integration.test_dashboard import Community, seed_community
from tests.web.test_dashboard import outline

GUIDE = "https://example.org/guide?a=1&b=2"
CALL = "https://example.org/call"


def set_tracking(db: Session, on: bool) -> None:
    community.update(db, "owner@example.org", tracking_enabled=on)
    db.commit()


def seed_tracking(db: Session) -> Community:
    """The seeded campaign with two links: Ana opened and clicked the guide twice, a scanner clicked
    it too, Fay's message was fetched by Gmail's proxy only, and nobody clicked the call."""
    seeded = seed_community(db, utcnow())
    cid = seeded.campaign_id
    guide = TrackedLink(campaign_id=cid, position=1, url=GUIDE, label="the guide")
    call = TrackedLink(campaign_id=cid, position=2, url=CALL, label="Join the call")
    db.add_all([guide, call])
    db.flush()
    deliveries = {d.member_id: d for d in db.query(Delivery).filter(Delivery.campaign_id == cid)}
    ana, fay = deliveries[seeded.ids["ana"]], deliveries[seeded.ids["fay"]]
    start = ana.sent_at
    ana.opened_at = ana.clicked_at = start + timedelta(hours=2, minutes=10)

    def hit(delivery: Delivery, kind: str, link: TrackedLink | None, machine: str = "", hours: float = 2) -> None:
        db.add(TrackingEvent(delivery_id=delivery.id, campaign_id=cid, member_id=delivery.member_id, kind=kind,
                             link_id=link.id if link else None, machine=bool(machine), machine_reason=machine,
                             created_at=start + timedelta(hours=hours)))  # fmt: skip

    hit(ana, "click", guide, "clicked within 10 s of delivery", hours=0)
    hit(ana, "click", guide, hours=2.2)
    hit(ana, "click", guide, hours=5)
    hit(fay, "open", None, "privacy proxy", hours=0)
    db.commit()
    return seeded


def test_the_report_lists_each_link_with_its_clicks_for_a_viewer(client, login, db):
    seeded = seed_tracking(db)
    set_tracking(db, True)
    login("viewer")
    response = client.get(f"/admin/campaigns/{seeded.campaign_id}/report")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Opens and clicks" in html and "Tracking is off" not in html
    rows = {
        label: [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', cells)]
        for label, cells in re.findall(r'<tr>\s*<th scope="row">([^<]+)<br>.*?</th>(.*?)</tr>', html, re.S)
    }
    # People who clicked, clicks by people, clicks by machines; the most clicked first.
    assert rows == {"the guide": [1, 2, 1], "Join the call": [0, 0, 0]}
    assert list(rows) == ["the guide", "Join the call"]
    assert 'href="https://example.org/guide?a=1&amp;b=2"' in html
    facts = dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)</dd>", html))
    assert facts["Messages opened by a person"] == "1 (50.0 %)"
    assert facts["Messages with a click by a person"] == "1 (50.0 %)"
    assert facts["Messages fetched by a machine"] == "1" and facts["Messages whose links a machine followed"] == "1"
    assert "Privacy proxy: 1" in html and "Clicked within 10 s of delivery: 1" in html
    # The 72-hour chart gains lines for the first open and click of each message.
    assert "Opens: 1 in all" in html and "Clicks: 1 in all" in html
    page = outline(html)
    assert page.headings.count(1) == 1 and len(page.ids) == len(set(page.ids))
    assert all(b - a <= 1 for a, b in zip(page.headings, page.headings[1:], strict=False))


def test_a_campaign_sent_with_tracking_keeps_its_figures_after_it_is_switched_off(client, login, db):
    seeded = seed_tracking(db)
    login("viewer")
    html = client.get(f"/admin/campaigns/{seeded.campaign_id}/report").get_data(as_text=True)
    assert "the guide" in html and "Tracking is off now: these figures are from while it was on." in html


def test_without_tracking_the_report_says_so_and_shows_no_opens(app, client, login, db):
    seeded = seed_community(db, utcnow())
    login("viewer")
    html = client.get(f"/admin/campaigns/{seeded.campaign_id}/report").get_data(as_text=True)
    note = re.search(r'<p class="meta" id="tracking-off">(.*?)</p>', html, re.S)
    assert note is not None and note.group(1).startswith("Tracking is off.")
    assert "Opened" not in html and "Opens and clicks" not in html and "Opens:" not in html
    # The way to switch it on, where this installation has the settings page.
    assert ('href="/admin/settings"' in note.group(1)) == ("admin.settings" in app.view_functions)


def test_a_zero_data_report_renders_with_tracking_on(client, login, db):
    seeded = seed_community(db, utcnow())
    set_tracking(db, True)
    login("viewer")
    for campaign_id in (seeded.draft_id, seeded.campaign_id):
        response = client.get(f"/admin/campaigns/{campaign_id}/report")
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        assert "Opens and clicks" in html and "No tracked links" in html and "No machine opens or clicks." in html
    assert "Nothing to report yet" in client.get(f"/admin/campaigns/{seeded.draft_id}/report").get_data(as_text=True)


def test_the_dashboard_shows_opens_and_clicks_only_with_tracking_on(client, login, db):
    seed_tracking(db)
    login("viewer")
    html = client.get("/admin/").get_data(as_text=True)
    assert '<th scope="col" class="num">Opened</th>' not in html
    set_tracking(db, True)
    html = client.get("/admin/").get_data(as_text=True)
    assert '<th scope="col" class="num">Opened</th><th scope="col" class="num">Clicked</th>' in html
    row = re.search(r"November letter</a></th>(.*?)</tr>", html, re.S)
    assert row is not None
    # Recipients, delivered, bounced, replies, unsubscribes, opened, clicked.
    assert [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', row.group(1))] == [6, 2, 2, 3, 1, 1, 1]
