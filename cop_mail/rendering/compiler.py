"""Compile an email once per campaign, fill it per recipient.

compile: coordinator content through the sandbox and Markdown -> the kind's MJML filled by the
trusted Jinja environment -> MJML checks -> mjml2html -> HTML still holding per-recipient markers
-> plain text from that HTML -> marker-split templates. The result is cached under a hash of
everything that went in (kind, data, community settings, template files), so an unchanged campaign
compiles once however many batches ask for it.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any

import mjml
from jinja2 import TemplateNotFound, TemplateSyntaxError
from markupsafe import Markup

from cop_mail.rendering.environment import oneline, trusted_environment
from cop_mail.rendering.errors import RenderError
from cop_mail.rendering.kinds import EmailKind, get_kind
from cop_mail.rendering.mjml_check import mjml_problems
from cop_mail.rendering.placeholders import DATA_LINK_TOKENS, SplitTemplate, member_proxy, recipient_proxy
from cop_mail.rendering.plaintext import html_to_text
from cop_mail.rendering.richtext import markdown_to_html
from cop_mail.rendering.sandbox import broken_marker, plain_message, render_coordinator_text
from cop_mail.settings import Settings

CACHE_SIZE = 64
# Besides links, the address goes in the footer ("This message went to ...").
_ALWAYS_REQUIRED = frozenset({"email"})


@dataclass(frozen=True, eq=False)
class CompiledEmail:
    """A compiled email; `fill` is the only per-recipient work."""

    kind: str
    subject: SplitTemplate
    preheader: SplitTemplate
    html: SplitTemplate
    text: SplitTemplate
    content_hash: str
    postal_address: str
    fields: frozenset[str]
    required_fields: frozenset[str]

    def fill(self, recipient: Mapping[str, Any]) -> tuple[str, str, str]:
        """Return (subject, html, text) for one recipient.

        `recipient` maps field names (see placeholders.RECIPIENT_FIELDS) to values; every link
        field this email uses and `email` are required. Values are escaped for the HTML part.
        """
        raw: dict[str, str] = {}
        escaped: dict[str, str] = {}
        for name in self.fields:
            value = recipient.get(name)
            text = "" if value is None else str(value)
            raw[name] = text
            escaped[name] = html.escape(text) if text else ""
        missing = [name for name in self.required_fields if not raw.get(name)]
        if missing:
            raise KeyError(f"recipient is missing {', '.join(sorted(missing))} for a {self.kind} email")
        return self.subject.fill(raw), self.html.fill(escaped), self.text.fill(raw)

    def fill_bytes(self, recipient: Mapping[str, Any]) -> tuple[str, bytes, bytes]:
        """`fill` with the HTML and text already UTF-8 encoded, for `MessageSkeleton.render`.

        Faster for big emails: the compiled text is encoded once per campaign, not per recipient.
        """
        raw: dict[str, str] = {}
        escaped: dict[str, bytes] = {}
        encoded: dict[str, bytes] = {}
        for name in self.fields:
            value = recipient.get(name)
            text = "" if value is None else str(value)
            raw[name] = text
            encoded[name] = text.encode("utf-8", "replace")
            escaped[name] = html.escape(text).encode("utf-8", "replace")
        missing = [name for name in self.required_fields if not raw.get(name)]
        if missing:
            raise KeyError(f"recipient is missing {', '.join(sorted(missing))} for a {self.kind} email")
        return self.subject.fill(raw), self.html.fill_bytes(escaped), self.text.fill_bytes(encoded)


class _Cache:
    def __init__(self, size: int):
        self.size = size
        self.items: OrderedDict[str, CompiledEmail] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: str) -> CompiledEmail | None:
        with self.lock:
            found = self.items.get(key)
            if found is not None:
                self.items.move_to_end(key)
            return found

    def put(self, key: str, value: CompiledEmail) -> None:
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


_cache = _Cache(CACHE_SIZE)
_template_versions: dict[Path, tuple[tuple[tuple[str, int, int], ...], str]] = {}


def clear_cache() -> None:
    _cache.clear()


def compile_email(kind: str, context: Mapping[str, Any], settings: Settings) -> CompiledEmail:
    """Compile `kind` with campaign data `context`; cached by content, not by object.

    `context` holds plain data (dicts, lists, text, numbers, dates); anything else is turned into
    text first, so coordinator content can never reach a live object. Optional keys `subject` and
    `preheader` override the kind's defaults. Raises RenderError with field and line.
    """
    email_kind = get_kind(kind)
    data = plain_data(context)
    community = community_data(settings)
    key = content_hash(email_kind, data, community, settings.templates_path)
    found = _cache.get(key)
    if found is not None:
        return found
    compiled = _compile(email_kind, data, community, settings.templates_path, key)
    _cache.put(key, compiled)
    return compiled


def community_data(settings: Settings) -> dict[str, Any]:
    return {
        "name": settings.community_name,
        "postal_address": oneline(settings.postal_address),
        "accent_colour": settings.accent_colour,
        "logo_url": settings.logo_url,
        "public_url": settings.public_url.rstrip("/"),
    }


def plain_data(value: Any) -> Any:
    """Copy into plain, JSON-able data: the only kind of value templates and the sandbox see."""
    if isinstance(value, Mapping):
        return {str(key): plain_data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain_data(item) for item in value]
    if isinstance(value, set | frozenset):  # sorted, so equal content hashes equally
        return sorted((plain_data(item) for item in value), key=repr)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Enum):
        return plain_data(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = str(value)  # also turns Markup back into text that will be escaped
    # Data never carries a live per-recipient marker: a story containing "@@cm:email@@" must not
    # print each reader's address. A zero-width space keeps it visibly the same. Only the signed
    # link tokens that our own code puts into URLs in the data (a roundup's "meet the storyteller")
    # stay live: each reader sees only their own token.
    return _DATA_MARKER.sub("@\u200b@cm:", text) if "@@cm:" in text else text


_DATA_MARKER = re.compile(r"@@cm:(?!(?:" + "|".join(DATA_LINK_TOKENS) + r")@@)")


def content_hash(kind: EmailKind, data: Any, community: Mapping[str, Any], templates_path: Path) -> str:
    payload = {"kind": kind.name, "data": data, "community": community, "templates": templates_version(templates_path)}
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(encoded).hexdigest()


def templates_version(path: Path) -> str:
    """Hash of every template file; re-read only when a file's size or mtime changes."""
    files = sorted(p for p in path.rglob("*") if p.is_file())
    stamp = tuple((str(p.relative_to(path)), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    cached = _template_versions.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(path)).encode() + b"\0" + file.read_bytes() + b"\0")
    _template_versions[path] = (stamp, digest.hexdigest())
    return digest.hexdigest()


