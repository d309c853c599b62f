from __future__ import annotations

import pytest

from cop_mail.inbound.intent import (
    FollowupIntent,
    IntroIntent,
    classify_followup_reply,
    classify_intro_reply,
    followup_intent,
    intro_intent,
)
from cop_mail.inbound.parsing import parse_message
from tests.corpus.inbound import reply_message

INTRO = [
    # English
    ("Yes, happy to!", "accept"),
    ("yes please", "accept"),
    ("Sure, why not", "accept"),
    ("No problem, happy to", "accept"),
    ("I'd love to! Can't wait.", "accept"),
    ("ok", "accept"),
    ("No thanks", "decline"),
    ("no", "decline"),
    ("Count me out.", "decline"),
    ("Not now, maybe later", "later"),
    ("No, not now", "later"),
    ("Unfortunately I can't right now, maybe next month", "later"),
    ("Not now, thanks", "later"),
    ("Not sure", "unclear"),
    ("yes... actually no", "unclear"),
    ("Yes, but not now", "unclear"),
    ("I'm not happy to do this", "unclear"),
    ("I don't know", "unclear"),
    ("Who is Ben?", "unclear"),
    ("", "unclear"),
    # Spanish
    ("Sí, con gusto", "accept"),
    ("si", "accept"),
    ("¡Claro que sí!", "accept"),
    ("No, gracias", "decline"),
    ("Ahora no, gracias", "later"),
    ("Más tarde", "later"),
    ("No sé", "unclear"),
    ("Si puedo, te escribo", "unclear"),
    # French
    ("Oui, avec plaisir", "accept"),
    ("Non merci", "decline"),
    ("Plus tard", "later"),
    ("Pas sûr", "unclear"),
    # German
    ("Ja, gerne!", "accept"),
    ("Nein, danke", "decline"),
    ("Später bitte", "later"),
    ("Weiß nicht", "unclear"),
    ("Ich bin nicht sicher", "unclear"),
    # Portuguese
    ("Sim, com prazer", "accept"),
    ("Não, obrigado.", "decline"),
    ("Agora não, mais tarde", "later"),
    ("Talvez", "unclear"),
    ("Já vi, obrigado", "unclear"),
]


@pytest.mark.parametrize(("text", "expected"), INTRO)
def test_intro_replies(text: str, expected: str):
    assert classify_intro_reply(text).intent == expected


FOLLOWUP = [
    ("MET", "met"),
    ("met", "met"),
    ("NOT YET", "not_met"),
    ("SKIP", "skip"),
    ("Yes we met last week", "met"),
    ("No, not yet", "not_met"),
    ("We haven't met yet", "not_met"),
    ("We never met", "not_met"),
    ("Nos vimos!", "met"),
    ("pas encore", "not_met"),
    ("Wir haben uns getroffen", "met"),
    ("ainda não", "not_met"),
    ("pular", "skip"),
    ("kind of", "unclear"),
    ("MET, well, not yet", "unclear"),
    ("metadata is fun", "unclear"),
]


@pytest.mark.parametrize(("text", "expected"), FOLLOWUP)
def test_followup_replies(text: str, expected: str):
    assert classify_followup_reply(text).intent == expected


def test_result_explains_itself():
    clear = classify_intro_reply("Yes, happy to!")
    assert clear.is_clear and clear.intent is IntroIntent.ACCEPT
    assert clear.matched == ("yes", "happy to") and clear.languages == ("en",)
    assert 0.5 < clear.confidence <= 1.0 and "yes" in clear.reason
    unclear = classify_intro_reply("Yes... actually no")
    assert not unclear.is_clear and unclear.confidence == 0.0
    assert unclear.reason == "conflicting signals (accept, decline)"


def test_short_replies_are_more_certain_than_long_ones():
    short = classify_intro_reply("Yes")
    long = classify_intro_reply("Yes. " + "I have been thinking about the garden project for a while now. " * 5)
    assert short.intent == long.intent == "accept"
    assert short.confidence > long.confidence


def test_only_the_start_of_a_long_reply_counts():
    text = "Happy to! " + "word " * 200 + "no"
    assert classify_intro_reply(text).intent == "accept"


@pytest.mark.parametrize("style", ["gmail", "bottom", "outlook", "html", "alternative"])
def test_yes_in_quoted_text_never_counts(style: str):
    raw = reply_message("Who is Ben?", "en", style, invitation="Reply YES. Yes, happy to! Sure!")
    assert intro_intent(parse_message(raw)).intent == "unclear"


def test_intents_from_parsed_messages():
    accept = parse_message(reply_message("Ja, gerne!", "de", "gmail"))
    assert intro_intent(accept).intent is IntroIntent.ACCEPT
    met = parse_message(reply_message("MET", "en", "gmail", invitation="Did you meet? Reply MET or NOT YET"))
    assert followup_intent(met).intent is FollowupIntent.MET
