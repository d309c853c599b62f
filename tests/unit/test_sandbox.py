"""Coordinator-authored content runs in a sandbox it cannot leave, slow down, or blow up."""

from __future__ import annotations

import time

import pytest

from cop_mail.rendering import RenderError, render_coordinator_text
from cop_mail.rendering.placeholders import member_proxy
from cop_mail.rendering.sandbox import MAX_SECONDS

CONTEXT = {"member": member_proxy(), "value": {"name": "Care & <Courage>"}, "stories": [{"title": "One"}]}


def refused(source: str) -> RenderError:
    with pytest.raises(RenderError) as caught:
        render_coordinator_text(source, CONTEXT)
    return caught.value


def test_plain_variables_and_member_defaults():
    assert render_coordinator_text("{{ value.name }}", CONTEXT) == "Care &amp; &lt;Courage&gt;"
    assert render_coordinator_text("{{ value.name }}", CONTEXT, html=False) == "Care & <Courage>"
    text = render_coordinator_text('Hi {{ member.first_name | default("friend") }}', CONTEXT)
    assert text.startswith("Hi @@cm:first_name|") and text.endswith("@@")
    assert (
        render_coordinator_text("{% for s in stories %}{{ loop.index }}. {{ s.title | upper }}{% endfor %}", CONTEXT)
        == "1. ONE"
    )


@pytest.mark.parametrize(
    "source",
    [
        "{{ config }}",
        "{{ config.SECRET_KEY }}",
        "{{ settings.secret_key }}",
        "{{ environ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ value.__class__.__mro__ }}",
        "{{ self._TemplateReference__context }}",
        "{{ self.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os.environ }}",
        "{{ joiner.__init__.__globals__ }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ lipsum.__globals__['os'] }}",
        "{{ range.__self__ }}",
        "{{ stories.append(1) }}",
        "{{ value.name.ljust(10**9) }}",
        "{{ '%999999999s' % 1 }}",
        "{{ 'x'|center(999999999) }}",
        "{% include '/etc/passwd' %}",
        "{% import 'layout.mjml' as x %}",
        "{% extends 'layout.mjml' %}",
    ],
)
def test_escapes_are_refused(source: str):
    error = refused(source)
    assert error.message and error.line == 1


def test_reading_files_is_impossible():
    error = refused("{% include 'layout.mjml' %}")
    assert "no loader" in error.message.lower() or "not allowed" in error.message.lower()


@pytest.mark.parametrize(
    "source",
    [
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
        "{% set s = 'x' * 100000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
    ],
)
def test_long_running_content_stops_at_the_time_limit(source: str):
    started = time.monotonic()
    error = refused(source)
    elapsed = time.monotonic() - started
    assert "longer than 2 seconds" in error.message
    assert MAX_SECONDS <= elapsed < MAX_SECONDS + 1.5


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'x' * 10**9 }}",
        "{{ 7 ** 1000000 }}",
        "{{ (10 ** 20000) * (10 ** 20000) * (10 ** 20000) }}",
        "{% for i in range(100000) %}{{ range(1000) | list if false else 'xxxxxxxxxxxxxxxxxxxx' }}{% endfor %}",
        "{% macro grow(s, n) %}{% if n %}{{ grow(s ~ s, n - 1) }}{% else %}{{ s }}{% endif %}{% endmacro %}"
        "{{ grow('x', 40) }}",
        "{% set s = 'x' * 1000000 %}{{ s ~ s ~ s }}",
        "{% set s = 'x' * 1000000 %}{{ s + s }}",
    ],
)
def test_huge_output_is_refused(source: str):
    assert "beyond 1 MB" in refused(source).message


def test_errors_carry_line_and_plain_message():
    error = refused("Dear friend,\n\nThis month: {{ valeu.name }}")
    assert error.line == 3
    assert error.message == "unknown name 'valeu' (check the spelling, or give it a default)"

    error = refused("line one\n{% if %}")
    assert error.line == 2 and error.message.startswith("template syntax:")

    error = refused("{{ member.nickname }}")
    assert "member has no field 'nickname'" in error.message
    assert "first_name" in error.message

    error = refused("\n{{ member.name | title }}")
    assert error.line == 2 and "only 'default' works" in error.message


def test_objects_passed_in_context_offer_no_methods():
    class Secretive:
        def reveal(self) -> str:
            return "secret"

    with pytest.raises(RenderError):
        render_coordinator_text("{{ thing.reveal() }}", {"thing": Secretive()})


@pytest.mark.parametrize(
    "source",
    [
        "{% filter upper %}Hi {{ member.first_name }}{% endfilter %}",
        "{{ member.first_name[0] }}",
        "{% for letter in member.name %}{{ letter }}{% endfor %}",
        "{{ member.email | truncate(5) }}",
        "{{ (member.first_name ~ '!') | upper }}",
    ],
)
def test_member_fields_cannot_be_mangled(source: str):
    assert "member" in refused(source).message
