"""Segments: the rule builder (nested AND/OR groups), live count and sample, save by name.

The builder works without JavaScript: the tree travels in plain form fields, and buttons
add or remove conditions and groups by posting the form back. With JavaScript,
static/segments.js asks `segment_preview` for the count and sample as rules change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from cop_mail import accounts
from cop_mail.audience import exporter, taxonomy
from cop_mail.audience import segments as segment_rules
from cop_mail.models import MailingList, MemberStatus, Practice, Role, Segment, Tag, Value
from cop_mail.web.admin import bp
from cop_mail.web.admin.members import csv_response
from cop_mail.web.auth import client_ip, current_admin, current_admin_may, role_required
from cop_mail.web.extensions import db

SAMPLE_SIZE = 10


# --- the tree in form fields ------------------------------------------------------------------
# Each node has a path ("0" is the root group, "0.2" its third child...). `node` lists the
# paths in order; `kind-<path>` says group or condition; groups carry `match-<path>`;
# conditions `field-<path>`, `op-<path>`, `value-<path>` (repeated for lists), `key-<path>`.


def tree_from_form(form: MultiDict[str, str]) -> dict[str, Any]:
    """The (not yet validated) rule tree the form describes."""
    nodes: dict[str, dict[str, Any]] = {}
    root: dict[str, Any] = {"match": "all", "rules": []}
    for path in form.getlist("node"):
        if form.get(f"kind-{path}") == "group":
            node: dict[str, Any] = {"match": form.get(f"match-{path}", "all"), "rules": []}
        else:
            node = _condition_from_form(form, path)
        parent = nodes.get(path.rpartition(".")[0]) if "." in path else None
        if parent is not None and "rules" in parent:
            parent["rules"].append(node)
        elif "." not in path and "rules" in node:
            root = node
        nodes[path] = node
    return root


def _condition_from_form(form: MultiDict[str, str], path: str) -> dict[str, Any]:
    field = form.get(f"field-{path}", "value")
    spec = segment_rules.FIELDS.get(field, segment_rules.FIELDS["value"])
    op = form.get(f"op-{path}", "")
    op = op if op in spec.ops else next(iter(spec.ops))  # the field changed: start from its first choice
    node: dict[str, Any] = {"field": field if field in segment_rules.FIELDS else "value", "op": op}
    kind = spec.kinds[op]
    values = [v for v in form.getlist(f"value-{path}") if v != ""]
    was_field, _, was_op = form.get(f"was-{path}", f"{field}:{op}").partition(":")
    if was_field != field or segment_rules.FIELDS.get(was_field, spec).kinds.get(was_op) != kind:
        values = []  # a value for another field or kind would only confuse
    if kind in ("ids", "statuses"):
        node["value"] = values
    elif kind != "none":
        node["value"] = values[0] if values else ""
    if node["field"] == "attribute":
        node["key"] = form.get(f"key-{path}", "")
    return node


def form_from_tree(tree: Any) -> MultiDict[str, str]:
    """Flatten a tree (pasted JSON may have any shape) into the builder's fields; odd parts are dropped."""
    form: MultiDict[str, str] = MultiDict()
    _flatten(tree if isinstance(tree, dict) else {}, "0", form)
    return form


def _flatten(node: dict[str, Any], path: str, form: MultiDict[str, str]) -> None:
    form.add("node", path)
    if path == "0" or "rules" in node:
        form.add(f"kind-{path}", "group")
        form.add(f"match-{path}", str(node.get("match", "all")))
        rules = node.get("rules")
        children: list[Any] = rules if isinstance(rules, list) else []
        for index, child in enumerate(child for child in children if isinstance(child, dict)):
            _flatten(child, f"{path}.{index}", form)
        return
    form.add(f"kind-{path}", "condition")
    for name in ("field", "op", "key"):
        if name in node:
            form.add(f"{name}-{path}", str(node[name]))
    value = node.get("value")
    items: list[Any] = value if isinstance(value, list) else [] if value is None else [value]
    for item in items:
        form.add(f"value-{path}", str(item))


def apply_action(tree: dict[str, Any], action: str) -> dict[str, Any]:
    """add-condition:<path>, add-group:<path> or remove:<path>, on paths as rendered."""
    verb, _, path = action.partition(":")
    target, parent, index = _locate(tree, path)
    if verb == "add-condition" and target is not None and "rules" in target:
        target["rules"].append({"field": "value", "op": "any", "value": []})
    elif verb == "add-group" and target is not None and "rules" in target:
        target["rules"].append({"match": "any", "rules": [{"field": "value", "op": "any", "value": []}]})
    elif verb == "remove" and parent is not None and index is not None:
        del parent["rules"][index]
    return tree


def _locate(tree: dict[str, Any], path: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None, int | None]:
    parts = path.split(".")
    if not parts or parts[0] != "0":
        return None, None, None
    node, parent, index = tree, None, None
    for part in parts[1:]:
        if not part.isdecimal() or "rules" not in node or int(part) >= len(node["rules"]):
            return None, None, None
        parent, index, node = node, int(part), node["rules"][int(part)]
    return node, parent, index


# --- views ----------------------------------------------------------------------------------


def _names() -> dict[str, dict[Any, str]]:
    session = db()
    return {
        "value": taxonomy.term_names(session, Value),
        "practice": taxonomy.term_names(session, Practice),
        "tag": taxonomy.term_names(session, Tag),
        "list": taxonomy.term_names(session, MailingList),  # type: ignore[type-var]
        "status": {status.value: status.value for status in MemberStatus},
    }