def _compile(
    kind: EmailKind, data: dict[str, Any], community: dict[str, Any], templates_path: Path, key: str
) -> CompiledEmail:
    coordinator_context = {**data, "member": member_proxy(), "community": community}
    subject = _one_line(
        render_coordinator_text(data.get("subject") or kind.subject, coordinator_context, html=False, field="subject")
    )
    preheader = _one_line(
        render_coordinator_text(
            data.get("preheader") or kind.preheader, coordinator_context, html=False, field="preheader"
        )
    )
    for name in kind.markdown_fields:
        if data.get(name):
            rendered = render_coordinator_text(str(data[name]), coordinator_context, field=name)
            data[name] = Markup(markdown_to_html(rendered, base_url=community["public_url"], field=name))  # noqa: S704
    context = {
        **data,
        "community": community,
        "member": member_proxy(),
        "recipient": recipient_proxy(),
        "subject": subject,
        "preheader": preheader,
        "why": data.get("why") or kind.why.replace("{community}", community["name"]),
        "kind": kind.name,
    }
    source = render_mjml(kind.template, context, templates_path)
    problems = mjml_problems(source)
    if problems:
        raise RenderError("MJML problems: " + "; ".join(problems[:5]), None, kind.template)
    try:
        compiled_html = mjml.mjml2html(source, fonts={})
    except ValueError as exc:
        raise RenderError(f"MJML: {exc}", None, kind.template) from None
    if broken := broken_marker(compiled_html):
        raise RenderError(f"a per-recipient field was changed by a filter ({broken})", None, kind.template)
    html_template = SplitTemplate(compiled_html, escape_defaults=True)
    text_template = SplitTemplate(html_to_text(compiled_html))
    subject_template = SplitTemplate(subject)
    fields = html_template.fields | text_template.fields | subject_template.fields
    return CompiledEmail(
        kind=kind.name,
        subject=subject_template,
        preheader=SplitTemplate(preheader),
        html=html_template,
        text=text_template,
        content_hash=key,
        postal_address=community["postal_address"],
        fields=fields,
        required_fields=frozenset(name for name in fields if name.endswith("_url")) | (_ALWAYS_REQUIRED & fields),
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def render_mjml(template_name: str, context: Mapping[str, Any], templates_path: Path) -> str:
    """Fill a template file with the trusted environment; errors name the file and line."""
    env = trusted_environment(templates_path)
    try:
        return env.get_template(template_name).render(context)
    except TemplateNotFound as exc:
        raise RenderError(f"template {exc.name} not found", None, template_name) from None
    except TemplateSyntaxError as exc:
        raise RenderError(f"template syntax: {exc.message}", exc.lineno, exc.name or template_name) from None
    except RenderError as exc:
        line, name = _template_position(exc.__traceback__, templates_path)
        raise RenderError(exc.message, exc.line or line, name or template_name) from None
    except Exception as exc:  # a broken template or data missing a field: say where
        line, name = _template_position(exc.__traceback__, templates_path)
        raise RenderError(plain_message(exc), line, name or template_name) from None


def _template_position(tb: TracebackType | None, templates_path: Path) -> tuple[int | None, str | None]:
    root = str(templates_path)
    line, name = None, None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.startswith(root):
            line, name = tb.tb_lineno, filename[len(root) :].lstrip("/")
        tb = tb.tb_next
    return line, name
