"""A corpus of inbound mail built in code: replies in five languages, auto-replies, delivery
reports in the styles of common MTAs, abuse reports and broken messages.

Every case carries its own expected outcome, written from what the message means, so the tests
compare the code against the corpus and never the other way round.
"""

from __future__ import annotations

import base64
import quopri
from collections import Counter
from dataclasses import dataclass, field

from cop_mail.tokens import make_address_token

SECRET = "corpus-secret-" + "k" * 32
DOMAIN = "example.org"
NOW = 1_767_225_600.0  # 2026-01-01, when every corpus token was issued
MEMBER = "ana@example.com"
INVITE_ID = "<intro-41.invite@example.org>"
SENT_ID = "<campaign-7.delivery-9001@example.org>"
DATE = "Mon, 06 Jan 2025 10:00:00 +0000"

REPLY_TOKEN = make_address_token(SECRET, "intro", 41, 7, now=NOW)
FOLLOWUP_TOKEN = make_address_token(SECRET, "followup", 41, 7, now=NOW)
BOUNCE_TOKEN = make_address_token(SECRET, "bounce", 9001, 7, now=NOW)
REPLY_ADDRESS = f"reply+{REPLY_TOKEN}@{DOMAIN}"
FOLLOWUP_ADDRESS = f"reply+{FOLLOWUP_TOKEN}@{DOMAIN}"
BOUNCE_ADDRESS = f"bounces+{BOUNCE_TOKEN}@{DOMAIN}"

HUMAN = "human"
AUTO = "auto_reply"
HARD = "bounce_hard"
SOFT = "bounce_soft"
COMPLAINT = "complaint"
UNCHECKED = "<unchecked>"  # a field the case makes no claim about


@dataclass(frozen=True)
class Case:
    name: str
    raw: bytes = field(repr=False)
    kind: str
    intro: str | None = None  # expected intro intent, for replies to an invitation
    followup: str | None = None  # expected follow-up intent
    command: str | None = None  # expected command kind
    envelope_sender: str | None = MEMBER
    visible_has: tuple[str, ...] = ()
    visible_lacks: tuple[str, ...] = ()
    subject: str | None = None
    from_address: str | None = UNCHECKED
    message_id: str | None = UNCHECKED
    bounce_recipients: tuple[str, ...] = ()
    bounce_status: str | None = None
    original_message_id: str | None = None
    verp_token: str | None = None
    complaint_recipient: str | None = None
    feedback_type: str | None = None
    attachments: int | None = None
    nested: int | None = None
    tags: frozenset[str] = frozenset()


# --- building blocks -------------------------------------------------------------------------------


def encode_body(body: str | bytes, cte: str, charset: str = "utf-8") -> bytes:
    data = body if isinstance(body, bytes) else body.encode(charset)
    if cte == "base64":
        return base64.encodebytes(data)
    if cte == "quoted-printable":
        return quopri.encodestring(data)
    return data


def header_lines(headers: list[tuple[str, str]]) -> bytes:
    return "".join(f"{name}: {value}\n" for name, value in headers).encode("utf-8")


def text_message(
    headers: list[tuple[str, str]],
    body: str | bytes,
    *,
    subtype: str = "plain",
    charset: str = "utf-8",
    cte: str = "8bit",
) -> bytes:
    mime = [
        ("MIME-Version", "1.0"),
        ("Content-Type", f'text/{subtype}; charset="{charset}"'),
        ("Content-Transfer-Encoding", cte),
    ]
    return header_lines(headers + mime) + b"\n" + encode_body(body, cte, charset)


def part(content_type: str, body: str | bytes, *, cte: str = "8bit", extra: tuple[str, ...] = ()) -> bytes:
    lines = [f"Content-Type: {content_type}"]
    if cte != "8bit" or not isinstance(body, bytes):
        lines.append(f"Content-Transfer-Encoding: {cte}")
    lines += list(extra)
    return ("\n".join(lines) + "\n\n").encode() + encode_body(body, cte)


def multipart(
    headers: list[tuple[str, str]],
    parts: list[bytes],
    *,
    subtype: str = "alternative",
    params: str = "",
    boundary: str | None = None,
) -> bytes:
    boundary = boundary or "=_corpus_boundary_" + subtype.replace("/", "_")
    top = headers + [
        ("MIME-Version", "1.0"),
        ("Content-Type", f'multipart/{subtype}; boundary="{boundary}"{params}'),
    ]
    body = b"".join(b"--" + boundary.encode() + b"\n" + item + b"\n" for item in parts)
    return header_lines(top) + b"\nThis is a multi-part message in MIME format.\n" + body + f"--{boundary}--\n".encode()


def reply_headers(
    subject: str = "Re: Would you like to meet Ben?",
    *,
    sender: str = f"Ana Example <{MEMBER}>",
    to: str = REPLY_ADDRESS,
    message_id: str = "<reply-1@mail.example.com>",
    extra: tuple[tuple[str, str], ...] = (),
) -> list[tuple[str, str]]:
    return [
        ("Return-Path", f"<{MEMBER}>"),
        ("From", sender),
        ("To", to),
        ("Subject", subject),
        ("Date", DATE),
        ("Message-ID", message_id),
        ("In-Reply-To", INVITE_ID),
        ("References", f"<campaign-1@example.org> {INVITE_ID}"),
        *extra,
    ]


