"""The trusted Jinja environment for the designer-edited MJML files in `templates/`.

Campaign data is autoescaped; coordinator Markdown arrives already rendered (sandboxed and
sanitised) as Markup. Undefined names fail loudly so a template typo cannot ship an email
with a hole in it. Per-recipient fields come from the `member` / `recipient` proxies as markers.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context
from markupsafe import Markup

from cop_mail.rendering.richtext import markdown_to_html
from cop_mail.rendering.sandbox import guard_placeholder_filter, placeholder_default


def when(value: Any) -> str:
    """'Thursday 3 December 2026, 18:00' from a datetime, a date or an ISO string."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        text = f"{value:%A} {value.day} {value:%B %Y}"
        return text if (value.hour, value.minute) == (0, 0) else f"{text}, {value:%H:%M}"
    if isinstance(value, date):
        return f"{value:%A} {value.day} {value:%B %Y}"
    return str(value)


@pass_context
def member_markdown(context: Context, text: Any) -> Markup:
    """Markdown written by members (stories): raw HTML is escaped, links made absolute."""
    community = context.get("community") or {}
    return Markup(markdown_to_html(str(text), base_url=community.get("public_url"), allow_html=False))  # noqa: S704


def and_list(items: Any) -> str:
    """'care', 'care and clarity', 'care, clarity and courage'."""
    words = [str(item) for item in items]
    return " and ".join(filter(None, [", ".join(words[:-1]), words[-1] if words else ""]))


def oneline(text: Any) -> str:
    return ", ".join(part.strip() for part in str(text).splitlines() if part.strip())


@lru_cache(maxsize=4)
def trusted_environment(templates_path: Path) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(templates_path)),
        autoescape=select_autoescape(("mjml", "html"), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=True,
    )
    env.filters = {name: guard_placeholder_filter(name, func) for name, func in env.filters.items()}
    env.filters["default"] = env.filters["d"] = placeholder_default
    env.filters["when"] = when
    env.filters["markdown"] = member_markdown
    env.filters["oneline"] = oneline
    env.filters["and_list"] = and_list
    return env
