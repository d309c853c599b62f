"""Segment rule trees: validation in plain words and compilation to one SQL statement."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from cop_mail.audience.segments import (
    FIELDS,
    MAX_CONDITIONS,
    MAX_DEPTH,
    RuleError,
    describe,
    segment_member_ids_query,
    validate_rules,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NESTED = {
    "match": "all",
    "rules": [
        {"field": "value", "op": "all", "value": [3, "5"]},
        {
            "match": "any",
            "rules": [
                {"field": "connections", "op": "periphery"},
                {"field": "joined", "op": "within_days", "value": "30"},
            ],
        },
        {"field": "attribute", "key": "role", "op": "equals", "value": "Facilitator"},
        {"field": "list", "op": "not_in", "value": [1]},
    ],
}


def sql(rules, dialect) -> str:
    return str(segment_member_ids_query(rules, NOW).compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def test_a_valid_tree_is_cleaned():
    clean = validate_rules(NESTED)
    assert clean["rules"][0] == {"field": "value", "op": "all", "value": [3, 5]}
    assert clean["rules"][1]["rules"][1]["value"] == 30


@pytest.mark.parametrize("dialect", [postgresql.dialect(), sqlite.dialect()])
def test_nested_tree_compiles_to_one_select_with_exists_subqueries(dialect):
    text = sql(NESTED, dialect)
    assert text.count("SELECT members.id") == 1
    assert text.count("EXISTS") == 3  # two for "all of" two values, one for the list
    assert " OR " in text and "NOT (EXISTS" in text


def test_attribute_comparison_is_portable():
    rules = {"match": "all", "rules": [{"field": "attribute", "key": "role", "op": "equals", "value": "x"}]}
    assert "->>" in sql(rules, postgresql.dialect())
    assert "JSON_EXTRACT" in sql(rules, sqlite.dialect())


def test_an_empty_root_matches_everyone():
    assert validate_rules({"match": "all", "rules": []}) == {"match": "all", "rules": []}
    assert "WHERE" in sql({"match": "all", "rules": []}, sqlite.dialect())  # WHERE 1 = 1


def test_every_problem_is_reported_at_once_in_plain_words():
    bad = {
        "match": "xor",
        "rules": [
            {"field": "value", "op": "any", "value": []},
            {"field": "joined", "op": "before", "value": "last tuesday"},
            {"match": "all", "rules": []},
            {"field": "shoe_size", "op": "eq", "value": 42},
            {"field": "connections", "op": "gte", "value": "many"},
            {"field": "status", "op": "in", "value": ["asleep"]},
            {"field": "location", "op": "sounds_like", "value": "x"},
        ],
    }
    with pytest.raises(RuleError) as caught:
        validate_rules(bad)
    problems = caught.value.problems
    assert 'match "all" or "any"' in problems[0]
    assert "Condition 1 (Holds value): choose at least one." in problems
    assert "Condition 2 (Joined): write the date as YYYY-MM-DD." in problems
    assert "A group is empty: add a condition to it or remove it." in problems
    # Conditions are numbered as the builder shows them; groups are not counted.
    assert "Condition 3: choose what to filter on." in problems
    assert "Condition 4 (Connections): write the number as a whole number." in problems
    assert any(problem.startswith("Condition 5 (Status): choose at least one status") for problem in problems)
    assert any(problem.startswith("Condition 6 (Location): choose one of") for problem in problems)


@pytest.mark.parametrize("key", ["", "a'b", 'x"); DROP TABLE members; --', "$.x", "a" * 65])
def test_unsafe_attribute_names_are_refused(key):
    with pytest.raises(RuleError, match="name the attribute"):
        validate_rules({"match": "all", "rules": [{"field": "attribute", "key": key, "op": "exists"}]})


def test_depth_and_size_are_bounded():
    tree: dict = {"field": "connections", "op": "periphery"}
    for _ in range(MAX_DEPTH + 1):
        tree = {"match": "all", "rules": [tree]}
    with pytest.raises(RuleError, match="nested at most"):
        validate_rules(tree)
    many = {
        "match": "any",
        "rules": [{"field": "connections", "op": "eq", "value": n} for n in range(MAX_CONDITIONS + 1)],
    }
    with pytest.raises(RuleError, match="at most 100 conditions"):
        validate_rules(many)


@pytest.mark.parametrize("rules", [None, [], "all", {"rules": "x"}, 42])
def test_shapes_that_are_not_a_group_are_refused(rules):
    with pytest.raises(RuleError, match="must be a group"):
        validate_rules(rules)


def test_days_and_numbers_are_bounded():
    with pytest.raises(RuleError, match="from 0 to 36,500"):
        validate_rules({"match": "all", "rules": [{"field": "joined", "op": "within_days", "value": -1}]})


def test_every_field_and_operation_compiles():
    values = {"ids": [1], "statuses": ["active"], "date": "2026-01-01", "days": 7, "number": 2, "text": "pt"}
    for field, spec in FIELDS.items():
        for op, kind in spec.kinds.items():
            rule = {"field": field, "op": op}
            if kind != "none":
                rule["value"] = values[kind]
            if field == "attribute":
                rule["key"] = "role"
            for dialect in (postgresql.dialect(), sqlite.dialect()):
                assert "SELECT members.id" in sql({"match": "all", "rules": [rule]}, dialect), (field, op)


def test_description_reads_like_the_builder():
    text = describe(NESTED, {"value": {3: "Care", 5: "Joy"}, "list": {1: "Newsletter"}})
    assert text.startswith("Holds value all of Care, Joy AND (Connections 0 or 1")
    assert "Joined in the last 30 days" in text
    assert "Subscribed to list none of Newsletter" in text
    assert describe({"match": "all", "rules": []}) == "Every member"