def _preview(rules: Any) -> dict[str, Any]:
    """Count, reachable count and a sample, or the problems in plain words."""
    try:
        clean = segment_rules.validate_rules(rules)
    except segment_rules.RuleError as exc:
        return {"ok": False, "problems": exc.problems}
    session = db()
    sample = segment_rules.sample_segment(session, clean, SAMPLE_SIZE)
    return {
        "ok": True,
        "problems": [],
        "count": segment_rules.count_segment(session, clean),
        "reachable": segment_rules.count_reachable(session, clean),
        "description": segment_rules.describe(clean, _names()),
        "sample": [
            {"id": row.id, "email": row.email, "name": row.name, "status": row.status,
             "url": url_for("admin.member_detail", member_id=row.id)}
            for row in sample
        ],
    }  # fmt: skip



def _builder(rules: Any, segment: Segment | None, form: Mapping[str, str], status: int = 200) -> Any:
    rules = tree_from_form(form_from_tree(rules))  # one shape for the template, whatever the source
    return (
        render_template(
            "admin/segments_builder.html",
            rules=rules,
            segment=segment,
            name=form.get("name", segment.name if segment else ""),
            description=form.get("description", segment.description if segment else ""),
            preview=_preview(rules),
            fields=segment_rules.FIELDS,
            names=_names(),
            rules_json=json.dumps(rules, indent=2, ensure_ascii=False),
            can_edit=current_admin_may(Role.COORDINATOR),
        ),
        status,
    )


def _segment_or_404(segment_id: int) -> Segment:
    try:
        return segment_rules.get_segment(db(), segment_id)
    except segment_rules.SegmentNotFound:
        abort(404, "That segment no longer exists.")


@bp.route("/segments")
@role_required(Role.VIEWER)
def segments() -> Any:
    saved = db().scalars(select(Segment).order_by(Segment.name)).all()
    names = _names()
    rows = []
    for segment in saved:
        try:
            count = segment_rules.count_segment(db(), segment.rules)
        except segment_rules.RuleError:
            count = None
        rows.append((segment, count, segment_rules.describe(segment.rules, names)))
    return render_template("admin/segments.html", rows=rows, can_edit=current_admin_may(Role.COORDINATOR))


@bp.route("/segments/new")
@role_required(Role.VIEWER)
def segment_new() -> Any:
    return _builder({"match": "all", "rules": [{"field": "value", "op": "any", "value": []}]}, None, {})


@bp.route("/segments/<int:segment_id>")
@role_required(Role.VIEWER)
def segment_edit(segment_id: int) -> Any:
    segment = _segment_or_404(segment_id)
    return _builder(segment.rules, segment, {})


@bp.route("/segments/builder", methods=["POST"])
@role_required(Role.VIEWER)
def segment_builder() -> Any:
    """Add/remove/preview round trips: nothing is saved here."""
    segment_id = request.form.get("segment_id", type=int)
    segment = _segment_or_404(segment_id) if segment_id else None
    action = request.form.get("action", "preview")
    if action == "json":
        try:
            tree = tree_from_form(form_from_tree(json.loads(request.form.get("rules_json", ""))))
        except ValueError:
            flash("The rules are not valid JSON; nothing was changed.", "error")
            tree = tree_from_form(request.form)
    else:
        tree = apply_action(tree_from_form(request.form), action)
    return _builder(tree, segment, request.form)


@bp.route("/segments/preview.json", methods=["POST"])
@role_required(Role.VIEWER)
def segment_preview() -> Any:
    """The live count and sample for segment_rules.js; takes the builder's form fields or a JSON tree."""
    rules = request.get_json(silent=True) if request.is_json else tree_from_form(request.form)
    return jsonify(_preview(rules))


@bp.route("/segments/save", methods=["POST"])
@role_required(Role.COORDINATOR)
def segment_save() -> Any:
    segment_id = request.form.get("segment_id", type=int)
    segment = _segment_or_404(segment_id) if segment_id else None
    tree = tree_from_form(request.form)
    try:
        saved = segment_rules.save_segment(
            db(), request.form.get("name", ""), tree, request.form.get("description", ""), segment
        )
    except segment_rules.RuleError as exc:
        db().rollback()
        for problem in exc.problems:
            flash(problem, "error")
        return _builder(tree, segment, request.form, 400)
    accounts.audit(
        db(), current_admin(), "segment.update" if segment else "segment.create", saved.name, client_ip(),
        rules=saved.rules,
    )  # fmt: skip
    db().commit()
    flash(f"The segment {saved.name} is saved.", "success")
    return redirect(url_for("admin.segment_edit", segment_id=saved.id))


@bp.route("/segments/<int:segment_id>/delete", methods=["POST"])
@role_required(Role.COORDINATOR)
def segment_delete(segment_id: int) -> Any:
    segment = _segment_or_404(segment_id)
    name = segment.name
    try:
        segment_rules.delete_segment(db(), segment)
    except segment_rules.RuleError as exc:
        db().rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.segment_edit", segment_id=segment_id))
    accounts.audit(db(), current_admin(), "segment.delete", name, client_ip())
    db().commit()
    flash(f"The segment {name} is deleted.", "success")
    return redirect(url_for("admin.segments"))


@bp.route("/segments/<int:segment_id>/export.csv")
@role_required(Role.COORDINATOR)
def segment_export(segment_id: int) -> Any:
    segment = _segment_or_404(segment_id)
    condition = segment_rules.compile_rules(segment.rules)
    accounts.audit(db(), current_admin(), "segment.export", segment.name, client_ip())
    db().commit()
    return csv_response(lambda session: exporter.export_csv(session, condition), f"segment-{segment.id}.csv")