INVITATIONS = {
    "en": "Would you like to meet Ben? You both hold Reciprocity.\nReply YES, NO or LATER.",
    "es": "¿Te gustaría conocer a Ben? Los dos valoráis la reciprocidad.\nResponde SÍ, NO o MÁS TARDE.",
    "fr": "Aimeriez-vous rencontrer Ben ? Vous partagez la réciprocité.\nRépondez OUI, NON ou PLUS TARD.",
    "de": "Möchten Sie Ben kennenlernen? Sie teilen den Wert Gegenseitigkeit.\nAntworten Sie JA, NEIN oder SPÄTER.",
    "pt": "Gostaria de conhecer o Ben? Vocês partilham a reciprocidade.\nResponda SIM, NÃO ou MAIS TARDE.",
}
# Only a yes: if quoted text ever leaked into the visible reply it would read as an acceptance.
YES_ONLY = {
    "en": "Would you like to meet Ben?\nReply YES to accept. Yes, happy to is all it takes!",
    "es": "¿Te gustaría conocer a Ben?\nResponde SÍ para aceptar: sí, con gusto.",
    "fr": "Aimeriez-vous rencontrer Ben ?\nRépondez OUI pour accepter : oui, avec plaisir.",
    "de": "Möchten Sie Ben kennenlernen?\nAntworten Sie JA, gerne!",
    "pt": "Gostaria de conhecer o Ben?\nResponda SIM, com prazer!",
}
ATTRIBUTIONS = {
    "en": "On Mon, 6 Jan 2025 at 10:00, Garden Network <community@example.org> wrote:",
    "es": "El lun, 6 ene 2025 a las 10:00, Red de Huertos (<community@example.org>) escribió:",
    "fr": "Le lun. 6 janv. 2025 à 10:00, Réseau des Jardins <community@example.org> a écrit :",
    "de": "Am Mo., 6. Jan. 2025 um 10:00 Uhr schrieb Gartennetz <community@example.org>:",
    "pt": "Em seg., 6 de jan. de 2025 às 10:00, Rede de Hortas <community@example.org> escreveu:",
}
OUTLOOK = {
    "en": "From: Garden Network <community@example.org>\nSent: Monday, January 6, 2025 10:00 AM\n"
    "To: Ana Example\nSubject: Would you like to meet Ben?",
    "es": "De: Red de Huertos <community@example.org>\nEnviado: lunes, 6 de enero de 2025 10:00\n"
    "Para: Ana\nAsunto: ¿Te gustaría conocer a Ben?",
    "fr": "De : Réseau des Jardins <community@example.org>\nEnvoyé : lundi 6 janvier 2025 10:00\n"
    "À : Ana\nObjet : Aimeriez-vous rencontrer Ben ?",
    "de": "Von: Gartennetz <community@example.org>\nGesendet: Montag, 6. Januar 2025 10:00\n"
    "An: Ana\nBetreff: Möchten Sie Ben kennenlernen?",
    "pt": "De: Rede de Hortas <community@example.org>\nEnviado: segunda-feira, 6 de janeiro de 2025 10:00\n"
    "Para: Ana\nAssunto: Gostaria de conhecer o Ben?",
}
SIGNATURE = "-- \nAna Example\nGarden Network volunteer\nSay YES to local food!"
STYLES = ("gmail", "bare", "outlook", "html", "alternative", "bottom", "signature")


def quoted(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.split("\n"))


def reply_body(reply: str, language: str, style: str, invitation: str) -> tuple[str, str | None]:
    """(plain text, html) for one reply style; html is None for plain-only styles."""
    attribution = ATTRIBUTIONS[language]
    if style == "bare":
        return reply, None
    if style == "gmail":
        return f"{reply}\n\n{attribution}\n\n{quoted(invitation)}\n", None
    if style == "outlook":
        return f"{reply}\n\n________________________________\n{OUTLOOK[language]}\n\n{invitation}\n", None
    if style == "bottom":
        return f"{attribution}\n{quoted(invitation)}\n\n{reply}\n", None
    if style == "signature":
        return f"{reply}\n\n{SIGNATURE}\n\n{attribution}\n{quoted(invitation)}\n", None
    html_reply = "".join(f"<div>{line}</div>" for line in reply.split("\n"))
    html_quote = invitation.replace("\n", "<br>")
    html = (
        f'<html><body>{html_reply}<br><div class="gmail_quote"><div dir="ltr">{attribution}</div>'
        f'<blockquote class="gmail_quote" style="margin:0 0 0 .8ex">{html_quote}</blockquote></div>'
        f'<img src="https://tracker.example.net/p.gif"></body></html>'
    )
    return f"{reply}\n\n{attribution}\n{quoted(invitation)}\n", html


def reply_message(
    reply: str,
    language: str,
    style: str,
    *,
    invitation: str | None = None,
    charset: str = "utf-8",
    cte: str = "8bit",
    headers: list[tuple[str, str]] | None = None,
) -> bytes:
    text, html = reply_body(reply, language, style, invitation or INVITATIONS[language])
    headers = headers or reply_headers()
    if style == "html":
        return text_message(headers, html or "", subtype="html", charset=charset, cte=cte)
    if style == "alternative":
        return multipart(
            headers,
            [
                part(f'text/plain; charset="{charset}"', text.encode(charset), cte=cte),
                part(f'text/html; charset="{charset}"', (html or "").encode(charset), cte=cte),
            ],
        )
    return text_message(headers, text, charset=charset, cte=cte)


# --- human replies to an introduction --------------------------------------------------------------

INTRO_REPLIES: dict[str, list[tuple[str, str]]] = {
    "en": [
        ("accept", "Yes, happy to!"),
        ("accept", "Sure, I'd love to meet Ben."),
        ("accept", "YES"),
        ("accept", "Count me in :)"),
        ("accept", "Absolutely, sounds great. Thanks for thinking of me."),
        ("decline", "No thanks."),
        ("decline", "I'd rather not, sorry."),
        ("decline", "Not interested, thank you."),
        ("later", "Not now, maybe next month."),
        ("later", "Later please, I'm swamped."),
        ("later", "Ask me again in a few weeks."),
        ("unclear", "Not sure, who is Ben?"),
        ("unclear", "Yes... actually no, I can't."),
        ("unclear", "Maybe"),
        ("unclear", "Let me check my calendar first."),
    ],
    "es": [
        ("accept", "Sí, con gusto."),
        ("accept", "¡Claro que sí! Me encantaría."),
        ("accept", "Por supuesto"),
        ("decline", "No, gracias."),
        ("decline", "Prefiero no participar."),
        ("decline", "No me interesa, lo siento."),
        ("later", "Ahora no, quizás más tarde."),
        ("later", "Más adelante, por favor."),
        ("unclear", "No estoy segura."),
        ("unclear", "Tal vez"),
        ("unclear", "Sí... bueno, no."),
    ],
    "fr": [
        ("accept", "Oui, avec plaisir !"),
        ("accept", "Volontiers."),
        ("accept", "Bien sûr, d'accord."),
        ("decline", "Non merci."),
        ("decline", "Je préfère ne pas participer."),
        ("decline", "Ça ne m'intéresse pas."),
        ("later", "Pas maintenant, plus tard peut-être."),
        ("later", "Plus tard, merci."),
        ("unclear", "Je ne sais pas."),
        ("unclear", "Peut-être"),
        ("unclear", "Oui... enfin non."),
    ],
    "de": [
        ("accept", "Ja, gerne!"),
        ("accept", "Sehr gerne, ich bin dabei."),
        ("accept", "Klar, warum nicht."),
        ("decline", "Nein, danke."),
        ("decline", "Lieber nicht."),
        ("decline", "Kein Interesse."),
        ("later", "Nicht jetzt, vielleicht später."),
        ("later", "Später bitte, ich bin zu beschäftigt."),
        ("unclear", "Ich bin nicht sicher."),
        ("unclear", "Vielleicht"),
        ("unclear", "Ja... eigentlich nein."),
    ],
    "pt": [
        ("accept", "Sim, com prazer!"),
        ("accept", "Claro que sim, adoraria."),
        ("accept", "Com certeza!"),
        ("decline", "Não, obrigado."),
        ("decline", "Prefiro não."),
        ("decline", "Não tenho interesse."),
        ("later", "Agora não, talvez mais tarde."),
        ("later", "Mais tarde, por favor."),
        ("unclear", "Não tenho certeza."),
        ("unclear", "Talvez"),
        ("unclear", "Sim... na verdade não."),
    ],
}
# No answer in the visible text; the quoted invitation says yes in every way it can.
QUOTED_ONLY = {
    "en": ["Who is Ben?", ""],
    "es": ["¿Quién es Ben?", ""],
    "fr": ["Qui est Ben ?", ""],
    "de": ["Wer ist Ben?", ""],
    "pt": ["Quem é o Ben?", ""],
}
CHARSETS = ("utf-8", "iso-8859-1", "utf-8", "windows-1252")
ENCODINGS = ("8bit", "quoted-printable", "base64")


