"""The OpenAPI document tells the truth: every /api/ route of the app is documented with the
scopes its view demands, nothing documented is missing from the app, the document is valid
OpenAPI 3.1, and the validator the API uses agrees with JSON Schema on the published schemas."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from cop_mail.integrations.validation import validate
from cop_mail.web import openapi

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, item in document["paths"].items() for method in item}


def routed(app: Any) -> dict[tuple[str, str], Any]:
    found = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods & METHODS:
            found[(path, method)] = app.view_functions[rule.endpoint]
    return found


def test_every_api_route_is_documented_and_nothing_else(app):
    document = app.test_client().get("/api/openapi.json").get_json()
    assert set(routed(app)) == documented(document)


def test_documented_scopes_are_the_scopes_each_view_demands(app):
    document = openapi.document()
    for (path, method), view in routed(app).items():
        operation = document["paths"][path][method.lower()]
        wanted = list(getattr(view, "api_scopes", ()))
        if wanted:
            assert operation["security"] == [{"bearer": wanted}], (path, method)
            assert {"401", "403", "429"} <= set(operation["responses"]), (path, method)
        elif view.__module__ == "cop_mail.web.api":
            assert operation["security"] == [], (path, method)
        else:  # another blueprint's endpoint under /api/ (public signup, inbound mail): no API token
            assert all("bearer" not in requirement for requirement in operation["security"]), (path, method)
        if "{" in path:
            assert "404" in operation["responses"], (path, method)
        if "requestBody" in operation and view.__module__ == "cop_mail.web.api":
            assert {"400", "413", "415", "422"} <= set(operation["responses"]), (path, method)


def test_the_document_is_valid_openapi_3_1_and_every_reference_resolves():
    document = json.loads(json.dumps(openapi.document()))
    assert OPENAPI_31_VALIDATOR.is_valid(document)
    text = json.dumps(document)
    for name in re.findall(r'"#/components/(?:schemas|responses)/([A-Za-z]+)"', text):
        assert name in document["components"]["schemas"] or name in document["components"]["responses"]
    for schema in document["components"]["schemas"].values():
        jsonschema_rs.meta.validate(schema)
    operation_ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))


BODIES = {
    "MEMBER_CREATE": openapi.MEMBER_CREATE,
    "MEMBER_UPDATE": openapi.MEMBER_UPDATE,
    "UNSUBSCRIBE": openapi.UNSUBSCRIBE,
    "CAMPAIGN_CREATE": openapi.CAMPAIGN_CREATE,
    "CAMPAIGN_SCHEDULE": openapi.CAMPAIGN_SCHEDULE,
    "MESSAGE_SEND": openapi.MESSAGE_SEND,
    "STORY_SUBMIT": openapi.STORY_SUBMIT,
}
# Text without NUL and lone surrogates: those the API refuses on purpose, beyond JSON Schema.
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=30)
SCALARS = st.none() | st.booleans() | st.integers(min_value=-(2**40), max_value=2**40) | TEXT
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12
)


def near(schema: dict[str, Any]) -> Any:
    """Values that mostly fit `schema`, and sometimes any JSON at all."""
    good = fitting(schema)
    return st.integers(0, 9).flatmap(lambda n: JSON if n == 9 else good)


def fitting(schema: dict[str, Any]) -> Any:
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kinds = schema.get("type", "string")
    if isinstance(kinds, list):
        return st.one_of([fitting({**schema, "type": kind}) for kind in kinds])
    if kinds == "integer":
        return st.integers(schema.get("minimum", -(2**31)), schema.get("maximum", 2**31))
    if kinds == "boolean":
        return st.booleans()
    if kinds == "null":
        return st.none()
    if kinds == "array":
        return (
            st.lists(near(schema.get("items", {})), max_size=min(schema.get("maxItems", 5), 5), unique_by=repr)
            if schema.get("uniqueItems")
            else st.lists(near(schema.get("items", {})), max_size=5)
        )
    if kinds == "object":
        return bodies_for(schema) if schema.get("properties") else st.dictionaries(TEXT, JSON, max_size=4)
    return st.text(
        st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
        min_size=schema.get("minLength", 0),
        max_size=min(schema.get("maxLength", 30), 30),
    )


def bodies_for(schema: dict[str, Any]) -> Any:
    """Objects with the required fields most of the time, any of the others, and now and then a stranger."""
    properties = schema["properties"]
    required = {name: near(properties[name]) for name in schema.get("required", [])}
    optional = {name: near(prop) for name, prop in properties.items() if name not in required}
    known = st.fixed_dictionaries(required, optional=optional)
    stranger = st.fixed_dictionaries(required, optional={**optional, "unknown": JSON})
    anything = st.dictionaries(st.sampled_from([*properties, "unknown"]), JSON)
    return st.integers(0, 9).flatmap(lambda n: anything if n == 9 else stranger if n == 8 else known)


@pytest.mark.parametrize("name", sorted(BODIES))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(data=st.data())
def test_the_api_validator_agrees_with_json_schema(name: str, data: Any) -> None:
    schema = BODIES[name]
    value = data.draw(bodies_for(schema))
    expected = jsonschema_rs.Draft202012Validator(schema).is_valid(value)
    assert (validate(schema, value) == {}) == expected, (name, value, validate(schema, value))
