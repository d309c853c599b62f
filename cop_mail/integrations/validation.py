"""Checking API request bodies and queries against the JSON Schemas the OpenAPI document publishes.

Only the part of JSON Schema the API's own schemas use: type (one or a list), properties,
required, additionalProperties, const, enum, minLength/maxLength, minimum/maximum, items,
minItems/maxItems, uniqueItems, minProperties/maxProperties. Using the published schemas themselves
keeps the document and the behaviour from drifting apart.

Every string is also refused when a database could not store it (NUL characters, lone
surrogates), so such input is a 422 naming the field rather than a server error.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 8

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "null": (type(None),),
}


def _is(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[kind])


def _name(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def text_problem(value: str) -> str | None:
    if "\x00" in value:
        return "cannot contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text"
    return None


def validate(schema: dict[str, Any], value: Any, path: str = "") -> dict[str, str]:
    """Problems by field path (e.g. "list_ids[2]"); empty when the value fits the schema."""
    problems: dict[str, str] = {}
    _check(schema, value, path, problems, 0)
    return problems


def _check(schema: dict[str, Any], value: Any, path: str, problems: dict[str, str], depth: int) -> None:
    where = path or "body"
    if depth > MAX_DEPTH:
        problems[where] = f"is nested too deeply (at most {MAX_DEPTH} levels)"
        return
    kinds = schema.get("type")
    if kinds is not None:
        allowed = [kinds] if isinstance(kinds, str) else list(kinds)
        if not any(_is(value, kind) for kind in allowed):
            problems[where] = "must be " + " or ".join(_WORDS[kind] for kind in allowed)
            return
    if "const" in schema and value != schema["const"]:
        problems[where] = f"can only be {json.dumps(schema['const'])}"
        return
    if "enum" in schema and value not in schema["enum"]:
        problems[where] = "must be one of: " + ", ".join(str(choice) for choice in schema["enum"])
        return
    if isinstance(value, str):
        _check_string(schema, value, where, problems)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _check_number(schema, value, where, problems)
    elif isinstance(value, list):
        _check_array(schema, value, path, problems, depth)
    elif isinstance(value, dict):
        _check_object(schema, value, path, problems, depth)


_WORDS = {
    "object": "an object",
    "array": "a list",
    "string": "a string",
    "boolean": "true or false",
    "integer": "a whole number",
    "number": "a number",
    "null": "null",
}


def _check_string(schema: dict[str, Any], value: str, where: str, problems: dict[str, str]) -> None:
    problem = text_problem(value)
    if problem:
        problems[where] = problem
    elif len(value) < schema.get("minLength", 0):
        minimum = schema["minLength"]
        problems[where] = "cannot be empty" if minimum == 1 else f"needs at least {minimum} characters"
    elif "maxLength" in schema and len(value) > schema["maxLength"]:
        problems[where] = f"can be at most {schema['maxLength']} characters long"


def _check_number(schema: dict[str, Any], value: float, where: str, problems: dict[str, str]) -> None:
    if "minimum" in schema and value < schema["minimum"]:
        problems[where] = f"must be at least {schema['minimum']}"
    elif "maximum" in schema and value > schema["maximum"]:
        problems[where] = f"must be at most {schema['maximum']}"


def _check_array(schema: dict[str, Any], value: list[Any], path: str, problems: dict[str, str], depth: int) -> None:
    where = path or "body"
    if len(value) < schema.get("minItems", 0):
        problems[where] = f"needs at least {schema['minItems']} item(s)"
        return
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        problems[where] = f"can hold at most {schema['maxItems']} items"
        return
    items = schema.get("items", {})
    for index, item in enumerate(value):
        _check(items, item, _name(path, index), problems, depth + 1)
    if schema.get("uniqueItems") and len({repr(item) for item in value}) != len(value):
        problems.setdefault(where, "cannot hold the same item twice")


def _check_object(
    schema: dict[str, Any], value: dict[str, Any], path: str, problems: dict[str, str], depth: int
) -> None:
    where = path or "body"
    if len(value) > max(schema.get("maxProperties", 1000), 1000):
        problems[where] = "has too many fields"
        return
    properties: dict[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        name = _name(path, key)
        key_problem = text_problem(key)
        if key_problem:
            problems[where] = f"has a field name that {key_problem}"
        elif key in properties:
            _check(properties[key], item, name, problems, depth + 1)
        elif extra is False:
            problems[name] = "is not a known field"
        elif isinstance(extra, dict):
            _check(extra, item, name, problems, depth + 1)
        else:
            _check({}, item, name, problems, depth + 1)
    for key in schema.get("required", []):
        if key not in value:
            problems[_name(path, key)] = "is required"
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        problems.setdefault(where, f"can hold at most {schema['maxProperties']} field(s)")
    if len(value) < schema.get("minProperties", 0):
        problems.setdefault(where, f"needs at least {schema['minProperties']} field(s)")
