"""A campaign's report page: funnel, bounces, replies, unsubscribes and the first 72 hours."""

from __future__ import annotations

from typing import Any

from flask import abort, render_template

from cop_mail import reports
from cop_mail.models import CampaignKind, Role
from cop_mail.web.admin import bp
from cop_mail.web.auth import role_required
from cop_mail.web.extensions import db


@bp.route("/campaigns/<int:campaign_id>/report")
@role_required(Role.VIEWER)
def campaign_report(campaign_id: int) -> Any:
    try:
        report = reports.campaign_report(db(), campaign_id)
    except reports.CampaignNotFound:
        abort(404, "There is no campaign with that number.")
    if report.campaign.kind == CampaignKind.TRANSACTIONAL:
        abort(404, "Account messages have no campaign report.")
    return render_template("admin/report.html", report=report, charts=reports.report_charts(report))