def intro_cases() -> list[Case]:
    cases = []
    counter = 0
    for language, replies in INTRO_REPLIES.items():
        for index, (intent, text) in enumerate(replies):
            style = STYLES[(counter + index) % len(STYLES)]
            charset = CHARSETS[counter % len(CHARSETS)]
            cte = ENCODINGS[counter % len(ENCODINGS)]
            counter += 1
            raw = reply_message(text, language, style, charset=charset, cte=cte)
            first_word = text.split()[0].strip(",.!¡¿")
            cases.append(
                Case(
                    f"intro-{language}-{intent}-{index}-{style}",
                    raw,
                    HUMAN,
                    intro=intent,
                    visible_has=(first_word,) if style != "html" else (),
                    visible_lacks=(INVITATIONS[language].split("\n")[1],),
                    from_address=MEMBER,
                    message_id="<reply-1@mail.example.com>",
                    tags=frozenset({"intro", language, style}),
                )
            )
    for language, texts in QUOTED_ONLY.items():
        for index, text in enumerate(texts):
            for style in ("gmail", "bottom", "html") if index == 0 else ("gmail",):
                raw = reply_message(text, language, style, invitation=YES_ONLY[language])
                cases.append(
                    Case(
                        f"intro-{language}-quoted-yes-only-{index}-{style}",
                        raw,
                        HUMAN,
                        intro="unclear",
                        tags=frozenset({"intro", "quoted-yes", language, style}),
                    )
                )
    return cases


# --- follow-ups and commands -----------------------------------------------------------------------

FOLLOWUPS = [
    ("en", "met", "MET"),
    ("en", "not_met", "NOT YET"),
    ("en", "skip", "SKIP"),
    ("en", "met", "Yes, we met for coffee last week!"),
    ("en", "not_met", "Not yet, but we have a date."),
    ("en", "unclear", "Kind of, we emailed."),
    ("es", "met", "Sí, nos vimos el martes."),
    ("es", "not_met", "Todavía no."),
    ("fr", "met", "Oui, on s'est vus hier."),
    ("fr", "not_met", "Pas encore."),
    ("de", "met", "Ja, wir haben uns getroffen."),
    ("de", "not_met", "Noch nicht."),
    ("pt", "met", "Sim, nos encontramos."),
    ("pt", "not_met", "Ainda não."),
    ("pt", "skip", "Pular"),
]
FOLLOWUP_QUESTION = {
    "en": "Did you and Ben meet? Reply MET, NOT YET or SKIP.",
    "es": "¿Os visteis Ben y tú? Responde MET, NOT YET o SKIP.",
    "fr": "Avez-vous rencontré Ben ? Répondez MET, NOT YET ou SKIP.",
    "de": "Haben Sie Ben getroffen? Antworten Sie MET, NOT YET oder SKIP.",
    "pt": "Você e o Ben se encontraram? Responda MET, NOT YET ou SKIP.",
}


def followup_cases() -> list[Case]:
    cases = []
    for index, (language, intent, text) in enumerate(FOLLOWUPS):
        style = ("gmail", "bare", "outlook", "alternative")[index % 4]
        headers = reply_headers("Re: Did you meet Ben?", to=FOLLOWUP_ADDRESS)
        raw = reply_message(text, language, style, invitation=FOLLOWUP_QUESTION[language], headers=headers)
        cases.append(
            Case(f"followup-{language}-{intent}-{index}", raw, HUMAN, followup=intent, tags=frozenset({"followup"}))
        )
    return cases


COMMANDS = [
    ("pause", "PAUSE 2 months"),
    ("pause", "pause 3 weeks"),
    ("pause", "Pause 10 days."),
    ("no_intros", "NO INTROS"),
    ("unsubscribe", "UNSUBSCRIBE"),
    ("unsubscribe", "Unsubscribe newsletters"),
    ("digest_only", "DIGEST ONLY"),
    ("resume", "resume"),
    ("intro_cadence", "INTROS EVERY 4 WEEKS"),
    (None, "Pause for thought: yes, happy to meet Ben!"),
    (None, "I will unsubscribe my old address soon, but yes!"),
]


def command_cases() -> list[Case]:
    cases = []
    for index, (command, text) in enumerate(COMMANDS):
        style = ("gmail", "bare", "signature", "outlook")[index % 4]
        raw = reply_message(text, "en", style)
        intro = "accept" if command is None else None
        cases.append(Case(f"command-{index}-{command}", raw, HUMAN, intro=intro, command=command or "none"))
    return cases


# --- automatic mail --------------------------------------------------------------------------------

# Auto-replies that say yes in their own words, so any slip would read as an acceptance.
AUTO_BODY = "Yes, happy to help! I am out of the office until Monday.\n\n> Reply YES to accept.\n"

