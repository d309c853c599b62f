"""The JSON API under /api/: bearer tokens with scopes, thin views over the service functions.

Every error has one shape, `{"error": {"code": <HTTP status>, "message": "...", "fields": {...}}}`
(`fields` only when particular fields are at fault). Bodies are JSON objects of at most
MAX_BODY_BYTES, checked against the schemas the OpenAPI document publishes; unknown fields
are refused by name. Token-authenticated, so exempt from the form CSRF check.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import datetime
from functools import cache, wraps
from typing import Any, NoReturn, TypeVar
from zoneinfo import ZoneInfo, available_timezones

from flask import Blueprint, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge

from cop_mail import __version__, accounts, ratelimit
from cop_mail.audience import importer, subscriptions
from cop_mail.audience import members as directory
from cop_mail.audience import segments as segment_rules
from cop_mail.audience.suppression import find_member_by_email
from cop_mail.audience.taxonomy import list_lists
from cop_mail.integrations import serialise
from cop_mail.integrations.tokens import has_scope, verify_token
from cop_mail.integrations.validation import validate
from cop_mail.models import (
    ApiToken,
    Campaign,
    CampaignKind,
    MailingList,
    Member,
    MemberStatus,
    Practice,
    Segment,
    StorySource,
    Value,
)
from cop_mail.sending import campaigns as campaign_service
from cop_mail.sending import report, transactional
from cop_mail.stories import submissions
from cop_mail.tokens import TokenError, read_link, sign_link
from cop_mail.web import openapi
from cop_mail.web.auth import client_ip
from cop_mail.web.extensions import csrf, db, redis, settings

bp = Blueprint("api", __name__, url_prefix="/api")
csrf.exempt(bp)

log = logging.getLogger("cop_mail.web.api")
F = TypeVar("F", bound=Callable[..., Any])

# Per token; an app may set API_REQUESTS_PER_MINUTE in its config.
REQUESTS_PER_MINUTE = 600
FAILED_AUTH_PER_MINUTE = 30
CURSOR_PURPOSE = "api-cursor"


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, fields: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.fields, self.headers = status, message, fields, headers or {}


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> ResponseReturnValue:
    if "db" in g:
        db().rollback()
    error: dict[str, Any] = {"code": exc.status, "message": exc.message}
    if exc.fields:
        error["fields"] = exc.fields
    return jsonify({"error": error}), exc.status, exc.headers


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(exc: RequestEntityTooLarge) -> ResponseReturnValue:
    return _api_error(ApiError(413, f"The body can be at most {openapi.MAX_BODY_BYTES // 1024} KB."))


def invalid(fields: dict[str, str], message: str = "The request has problems; see fields.") -> NoReturn:
    raise ApiError(422, message, fields)


# --- authentication, scopes, rate limits ---------------------------------------------------


def needs(*scopes: str) -> Callable[[F], F]:
    """Bearer token with every one of `scopes`; the scopes are also what the OpenAPI document lists."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = _authenticate()
            _limit(f"api-token:{token.id}", current_app.config.get("API_REQUESTS_PER_MINUTE", REQUESTS_PER_MINUTE))
            missing = [scope for scope in scopes if not has_scope(token, scope)]
            if missing:
                names = ", ".join(missing)
                raise ApiError(403, f"This token lacks the scope {names}. An owner can add it in the admin.")
            g.api_token = token
            return view(*args, **kwargs)

        wrapper.api_scopes = scopes  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def _authenticate() -> ApiToken:
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    token = verify_token(db(), secret.strip()) if scheme.lower() == "bearer" and secret.strip() else None
    if token is None:
        _limit(f"api-auth-failed:{client_ip()}", FAILED_AUTH_PER_MINUTE)
        message = "Send a valid API token as `Authorization: Bearer <token>`; tokens are made in the admin."
        raise ApiError(401, message, headers={"WWW-Authenticate": 'Bearer realm="cop-mail"'})
    db().commit()  # keeps last_used_at, before any work of the request starts
    return token


