"""The segment builder without JavaScript (form round trips), its JSON preview, saving by
name, export and deletion, with roles and CSRF."""

from __future__ import annotations

import csv
import io
import json
import re

from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from cop_mail.models import AuditEvent, Member, Segment, Suppression, Value
from cop_mail.tokens import address_hash
from cop_mail.web.admin.segments import apply_action, form_from_tree, tree_from_form
from tests.conftest import csrf_token_from

HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
SELECTED = re.compile(r'<select name="([^"]+)"[^>]*>(.*?)</select>', re.S)
OPTION = re.compile(r'<option value="([^"]*)" selected>')
INPUT = re.compile(r'<input (?:type="date" |type="number" min="0" )?name="((?:value|key)-[^"]+)" value="([^"]*)"')


def form_of(html: str) -> MultiDict:
    """What a browser without JavaScript would post back from the builder page."""
    builder = html.split('id="segment-form"', 1)[1].split("</form>", 1)[0]
    form = MultiDict(HIDDEN.findall(builder))
    for name, options in SELECTED.findall(builder):
        for value in OPTION.findall(options):
            form.add(name, value)
    for name, value in INPUT.findall(builder):
        form.add(name, value)
    form["name"] = re.search(r'id="name" name="name" maxlength="200" value="([^"]*)"', builder).group(1)
    return form


def post(client, url, form: MultiDict, **changes):
    data = form.copy()
    for key, value in changes.items():
        data.setlist(key, value if isinstance(value, list) else [value])
    return client.post(url, data=data)


def seed(db):
    care = Value(name="Care")
    db.add_all([
        care,
        Member(email="ana@example.org", name="Ana", values=[care], connections_count=0),
        Member(email="ben@example.org", name="Ben", connections_count=4),
        Member(email="eve@example.org", name="Eve", values=[care], connections_count=1),
    ])  # fmt: skip
    db.add(Suppression(email_hash=address_hash("eve@example.org"), reason="bounced"))
    db.commit()
    return care


def test_the_form_encoding_round_trips_a_nested_tree():
    tree = {"match": "any", "rules": [
        {"field": "value", "op": "all", "value": ["1", "2"]},
        {"match": "all", "rules": [{"field": "attribute", "key": "role", "op": "equals", "value": "host"},
                                   {"field": "connections", "op": "periphery"}]},
    ]}  # fmt: skip
    assert tree_from_form(form_from_tree(tree)) == tree
    added = apply_action(tree_from_form(form_from_tree(tree)), "add-condition:0.1")
    assert len(added["rules"][1]["rules"]) == 3
    removed = apply_action(added, "remove:0.1.0")
    assert removed["rules"][1]["rules"][0] == {"field": "connections", "op": "periphery"}
    assert apply_action(removed, "remove:0")["rules"] == removed["rules"]  # the root stays
    assert apply_action(removed, "remove:0.9.9") == removed


def test_building_a_segment_without_javascript(client, login, db):
    care = seed(db)
    login("coordinator")
    page = client.get("/admin/segments/new").get_data(as_text=True)
    assert "segments.js" in page and "Add a group" in page
    # choose Care in the first condition and ask for the count
    form = form_of(page)
    response = post(client, "/admin/segments/builder", form, **{"value-0.0": str(care.id), "action": "preview"})
    html = response.get_data(as_text=True)
    assert '<span class="count" data-count>2</span> members match' in html
    assert "<strong data-reachable>1</strong> of them can receive mail" in html
    assert "ana@example.org" in html and "ben@example.org" not in html

    # add a group, make it "Connections 0 or 1" by changing the field (the choices follow)
    html = post(client, "/admin/segments/builder", form_of(html), action="add-group:0").get_data(as_text=True)
    assert 'name="field-0.1.0"' in html
    html = post(
        client, "/admin/segments/builder", form_of(html), **{"field-0.1.0": "connections", "action": "preview"}
    ).get_data(as_text=True)
    assert '<option value="periphery" selected>0 or 1 (the periphery)</option>' in html
    html = post(client, "/admin/segments/builder", form_of(html), action="preview").get_data(as_text=True)
    assert "Holds value any of Care AND Connections 0 or 1 (the periphery)" in html

    saved = post(client, "/admin/segments/save", form_of(html), name="Care on the periphery")
    assert saved.status_code == 302
    segment = db.scalar(select(Segment))
    assert segment.name == "Care on the periphery"
    assert segment.rules == {"match": "all", "rules": [
        {"field": "value", "op": "any", "value": [care.id]},
        {"match": "any", "rules": [{"field": "connections", "op": "periphery"}]},
    ]}  # fmt: skip
    listing = client.get("/admin/segments").get_data(as_text=True)
    assert "Care on the periphery" in listing and f'href="/admin/members?segment={segment.id}">2</a>' in listing
    audit = db.scalar(select(AuditEvent).where(AuditEvent.action == "segment.create"))
    assert audit.target == "Care on the periphery"