AUTO_HEADER_CASES = [
    ("auto-submitted-replied", [("Auto-Submitted", "auto-replied")]),
    ("auto-submitted-generated", [("Auto-Submitted", "auto-generated")]),
    ("auto-submitted-notified", [("Auto-Submitted", "auto-notified")]),
    ("auto-submitted-comment", [("Auto-Submitted", "auto-replied (vacation)")]),
    ("auto-submitted-upper", [("AUTO-SUBMITTED", "Auto-Replied")]),
    ("auto-submitted-no-then-yes", [("Auto-Submitted", "no"), ("Auto-Submitted", "auto-replied")]),
    ("x-autoreply", [("X-Autoreply", "yes")]),
    ("x-autorespond", [("X-Autorespond", "Vacation")]),
    ("precedence-bulk", [("Precedence", "bulk")]),
    ("precedence-junk", [("Precedence", "junk")]),
    ("precedence-list", [("Precedence", "list")]),
    ("precedence-auto-reply", [("Precedence", "auto_reply")]),
    ("x-auto-response-suppress", [("X-Auto-Response-Suppress", "All")]),
    ("list-id", [("List-Id", "Gardeners <gardeners.lists.example.net>")]),
    ("list-unsubscribe", [("List-Unsubscribe", "<mailto:leave@lists.example.net>")]),
]
AUTO_SENDERS = [
    "MAILER-DAEMON@mx.example.com",
    "postmaster@example.com",
    "noreply@example.com",
    "no-reply@example.com",
    "donotreply@example.com",
    "do-not-reply@example.com",
    "Mail Delivery System <system@mx.example.com>",
]
OOO_SUBJECTS = [
    ("en", "Out of Office: Re: Would you like to meet Ben?"),
    ("en", "Automatic reply: Would you like to meet Ben?"),
    ("en", "Autoreply: Would you like to meet Ben?"),
    ("es", "Respuesta automática: ¿Te gustaría conocer a Ben?"),
    ("es", "Fuera de la oficina"),
    ("fr", "Réponse automatique : Aimeriez-vous rencontrer Ben ?"),
    ("fr", "Absent du bureau jusqu'au 12 janvier"),
    ("de", "Abwesenheitsnotiz: Möchten Sie Ben kennenlernen?"),
    ("de", "Automatische Antwort: Möchten Sie Ben kennenlernen?"),
    ("pt", "Resposta automática: Gostaria de conhecer o Ben?"),
    ("pt", "Fora do escritório"),
    ("nl", "Afwezig: Wil je Ben ontmoeten?"),
    ("nl", "Automatisch antwoord: Wil je Ben ontmoeten?"),
    ("it", "Risposta automatica: Vuoi conoscere Ben?"),
    ("it", "Fuori ufficio"),
    ("es", "=?utf-8?q?Respuesta_autom=C3=A1tica=3A_Re=3A_Hola?="),
    ("fr", "=?iso-8859-1?q?R=E9ponse_automatique?="),
    ("de", "=?utf-8?b?QWJ3ZXNlbmhlaXRzbm90aXo=?="),
]


def auto_cases() -> list[Case]:
    cases = []
    for name, extra in AUTO_HEADER_CASES:
        headers = reply_headers("Re: Would you like to meet Ben?", extra=tuple(extra))
        cases.append(Case(f"auto-{name}", text_message(headers, AUTO_BODY), AUTO, tags=frozenset({"auto"})))
    for index, sender in enumerate(AUTO_SENDERS):
        headers = reply_headers("Re: Would you like to meet Ben?", sender=sender)
        cases.append(
            Case(f"auto-sender-{index}", text_message(headers, AUTO_BODY), AUTO, tags=frozenset({"auto", "sender"}))
        )
    for index, (language, subject) in enumerate(OOO_SUBJECTS):
        headers = reply_headers(subject)
        cte = ENCODINGS[index % len(ENCODINGS)]
        cases.append(
            Case(
                f"auto-ooo-{language}-{index}",
                text_message(headers, AUTO_BODY, cte=cte),
                AUTO,
                tags=frozenset({"auto", "ooo", language}),
            )
        )
    cases += [
        Case(
            "auto-null-envelope-sender",
            text_message(reply_headers(), AUTO_BODY),
            AUTO,
            envelope_sender="",
            tags=frozenset({"auto"}),
        ),
        Case(
            "auto-read-receipt",
            multipart(
                reply_headers("Read: Would you like to meet Ben?"),
                [
                    part("text/plain", "Your message was read on Monday. Yes!"),
                    part(
                        "message/disposition-notification",
                        "Reporting-UA: mail.example.com\nFinal-Recipient: rfc822; ana@example.com\n"
                        "Disposition: manual-action/MDN-sent-manually; displayed\n",
                    ),
                ],
                subtype="report",
                params="; report-type=disposition-notification",
            ),
            AUTO,
            tags=frozenset({"auto"}),
        ),
        Case(
            "human-auto-submitted-no",
            text_message(reply_headers(extra=(("Auto-Submitted", "no"),)), "Yes, happy to!"),
            HUMAN,
            intro="accept",
            tags=frozenset({"auto-negative"}),
        ),
        Case(
            "human-precedence-first-class",
            text_message(reply_headers(extra=(("Precedence", "first-class"),)), "Ja, gerne!"),
            HUMAN,
            intro="accept",
            tags=frozenset({"auto-negative"}),
        ),
    ]
    return cases


# --- delivery status notifications -----------------------------------------------------------------

ORIGINAL_HEADERS = (
    f"Return-Path: <{BOUNCE_ADDRESS}>\n"
    "From: Garden Network <community@example.org>\n"
    "To: ben@example.net\n"
    "Subject: January newsletter\n"
    f"Message-ID: {SENT_ID}\n"
    f"Date: {DATE}\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=utf-8\n"
)
ORIGINAL = ORIGINAL_HEADERS + "\nHello Ben, reply YES to meet Ana.\n"


def dsn_headers(sender: str, subject: str, extra: tuple[tuple[str, str], ...] = ()) -> list[tuple[str, str]]:
    return [
        ("Return-Path", "<>"),
        ("From", sender),
        ("To", BOUNCE_ADDRESS),
        ("Subject", subject),
        ("Date", DATE),
        ("Message-ID", "<dsn-1@mx.example.net>"),
        ("Auto-Submitted", "auto-replied"),
        *extra,
    ]


def status_block(recipient: str, action: str, status: str | None, diagnostic: str | None) -> str:
    lines = [f"Final-Recipient: rfc822; {recipient}", f"Original-Recipient: rfc822;{recipient}", f"Action: {action}"]
    if status:
        lines.append(f"Status: {status}")
    lines.append("Remote-MTA: dns; mx.example.net")
    if diagnostic:
        lines.append(f"Diagnostic-Code: smtp; {diagnostic}")
    return "\n".join(lines)


def dsn(
    headers: list[tuple[str, str]],
    explanation: str,
    blocks: list[str],
    *,
    original: str = "message",
    per_message: str = "Reporting-MTA: dns; mx.example.net\nArrival-Date: Mon, 6 Jan 2025 10:00:01 +0000",
) -> bytes:
    status = per_message + "\n\n" + "\n\n".join(blocks) + "\n"
    parts = [part("text/plain; charset=us-ascii", explanation), part("message/delivery-status", status)]
    if original == "message":
        parts.append(part("message/rfc822", ORIGINAL))
    elif original == "headers":
        parts.append(part("text/rfc822-headers", ORIGINAL_HEADERS))
    return multipart(headers, parts, subtype="report", params="; report-type=delivery-status")


