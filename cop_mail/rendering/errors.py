"""The one error type the rendering pipeline raises, so the composer can show it beside the field."""

from __future__ import annotations


class RenderError(Exception):
    """A template or content problem in plain words.

    `line` is the line within the source the coordinator (or designer) wrote, when known;
    `field` names the piece of content (``subject``, ``essay``, a template file) it came from.
    """

    def __init__(self, message: str, line: int | None = None, field: str | None = None):
        self.message = message
        self.line = line
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ", ".join(part for part in (self.field, f"line {self.line}" if self.line else None) if part)
        return f"{where}: {self.message}" if where else self.message
