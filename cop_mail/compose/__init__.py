"""Composing newsletters: the coordinator's choices -> template data -> previews and test sends.

- `newsletter`: `NewsletterInput` (theme value, essay, stories, resources, spotlight, events) ->
  the `newsletter` template's data, snapshotted at save time so what goes out is what was
  previewed; `save_newsletter` creates or updates the draft Campaign.
- `preview`: `preview_newsletter` renders that data for a sample recipient or a chosen member and
  runs the pre-send checks; problems come back as `Problem(field, line, message)`, never raised.
- `test_send`: `send_test` mails the email to the coordinator's own address with "[TEST] " in
  front of the subject, now, over SMTP, and records it in the audit log.

Nothing here imports Flask: the admin views call these functions with plain values.
"""

from __future__ import annotations

from typing import NamedTuple


class Problem(NamedTuple):
    """Something the coordinator must fix, and where: a form field (or template file) and a line."""

    field: str | None
    line: int | None
    message: str

    def describe(self) -> str:
        where = ", ".join(part for part in (self.field, f"line {self.line}" if self.line else None) if part)
        return f"{where}: {self.message}" if where else self.message


class ComposeError(ValueError):
    """The composer's input cannot become an email yet; `problems` says what and where."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(problem.describe() for problem in problems))


__all__ = ["ComposeError", "Problem"]