POSTFIX_TEXT = (
    "This is the mail system at host mx.example.net.\n\nI'm sorry to have to inform you that your message "
    "could not\nbe delivered to one or more recipients. It's attached below.\n\n"
    "<ben@example.net>: host mx.example.net said: 550 5.1.1 <ben@example.net>: Recipient address rejected"
)


def dsn_cases() -> list[Case]:
    daemon = "MAILER-DAEMON@mx.example.net (Mail Delivery System)"
    hard = dict(bounce_recipients=("ben@example.net",), original_message_id=SENT_ID, verp_token=BOUNCE_TOKEN)
    cases = [
        Case(
            "dsn-postfix-hard",
            dsn(
                dsn_headers(daemon, "Undelivered Mail Returned to Sender", (("X-Postfix-Queue-ID", "4Q1"),)),
                POSTFIX_TEXT,
                [status_block("ben@example.net", "failed", "5.1.1", "550 5.1.1 <ben@example.net>: User unknown")],
            ),
            HARD,
            envelope_sender="",
            bounce_status="5.1.1",
            **hard,
        ),
        Case(
            "dsn-postfix-delayed",
            dsn(
                dsn_headers(daemon, "Delayed Mail (still being retried)"),
                "This is the mail system at host mx.example.net.\n\n#################\n# THIS IS A WARNING ONLY. #",
                [status_block("ben@example.net", "delayed", "4.4.1", "connect to mx.example.net: Connection refused")],
                original="headers",
            ),
            SOFT,
            envelope_sender="",
            bounce_status="4.4.1",
            **hard,
        ),
        Case(
            "dsn-exim-hard",
            dsn(
                dsn_headers(
                    "Mail Delivery System <Mailer-Daemon@mx.example.net>",
                    "Mail delivery failed: returning message to sender",
                    (("X-Failed-Recipients", "ben@example.net"),),
                ),
                "This message was created automatically by mail delivery software.\n\nA message that you sent "
                "could not be delivered to one or more of its\nrecipients. This is a permanent error.",
                [status_block("ben@example.net", "failed", "5.0.0", "550 No Such User Here")],
            ),
            HARD,
            envelope_sender="",
            bounce_status="5.0.0",
            **hard,
        ),
        Case(
            "dsn-exim-delayed",
            dsn(
                dsn_headers(
                    "Mail Delivery System <Mailer-Daemon@mx.example.net>", "Warning: message 1abc delayed 24 hours"
                ),
                "This message was created automatically by mail delivery software.\nA message that you sent has "
                "not yet been delivered to one or more of its\nrecipients after more than 24 hours on the queue.",
                [status_block("ben@example.net", "delayed", "4.0.0", "451 Temporary local problem")],
            ),
            SOFT,
            envelope_sender="",
            bounce_status="4.0.0",
            **hard,
        ),
        Case(
            "dsn-gmail-hard",
            dsn(
                dsn_headers(
                    "Mail Delivery Subsystem <mailer-daemon@googlemail.com>", "Delivery Status Notification (Failure)"
                ),
                "** Address not found **\n\nYour message wasn't delivered to ben@example.net because the address "
                "couldn't be found, or is unable to receive mail.",
                [
                    status_block(
                        "ben@example.net",
                        "failed",
                        "5.1.1",
                        "550-5.1.1 The email account that you tried to reach does not exist.",
                    )
                ],
            ),
            HARD,
            envelope_sender="",
            bounce_status="5.1.1",
            **hard,
        ),
        Case(
            "dsn-gmail-full",
            dsn(
                dsn_headers(
                    "Mail Delivery Subsystem <mailer-daemon@googlemail.com>", "Delivery Status Notification (Delay)"
                ),
                "** Message not delivered yet **\n\nThe recipient's inbox is out of storage space.",
                [status_block("ben@example.net", "delayed", "4.2.2", "452-4.2.2 The email account is over quota.")],
            ),
            SOFT,
            envelope_sender="",
            bounce_status="4.2.2",
            **hard,
        ),
        Case(
            "dsn-exchange-hard",
            dsn(
                dsn_headers(
                    "postmaster@contoso.example",
                    "Undeliverable: January newsletter",
                    (("X-MS-Exchange-Message-Is-Ndr", ""), ("Content-Language", "en-US")),
                ),
                "Delivery has failed to these recipients or groups:\n\nben@example.net\nThe email address you "
                "entered couldn't be found.",
                [
                    status_block(
                        "ben@example.net",
                        "failed",
                        "5.1.10",
                        "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
                    )
                ],
                original="headers",
                per_message="Reporting-MTA: dns;EX01.contoso.example\nReceived-From-MTA: dns;EX02.contoso.example",
            ),
            HARD,
            envelope_sender="",
            bounce_status="5.1.10",
            **hard,
        ),
        Case(
            "dsn-exchange-expired",
            dsn(
                dsn_headers("postmaster@contoso.example", "Undeliverable: January newsletter"),
                "Delivery has failed to these recipients or groups:\n\nben@example.net\nThe message expired.",
                [status_block("ben@example.net", "failed", "4.4.7", "400 4.4.7 Message delayed")],
                original="headers",
            ),
            SOFT,
            envelope_sender="",
            bounce_status="4.4.7",
            **hard,
        ),
        Case(
            "dsn-exchange-blocked",
            dsn(
                dsn_headers("postmaster@contoso.example", "Undeliverable: January newsletter"),
                "Your message to ben@example.net couldn't be delivered. It was blocked.",
                [
                    status_block(
                        "ben@example.net", "failed", "5.7.1", "550 5.7.1 Service unavailable; Client host blocked"
                    )
                ],
            ),
            HARD,
            envelope_sender="",
            bounce_status="5.7.1",
            **hard,
        ),
        Case(
            "dsn-two-recipients",
            dsn(
                dsn_headers(daemon, "Undelivered Mail Returned to Sender"),
                POSTFIX_TEXT,
                [
                    status_block("ben@example.net", "failed", "5.1.1", "550 5.1.1 User unknown"),
                    status_block("cleo@example.net", "delayed", "4.4.1", "Connection timed out"),
                ],
            ),
            HARD,
            envelope_sender="",
            bounce_recipients=("ben@example.net", "cleo@example.net"),
            bounce_status="5.1.1",
            original_message_id=SENT_ID,
            verp_token=BOUNCE_TOKEN,
        ),
        Case(
            "dsn-no-status-field",
            dsn(
                dsn_headers(daemon, "Undelivered Mail Returned to Sender"),
                POSTFIX_TEXT,
                [status_block("ben@example.net", "failed", None, None)],
            ),
            HARD,
            envelope_sender="",
            **hard,
        ),
        Case(
            "dsn-status-only-in-diagnostic",
            dsn(
                dsn_headers(daemon, "Undelivered Mail Returned to Sender"),
                POSTFIX_TEXT,
                [status_block("ben@example.net", "failed", None, "550 5.2.1 Mailbox disabled")],
            ),
            HARD,
            envelope_sender="",
            bounce_status="5.2.1",
            **hard,
        ),
        Case(
            "dsn-delivered-success",
            dsn(
                dsn_headers(daemon, "Successful Mail Delivery Report"),
                "This is the mail system at host mx.example.net.\n\nYour message was successfully delivered.",
                [status_block("ben@example.net", "delivered", "2.0.0", "250 2.0.0 Ok: queued")],
                original="headers",
            ),
            AUTO,
            envelope_sender="",
        ),
        Case(
            "dsn-without-original",
            dsn(
                dsn_headers(daemon, "Undelivered Mail Returned to Sender"),
                POSTFIX_TEXT,
                [status_block("ben@example.net", "failed", "5.1.1", "550 5.1.1 User unknown")],
                original="none",
            ),
            HARD,
            envelope_sender="",
            bounce_recipients=("ben@example.net",),
            bounce_status="5.1.1",
            verp_token=BOUNCE_TOKEN,
        ),
        Case(
            "bounce-exim-plain-text",
            text_message(
                dsn_headers(
                    "Mail Delivery System <Mailer-Daemon@mx.example.net>",
                    "Mail delivery failed: returning message to sender",
                    (("X-Failed-Recipients", "ben@example.net"),),
                ),
                "This message was created automatically by mail delivery software.\n\nA message that you sent "
                "could not be delivered to one or more of its\nrecipients. This is a permanent error. The "
                "following address(es) failed:\n\n  ben@example.net\n    SMTP error from remote mail server "
                "after RCPT TO:<ben@example.net>:\n    550 5.1.1 User unknown\n\n------ This is a copy of the "
                "message, including all the headers. ------\n\n" + ORIGINAL,
                charset="us-ascii",
            ),
            HARD,
            envelope_sender="",
            bounce_recipients=("ben@example.net",),
            verp_token=BOUNCE_TOKEN,
        ),
        Case(
            "bounce-qmail-plain-text",
            text_message(
                dsn_headers("MAILER-DAEMON@mx.example.net", "failure notice"),
                "Hi. This is the qmail-send program at mx.example.net.\nI'm afraid I wasn't able to deliver "
                "your message to the following addresses.\nThis is a permanent error; I've given up. Sorry it "
                "didn't work out.\n\n<ben@example.net>:\n192.0.2.1 does not like recipient.\nRemote host "
                "said: 550 5.1.1 User unknown\nGiving up on 192.0.2.1.\n\n--- Below this line is a copy of "
                "the message.\n\n" + ORIGINAL,
                charset="us-ascii",
            ),
            HARD,
            envelope_sender="",
            bounce_recipients=("ben@example.net",),
            verp_token=BOUNCE_TOKEN,
        ),
        Case(
            "bounce-unparseable-from-daemon",
            text_message(
                dsn_headers("MAILER-DAEMON@mx.example.net", "Returned mail: see transcript for details"),
                "Something went wrong somewhere. Yes, really.\n",
                charset="us-ascii",
            ),
            AUTO,
            envelope_sender="",
        ),
    ]
    return [Case(**{**case.__dict__, "tags": frozenset({"dsn"})}) for case in cases]


