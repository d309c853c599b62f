"""Mutated corpus messages: the parser and classifier never raise, and automatic mail never
turns into a person saying yes."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cop_mail.inbound.classify import ClassificationKind, classify_message
from cop_mail.inbound.commands import parse_command
from cop_mail.inbound.intent import classify_followup_reply, classify_intro_reply
from cop_mail.inbound.parsing import parse_message, visible_reply_text, visible_text
from tests.corpus.inbound import Case, build_corpus

CORPUS = build_corpus()
AUTOMATIC_CASES = [case for case in CORPUS if case.kind != "human"]
ACCEPT_CASES = [case for case in CORPUS if case.intro == "accept"]
FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

header_names = st.sampled_from(
    ["Subject", "From", "To", "Cc", "Message-ID", "References", "In-Reply-To", "Date", "Content-Type",
     "Content-Transfer-Encoding", "Content-Disposition", "Auto-Submitted", "Precedence", "X-Fuzz", "Reply-To"]
)  # fmt: skip
header_values = st.one_of(
    st.binary(max_size=200).map(lambda value: value.replace(b"\n", b" ").replace(b"\r", b" ")),
    st.sampled_from(
        [b'"unclosed', b"<<>>", b"=?utf-8?q?=ZZ?=", b"=?x-unknown?b?AAAA?=", b"multipart/mixed",
         b"text/plain; charset=x", b"<@>, ,;:", b"a@b.c@d.e", b"\xff\xfe\xfd", b"=?utf-8?b?###?=", b"(((",
         b"base64", b"attachment; filename*=''%"]
    ),
)  # fmt: skip


def split(raw: bytes) -> tuple[bytes, bytes]:
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, found, body = raw.partition(separator)
        if found:
            return head + found[: len(found) // 2], found[len(found) // 2 :] + body
    return raw, b""


@st.composite
def any_mutation(draw: st.DrawFn, cases: list[Case] = CORPUS) -> tuple[Case, bytes]:
    """Anything at all: byte flips, cuts, inserted garbage and headers anywhere."""
    case = draw(st.sampled_from(cases))
    raw = bytearray(case.raw)
    for _ in range(draw(st.integers(1, 6))):
        operation = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "header", "duplicate"]))
        position = draw(st.integers(0, max(len(raw), 1))) if raw else 0
        if operation == "flip" and raw:
            raw[min(position, len(raw) - 1)] ^= draw(st.integers(1, 255))
        elif operation == "truncate":
            del raw[position:]
        elif operation == "insert":
            raw[position:position] = draw(st.binary(min_size=1, max_size=40))
        elif operation == "delete":
            del raw[position : position + draw(st.integers(1, 200))]
        elif operation == "header":
            raw[0:0] = draw(header_names).encode() + b": " + draw(header_values) + b"\n"
        else:
            head, body = split(bytes(raw))
            lines = head.splitlines(keepends=True)
            if lines:
                raw = bytearray(b"".join(lines) + draw(st.sampled_from(lines)) + body)
    return case, bytes(raw)


@st.composite
def header_keeping_mutation(draw: st.DrawFn, cases: list[Case]) -> tuple[Case, bytes]:
    """Changes that keep every original header: body damage, duplicated and extra headers."""
    case = draw(st.sampled_from(cases))
    head, body = split(case.raw)
    body_bytes = bytearray(body)
    for _ in range(draw(st.integers(1, 5))):
        operation = draw(st.sampled_from(["flip", "truncate", "insert", "duplicate", "extra"]))
        position = draw(st.integers(0, len(body_bytes)))
        if operation == "flip" and body_bytes:
            body_bytes[min(position, len(body_bytes) - 1)] ^= draw(st.integers(1, 255))
        elif operation == "truncate":
            del body_bytes[position:]
        elif operation == "insert":
            body_bytes[position:position] = draw(st.binary(min_size=1, max_size=40))
        elif operation == "duplicate":
            lines = head.splitlines(keepends=True)
            if len(lines) > 1:
                head = b"".join(lines[:-1]) + draw(st.sampled_from(lines[:-1])) + lines[-1]
        else:
            name = draw(st.from_regex(r"X-Fuzz-[A-Za-z]{1,8}", fullmatch=True)).encode()
            head = name + b": " + draw(header_values) + b"\n" + head
    return case, head + bytes(body_bytes)


def read_everything(raw: bytes, envelope_sender: str | None) -> tuple[ClassificationKind, str]:
    parsed = parse_message(raw)
    result = classify_message(parsed, envelope_sender=envelope_sender)
    visible = visible_reply_text(parsed)
    classify_followup_reply(visible)
    parse_command(visible)
    for nested in parsed.nested:
        classify_message(nested)
    return result.kind, classify_intro_reply(visible).intent


@FUZZ
@given(any_mutation())
def test_any_mutation_never_raises(mutated: tuple[Case, bytes]):
    case, raw = mutated
    kind, intent = read_everything(raw, case.envelope_sender)
    assert kind in set(ClassificationKind)
    assert intent in ("accept", "decline", "later", "unclear")


@FUZZ
@given(header_keeping_mutation(AUTOMATIC_CASES))
def test_automatic_mail_never_becomes_a_human_yes(mutated: tuple[Case, bytes]):
    case, raw = mutated
    kind, intent = read_everything(raw, case.envelope_sender)
    assert kind is not ClassificationKind.HUMAN, (case.name, kind)
    assert not (kind is ClassificationKind.HUMAN and intent == "accept")


AUTO_SIGNALS = [
    b"Auto-Submitted: auto-replied",
    b"Auto-Submitted: auto-generated",
    b"X-Autoreply: yes",
    b"X-Autorespond: yes",
    b"Precedence: bulk",
    b"Precedence: junk",
    b"Precedence: list",
    b"Precedence: auto_reply",
    b"X-Auto-Response-Suppress: All",
    b"List-Id: <garden.lists.example.net>",
    b"List-Unsubscribe: <mailto:leave@lists.example.net>",
]


@FUZZ
@given(header_keeping_mutation(ACCEPT_CASES), st.sampled_from(AUTO_SIGNALS))
def test_a_yes_with_any_automatic_header_is_not_human(mutated: tuple[Case, bytes], signal: bytes):
    case, raw = mutated
    kind, _intent = read_everything(signal + b"\n" + raw, case.envelope_sender)
    assert kind is not ClassificationKind.HUMAN


NEUTRAL = ["the", "garden", "Tuesday", "calendar", "project", "soil", "seeds", "rain", "Ben", "compost", "bees"]
QUOTED_YES = ["> yes", "> YES", "> Yes, happy to!", "> sí, con gusto", "> oui", "> ja, gerne", "> sim", "> sure"]
ATTRIBUTIONS = ["On Mon, 6 Jan 2025, Ben <b@x.org> wrote:", "Em seg., 6 de jan., Ben <b@x.org> escreveu:", ""]


@FUZZ
@given(
    st.lists(st.sampled_from(NEUTRAL), max_size=12),
    st.sampled_from(ATTRIBUTIONS),
    st.lists(st.sampled_from(QUOTED_YES + ["> " + word for word in NEUTRAL]), min_size=1, max_size=8),
    st.booleans(),
)
def test_yes_in_quoted_text_never_counts(words: list[str], attribution: str, quotes: list[str], bottom: bool):
    own = " ".join(words)
    quote = "\n".join(filter(None, [attribution, *quotes]))
    body = f"{quote}\n\n{own}" if bottom else f"{own}\n\n{quote}"
    assert classify_intro_reply(visible_text(body)).intent != "accept"


@FUZZ
@given(st.text(max_size=400))
def test_text_functions_never_raise(text: str):
    visible = visible_text(text)
    assert isinstance(visible, str)
    classify_intro_reply(text)
    classify_followup_reply(text)
    parse_command(text)