def _limit(key: str, per_minute: int) -> None:
    connection = current_app.extensions.get("cop_mail.redis")
    if connection is None:
        return
    try:
        allowed = ratelimit.hit(connection, key, per_minute, 60)
    except Exception:  # Redis down: serve the API rather than refuse everyone
        log.warning("API rate limit unavailable", exc_info=True)
        return
    if not allowed:
        raise ApiError(429, "Too many requests; wait a minute and try again.", headers={"Retry-After": "60"})


def _actor() -> str:
    token: ApiToken = g.api_token
    return f"api token #{token.id} ({token.name})"[:320]


def _audit(action: str, target: str, **detail: Any) -> None:
    accounts.audit(db(), _actor(), action, target, client_ip(), **detail)


# --- reading requests ------------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def body(schema: dict[str, Any]) -> dict[str, Any]:
    """The request's JSON object, checked against `schema`."""
    request.max_content_length = openapi.MAX_BODY_BYTES
    if request.mimetype != "application/json":
        raise ApiError(415, "Send the body as JSON with `Content-Type: application/json`.")
    raw = request.get_data(cache=False)
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"The body is not valid JSON: {exc}"[:300]) from None
    if not isinstance(value, dict):
        raise ApiError(400, "The body must be a JSON object.")
    problems = validate(schema, value)
    if problems:
        invalid(problems)
    return value


def query(schema: dict[str, Any]) -> dict[str, Any]:
    """Query parameters, converted to the schema's types and checked; unknown ones are refused."""
    properties: dict[str, Any] = schema["properties"]
    values: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name in request.args:
        given = request.args.getlist(name)
        if name not in properties:
            problems[name] = "is not a known parameter"
        elif len(given) > 1:
            problems[name] = "is given more than once"
        elif properties[name].get("type") == "integer":
            text = given[0].strip()
            if not text.lstrip("-").isdecimal() or len(text) > 12:
                problems[name] = "must be a whole number"
            else:
                values[name] = int(text)
        else:
            values[name] = given[0]
    problems.update({k: v for k, v in validate(schema, values).items() if k not in problems})
    if problems:
        invalid(problems)
    return values


def _id_or_404(value: int, what: str) -> int:
    if value > openapi.MAX_ID:
        raise ApiError(404, f"There is no {what} with that id.")
    return value


def _missing(model: Any, ids: list[int]) -> list[int]:
    if not ids:
        return []
    found = set(db().scalars(select(model.id).where(model.id.in_(ids))))
    return [i for i in ids if i not in found]


def _check_ids(data: dict[str, Any], checks: dict[str, tuple[Any, str]]) -> None:
    problems = {}
    for field, (model, words) in checks.items():
        wanted = data.get(field)
        ids = [wanted] if isinstance(wanted, int) else list(wanted or [])
        missing = _missing(model, ids)
        if missing:
            problems[field] = f"no {words} with id " + ", ".join(str(i) for i in missing)
    if problems:
        invalid(problems)


# --- cursors -----------------------------------------------------------------------------------


def _query_key(values: dict[str, Any], scope: str) -> str:
    """Binds a cursor to the query it came from, so it cannot be reused with another sort or filter."""
    plain = {k: v for k, v in values.items() if k not in ("cursor", "limit")}
    return hashlib.sha256(json.dumps([scope, plain], sort_keys=True).encode()).hexdigest()[:16]


def _read_cursor(values: dict[str, Any], scope: str) -> str | None:
    if not values.get("cursor"):
        return None
    try:
        data = read_link(settings().secret_key, CURSOR_PURPOSE, values["cursor"])
    except TokenError:
        invalid({"cursor": "is not a cursor this API gave out"})
    if not isinstance(data, dict) or data.get("q") != _query_key(values, scope) or not isinstance(data.get("c"), str):
        invalid({"cursor": "belongs to another query; start again without it"})
    return str(data["c"])