# --- abuse reports (ARF) ---------------------------------------------------------------------------


def arf(feedback: str, original: str = "message", sender: str = "staff@fbl.example.net") -> bytes:
    headers = [
        ("From", sender),
        ("To", f"fbl@{DOMAIN}"),
        ("Subject", "Email Feedback Report for IP 192.0.2.10"),
        ("Date", DATE),
        ("Message-ID", "<arf-1@fbl.example.net>"),
    ]
    parts = [
        part("text/plain", "This is an email abuse report for an email message received from IP 192.0.2.10."),
        part("message/feedback-report", feedback),
    ]
    if original == "message":
        parts.append(part("message/rfc822", ORIGINAL))
    elif original == "headers":
        parts.append(part("text/rfc822-headers", ORIGINAL_HEADERS))
    return multipart(headers, parts, subtype="report", params="; report-type=feedback-report")


def arf_cases() -> list[Case]:
    base = "User-Agent: SomeFBL/1.0\nVersion: 1\nArrival-Date: Mon, 6 Jan 2025 10:00:00 +0000\n"
    expected = dict(original_message_id=SENT_ID, verp_token=BOUNCE_TOKEN, tags=frozenset({"arf"}))
    return [
        Case(
            "arf-abuse-redacted",
            arf("Feedback-Type: abuse\n" + base),
            COMPLAINT,
            complaint_recipient="ben@example.net",
            feedback_type="abuse",
            **expected,
        ),
        Case(
            "arf-abuse-rcpt-to",
            arf("Feedback-Type: abuse\n" + base + "Original-Rcpt-To: <ben@example.net>\n", "headers"),
            COMPLAINT,
            complaint_recipient="ben@example.net",
            feedback_type="abuse",
            **expected,
        ),
        Case(
            "arf-fraud",
            arf("Feedback-Type: fraud\n" + base + f"Original-Mail-From: <{BOUNCE_ADDRESS}>\n"),
            COMPLAINT,
            feedback_type="fraud",
            complaint_recipient="ben@example.net",
            **expected,
        ),
        Case(
            "arf-no-feedback-type",
            arf(base),
            COMPLAINT,
            feedback_type="abuse",
            complaint_recipient="ben@example.net",
            **expected,
        ),
        Case("arf-not-spam", arf("Feedback-Type: not-spam\n" + base), AUTO, tags=frozenset({"arf"})),
        Case(
            "arf-from-noreply",
            arf("Feedback-Type: abuse\n" + base, "headers", sender="noreply@fbl.example.net"),
            COMPLAINT,
            feedback_type="abuse",
            complaint_recipient="ben@example.net",
            **expected,
        ),
    ]


# --- broken and unusual messages -------------------------------------------------------------------

YES = "Yes, happy to!\n"


def raw_message(header_block: bytes, body: bytes = YES.encode()) -> bytes:
    return header_block.rstrip(b"\n") + b"\n\n" + body


