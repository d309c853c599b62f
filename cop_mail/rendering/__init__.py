"""Email rendering: MJML + Jinja templates compiled once per campaign, filled per recipient.

For callers:

- ``EMAIL_KINDS`` / ``get_kind(name)``: the registry (template, default subject and preheader,
  stream, Markdown fields, signed links each recipient needs, ``sample()`` data for previews).
- ``compile_email(kind, context, settings) -> CompiledEmail``: do this once per campaign (or
  variant); cached by a hash of the content, so calling it again per batch is cheap.
  ``CompiledEmail.fill(recipient) -> (subject, html, text)`` is the per-recipient step;
  ``recipient`` maps field names from ``RECIPIENT_FIELDS`` (``first_name``, ``name``, ``email``,
  ``unsubscribe_url``, ``preferences_url``, ``story_url``, ...) to values.
  ``CompiledEmail.content_hash`` identifies the content version.
- ``preview_email(kind, settings, context=None, recipient=None)``: sample data and a sample
  recipient where not given; for the admin's template list and the composer's preview.
- ``render_coordinator_text(source, context, html=True)``: sandboxed Jinja for coordinator text.
- ``markdown_to_html(source, base_url=None)``: sanitised Markdown.
- ``presend_problems(compiled, recipient=None) -> list[str]``: reasons not to send, in plain words.
- ``mjml_problems(source) -> list[str]``: MJML checks mjml-python does not do.
- ``RenderError``: ``.message``, ``.line`` and ``.field`` (``subject``, ``essay``, a template file).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cop_mail.rendering.checks import presend_problems
from cop_mail.rendering.compiler import CompiledEmail, clear_cache, compile_email
from cop_mail.rendering.errors import RenderError
from cop_mail.rendering.kinds import EMAIL_KINDS, EmailKind, Stream, get_kind
from cop_mail.rendering.mjml_check import mjml_problems
from cop_mail.rendering.placeholders import RECIPIENT_FIELDS
from cop_mail.rendering.richtext import markdown_to_html
from cop_mail.rendering.samples import recipient as sample_recipient
from cop_mail.rendering.sandbox import render_coordinator_text
from cop_mail.settings import Settings

__all__ = [
    "EMAIL_KINDS",
    "RECIPIENT_FIELDS",
    "CompiledEmail",
    "EmailKind",
    "RenderError",
    "Stream",
    "clear_cache",
    "compile_email",
    "get_kind",
    "markdown_to_html",
    "mjml_problems",
    "presend_problems",
    "preview_email",
    "render_coordinator_text",
    "sample_recipient",
]


def preview_email(
    kind: str,
    settings: Settings,
    context: Mapping[str, Any] | None = None,
    recipient: Mapping[str, Any] | None = None,
) -> tuple[str, str, str]:
    """(subject, html, text) of `kind` with sample data and a sample recipient where not given."""
    compiled = compile_email(kind, get_kind(kind).sample() if context is None else context, settings)
    filled = sample_recipient(settings.public_url)
    filled.update(recipient or {})
    return compiled.fill(filled)