def _sign_cursor(cursor: str | None, values: dict[str, Any], scope: str) -> str | None:
    if cursor is None:
        return None
    return sign_link(settings().secret_key, CURSOR_PURPOSE, {"c": cursor, "q": _query_key(values, scope)})


def _member_page(filters: directory.MemberFilter, values: dict[str, Any], scope: str) -> dict[str, Any]:
    try:
        page = directory.search_members(
            db(),
            filters,
            sort=values.get("sort", "joined"),
            descending=values.get("order", "desc") == "desc",
            cursor=_read_cursor(values, scope),
            size=values.get("limit", 50),
        )
    except segment_rules.SegmentNotFound:
        invalid({"segment_id": "no segment with this id"})
    except segment_rules.RuleError as exc:
        raise ApiError(409, f"The segment's rules cannot be used: {exc}") from None
    return {
        "data": [serialise.member_row_json(row) for row in page.rows],
        "total": page.total,
        "next_cursor": _sign_cursor(page.next_cursor, values, scope),
        "prev_cursor": _sign_cursor(page.prev_cursor, values, scope),
    }


# --- meta ----------------------------------------------------------------------------------------


@bp.get("/")
def index() -> Any:
    return jsonify({"name": "cop-mail", "version": __version__, "openapi": "/api/openapi.json"})


@bp.get("/openapi.json")
def openapi_document() -> Any:
    return jsonify(openapi.document())


# --- members -------------------------------------------------------------------------------------

PROFILE_TEXT = ("name", "preferred_name", "location", "locale", "timezone")
TERM_CHECKS = {"value_ids": (Value, "value"), "practice_ids": (Practice, "practice")}


def _member_or_404(member_id: int) -> Member:
    member = db().get(Member, _id_or_404(member_id, "member"))
    if member is None:
        raise ApiError(404, "There is no member with that id.")
    return member


def _apply_profile(member: Member, data: dict[str, Any]) -> list[str]:
    try:
        changed = directory.update_profile(db(), member, {k: data[k] for k in PROFILE_TEXT if k in data})
    except directory.MemberEditError as exc:
        field = "locale" if "language" in str(exc) else "timezone"
        invalid({field: str(exc)})
    if any(k in data for k in ("value_ids", "practice_ids", "tags")):
        directory.set_terms(
            db(),
            member,
            data.get("value_ids", [v.id for v in member.values]),
            data.get("practice_ids", [p.id for p in member.practices]),
            data.get("tags", [t.name for t in member.tags]),
        )
        changed += [k for k in ("value_ids", "practice_ids", "tags") if k in data]
    return changed


@bp.get("/members")
@needs("members:read")
def list_members() -> Any:
    values = query(openapi.MEMBER_QUERY)
    filters = directory.MemberFilter(
        search=values.get("search", ""),
        status=values.get("status", ""),
        list_id=values.get("list_id"),
        value_id=values.get("value_id"),
        segment_id=values.get("segment_id"),
    )
    return jsonify(_member_page(filters, values, "members"))


@bp.post("/members")
@needs("members:write")
def create_member() -> Any:
    data = body(openapi.MEMBER_CREATE)
    _check_ids(data, {**TERM_CHECKS, "list_ids": (MailingList, "list")})
    existing = find_member_by_email(db(), data["email"])
    if existing is not None:
        raise ApiError(409, f"Member {existing.id} already has this address; change it with PATCH.")
    options = importer.ImportOptions(filename="the API")
    row = importer.add_one(db(), data["email"], data.get("name", ""), options, _actor())
    if row.outcome is not importer.Outcome.IMPORTED:
        if row.outcome is importer.Outcome.UPDATED:
            raise ApiError(409, "A member with this address was added meanwhile; change it with PATCH.")
        invalid({"email": row.reason or "was not added"}, f"The member was not added: {row.reason}.")
    member = find_member_by_email(db(), row.email)
    assert member is not None
    _apply_profile(member, data)
    results = [_sign_up(member, list_id) for list_id in data.get("list_ids", [])]
    _audit("api.member.create", f"member:{member.id}", lists=data.get("list_ids", []))
    db().commit()
    _send_confirmations(results)
    created = {"member": serialise.member_json(db(), member), "subscriptions": [_result_json(r) for r in results]}
    return jsonify(created), 201


