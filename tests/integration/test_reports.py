"""A campaign's report, on SQLite and PostgreSQL: funnel, bounces, replies, unsubscribes, 72 hours."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cop_mail import reports
from cop_mail.models import Campaign, ConsentEvent, Delivery, InboundMessage, Story
from tests.integration.test_dashboard import seed_community


def test_report_counts_every_figure_from_the_rows(db):
    community = seed_community(db)
    report = reports.campaign_report(db, community.campaign_id)
    assert report.planned == 6
    assert {k: v for k, v in report.by_status.items() if v} == {
        "sent": 3, "failed": 1, "suppressed": 1, "deferred": 1,
    }  # fmt: skip
    assert report.bounces == {"hard": 1, "soft": 1}
    assert report.delivered == 2
    assert report.funnel == [("Planned", 6), ("Attempted", 5), ("Sent", 3), ("Delivered", 2), ("Replied", 2)]
    assert (report.replies, report.repliers) == (3, 2)
    assert [r.from_address for r in report.recent_replies] == ["ana@example.org", "fay@example.org",
                                                              "ana@example.org"]  # fmt: skip
    # The paused campaign's unsubscribe is not counted here.
    assert report.unsubscribes == [("newsletters", 1)] and report.unsubscribed == 1


def test_engagement_is_bucketed_by_hour_for_72_hours(db):
    community = seed_community(db)
    campaign = db.get(Campaign, community.campaign_id)
    last_minute = campaign.started_at + timedelta(hours=71, minutes=59)
    db.add(Story(author_id=community.ids["fay"], title="Prompted", status="submitted",
                 prompt_campaign_id=campaign.id, submitted_at=last_minute))  # fmt: skip
    db.commit()
    report = reports.campaign_report(db, community.campaign_id)
    assert report.hours == list(range(72))
    replies, actions, unsubscribes = (report.engagement[k] for k in ("Replies", "Other actions", "Unsubscribes"))
    # Replies at 3.5 h and 30.2 h; the one at 80 h is past the window.
    assert [h for h, n in enumerate(replies) if n] == [3, 30] and sum(replies) == 2
    # An explicit member event at 3.2 h, and the prompted story in the very last hour.
    assert [h for h, n in enumerate(actions) if n] == [3, 71]
    assert [h for h, n in enumerate(unsubscribes) if n] == [5]


def test_unsubscribes_are_grouped_by_stream(db):
    community = seed_community(db)
    cid = community.campaign_id
    for member, kind, stream in (
        ("ben", "stream_off", "intros"),
        ("gus", "unsubscribed_all", None),
        ("hal", "list_unsubscribed", None),
        ("ana", "stream_off", "newsletters"),
        ("eve", "confirmed", None),  # consent given, not withdrawn: never counted
    ):
        db.add(ConsentEvent(member_id=community.ids[member], kind=kind, stream=stream, detail={"campaign_id": cid}))
    db.add(ConsentEvent(member_id=community.ids["ben"], kind="stream_off", stream="roundups", detail={}))
    db.commit()
    report = reports.campaign_report(db, cid)
    assert report.unsubscribes == [("newsletters", 2), ("all", 1), ("intros", 1), ("list", 1)]


def test_a_campaign_never_sent_reports_zeros(db):
    community = seed_community(db)
    report = reports.campaign_report(db, community.draft_id)
    assert report.planned == 0 and report.delivered == 0 and report.replies == 0
    assert report.started_at is None and report.engagement == {}
    assert report.funnel[0] == ("Planned", 0)
    charts = reports.report_charts(report)
    assert all(chart.empty for chart in charts.values())
    assert "Not sent yet" in charts["engagement"].svg and charts["engagement"].rows == ()


def test_sending_start_falls_back_to_the_first_message_sent(db):
    community = seed_community(db)
    campaign = db.get(Campaign, community.campaign_id)
    first = campaign.started_at
    campaign.started_at = None
    db.commit()
    report = reports.campaign_report(db, community.campaign_id)
    assert report.started_at == first


def test_an_unknown_campaign_raises(db):
    with pytest.raises(reports.CampaignNotFound):
        reports.campaign_report(db, 999)


def test_report_charts_say_the_same_as_the_figures(db):
    community = seed_community(db)
    charts = reports.report_charts(reports.campaign_report(db, community.campaign_id))
    assert charts["funnel"].rows[0] == ("Planned", "6", "100.0 %")
    assert charts["funnel"].rows[3] == ("Delivered", "2", "33.3 %")
    assert ("Hard", "1") in charts["bounces"].rows
    assert charts["unsubscribes"].rows == (("Newsletters", "1"),)
    assert charts["engagement"].rows[3] == ("3h", "1", "1", "0")


def test_replies_to_other_things_are_not_campaign_replies(db):
    community = seed_community(db)
    db.add(InboundMessage(raw=b"", subject_kind="intro", subject_id=community.campaign_id, status="processed"))
    db.add(Delivery(campaign_id=community.draft_id, member_id=community.ids["ana"], status="queued"))
    db.commit()
    report = reports.campaign_report(db, community.campaign_id)
    assert report.replies == 3
    assert reports.campaign_report(db, community.draft_id).funnel[:2] == [("Planned", 1), ("Attempted", 0)]
