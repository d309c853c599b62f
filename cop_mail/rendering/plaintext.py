"""The text/plain part, generated once per campaign from the compiled HTML.

html2text keeps links as `[words](address)`; per-recipient markers pass through untouched.
MJML's hidden preheader is dropped so the text does not open with it twice.
"""

from __future__ import annotations

import re

import html2text

_PREVIEW = re.compile(r'<div style="display:none;[^"]*">.*?</div>', re.DOTALL)
_BLANK_RUNS = re.compile(r"\n{3,}")


def html_to_text(html: str) -> str:
    converter = html2text.HTML2Text()
    converter.body_width = 0  # never wrap: wrapping could split a marker or a long link
    converter.unicode_snob = True
    converter.ignore_images = True
    converter.images_to_alt = True
    converter.ignore_tables = True
    converter.ignore_emphasis = True
    converter.single_line_break = False
    text = converter.handle(_PREVIEW.sub("", html, count=1))
    lines = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_RUNS.sub("\n\n", lines).strip() + "\n"
