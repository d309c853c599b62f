"""The OpenAPI 3.1 document of the JSON API, as data.

The request schemas here are the ones the API validates with (cop_mail.integrations.validation),
so the document and the behaviour cannot drift apart; a test walks every /api/ route of the
app and checks that it is documented, and that everything documented exists.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from cop_mail import __version__
from cop_mail.integrations.tokens import SCOPES
from cop_mail.models import CampaignKind, CampaignStatus, DeliveryStatus, MemberStatus, StoryConsent, StoryStatus

MAX_ID = 2**31 - 1
MAX_BODY_BYTES = 1024 * 1024

Schema = dict[str, Any]

ID: Schema = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
IDS: Schema = {"type": "array", "items": ID, "maxItems": 100, "uniqueItems": True}
TEXT_200: Schema = {"type": "string", "maxLength": 200}
STREAMS = ["newsletters", "intros", "roundups", "resources"]
CAMPAIGN_KINDS = [kind.value for kind in CampaignKind if kind is not CampaignKind.TRANSACTIONAL]
MEMBER_SORTS = ["joined", "email", "name", "engaged", "connections"]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    copy = deepcopy(schema)
    if "$ref" in copy:
        return {"oneOf": [copy, {"type": "null"}]}
    kinds = copy.get("type", [])
    copy["type"] = [*([kinds] if isinstance(kinds, str) else list(kinds)), "null"]
    return copy


def obj(properties: dict[str, Schema], required: tuple[str, ...] = (), closed: bool = True, **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


# --- request bodies and queries (validated against by the API) -------------------------------

PROFILE: dict[str, Schema] = {
    "name": TEXT_200,
    "preferred_name": TEXT_200,
    "location": TEXT_200,
    "locale": {"type": "string", "maxLength": 20, "description": "A language code such as en, pt or pt-BR."},
    "timezone": {"type": "string", "maxLength": 64, "description": "An IANA time zone such as Europe/Lisbon."},
    "value_ids": {**IDS, "description": "The values the member holds (replaces the current ones)."},
    "practice_ids": {**IDS, "description": "The member's practices (replaces the current ones)."},
    "tags": {
        "type": "array",
        "items": {"type": "string", "minLength": 1, "maxLength": 100},
        "maxItems": 50,
        "description": "Tag names (replaces the current ones); new names are created.",
    },
}

MEMBER_CREATE = obj(
    {
        "email": {"type": "string", "minLength": 1, "maxLength": 320, "format": "email"},
        **PROFILE,
        "list_ids": {
            **IDS,
            "maxItems": 20,
            "description": "Lists to sign the new member up to, each by its own opt-in rule "
            "(a double opt-in list sends a confirmation email).",
        },
    },
    required=("email",),
)
MEMBER_UPDATE = obj(dict(PROFILE))
SUBSCRIBE = obj({"list_id": ID}, required=("list_id",))
UNSUBSCRIBE = obj(
    {
        "list_id": ID,
        "stream": {"type": "string", "enum": STREAMS},
        "everything": {"type": "boolean", "const": True},
    },
    minProperties=1,
    maxProperties=1,
    description="Exactly one of: a list, a stream, or everything.",
)
CAMPAIGN_CREATE = obj(
    {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "kind": {"type": "string", "enum": CAMPAIGN_KINDS, "default": "newsletter"},
        "subject": {"type": "string", "maxLength": 500},
        "preheader": {"type": "string", "maxLength": 500},
        "content": {
            "type": "object",
            "maxProperties": 50,
            "description": "What the kind's template needs, e.g. for a message: template, heading, body (Markdown).",
        },
        "list_ids": {**IDS, "maxItems": 50},
        "segment_ids": {**IDS, "maxItems": 50},
        "resend_uncertain": {"type": "boolean"},
    },
    required=("name", "subject"),
)
CAMPAIGN_SCHEDULE = obj(
    {
        "send_at": {
            "type": "string",
            "minLength": 1,
            "maxLength": 40,
            "description": "Local date and time in `timezone`, e.g. 2026-12-01T09:00. "
            "A time with an offset is first converted to that zone.",
        },
        "timezone": {"type": "string", "minLength": 1, "maxLength": 64, "default": "UTC"},
    },
    required=("send_at",),
)
MESSAGE_SEND = obj(
    {
        "member_id": ID,
        "kind": {
            "type": "string",
            "minLength": 1,
            "maxLength": 50,
            "description": "A transactional message kind, e.g. manage_link; a 422 for an unknown kind lists them.",
        },
        "context": {
            "type": "object",
            "maxProperties": 20,
            "additionalProperties": {"type": ["string", "integer", "boolean", "null"], "maxLength": 1000},
            "description": "Ids and short strings the kind needs (see the kind's documentation).",
        },
    },
    required=("member_id", "kind"),
)
STORY_SUBMIT = obj(
    {
        "member_id": ID,
        "title": {"type": "string", "minLength": 1, "maxLength": 200},
        "body": {"type": "string", "minLength": 1, "maxLength": 50_000, "description": "Markdown."},
        "consent": {"type": "string", "enum": [c.value for c in StoryConsent], "default": "members_only"},
        "value_ids": {**IDS, "maxItems": 20},
        "practice_id": nullable(ID),
    },
    required=("member_id", "title", "body"),
)

PAGE_QUERY: dict[str, Schema] = {
    "cursor": {"type": "string", "maxLength": 500, "description": "From next_cursor or prev_cursor."},
    "limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
}
MEMBER_QUERY = obj(
    {
        "search": {"type": "string", "maxLength": 200, "description": "Part of the address or the name."},
        "status": {"type": "string", "enum": [s.value for s in MemberStatus]},
        "list_id": ID,
        "value_id": ID,
        "segment_id": ID,
        "sort": {"type": "string", "enum": MEMBER_SORTS, "default": "joined"},
        "order": {"type": "string", "enum": ["asc", "desc"], "default": "desc"},
        **PAGE_QUERY,
    }
)
SEGMENT_MEMBERS_QUERY = obj(dict(PAGE_QUERY))
NO_QUERY = obj({})

# --- response bodies ---------------------------------------------------------------------------

TERM = obj({"id": ID, "name": {"type": "string"}}, required=("id", "name"))
TIME = nullable({"type": "string", "format": "date-time"})

SCHEMAS: dict[str, Schema] = {
    "Error": obj(
        {
            "error": obj(
                {
                    "code": {"type": "integer", "description": "The HTTP status code."},
                    "message": {"type": "string"},
                    "fields": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "description": 'Problems by field, e.g. {"email": "is required"}.',
                    },
                },
                required=("code", "message"),
            )
        },
        required=("error",),
    ),
    "MemberSummary": obj(
        {
            "id": ID,
            "email": {"type": "string"},
            "name": {"type": "string"},
            "preferred_name": {"type": "string"},
            "status": {"type": "string", "enum": [s.value for s in MemberStatus]},
            "location": {"type": "string"},
            "joined_at": {"type": "string", "format": "date-time"},
            "last_engaged_at": TIME,
            "connections_count": {"type": "integer"},
        },
        required=("id", "email", "status"),
    ),
    "Member": obj(
        {
            "id": ID,
            "email": {"type": "string"},
            "name": {"type": "string"},
            "preferred_name": {"type": "string"},
            "status": {"type": "string", "enum": [s.value for s in MemberStatus]},
            "locale": {"type": "string"},
            "timezone": {"type": "string"},
            "location": {"type": "string"},
            "attributes": {"type": "object"},
            "joined_at": {"type": "string", "format": "date-time"},
            "last_engaged_at": TIME,
            "connections_count": {"type": "integer"},
            "streams": obj({stream: {"type": "boolean"} for stream in STREAMS}, required=tuple(STREAMS)),
            "intro_cadence_weeks": nullable({"type": "integer"}),
            "paused_until": TIME,
            "values": {"type": "array", "items": TERM},
            "practices": {"type": "array", "items": TERM},
            "tags": {"type": "array", "items": {"type": "string"}},
            "lists": {
                "type": "array",
                "items": obj(
                    {"id": ID, "name": {"type": "string"}, "status": {"type": "string"}},
                    required=("id", "name", "status"),
                ),
            },
        },
        required=("id", "email", "status", "streams", "values", "practices", "tags", "lists"),
    ),
    "MemberPage": obj(
        {
            "data": {"type": "array", "items": ref("MemberSummary")},
            "total": {"type": "integer", "minimum": 0},
            "next_cursor": nullable({"type": "string"}),
            "prev_cursor": nullable({"type": "string"}),
        },
        required=("data", "total", "next_cursor", "prev_cursor"),
    ),
    "MemberCreated": obj(
        {
            "member": ref("Member"),
            "subscriptions": {"type": "array", "items": ref("Subscription")},
        },
        required=("member", "subscriptions"),
    ),
    "Subscription": obj(
        {
            "list_id": ID,
            "member_id": nullable(ID),
            "outcome": {
                "type": "string",
                "enum": ["subscribed", "confirmation_sent", "confirmation_throttled", "already_subscribed", "refused"],
            },
        },
        required=("list_id", "outcome"),
    ),
    "Unsubscribed": obj({"changed": {"type": "boolean"}}, required=("changed",)),
    "List": obj(
        {
            "id": ID,
            "name": {"type": "string"},
            "slug": {"type": "string"},
            "description": {"type": "string"},
            "opt_in": {"type": "string", "enum": ["single", "double"]},
            "public": {"type": "boolean"},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
        required=("id", "name", "slug", "opt_in", "public", "counts"),
    ),
    "Segment": obj(
        {
            "id": ID,
            "name": {"type": "string"},
            "description": {"type": "string"},
            "rules": {"type": "object"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
        },
        required=("id", "name", "rules"),
    ),
    "SegmentCount": obj(
        {
            "segment_id": ID,
            "count": {"type": "integer", "minimum": 0, "description": "Every member the rules match."},
            "reachable": {"type": "integer", "minimum": 0, "description": "Of them, active and not suppressed."},
        },
        required=("segment_id", "count", "reachable"),
    ),
    "Campaign": obj(
        {
            "id": ID,
            "name": {"type": "string"},
            "kind": {"type": "string"},
            "subject": {"type": "string"},
            "preheader": {"type": "string"},
            "status": {"type": "string", "enum": [s.value for s in CampaignStatus]},
            "content": {"type": "object"},
            "list_ids": {"type": "array", "items": {"type": "integer"}},
            "segment_ids": {"type": "array", "items": {"type": "integer"}},
            "scheduled_at": TIME,
            "schedule_timezone": {"type": "string"},
            "paused_reason": {"type": "string"},
            "created_by": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": TIME,
            "finished_at": TIME,
        },
        required=("id", "name", "kind", "status"),
    ),
    "CampaignStats": obj(
        {
            "campaign_id": ID,
            "name": {"type": "string"},
            "status": {"type": "string"},
            "paused_reason": {"type": "string"},
            "total": {"type": "integer"},
            **{status.value: {"type": "integer"} for status in DeliveryStatus},
            "remaining": {"type": "integer"},
            "percent": {"type": "number"},
            "rate_per_second": {"type": "number"},
            "eta_seconds": nullable({"type": "number"}),
            "planned": {"type": "boolean"},
        },
        required=("campaign_id", "status", "total", "remaining", "percent"),
    ),
    "MessageQueued": obj(
        {"delivery_id": ID, "status": {"type": "string", "enum": ["queued"]}},
        required=("delivery_id", "status"),
    ),
    "Story": obj(
        {
            "id": ID,
            "member_id": ID,
            "title": {"type": "string"},
            "status": {"type": "string", "enum": [s.value for s in StoryStatus]},
            "consent": {"type": "string", "enum": [c.value for c in StoryConsent]},
            "source": {"type": "string"},
            "values": {"type": "array", "items": TERM},
            "practice_id": nullable(ID),
            "submitted_at": TIME,
        },
        required=("id", "member_id", "title", "status", "consent"),
    ),
    "Index": obj(
        {"name": {"type": "string"}, "version": {"type": "string"}, "openapi": {"type": "string"}},
        required=("name", "version"),
    ),
}

ERRORS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "The body is not valid JSON, or not a JSON object."),
    401: ("Unauthorized", "No bearer token, or a token that is unknown or revoked."),
    403: ("Forbidden", "The token lacks a scope this operation needs; the message names it."),
    404: ("NotFound", "Nothing with that id."),
    409: ("Conflict", "The resource's current state does not allow the change; the message says why."),
    413: ("TooLarge", f"The body is larger than {MAX_BODY_BYTES // 1024} KB."),
    415: ("UnsupportedType", "The body is not sent as application/json."),
    422: ("Unprocessable", "The request does not fit the schema or the data; `fields` names each problem."),
    429: ("TooManyRequests", "Too many requests for this token; wait a minute."),
}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def query_parameters(schema: Schema) -> list[Schema]:
    return [
        {"name": name, "in": "query", "required": False, "schema": deepcopy(prop)}
        | ({"description": prop["description"]} if "description" in prop else {})
        for name, prop in schema["properties"].items()
    ]


def path_parameter(name: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": dict(ID)}


def operation(
    operation_id: str,
    summary: str,
    tag: str,
    ok: tuple[int, Schema, str],
    *,
    scopes: tuple[str, ...] = (),
    path: tuple[str, ...] = (),
    query: Schema | None = None,
    body: Schema | None = None,
    errors: tuple[int, ...] = (),
) -> Schema:
    codes = set(errors)
    if scopes:
        codes |= {401, 403, 429}
    if path:
        codes.add(404)
    if query is not None and query["properties"]:
        codes.add(422)
    if body is not None:
        codes |= {400, 413, 415, 422}
    status, schema, description = ok
    result: Schema = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "parameters": [path_parameter(name) for name in path] + (query_parameters(query) if query else []),
        "responses": {
            str(status): _json(schema, description),
            **{str(code): {"$ref": f"#/components/responses/{ERRORS[code][0]}"} for code in sorted(codes)},
        },
    }
    if scopes:
        result["security"] = [{"bearer": list(scopes)}]
        result["description"] = "Needs the scope(s): " + ", ".join(f"`{scope}`" for scope in scopes) + "."
    else:
        result["security"] = []
    if body is not None:
        result["requestBody"] = {"required": True, "content": {"application/json": {"schema": deepcopy(body)}}}
    return result


def _paths() -> dict[str, Any]:
    member_path = ("member_id",)
    campaign_path = ("campaign_id",)
    return {
        "/api/": {"get": operation("getIndex", "Name and version of the API", "meta", (200, ref("Index"), "About"))},
        "/api/openapi.json": {
            "get": operation("getOpenApi", "This document", "meta", (200, {"type": "object"}, "OpenAPI 3.1"))
        },
        "/api/members": {
            "get": operation(
                "listMembers",
                "Members, filtered and sorted, a page at a time",
                "members",
                (200, ref("MemberPage"), "A page of members"),
                scopes=("members:read",),
                query=MEMBER_QUERY,
                errors=(409,),
            ),
            "post": operation(
                "createMember",
                "Add a member (under the same rules as an import: suppressed or role addresses are refused)",
                "members",
                (201, ref("MemberCreated"), "The new member"),
                scopes=("members:write",),
                body=MEMBER_CREATE,
                errors=(409,),
            ),
        },
        "/api/members/{member_id}": {
            "get": operation(
                "getMember",
                "One member",
                "members",
                (200, ref("Member"), "The member"),
                scopes=("members:read",),
                path=member_path,
            ),
            "patch": operation(
                "updateMember",
                "Change a member's profile, values, practices or tags",
                "members",
                (200, ref("Member"), "The member as saved"),
                scopes=("members:write",),
                path=member_path,
                body=MEMBER_UPDATE,
                errors=(409,),
            ),
        },
        "/api/members/{member_id}/subscriptions": {
            "post": operation(
                "subscribeMember",
                "Sign a member up to a list (a double opt-in list sends a confirmation email)",
                "members",
                (200, ref("Subscription"), "What happened"),
                scopes=("members:write",),
                path=member_path,
                body=SUBSCRIBE,
            )
        },
        "/api/members/{member_id}/unsubscribe": {
            "post": operation(
                "unsubscribeMember",
                "Unsubscribe a member from a list, a stream, or everything",
                "members",
                (200, ref("Unsubscribed"), "Whether anything changed"),
                scopes=("members:write",),
                path=member_path,
                body=UNSUBSCRIBE,
            )
        },
        "/api/lists": {
            "get": operation(
                "listLists",
                "Every list with its membership counts",
                "lists",
                (200, obj({"data": {"type": "array", "items": ref("List")}}, required=("data",)), "Lists"),
                scopes=("lists:read",),
            )
        },
        "/api/segments": {
            "get": operation(
                "listSegments",
                "Every saved segment",
                "segments",
                (200, obj({"data": {"type": "array", "items": ref("Segment")}}, required=("data",)), "Segments"),
                scopes=("segments:read",),
            )
        },
        "/api/segments/{segment_id}/count": {
            "get": operation(
                "countSegment",
                "How many members a segment matches now",
                "segments",
                (200, ref("SegmentCount"), "Counts"),
                scopes=("segments:read",),
                path=("segment_id",),
                errors=(409,),
            )
        },
        "/api/segments/{segment_id}/members": {
            "get": operation(
                "segmentMembers",
                "The members a segment matches now, a page at a time",
                "segments",
                (200, ref("MemberPage"), "A page of members"),
                scopes=("segments:read", "members:read"),
                path=("segment_id",),
                query=SEGMENT_MEMBERS_QUERY,
                errors=(409,),
            )
        },
        "/api/campaigns": {
            "post": operation(
                "createCampaign",
                "Create a draft campaign (its content is compiled and checked at once)",
                "campaigns",
                (201, ref("Campaign"), "The draft"),
                scopes=("campaigns:write",),
                body=CAMPAIGN_CREATE,
            )
        },
        "/api/campaigns/{campaign_id}": {
            "get": operation(
                "getCampaign",
                "One campaign",
                "campaigns",
                (200, ref("Campaign"), "The campaign"),
                scopes=("campaigns:read",),
                path=campaign_path,
            )
        },
        "/api/campaigns/{campaign_id}/schedule": {
            "post": operation(
                "scheduleCampaign",
                "Schedule a campaign for a local time in a time zone",
                "campaigns",
                (200, ref("Campaign"), "The scheduled campaign"),
                scopes=("campaigns:write",),
                path=campaign_path,
                body=CAMPAIGN_SCHEDULE,
                errors=(409,),
            )
        },
        "/api/campaigns/{campaign_id}/pause": {
            "post": operation(
                "pauseCampaign",
                "Pause a sending campaign: no new message leaves until it is resumed",
                "campaigns",
                (200, ref("Campaign"), "The paused campaign"),
                scopes=("campaigns:write",),
                path=campaign_path,
                errors=(409,),
            )
        },
        "/api/campaigns/{campaign_id}/stats": {
            "get": operation(
                "campaignStats",
                "Sending progress: counts by delivery status, rate and time left",
                "campaigns",
                (200, ref("CampaignStats"), "Progress"),
                scopes=("campaigns:read",),
                path=campaign_path,
            )
        },
        "/api/messages": {
            "post": operation(
                "sendMessage",
                "Send one transactional message of a kind to one member",
                "messages",
                (202, ref("MessageQueued"), "Recorded and queued for sending"),
                scopes=("messages:send",),
                body=MESSAGE_SEND,
                errors=(409,),
            )
        },
        "/api/signup/{slug}": {"post": _signup_operation()},
        "/api/inbound/raw": {"post": _inbound_operation()},
        "/api/stories": {
            "post": operation(
                "submitStory",
                "Submit a story on a member's behalf; it waits for a coordinator",
                "stories",
                (201, ref("Story"), "The submitted story"),
                scopes=("stories:write",),
                body=STORY_SUBMIT,
            )
        },
    }


def _signup_operation() -> Schema:
    """The public signup endpoint (cop_mail.web.members_public): no token, rate limited per address."""
    body = obj(
        {
            "email": {"type": "string", "maxLength": 320},
            "name": {"type": "string", "maxLength": 200},
            "values": {"type": "array", "items": ID, "maxItems": 50, "description": "Ids of values held."},
            "practices": {"type": "array", "items": ID, "maxItems": 50, "description": "Ids of practices."},
        },
        required=("email",),
        closed=False,
    )
    done = obj(
        {"ok": {"type": "boolean"}, "confirmation_required": {"type": "boolean"}, "message": {"type": "string"}},
        required=("ok", "confirmation_required", "message"),
    )
    result = operation(
        "publicSignup",
        "Sign up to a public list from another site (double opt-in lists send a confirmation email)",
        "public",
        (200, done, "Thank-you message; the same whatever the address's history"),
        errors=(400, 404, 429),
    )
    result["parameters"] = [{"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}}]
    result["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return result


def _inbound_operation() -> Schema:
    """Raw MIME from a mail provider's webhook (cop_mail.web.inbound_webhook); 404 while no secret is set."""
    received = obj(
        {"id": ID, "status": {"type": "string", "enum": ["received"]}},
        required=("id", "status"),
    )
    result = operation(
        "receiveInbound",
        "Hand over one raw email received by a provider, as if it had arrived over SMTP",
        "inbound",
        (202, received, "Stored; processing is queued"),
        errors=(400, 401, 404, 413),
    )
    result["security"] = [{"inboundSecret": []}]
    result["description"] = "Authenticated with the INBOUND_WEBHOOK_SECRET setting as a bearer token."
    result["parameters"] = [
        {"name": "from", "in": "query", "required": False, "schema": {"type": "string"}},
        {"name": "to", "in": "query", "required": False, "schema": {"type": "array", "items": {"type": "string"}}},
    ]
    result["requestBody"] = {
        "required": True,
        "content": {"message/rfc822": {"schema": {"type": "string", "contentMediaType": "message/rfc822"}}},
    }
    return result


def document() -> dict[str, Any]:
    """A fresh copy of the whole document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cop-mail API",
            "version": __version__,
            "description": "Members, lists, segments, campaigns, transactional messages and stories. "
            "Authenticate with `Authorization: Bearer <token>`; tokens and their scopes are made in the "
            "admin under Integrations. Errors always have the shape "
            '`{"error": {"code": <HTTP status>, "message": "...", "fields": {...}}}`.',
        },
        "servers": [{"url": "/"}],
        "paths": _paths(),
        "components": {
            "schemas": deepcopy(SCHEMAS),
            "responses": {
                name: _json(ref("Error"), description) for code, (name, description) in sorted(ERRORS.items())
            },
            "securitySchemes": {
                "inboundSecret": {"type": "http", "scheme": "bearer", "description": "INBOUND_WEBHOOK_SECRET"},
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Scopes: " + "; ".join(f"`{scope}`: {words}" for scope, words in SCOPES.items()),
                },
            },
        },
    }
