"""Every message of the built corpus against the outcome the corpus expects for it."""

from __future__ import annotations

from collections import Counter

import pytest

from cop_mail.inbound.classify import Classification, ClassificationKind, classify_message
from cop_mail.inbound.commands import parse_command
from cop_mail.inbound.intent import classify_followup_reply, classify_intro_reply
from cop_mail.inbound.parsing import ParsedMessage, parse_message, visible_reply_text
from tests.corpus.inbound import UNCHECKED, Case, build_corpus, summary

CORPUS = build_corpus()
AUTOMATIC = {"auto_reply", "bounce_hard", "bounce_soft", "complaint"}


def outcome_problems(case: Case) -> list[str]:
    """Every way the code's reading of one message differs from what the corpus expects."""
    parsed = parse_message(case.raw)
    result = classify_message(parsed, envelope_sender=case.envelope_sender)
    visible = visible_reply_text(parsed)
    problems = []
    if result.kind != case.kind:
        problems.append(f"kind {result.kind} ({result.reason}), expected {case.kind}")
    if case.intro and (found := classify_intro_reply(visible)).intent != case.intro:
        problems.append(f"intro {found.intent} ({found.reason}), expected {case.intro}")
    if case.followup and (found := classify_followup_reply(visible)).intent != case.followup:
        problems.append(f"follow-up {found.intent} ({found.reason}), expected {case.followup}")
    if case.command:
        command = parse_command(visible)
        if (command.kind if command else "none") != case.command:
            problems.append(f"command {command}, expected {case.command}")
    problems += [f"visible text lacks {text!r}" for text in case.visible_has if text not in visible]
    problems += [f"visible text shows {text!r}" for text in case.visible_lacks if text in visible]
    problems += _field_problems(case, parsed)
    problems += _report_problems(case, result)
    return problems


def _field_problems(case: Case, parsed: ParsedMessage) -> list[str]:
    problems = []
    if case.subject is not None and parsed.subject != case.subject:
        problems.append(f"subject {parsed.subject!r}")
    if case.from_address != UNCHECKED and parsed.from_address != case.from_address:
        problems.append(f"from {parsed.from_address!r}")
    if case.message_id != UNCHECKED and parsed.message_id != case.message_id:
        problems.append(f"message id {parsed.message_id!r}")
    if case.attachments is not None and len(parsed.attachments) != case.attachments:
        problems.append(f"{len(parsed.attachments)} attachments")
    if case.nested is not None and len(parsed.nested) != case.nested:
        problems.append(f"{len(parsed.nested)} nested messages")
    return problems


def _report_problems(case: Case, result: Classification) -> list[str]:
    problems = []
    report = result.bounce or result.complaint
    if case.bounce_recipients and sorted(result.bounce.addresses if result.bounce else []) != sorted(
        case.bounce_recipients
    ):
        problems.append(f"bounce recipients {result.bounce}")
    if case.bounce_status and (result.bounce is None or result.bounce.status != case.bounce_status):
        problems.append(f"bounce status {result.bounce and result.bounce.status}")
    if case.original_message_id and (report is None or report.original_message_id != case.original_message_id):
        problems.append(f"original message id {report and report.original_message_id}")
    if case.verp_token and (report is None or report.verp_token != case.verp_token):
        problems.append(f"token {report and report.verp_token}")
    complaint = result.complaint
    if case.complaint_recipient and (complaint is None or complaint.original_recipient != case.complaint_recipient):
        problems.append(f"complaint recipient {complaint and complaint.original_recipient}")
    if case.feedback_type and (complaint is None or complaint.feedback_type != case.feedback_type):
        problems.append(f"feedback type {complaint and complaint.feedback_type}")
    return problems


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_corpus_message(case: Case):
    assert outcome_problems(case) == []


def test_corpus_size_and_coverage():
    kinds = summary(CORPUS)
    print(f"inbound corpus: {len(CORPUS)} messages, {kinds}")
    assert len(CORPUS) >= 150
    assert kinds["human"] >= 100 and kinds["auto_reply"] >= 30
    assert kinds["bounce_hard"] >= 8 and kinds["bounce_soft"] >= 3 and kinds["complaint"] >= 4
    intro = Counter((language, case.intro) for case in CORPUS for language in case.tags if case.intro)
    for language in ("en", "es", "fr", "de", "pt"):
        for intent in ("accept", "decline", "later", "unclear"):
            assert intro[(language, intent)] >= 2, (language, intent)
    ooo_languages = {language for case in CORPUS if "ooo" in case.tags for language in case.tags}
    assert {"en", "es", "fr", "de", "pt", "nl", "it"} <= ooo_languages
    assert sum("malformed" in case.tags for case in CORPUS) >= 30


def test_corpus_results_summary():
    """The figures the closing note quotes: crashes, wrong outcomes, automatic mail taken as a yes."""
    wrong, automatic_accepts, automatic_as_human = [], 0, 0
    for case in CORPUS:
        parsed = parse_message(case.raw)
        result = classify_message(parsed, envelope_sender=case.envelope_sender)
        if case.kind in AUTOMATIC:
            automatic_as_human += result.kind is ClassificationKind.HUMAN
            said = classify_intro_reply(visible_reply_text(parsed)).intent
            automatic_accepts += result.kind is ClassificationKind.HUMAN and said == "accept"
        if outcome_problems(case):
            wrong.append(case.name)
    print(
        f"inbound corpus results: {len(CORPUS)} messages, 0 crashes, {len(wrong)} wrong outcomes, "
        f"{automatic_as_human} automatic taken as human, {automatic_accepts} automatic taken as a yes"
    )
    assert (wrong, automatic_as_human, automatic_accepts) == ([], 0, 0)
