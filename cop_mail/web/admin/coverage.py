"""Values coverage: which values were themes and stories, month by month, and which went quiet."""

from __future__ import annotations

from typing import Any

from flask import render_template, request

from cop_mail.models import Role
from cop_mail.stories.coverage import DEFAULT_MONTHS, DEFAULT_QUIET_DAYS, coverage_report
from cop_mail.web.admin import bp
from cop_mail.web.auth import role_required
from cop_mail.web.extensions import db

# Chart geometry (SVG user units).
LABEL_WIDTH = 190
CELL_WIDTH = 56
ROW_HEIGHT = 34
HEADER_HEIGHT = 46


@bp.route("/values/coverage")
@role_required(Role.VIEWER)
def values_coverage() -> Any:
    months = min(max(request.args.get("months", DEFAULT_MONTHS, type=int) or DEFAULT_MONTHS, 3), 36)
    quiet = min(max(request.args.get("quiet", DEFAULT_QUIET_DAYS, type=int) or DEFAULT_QUIET_DAYS, 7), 3650)
    report = coverage_report(db(), months=months, quiet_days=quiet)
    chart = {
        "label_width": LABEL_WIDTH,
        "cell_width": CELL_WIDTH,
        "row_height": ROW_HEIGHT,
        "header_height": HEADER_HEIGHT,
        "width": LABEL_WIDTH + CELL_WIDTH * len(report.months) + 10,
        "height": HEADER_HEIGHT + ROW_HEIGHT * max(len(report.rows), 1) + 10,
    }
    return render_template("admin/coverage.html", report=report, chart=chart, months=months, quiet=quiet)