@bp.get("/members/<int:member_id>")
@needs("members:read")
def get_member(member_id: int) -> Any:
    return jsonify(serialise.member_json(db(), _member_or_404(member_id)))


@bp.patch("/members/<int:member_id>")
@needs("members:write")
def update_member(member_id: int) -> Any:
    member = _member_or_404(member_id)
    data = body(openapi.MEMBER_UPDATE)
    if member.status == MemberStatus.ERASED:
        raise ApiError(409, "This member was erased; their profile cannot be edited.")
    _check_ids(data, TERM_CHECKS)
    changed = _apply_profile(member, data)
    _audit("api.member.update", f"member:{member.id}", fields=changed)
    db().commit()
    return jsonify(serialise.member_json(db(), member))


def _sign_up(member: Member, list_id: int) -> subscriptions.SignupResult:
    mailing_list = db().get(MailingList, list_id)
    if mailing_list is None:
        invalid({"list_id": "no list with this id"})
    request_ = subscriptions.SignupRequest(email=member.email, name=member.name, source="api")
    try:
        return subscriptions.sign_up(db(), mailing_list, request_)
    except subscriptions.SubscriptionError as exc:
        raise ApiError(409, str(exc)) from None


def _send_confirmations(results: list[subscriptions.SignupResult]) -> None:
    for result in results:
        if result.delivery_id is not None:
            transactional.enqueue_transactional(redis(), result.delivery_id)


def _result_json(result: subscriptions.SignupResult) -> dict[str, Any]:
    return {"list_id": result.list_id, "member_id": result.member_id, "outcome": str(result.outcome)}


@bp.post("/members/<int:member_id>/subscriptions")
@needs("members:write")
def subscribe_member(member_id: int) -> Any:
    member = _member_or_404(member_id)
    data = body(openapi.SUBSCRIBE)
    result = _sign_up(member, data["list_id"])
    _audit("api.member.subscribe", f"member:{member.id}", list_id=data["list_id"], outcome=str(result.outcome))
    db().commit()
    _send_confirmations([result])
    return jsonify(_result_json(result))


@bp.post("/members/<int:member_id>/unsubscribe")
@needs("members:write")
def unsubscribe_member(member_id: int) -> Any:
    member = _member_or_404(member_id)
    data = body(openapi.UNSUBSCRIBE)
    if "list_id" in data:
        _check_ids(data, {"list_id": (MailingList, "list")})
        changed = subscriptions.unsubscribe_list(db(), member.id, data["list_id"], source="api")
    elif "stream" in data:
        changed = subscriptions.unsubscribe_stream(db(), member.id, data["stream"], source="api")
    else:
        changed = subscriptions.unsubscribe_all(db(), member.id, source="api")
    _audit("api.member.unsubscribe", f"member:{member.id}", changed=changed, **data)
    db().commit()
    return jsonify({"changed": changed})


# --- lists and segments --------------------------------------------------------------------------


@bp.get("/lists")
@needs("lists:read")
def lists() -> Any:
    query(openapi.NO_QUERY)
    return jsonify({"data": [serialise.list_json(item, counts) for item, counts in list_lists(db())]})


@bp.get("/segments")
@needs("segments:read")
def segments() -> Any:
    query(openapi.NO_QUERY)
    rows = db().scalars(select(Segment).order_by(Segment.name))
    return jsonify({"data": [serialise.segment_json(segment) for segment in rows]})


