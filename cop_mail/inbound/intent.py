"""What a person meant by a short reply: yes, no, later, or "we met".

Phrases are matched longest first, and a phrase claims its words: "no thanks" is one decline,
"not now" is a later, "no problem" is a yes. Anything hedged ("not sure", "maybe") or
contradictory ("yes... actually no") is unclear and goes to a coordinator: a wrong "yes" would
introduce people who did not agree, so doubt never becomes an acceptance. Only the visible reply
is read, so a "YES" in quoted text never counts.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from cop_mail.inbound.parsing import ParsedMessage, visible_reply_text

_MAX_CHARS = 600


class IntroIntent(StrEnum):
    ACCEPT = "accept"
    DECLINE = "decline"
    LATER = "later"
    UNCLEAR = "unclear"


class FollowupIntent(StrEnum):
    MET = "met"
    NOT_MET = "not_met"
    SKIP = "skip"
    UNCLEAR = "unclear"


@dataclass(frozen=True)
class IntentResult:
    intent: str  # an IntroIntent or FollowupIntent value
    confidence: float  # 0.0 for unclear; higher for short, single-signal replies
    reason: str
    matched: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()

    @property
    def is_clear(self) -> bool:
        return self.intent != "unclear"


@dataclass(frozen=True)
class _Phrase:
    category: str
    language: str
    pattern: re.Pattern[str]


def _phrases(category: str, table: Mapping[str, Iterable[str]]) -> list[_Phrase]:
    return [
        _Phrase(category, language, re.compile(rf"(?<![\w']){pattern}(?![\w'])"))
        for language, patterns in table.items()
        for pattern in patterns
    ]


# Patterns are matched against case-folded text with accents kept (so Spanish "si" = "if" is not
# "sí" = "yes"); curly apostrophes are straightened first.
_ACCEPT = {
    "en": [
        r"yes",
        r"yes please",
        r"yeah",
        r"yea",
        r"yep",
        r"yup",
        r"sure",
        r"sure thing",
        r"of course",
        r"absolutely",
        r"definitely",
        r"certainly",
        r"gladly",
        r"happy to",
        r"glad to",
        r"delighted",
        r"(?:i'?d|i would|i'?ll|i will) be (?:happy|glad|delighted) to",
        r"(?:i'?d|i would) love to",
        r"love to",
        r"i'?d like that",
        r"sounds (?:good|great|lovely|perfect|like a plan)",
        r"great idea",
        r"count me in",
        r"i'?m in",
        r"i am in",
        r"let'?s do (?:it|this)",
        r"go ahead",
        r"go for it",
        r"ok",
        r"okay",
        r"i accept",
        r"accepted",
        r"accept",
        r"why not",
        r"no problem",
        r"no worries",
        r"can'?t wait",
        r"looking forward",
        r"with pleasure",
        r"please do",
        r"please introduce us",
        r"i'?m up for it",
        r"i'?m interested",
        r"i am interested",
        r"interested",
        r"would be great",
    ],
    "es": [
        r"sí",
        r"^\s*si(?=\s*[,.!¡]|\s*$)",
        r"claro",
        r"claro que sí",
        r"por supuesto",
        r"con gusto",
        r"con mucho gusto",
        r"me encantaría",
        r"encantad[oa]",
        r"me gustaría",
        r"me parece (?:bien|genial|perfecto)",
        r"de acuerdo",
        r"vale",
        r"acepto",
        r"adelante",
        r"perfecto",
        r"genial",
        r"sin problema",
        r"¿?por qué no\??",
        r"cuenta conmigo",
        r"estoy dispuest[oa]",
    ],
    "fr": [
        r"oui",
        r"ouais",
        r"bien sûr",
        r"avec plaisir",
        r"volontiers",
        r"d'accord",
        r"j'accepte",
        r"avec joie",
        r"ça me (?:dit|va|plaît)",
        r"je veux bien",
        r"pourquoi pas",
        r"bonne idée",
        r"carrément",
        r"partante?",
        r"pas de problème",
        r"sans problème",
        r"j'en serais ravie?",
        r"ravie?",
    ],
    "de": [
        r"ja",
        r"jawohl",
        r"gerne",
        r"gern",
        r"sehr gerne",
        r"klar",
        r"na klar",
        r"natürlich",
        r"einverstanden",
        r"auf jeden fall",
        r"ich bin dabei",
        r"bin dabei",
        r"ich akzeptiere",
        r"freue mich",
        r"warum nicht",
        r"kein problem",
        r"gute idee",
        r"selbstverständlich",
        r"passt",
    ],
    "pt": [
        r"sim",
        r"com prazer",
        r"com certeza",
        r"claro que sim",
        r"adoraria",
        r"aceito",
        r"pode ser",
        r"beleza",
        r"com (?:todo o|muito) gosto",
        r"por que não",
        r"sem problema",
        r"ótimo",
        r"perfeito",
        r"topo",
        r"estou dentro",
        r"conte comigo",
        r"seria ótimo",
    ],
}
_DECLINE = {
    "en": [
        r"no,? thanks?",
        r"no,? thank you",
        r"not interested",
        r"i'?ll pass",
        r"i will pass",
        r"pass",
        r"i decline",
        r"decline",
        r"not for me",
        r"(?:i'?d )?rather not",
        r"i can'?t",
        r"i cannot",
        r"can'?t make it",
        r"i'?m not able",
        r"unable to",
        r"won'?t be able",
        r"don'?t want to",
        r"no way",
        r"of course not",
        r"absolutely not",
        r"definitely not",
        r"(?:i'?d )?prefer not",
        r"count me out",
        r"not for now or later",
    ],
    "es": [
        r"no,? gracias",
        r"no me interesa",
        r"prefiero no",
        r"rechazo",
        r"no puedo",
        r"no quiero",
        r"paso",
        r"no es para mí",
        r"mejor no",
        r"claro que no",
        r"por supuesto que no",
        r"de ninguna manera",
    ],
    "fr": [
        r"non,? merci",
        r"pas intéressée?",
        r"ça ne m'intéresse pas",
        r"je (?:ne )?préfère (?:ne )?pas",
        r"je décline",
        r"je (?:ne )?peux pas",
        r"je ne souhaite pas",
        r"sans moi",
        r"je passe",
        r"pas pour moi",
        r"bien sûr que non",
        r"certainement pas",
    ],
    "de": [
        r"nein,? danke",
        r"kein interesse",
        r"lieber nicht",
        r"leider nicht",
        r"leider nein",
        r"ich lehne ab",
        r"ablehnen",
        r"ich kann nicht",
        r"ich möchte nicht",
        r"möchte ich nicht",
        r"nichts für mich",
        r"auf keinen fall",
        r"natürlich nicht",
    ],
    "pt": [
        r"não,? obrigad[oa]",
        r"não tenho interesse",
        r"prefiro não",
        r"recuso",
        r"não posso",
        r"não quero",
        r"não é para mim",
        r"de jeito nenhum",
        r"claro que não",
        r"dispenso",
    ],
}
# Bare "no" and regret words: a decline on their own, absorbed by a "later" ("no, not now").
_WEAK_DECLINE = {
    "en": [r"no", r"nope", r"nah", r"unfortunately", r"sadly"],
    "es": [r"lamentablemente", r"desafortunadamente", r"desgraciadamente"],
    "fr": [r"non", r"malheureusement"],
    "de": [r"nein", r"leider"],
    "pt": [r"não", r"nao", r"infelizmente"],
}
_LATER = {
    "en": [
        r"later",
        r"not now",
        r"not right now",
        r"can'?t right now",
        r"not at the moment",
        r"not at this time",
        r"maybe later",
        r"(?:maybe|perhaps) (?:next (?:week|month|year)|in a few (?:weeks|months))",
        r"not now,? thanks?(?: you)?",
        r"perhaps later",
        r"another time",
        r"some other time",
        r"next month",
        r"in a few (?:weeks|months)",
        r"ask me again",
        r"ask again",
        r"check back",
        r"not this month",
        r"not yet",
        r"not this time",
        r"too busy",
        r"busy right now",
        r"swamped",
        r"after the holidays",
        r"postpone",
        r"remind me later",
        r"get back to you",
    ],
    "es": [
        r"más tarde",
        r"mas tarde",
        r"ahora no",
        r"ahora no,? gracias",
        r"(?:quizás?|tal vez) (?:el )?(?:próximo mes|mes que viene)",
        r"en otro momento",
        r"más adelante",
        r"mas adelante",
        r"otro momento",
        r"el próximo mes",
        r"el mes que viene",
        r"ahora mismo no",
        r"todavía no",
        r"aún no",
        r"por ahora no",
        r"de momento no",
        r"quizás? más tarde",
        r"estoy muy ocupad[oa]",
        r"pregúntame más tarde",
    ],
    "fr": [
        r"plus tard",
        r"pas maintenant",
        r"pas maintenant,? merci",
        r"peut-être le mois prochain",
        r"une autre fois",
        r"pas pour le moment",
        r"pas pour l'instant",
        r"le mois prochain",
        r"pas encore",
        r"pas tout de suite",
        r"peut-être plus tard",
        r"plus tard,? peut-être",
        r"trop occupée?",
        r"dans quelques semaines",
        r"redemandez-moi",
    ],
    "de": [
        r"später",
        r"spaeter",
        r"nicht jetzt",
        r"(?:jetzt|gerade) nicht,? danke",
        r"vielleicht nächsten monat",
        r"ein andermal",
        r"ein anderes mal",
        r"momentan nicht",
        r"derzeit nicht",
        r"zurzeit nicht",
        r"im moment nicht",
        r"nächsten monat",
        r"noch nicht",
        r"vielleicht später",
        r"gerade nicht",
        r"zu beschäftigt",
        r"in ein paar wochen",
    ],
    "pt": [
        r"mais tarde",
        r"agora não",
        r"agora não,? obrigad[oa]",
        r"talvez (?:no )?(?:próximo mês|mês que vem)",
        r"outra hora",
        r"outra vez",
        r"mais para frente",
        r"mais pra frente",
        r"no momento não",
        r"por enquanto não",
        r"próximo mês",
        r"mês que vem",
        r"ainda não",
        r"talvez mais tarde",
        r"outro momento",
        r"muito ocupad[oa]",
    ],
}
_HEDGE = {
    "en": [
        r"not sure",
        r"unsure",
        r"maybe",
        r"perhaps",
        r"i don'?t know",
        r"dunno",
        r"no idea",
        r"let me think",
        r"i'?ll think about it",
        r"i need to think",
        r"depends",
        r"yes and no",
        r"kind of",
        r"sort of",
        r"more or less",
        r"not really sure",
    ],
    "es": [
        r"no estoy segur[oa]",
        r"no sé",
        r"quizás?",
        r"tal vez",
        r"a lo mejor",
        r"lo pienso",
        r"déjame pensarlo",
        r"depende",
        r"más o menos",
    ],
    "fr": [
        r"pas sûre?",
        r"je ne suis pas sûre?",
        r"je (?:ne )?sais pas",
        r"peut-être",
        r"je vais réfléchir",
        r"ça dépend",
        r"plus ou moins",
    ],
    "de": [
        r"nicht sicher",
        r"wei(?:ss|ß) nicht",
        r"keine ahnung",
        r"vielleicht",
        r"mal sehen",
        r"ich überlege",
        r"kommt darauf an",
        r"ich denke darüber nach",
        r"mehr oder weniger",
    ],
    "pt": [r"não tenho certeza", r"não sei", r"talvez", r"quem sabe", r"vou pensar", r"depende", r"mais ou menos"],
}
_MET = {
    "en": [
        r"met",
        r"we met",
        r"we'?ve met",
        r"we have met",
        r"we did",
        r"yes",
        r"yep",
        r"yeah",
        r"done",
        r"had a (?:call|chat|coffee|meeting|video call)",
        r"we talked",
        r"we spoke",
        r"talked",
        r"spoke",
        r"caught up",
        r"connected",
    ],
    "es": [
        r"nos vimos",
        r"nos reunimos",
        r"nos conocimos",
        r"nos encontramos",
        r"hablamos",
        r"sí",
        r"^\s*si(?=\s*[,.!¡]|\s*$)",
        r"ya nos vimos",
    ],
    "fr": [
        r"on s'est (?:vue?s|rencontrée?s|parlé)",
        r"nous nous sommes (?:vue?s|rencontrée?s|parlé)",
        r"rencontrée?s?",
        r"oui",
        r"c'est fait",
        r"on a parlé",
        r"nous avons parlé",
    ],
    "de": [r"getroffen", r"wir haben uns getroffen", r"ja", r"haben telefoniert", r"gesprochen", r"erledigt"],
    "pt": [
        r"nos encontramos",
        r"nos conhecemos",
        r"encontramos",
        r"conversamos",
        r"sim",
        r"já nos (?:encontramos|falamos)",
        r"falamos",
    ],
}
_NOT_MET = {
    "en": [
        r"not yet",
        r"not met",
        r"haven'?t met",
        r"have not met",
        r"didn'?t meet",
        r"did not meet",
        r"never met",
        r"no",
        r"nope",
        r"not really",
        r"we haven'?t",
        r"not so far",
    ],
    "es": [r"todavía no", r"aún no", r"no nos (?:hemos visto|vimos|hemos reunido)", r"no", r"nunca"],
    "fr": [
        r"pas encore",
        r"non",
        r"on ne s'est pas (?:vue?s|rencontrée?s)",
        r"nous ne nous sommes pas (?:vue?s|rencontrée?s)",
    ],
    "de": [r"noch nicht", r"nein", r"nicht getroffen", r"haben uns nicht getroffen"],
    "pt": [r"ainda não", r"não", r"nao", r"não nos (?:encontramos|vimos|falamos)"],
}
_SKIP = {
    "en": [r"skip", r"skip it", r"skip this", r"pass", r"not relevant", r"doesn'?t matter"],
    "es": [r"omitir", r"saltar", r"omite", r"sáltalo"],
    "fr": [r"passer", r"passe", r"ignorer"],
    "de": [r"überspringen", r"ueberspringen", r"egal"],
    "pt": [r"pular", r"ignorar", r"pula"],
}

_NEGATORS = re.compile(
    r"(?<![\w'])(?:not|never|don'?t|doesn'?t|didn'?t|won'?t|wouldn'?t|can'?t|isn'?t|nicht|kein|keine|nie"
    r"|pas|ne|jamais|nunca|nem|ni)(?![\w'])"
)

_INTRO_TABLE = (
    _phrases("accept", _ACCEPT)
    + _phrases("decline", _DECLINE)
    + _phrases("weak_decline", _WEAK_DECLINE)
    + _phrases("later", _LATER)
    + _phrases("hedge", _HEDGE)
)
_FOLLOWUP_TABLE = (
    _phrases("met", _MET) + _phrases("not_met", _NOT_MET) + _phrases("skip", _SKIP) + _phrases("hedge", _HEDGE)
)


@dataclass(frozen=True)
class _Match:
    start: int
    end: int
    category: str
    language: str
    text: str


def classify_intro_reply(text: str) -> IntentResult:
    """accept / decline / later / unclear for the visible text of a reply to an introduction."""
    prepared = _prepare(text)
    if not prepared:
        return IntentResult(IntroIntent.UNCLEAR, 0.0, "empty reply")
    matches = _find(prepared, _INTRO_TABLE, positive={"accept"})
    categories = {match.category for match in matches}
    if "later" in categories and "weak_decline" in categories and not categories & {"accept", "decline"}:
        categories.discard("weak_decline")
    if categories & {"decline", "weak_decline"} and not categories - {"decline", "weak_decline"}:
        categories = {"decline"}
    return _decide(prepared, matches, categories, IntroIntent)


def classify_followup_reply(text: str) -> IntentResult:
    """met / not_met / skip / unclear for the visible text of a reply to a follow-up."""
    prepared = _prepare(text)
    if not prepared:
        return IntentResult(FollowupIntent.UNCLEAR, 0.0, "empty reply")
    matches = _find(prepared, _FOLLOWUP_TABLE, positive={"met"})
    categories = {match.category for match in matches}
    return _decide(prepared, matches, categories, FollowupIntent)


def intro_intent(parsed: ParsedMessage) -> IntentResult:
    return classify_intro_reply(visible_reply_text(parsed))


def followup_intent(parsed: ParsedMessage) -> IntentResult:
    return classify_followup_reply(visible_reply_text(parsed))


def _prepare(text: str) -> str:
    text = unicodedata.normalize("NFC", text or "").casefold()
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u00a0", " ")
    return " ".join(text[:_MAX_CHARS].split())


def _find(text: str, table: list[_Phrase], positive: set[str]) -> list[_Match]:
    candidates = [
        _Match(found.start(), found.end(), phrase.category, phrase.language, found.group(0).strip())
        for phrase in table
        for found in phrase.pattern.finditer(text)
        if found.end() > found.start()
    ]
    candidates.sort(key=lambda m: (-(m.end - m.start), m.start))
    taken: list[_Match] = []
    for match in candidates:
        if all(match.end <= other.start or match.start >= other.end for other in taken):
            taken.append(match)
    taken.sort(key=lambda m: m.start)
    return [_negated(text, match) if match.category in positive else match for match in taken]


def _negated(text: str, match: _Match) -> _Match:
    """A positive phrase with a negation just before it in the same clause ("not happy to")."""
    before = re.split(r"[.,;:!?¡¿\n]", text[max(0, match.start - 40) : match.start])[-1]
    if _NEGATORS.search(" ".join(before.split()[-3:])):
        return _Match(match.start, match.end, "negated", match.language, match.text)
    return match


def _decide(text: str, matches: list[_Match], categories: set[str], enum: type[StrEnum]) -> IntentResult:
    words = tuple(match.text for match in matches)
    languages = tuple(dict.fromkeys(match.language for match in matches))
    if not categories:
        return IntentResult(enum("unclear"), 0.0, "no recognisable answer")
    if "hedge" in categories:
        return IntentResult(enum("unclear"), 0.0, "the reply hedges", words, languages)
    if "negated" in categories:
        return IntentResult(enum("unclear"), 0.0, "a yes with a negation", words, languages)
    if len(categories) > 1:
        found = ", ".join(sorted({c.removeprefix("weak_") for c in categories}))
        return IntentResult(enum("unclear"), 0.0, f"conflicting signals ({found})", words, languages)
    category = categories.pop()
    count = sum(1 for match in matches if match.category == category)
    confidence = 0.9 if len(text) <= 40 else 0.75 if len(text) <= 200 else 0.6
    confidence = min(0.99, confidence + 0.03 * (count - 1))
    return IntentResult(enum(category), confidence, f"said {', '.join(repr(w) for w in words)}", words, languages)