def basic_headers(**changes: str) -> bytes:
    values = {
        "From": f"Ana Example <{MEMBER}>",
        "To": REPLY_ADDRESS,
        "Subject": "Re: Would you like to meet Ben?",
        "Date": DATE,
        "Message-ID": "<reply-2@mail.example.com>",
        "In-Reply-To": INVITE_ID,
    }
    values.update(changes)
    return "".join(f"{name}: {value}\n" for name, value in values.items() if value != "-").encode("utf-8")


def malformed_cases() -> list[Case]:
    tag = frozenset({"malformed"})
    ok = {"kind": HUMAN, "intro": "accept", "tags": tag}
    deep = b"".join(
        f'Content-Type: multipart/mixed; boundary="b{depth}"\n\n--b{depth}\n'.encode() for depth in range(60)
    )
    nested_forward = multipart(
        reply_headers("Fwd: Would you like to meet Ben?"),
        [
            part("text/plain; charset=utf-8", "FYI, see the message below. What do you think?"),
            part(
                "message/rfc822", raw_message(basic_headers(Subject="Would you like to meet Ben?"), b"Yes!\n").decode()
            ),
        ],
        subtype="mixed",
    )
    nested_in_nested = multipart(
        reply_headers("Fwd: Fwd: meet Ben"),
        [part("text/plain", "Passing this on."), part("message/rfc822", nested_forward.decode())],
        subtype="mixed",
        boundary="outer-boundary",
    )
    same_boundary = multipart(
        reply_headers("Fwd: Fwd: meet Ben"),
        [part("text/plain", "Passing this on."), part("message/rfc822", nested_forward.decode())],
        subtype="mixed",
    )
    image = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    )
    cases = [
        Case("bad-to-unclosed-quote", raw_message(basic_headers(To='"unclosed')), **ok),
        Case(
            "bad-message-id-empty-angles",
            raw_message(basic_headers(**{"Message-ID": "<<>>"})),
            message_id=None,
            **ok,
        ),
        Case(
            "bad-message-id-comment",
            raw_message(basic_headers(**{"Message-ID": "(generated) <x1@mail.example.com>"})),
            message_id="<x1@mail.example.com>",
            **ok,
        ),
        Case(
            "bad-8bit-subject-and-name",
            raw_message(
                basic_headers(From=f"J\u00fcrgen M\u00fcller <{MEMBER}>", Subject="Re: Gr\u00fc\u00dfe aus K\u00f6ln"),
                b"Ja, gerne!\n",
            ),
            kind=HUMAN,
            intro="accept",
            subject="Re: Grüße aus Köln",
            from_address=MEMBER,
            tags=tag,
        ),
        Case(
            "bad-latin1-8bit-subject",
            raw_message(basic_headers(Subject="-").rstrip(b"\n") + b"\nSubject: Re: caf\xe9 avec Ben\n", b"Oui !\n"),
            kind=HUMAN,
            intro="accept",
            subject="Re: café avec Ben",
            tags=tag,
        ),
        Case("bad-long-subject", raw_message(basic_headers(Subject="Re: " + "meet Ben " * 12_000)), **ok),
        Case(
            "bad-long-unfolded-header",
            raw_message(basic_headers() + b"X-Long: " + b"a" * 200_000 + b"\n"),
            **ok,
        ),
        Case(
            "bad-encoded-word-qp",
            raw_message(basic_headers(Subject="=?utf-8?q?=ZZ?= meet Ben")),
            **ok,
        ),
        Case(
            "bad-encoded-word-base64",
            raw_message(basic_headers(From=f"=?utf-8?b?###?= <{MEMBER}>", Subject="=?utf-8?b?SGVsbG8?=")),
            from_address=MEMBER,
            **ok,
        ),
        Case(
            "bad-encoded-word-unknown-charset",
            raw_message(basic_headers(From=f"=?x-unknown?q?Ana?= <{MEMBER}>", Subject="=?x-unknown?q?Re=3A_Ben?=")),
            from_address=MEMBER,
            **ok,
        ),
        Case(
            "bad-unknown-body-charset",
            text_message(reply_headers(), "Sí, con gusto.".encode(), charset="x-unknown"),
            **ok,
        ),
        Case(
            "bad-wrong-charset-ascii-declared",
            raw_message(
                basic_headers() + b'MIME-Version: 1.0\nContent-Type: text/plain; charset="us-ascii"\n',
                "Sí, con gusto.\n".encode(),
            ),
            visible_has=("Sí",),
            **ok,
        ),
        Case(
            "bad-wrong-charset-utf8-declared",
            raw_message(
                basic_headers() + b'MIME-Version: 1.0\nContent-Type: text/plain; charset="utf-8"\n',
                "Sí, con gusto.\n".encode("latin-1"),
            ),
            visible_has=("Sí",),
            **ok,
        ),
        Case(
            "bad-charset-is-a-codec",
            raw_message(basic_headers() + b'Content-Type: text/plain; charset="rot13"\n'),
            **ok,
        ),
        Case(
            "bad-charset-quoting",
            raw_message(basic_headers() + b'Content-Type: text/plain; charset="utf-8\\""; format=\n'),
            **ok,
        ),
        Case(
            "bad-multipart-no-boundary",
            raw_message(basic_headers() + b"MIME-Version: 1.0\nContent-Type: multipart/mixed\n"),
            **ok,
        ),
        Case(
            "bad-multipart-wrong-boundary",
            raw_message(
                basic_headers() + b'MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="aaa"\n',
                b"--bbb\nContent-Type: text/plain\n\nYes, happy to!\n--bbb--\n",
            ),
            **ok,
        ),
        Case(
            "bad-multipart-unterminated",
            raw_message(
                basic_headers() + b'MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="aaa"\n',
                b"--aaa\nContent-Type: text/plain\n\nYes, happy to!\n--aaa\nContent-Type: text/html\n\n<p>Yes",
            ),
            **ok,
        ),
        Case("bad-missing-from", raw_message(basic_headers(From="-")), from_address=None, **ok),
        Case("bad-missing-everything", b"\nYes, happy to!\n", from_address=None, **ok),
        Case(
            "bad-duplicate-headers",
            raw_message(
                basic_headers()
                + f"From: Mallory <mallory@example.net>\nSubject: second\nMessage-ID: <dup@x>\nDate: {DATE}\n".encode()
            ),
            from_address=MEMBER,
            subject="Re: Would you like to meet Ben?",
            message_id="<reply-2@mail.example.com>",
            **ok,
        ),
        Case(
            "bad-header-without-colon",
            raw_message(basic_headers() + b"this line is not a header\n"),
            kind=HUMAN,
            tags=tag,
        ),
        Case("bad-header-name-8bit", raw_message(basic_headers() + b"X-\xff\xfe: value\n"), **ok),
        Case(
            "bad-invalid-base64",
            text_message(reply_headers(), b"!!!!***").replace(b"8bit", b"base64"),
            kind=HUMAN,
            intro="unclear",
            tags=tag,
        ),
        Case(
            "bad-unknown-transfer-encoding",
            raw_message(basic_headers() + b"Content-Transfer-Encoding: x-foo\n"),
            **ok,
        ),
        Case(
            "bad-uuencode",
            raw_message(basic_headers() + b"Content-Transfer-Encoding: x-uuencode\n", b"begin 644 x\n`\nend\n"),
            kind=HUMAN,
            tags=tag,
        ),
        Case("bad-deep-nesting", raw_message(basic_headers() + deep, b"Yes"), kind=HUMAN, tags=tag),
        Case("bad-empty-body", raw_message(basic_headers(), b""), kind=HUMAN, intro="unclear", tags=tag),
        Case("bad-only-headers", basic_headers(), kind=HUMAN, intro="unclear", tags=tag),
        Case("bad-empty-bytes", b"", kind=HUMAN, intro="unclear", from_address=None, tags=tag),
        Case("bad-binary-garbage", bytes(range(256)) * 8, kind=HUMAN, tags=tag),
        Case("bad-crlf-line-endings", raw_message(basic_headers()).replace(b"\n", b"\r\n"), **ok),
        Case("bad-bare-cr", raw_message(basic_headers()).replace(b"\n", b"\r"), kind=HUMAN, tags=tag),
        Case(
            "bad-to-several-broken",
            raw_message(basic_headers(To='a@b.c@d.e, <a@[1.2.3>, "\\", ;;:;', Cc="<@>, ,")),
            **ok,
        ),
        Case(
            "bad-from-8bit-address",
            raw_message(basic_headers(From="J\u00fcrgen <j\u00fcrgen@example.de>")),
            from_address="jürgen@example.de",
            **ok,
        ),
        Case("bad-date", raw_message(basic_headers(Date="Mon, 99 Foo 2024 99:99:99 +9999")), **ok),
        Case("bad-nul-bytes", raw_message(basic_headers(), b"Yes,\x00 happy to!\n"), **ok),
        Case(
            "bad-mbox-from-line",
            b"From ana@example.com Mon Jan  6 10:00:00 2025\n" + raw_message(basic_headers()),
            kind=HUMAN,
            tags=tag,
        ),
        Case(
            "bad-references-garbage",
            raw_message(basic_headers(References="<a@b> <<c>> junk <d@e", **{"In-Reply-To": "<x@y> (comment)"})),
            **ok,
        ),
        Case(
            "bad-rfc2231-filename",
            multipart(
                reply_headers(),
                [
                    part("text/plain", "Yes, happy to!"),
                    part(
                        "application/octet-stream",
                        b"\x00\x01",
                        cte="base64",
                        extra=("Content-Disposition: attachment; filename*=x-unknown''%FF%FEname.bin",),
                    ),
                ],
                subtype="mixed",
            ),
            attachments=1,
            **ok,
        ),
        Case(
            "html-only-accept",
            text_message(
                reply_headers(),
                '<div dir="ltr">Yes, happy to!</div><div class="gmail_quote">On Mon, Ben wrote:<blockquote>'
                "Would you like to meet Ana? Reply NO if not.</blockquote></div>",
                subtype="html",
            ),
            visible_lacks=("Reply NO",),
            **ok,
        ),
        Case(
            "html-only-quoted-yes",
            text_message(
                reply_headers(),
                "<div>Who is Ben?</div><blockquote>Reply YES to accept. Yes, happy to!</blockquote>",
                subtype="html",
            ),
            kind=HUMAN,
            intro="unclear",
            tags=tag,
        ),
        Case(
            "html-only-script-and-style",
            text_message(
                reply_headers(),
                "<html><head><style>p{color:red}</style><script>var yes='no';</script></head>"
                "<body><p>Yes, happy to!</p></body></html>",
                subtype="html",
            ),
            **ok,
        ),
        Case(
            "forward-attached-original",
            nested_forward,
            kind=HUMAN,
            intro="unclear",
            nested=1,
            tags=frozenset({"forward"}),
        ),
        Case(
            "forward-nested-twice",
            nested_in_nested,
            kind=HUMAN,
            intro="unclear",
            nested=1,
            tags=frozenset({"forward"}),
        ),
        Case("bad-nested-same-boundary", same_boundary, kind=HUMAN, tags=tag),
        Case(
            "forward-inline-with-note",
            text_message(
                reply_headers("Fwd: Would you like to meet Ben?"),
                "Sure, happy to!\n\n---------- Forwarded message ---------\nFrom: Garden Network "
                "<community@example.org>\nDate: Mon, 6 Jan 2025\nSubject: Would you like to meet Ben?\n\n"
                "Reply NO if you would rather not.\n",
            ),
            visible_lacks=("Reply NO",),
            **{**ok, "tags": frozenset({"forward"})},
        ),
        Case(
            "forward-inline-no-note",
            text_message(
                reply_headers("Fwd: Would you like to meet Ben?"),
                "---------- Forwarded message ---------\nFrom: Garden Network <community@example.org>\n"
                "Subject: Would you like to meet Ben?\n\nReply YES to accept. Yes, happy to!\n",
            ),
            kind=HUMAN,
            intro="unclear",
            tags=frozenset({"forward"}),
        ),
        Case(
            "story-with-image",
            multipart(
                reply_headers("My story: the seed library", to=f"stories@{DOMAIN}"),
                [
                    part("text/plain; charset=utf-8", "We started a seed library in March. It worked!"),
                    part(
                        "image/png",
                        image,
                        cte="base64",
                        extra=('Content-Disposition: attachment; filename="seeds.png"',),
                    ),
                ],
                subtype="mixed",
            ),
            kind=HUMAN,
            attachments=1,
            visible_has=("seed library",),
            tags=frozenset({"story"}),
        ),
    ]
    return cases


def build_corpus() -> list[Case]:
    cases = (
        intro_cases()
        + followup_cases()
        + command_cases()
        + auto_cases()
        + dsn_cases()
        + arf_cases()
        + malformed_cases()
    )
    names = Counter(case.name for case in cases)
    duplicates = [name for name, count in names.items() if count > 1]
    assert not duplicates, duplicates
    return cases


def summary(cases: list[Case]) -> dict[str, int]:
    return dict(Counter(case.kind for case in cases))