def _segment_or_404(segment_id: int) -> Segment:
    try:
        return segment_rules.get_segment(db(), _id_or_404(segment_id, "segment"))
    except segment_rules.SegmentNotFound:
        raise ApiError(404, "There is no segment with that id.") from None


@bp.get("/segments/<int:segment_id>/count")
@needs("segments:read")
def segment_count(segment_id: int) -> Any:
    segment = _segment_or_404(segment_id)
    query(openapi.NO_QUERY)
    try:
        counts = {
            "count": segment_rules.count_segment(db(), segment.rules),
            "reachable": segment_rules.count_reachable(db(), segment.rules),
        }
    except segment_rules.RuleError as exc:
        raise ApiError(409, f"The segment's rules cannot be used: {exc}") from None
    return jsonify({"segment_id": segment.id, **counts})


@bp.get("/segments/<int:segment_id>/members")
@needs("segments:read", "members:read")
def segment_members(segment_id: int) -> Any:
    segment = _segment_or_404(segment_id)
    values = query(openapi.SEGMENT_MEMBERS_QUERY)
    return jsonify(_member_page(directory.MemberFilter(segment_id=segment.id), values, f"segment:{segment.id}"))


# --- campaigns -----------------------------------------------------------------------------------


def _campaign_or_404(campaign_id: int) -> Campaign:
    campaign = campaign_service.find_campaign(db(), _id_or_404(campaign_id, "campaign"))
    # Transactional messages are campaigns inside; they are not this API's campaigns.
    if campaign is None or campaign.kind == CampaignKind.TRANSACTIONAL:
        raise ApiError(404, "There is no campaign with that id.")
    return campaign


def _check_content(campaign: Campaign) -> None:
    """Compile now, so a template problem is the caller's 422 rather than a worker's failure."""
    from cop_mail.sending.pipeline import check_campaign

    try:
        check_campaign(settings(), campaign)
    except campaign_service.CampaignStateError as exc:
        invalid({"content": str(exc)}, f"The campaign's email cannot be sent as it is: {exc}")


@bp.post("/campaigns")
@needs("campaigns:write")
def create_campaign() -> Any:
    data = body(openapi.CAMPAIGN_CREATE)
    _check_ids(data, {"list_ids": (MailingList, "list"), "segment_ids": (Segment, "segment")})
    try:
        campaign = campaign_service.create_campaign(
            db(),
            name=data["name"],
            kind=data.get("kind", CampaignKind.NEWSLETTER),
            subject=data["subject"],
            preheader=data.get("preheader", ""),
            content=data.get("content") or {},
            list_ids=data.get("list_ids", []),
            segment_ids=data.get("segment_ids", []),
            actor=_actor(),
            resend_uncertain=data.get("resend_uncertain", False),
        )
    except campaign_service.CampaignStateError as exc:
        invalid({"name": str(exc)} if "name" in str(exc) else {"kind": str(exc)}, str(exc))
    _check_content(campaign)
    _audit("api.campaign.create", f"campaign {campaign.id}")
    db().commit()
    return jsonify(serialise.campaign_json(campaign)), 201


@bp.get("/campaigns/<int:campaign_id>")
@needs("campaigns:read")
def get_campaign(campaign_id: int) -> Any:
    return jsonify(serialise.campaign_json(_campaign_or_404(campaign_id)))


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _local_time(send_at: str, zone: str) -> datetime:
    """A wall-clock time in `zone`; a time given with an offset is first converted to that zone."""
    if zone not in _zones():
        invalid({"timezone": "is not a time zone; use a name such as Europe/Lisbon or UTC"})
    try:
        moment = datetime.fromisoformat(send_at)
        if moment.tzinfo is not None:
            moment = moment.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
        campaign_service.to_utc(moment, zone)  # an out-of-range year fails here, not in the service
    except (ValueError, OverflowError):
        invalid({"send_at": "is not a date and time such as 2026-12-01T09:00"})
    return moment