def test_problems_are_shown_in_plain_words_and_nothing_is_saved(client, login, db):
    seed(db)
    login("coordinator")
    form = form_of(client.get("/admin/segments/new").get_data(as_text=True))
    response = post(client, "/admin/segments/save", form, name="")
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Give the segment a name." in html and "Condition 1 (Holds value): choose at least one." in html
    assert db.scalar(select(Segment)) is None


def test_rules_pasted_as_json(client, login, db):
    seed(db)
    login("viewer")
    form = form_of(client.get("/admin/segments/new").get_data(as_text=True))
    rules = {"match": "all", "rules": [{"field": "connections", "op": "gte", "value": 3}]}
    html = post(client, "/admin/segments/builder", form, rules_json=json.dumps(rules), action="json").get_data(
        as_text=True
    )
    assert '<span class="count" data-count>1</span>' in html and "ben@example.org" in html
    broken = post(client, "/admin/segments/builder", form, rules_json="{nope", action="json").get_data(as_text=True)
    assert "not valid JSON" in broken
    odd = post(client, "/admin/segments/builder", form, rules_json='[1, {"x": 2}]', action="json")
    assert odd.status_code == 200  # any shape becomes an empty builder, never a 500


def test_live_preview_endpoint(client, login, db):
    care = seed(db)
    login("viewer")
    csrf = csrf_token_from(client.get("/admin/segments/new").get_data(as_text=True))
    rules = {"match": "all", "rules": [{"field": "value", "op": "any", "value": [care.id]}]}
    response = client.post("/admin/segments/preview.json", json=rules, headers={"X-CSRFToken": csrf})
    data = response.get_json()
    assert (data["ok"], data["count"], data["reachable"]) == (True, 2, 1)
    assert sorted(row["email"] for row in data["sample"]) == ["ana@example.org", "eve@example.org"]
    assert data["sample"][0]["url"].startswith("/admin/members/")
    undated = {"match": "all", "rules": [{"field": "joined", "op": "before"}]}
    bad = client.post("/admin/segments/preview.json", json=undated, headers={"X-CSRFToken": csrf}).get_json()
    assert bad == {"ok": False, "problems": ["Condition 1 (Joined): write the date as YYYY-MM-DD."]}
    assert client.post("/admin/segments/preview.json", json=rules).status_code == 400  # no CSRF token


def test_roles_export_and_delete(client, login, db):
    care = seed(db)
    db.add(Segment(name="Care", rules={"match": "all", "rules": [{"field": "value", "op": "any", "value": [care.id]}]}))
    db.commit()
    segment = db.scalar(select(Segment))
    login("viewer")
    page = client.get(f"/admin/segments/{segment.id}").get_data(as_text=True)
    assert "Save segment" not in page and "Export its members" not in page
    csrf = csrf_token_from(page)
    assert post(client, "/admin/segments/save", form_of(page)).status_code == 403
    assert client.post(f"/admin/segments/{segment.id}/delete", data={"csrf_token": csrf}).status_code == 403
    assert client.get(f"/admin/segments/{segment.id}/export.csv").status_code == 403

    login("coordinator", "coord@example.org")
    exported = client.get(f"/admin/segments/{segment.id}/export.csv")
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True).lstrip("\ufeff"))))
    assert sorted(row["email"] for row in rows) == ["ana@example.org", "eve@example.org"]
    csrf = csrf_token_from(client.get(f"/admin/segments/{segment.id}").get_data(as_text=True))
    client.post(f"/admin/segments/{segment.id}/delete", data={"csrf_token": csrf})
    assert db.scalar(select(Segment)) is None
    assert client.get(f"/admin/segments/{segment.id}").status_code == 404
    assert [e.action for e in db.scalars(select(AuditEvent).where(AuditEvent.action.like("segment.%")))] == [
        "segment.export", "segment.delete"
    ]  # fmt: skip


def test_every_field_and_operation_renders_in_the_builder(client, login, db):
    from cop_mail.audience.segments import FIELDS
    from cop_mail.models import MailingList, Practice, Tag

    seed(db)
    db.add_all([Practice(name="Weaving"), Tag(name="founder"), MailingList(name="News", slug="news")])
    db.commit()  # each is number 1, like the value Care
    login("viewer")
    samples = {"ids": ["1"], "statuses": ["active"], "date": "2026-01-01", "days": "7", "number": "2", "text": "pt"}
    rules = []
    for field, spec in FIELDS.items():
        for op, kind in spec.kinds.items():
            rule = {"field": field, "op": op, "key": "role"} if field == "attribute" else {"field": field, "op": op}
            if kind != "none":
                rule["value"] = samples[kind]
            rules.append(rule)
    form = form_of(client.get("/admin/segments/new").get_data(as_text=True))
    tree = {"match": "any", "rules": rules}
    response = post(client, "/admin/segments/builder", form, rules_json=json.dumps(tree), action="json")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert html.count('<div class="condition">') == len(rules)
    assert "These rules need fixing" not in html
    # what the page shows is what it posts back
    got, want = tree_from_form(form_of(html))["rules"], tree_from_form(form_from_tree(tree))["rules"]
    assert [(a, b) for a, b in zip(got, want, strict=True) if a != b] == []
