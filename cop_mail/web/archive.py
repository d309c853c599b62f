"""The public archive: sent newsletters and roundups, public stories, values, featured, Atom feed.

Pages are plain HTML with no scripts and no third-party requests (the Content-Security-Policy
says so), show only what cop_mail.stories.archive returns, and are built per request so a
withdrawn story is gone at once; ETags let readers and feed fetchers revalidate cheaply.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, redirect, render_template, request, send_file, url_for

from cop_mail.stories import archive, feed, images
from cop_mail.web.extensions import db, settings

bp = Blueprint("archive", __name__, url_prefix="/archive")
PAGE_SIZE = 20
CSP = (
    "default-src 'none'; img-src 'self'; style-src 'self' 'unsafe-inline'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if request.method == "GET" and response.status_code == 200 and not response.direct_passthrough:
        # Revalidate every time (a withdrawal must show at once), but cheaply.
        response.headers.setdefault("Cache-Control", "no-cache")
        response.add_etag()
        response.make_conditional(request)
    return response


def _page() -> int:
    return max(request.args.get("page", 1, type=int) or 1, 1)


def _pages(total: int) -> int:
    return max(1, -(-total // PAGE_SIZE))


def meta(title: str, description: str, path: str, kind: str = "website", image: str | None = None) -> dict[str, Any]:
    """Open Graph data for sharing; absolute URLs, as the protocol asks."""
    base = settings().public_url
    return {
        "title": title,
        "description": description[:300],
        "url": base + path,
        "type": kind,
        "image": base + image if image else None,
        "site_name": settings().community_name,
    }


def _missing(code: int, heading: str, message: str) -> Any:
    page_meta = meta(heading, message, request.path)
    return render_template("archive/missing.html", heading=heading, message=message, meta=page_meta), code


@bp.route("")
def index() -> Any:
    session = db()
    page = _page()
    total = archive.count_archive_issues(session)
    return render_template(
        "archive/index.html",
        issues=archive.archive_issues(session, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE),
        page=page,
        pages=_pages(total),
        featured=archive.public_stories(session, featured=True, limit=3) if page == 1 else [],
        latest=archive.public_stories(session, limit=6) if page == 1 else [],
        values=[(value, count) for value, count in archive.values_with_counts(session) if count],
        meta=meta(
            f"{settings().community_name}: stories and newsletters",
            f"Newsletters, roundups and members' stories from {settings().community_name}.",
            url_for("archive.index"),
        ),
    )


@bp.route("/issues/<int:campaign_id>")
def issue(campaign_id: int) -> Any:
    page = archive.find_issue(db(), campaign_id)
    if page is None:
        return _missing(404, "No such issue", "There is no sent newsletter or roundup at this address.")
    description = page.summary.preheader or f"A {page.summary.kind} from {settings().community_name}."
    return render_template(
        "archive/issue.html",
        page=page,
        meta=meta(page.summary.title, description, url_for("archive.issue", campaign_id=campaign_id), "article"),
    )


@bp.route("/stories")
def stories() -> Any:
    session = db()
    page = _page()
    total = archive.count_public_stories(session)
    return render_template(
        "archive/stories.html",
        stories=archive.public_stories(session, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE),
        total=total,
        page=page,
        pages=_pages(total),
        meta=meta("Stories", f"Stories told by members of {settings().community_name}.", url_for("archive.stories")),
    )


@bp.route("/stories/<int:story_id>")
def story(story_id: int) -> Any:
    session = db()
    found = archive.find_public_story(session, story_id)
    if found is None:
        if archive.was_withdrawn(session, story_id):
            return _missing(410, "This story was withdrawn", "Its author chose to take it out of the archive.")
        return _missing(404, "No such story", "There is no public story at this address.")
    image = url_for("archive.story_image", story_id=found.id, image_id=found.images[0].id) if found.images else None
    page_meta = meta(found.title, found.summary, url_for("archive.story", story_id=story_id), "article", image)
    return render_template("archive/story.html", story=found, meta=page_meta)


@bp.route("/stories/<int:story_id>/images/<int:image_id>")
def story_image(story_id: int, image_id: int) -> Any:
    image = archive.public_image(db(), story_id, image_id)
    if image is None:
        abort(404)
    path = images.image_path(images.images_folder(settings().instance_path), image)
    if not path.is_file():
        abort(404)
    response = send_file(path, mimetype=image.content_type, etag=image.sha256, max_age=0, conditional=True)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.route("/values")
def values() -> Any:
    return render_template(
        "archive/values.html",
        values=archive.values_with_counts(db()),
        meta=meta(
            "Our values", f"The values {settings().community_name} shares, in stories.", url_for("archive.values")
        ),
    )


@bp.route("/values/<key>")
def value(key: str) -> Any:
    session = db()
    found = archive.find_value(session, key)
    if found is None:
        return _missing(404, "No such value", "There is no value at this address.")
    if key != found.slug:
        return redirect(url_for("archive.value", key=found.slug), 301)
    page = _page()
    total = archive.count_public_stories(session, value_id=found.id)
    return render_template(
        "archive/value.html",
        value=found,
        stories=archive.public_stories(session, value_id=found.id, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE),
        total=total,
        page=page,
        pages=_pages(total),
        meta=meta(
            found.name,
            found.description or f"Stories of {found.name.lower()} from {settings().community_name}.",
            url_for("archive.value", key=found.slug),
        ),
    )


@bp.route("/featured")
def featured() -> Any:
    session = db()
    return render_template(
        "archive/featured.html",
        stories=archive.public_stories(session, featured=True, limit=50),
        meta=meta(
            "Featured stories",
            f"Stories from {settings().community_name} chosen for press and partners.",
            url_for("archive.featured"),
        ),
    )


@bp.route("/feed.atom")
def atom() -> Any:
    return Response(feed.render_feed(db(), settings()), mimetype="application/atom+xml")