@bp.post("/campaigns/<int:campaign_id>/schedule")
@needs("campaigns:write")
def schedule_campaign(campaign_id: int) -> Any:
    campaign = _campaign_or_404(campaign_id)
    data = body(openapi.CAMPAIGN_SCHEDULE)
    zone = data.get("timezone", "UTC")
    local = _local_time(data["send_at"], zone)
    _check_content(campaign)
    try:
        campaign = campaign_service.schedule(db(), campaign.id, local, zone, _actor())
    except campaign_service.CampaignStateError as exc:
        raise ApiError(409, f"The campaign cannot be scheduled: {exc}.") from None
    _audit("api.campaign.schedule", f"campaign {campaign.id}", send_at=data["send_at"], timezone=zone)
    db().commit()
    return jsonify(serialise.campaign_json(campaign))


@bp.post("/campaigns/<int:campaign_id>/pause")
@needs("campaigns:write")
def pause_campaign(campaign_id: int) -> Any:
    campaign = _campaign_or_404(campaign_id)
    try:
        campaign = campaign_service.pause(db(), campaign.id, _actor(), "paused through the API")
    except campaign_service.CampaignStateError as exc:
        raise ApiError(409, f"The campaign cannot be paused: {exc}.") from None
    _audit("api.campaign.pause", f"campaign {campaign.id}")
    db().commit()
    return jsonify(serialise.campaign_json(campaign))


@bp.get("/campaigns/<int:campaign_id>/stats")
@needs("campaigns:read")
def campaign_stats(campaign_id: int) -> Any:
    campaign = _campaign_or_404(campaign_id)
    query(openapi.NO_QUERY)
    return jsonify(serialise.stats_json(report.progress(db(), campaign.id)))


# --- transactional messages and stories ----------------------------------------------------------


@bp.post("/messages")
@needs("messages:send")
def send_message() -> Any:
    data = body(openapi.MESSAGE_SEND)
    kind, context = data["kind"], dict(data.get("context") or {})
    builder = transactional.CONTEXT_BUILDERS.get(kind)
    if builder is None:
        invalid({"kind": "is not a message kind; known kinds: " + ", ".join(sorted(transactional.CONTEXT_BUILDERS))})
    member = db().get(Member, data["member_id"])
    if member is None:
        invalid({"member_id": "no member with this id"})
    try:
        # Build the message's context now, so ids that do not fit the kind are a 422, not a failed send later.
        builder(db(), settings(), member, context)
    except Exception as exc:  # the kinds' builders raise whatever their lookups raise
        db().rollback()
        invalid({"context": f"does not fit the kind {kind}: {exc}"[:500]})
    delivery_id = transactional.queue_transactional(db(), kind, member.id, context)
    if delivery_id is None:
        raise ApiError(409, "This member may not receive mail (bounced, complained, erased or suppressed).")
    _audit("api.message.send", f"member:{member.id}", kind=kind, delivery_id=delivery_id)
    db().commit()
    transactional.enqueue_transactional(redis(), delivery_id)
    return jsonify({"delivery_id": delivery_id, "status": "queued"}), 202


@bp.post("/stories")
@needs("stories:write")
def submit_story() -> Any:
    data = body(openapi.STORY_SUBMIT)
    member = db().get(Member, data["member_id"])
    if member is None:
        invalid({"member_id": "no member with this id"})
    story_input = submissions.StoryInput(
        title=data["title"],
        body=data["body"],
        consent=data.get("consent", "members_only"),
        value_ids=data.get("value_ids", []),
        practice_id=data.get("practice_id"),
    )
    try:
        story = submissions.submit_story(db(), settings().instance_path, member.id, story_input, source=StorySource.WEB)
    except submissions.StoryError as exc:
        invalid({"story": " ".join(exc.problems)}, " ".join(exc.problems))
    _audit("api.story.submit", f"story {story.id}", member_id=member.id)
    db().commit()
    return jsonify(serialise.story_json(story)), 201
