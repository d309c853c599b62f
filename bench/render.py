"""Render the newsletter for N members on one core: the naive way against cop-mail's way.

naive (per recipient): Jinja fills the MJML with the member's values, mjml2html compiles it,
  html2text makes the text part, email.message.EmailMessage builds and serialises the message,
  dkimpy signs it (pure-Python RSA). Measured on a smaller sample (--naive-n, default 300).
fast (cop-mail): compile_email once (Jinja, MJML, text part), then per recipient
  CompiledEmail.fill + MessageSkeleton.render (+ DkimSigner.sign, RSA in OpenSSL).
raw limits in the same run: RSA-2048 signatures per second in OpenSSL (the floor under any DKIM
  signer) and base64-encoding the two bodies alone (the floor under any MIME builder).

    .venv/bin/python bench/render.py            # N = 10,000
    .venv/bin/python bench/render.py --n 50000
"""

from __future__ import annotations

import argparse
import binascii
import sys
import time
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import dkim
import mjml
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cop_mail.rendering import compile_email, get_kind  # noqa: E402
from cop_mail.rendering.compiler import community_data, render_mjml  # noqa: E402
from cop_mail.rendering.placeholders import SplitTemplate  # noqa: E402
from cop_mail.rendering.plaintext import html_to_text  # noqa: E402
from cop_mail.rendering.richtext import markdown_to_html  # noqa: E402
from cop_mail.rendering.samples import recipient as sample_recipient  # noqa: E402
from cop_mail.rendering.sandbox import render_coordinator_text  # noqa: E402
from cop_mail.sending.dkim_signer import DkimSigner, public_key_record  # noqa: E402
from cop_mail.sending.mime import MessageSkeleton, make_message_id  # noqa: E402
from cop_mail.settings import Settings  # noqa: E402

DOMAIN = "community.example.org"
SELECTOR = "bench"
FIRST_NAMES = ["Ana", "Zoë", "Jonas", "Li", "Kwame", "Ñuño", "Amira", "Sam", "Łucja", "Mei"]
LAST_NAMES = ["Souza", "Øberg", "Wei", "Mensah", "Haddad", "O'Neill", "Müller", "García-Ruiz"]


def settings() -> Settings:
    return Settings(
        instance_path=Path("/nonexistent/instance"),
        database_url="sqlite://",
        secret_key="bench-" + "x" * 40,
        public_url=f"https://{DOMAIN}",
        community_name="Riverside Practice",
        postal_address="4 Mill Lane, Riverside RV1 2AB",
    )


def newsletter_context() -> dict[str, Any]:
    """The sample newsletter plus a fifth story and a third event: about 40 KB of HTML."""
    sample = get_kind("newsletter").sample()
    sample["stories"].append({**sample["stories"][0], "title": "The handover question, part 5"})
    sample["events"].append({**sample["events"][0], "title": "Story circle: care (repeat)"})
    return sample


def recipients(count: int) -> list[dict[str, str]]:
    people = []
    for number in range(count):
        first = FIRST_NAMES[number % len(FIRST_NAMES)]
        person = sample_recipient(f"https://{DOMAIN}", number)
        person.update(
            first_name=first,
            name=f"{first} {LAST_NAMES[number % len(LAST_NAMES)]}",
            email=f"member{number}@example.net",
        )
        people.append(person)
    return people


def rate(count: int, work: Callable[[], None]) -> tuple[float, float]:
    """(per CPU second of this process, per wall-clock second). The machine is shared, so CPU time
    is the fair 'one core' figure; wall time is printed beside it."""
    cpu, wall = time.process_time(), time.perf_counter()
    work()
    return count / (time.process_time() - cpu), count / (time.perf_counter() - wall)


def naive_path(config: Settings, private_pem: bytes, people: list[dict[str, str]], sign: bool) -> list[bytes]:
    kind = get_kind("newsletter")
    data = newsletter_context()
    community = community_data(config)
    # The essay's Markdown is rendered once; the naive path re-renders the template per member.
    essay = markdown_to_html(
        render_coordinator_text(data["essay"], {**data, "community": community}), base_url=community["public_url"]
    )
    essay_template = SplitTemplate(essay)
    out = []
    for person in people:
        context = {
            **data,
            "community": community,
            "member": person,
            "recipient": person,
            "essay": _markup(essay_template.fill({"first_name": person["first_name"]})),
            "subject": f"{data['value']['name']}: {data['title']}",
            "preheader": data["teaser"],
            "why": kind.why.replace("{community}", community["name"]),
        }
        body_html = mjml.mjml2html(render_mjml(kind.template, context, config.templates_path), fonts={})
        body_text = html_to_text(body_html)
        message = EmailMessage()
        message["From"] = f"Riverside Practice <news@{DOMAIN}>"
        message["To"] = f"{person['name']} <{person['email']}>"
        message["Subject"] = context["subject"]
        message["Date"] = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
        message["Message-ID"] = make_message_id(DOMAIN)
        message["List-Unsubscribe"] = f"<{person['unsubscribe_url']}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content(body_text)
        message.add_alternative(body_html, subtype="html")
        data_bytes = message.as_bytes(policy=policy.SMTP)
        if sign:
            data_bytes = (
                dkim.sign(
                    data_bytes,
                    SELECTOR.encode(),
                    DOMAIN.encode(),
                    private_pem,
                    include_headers=[
                        b"from",
                        b"to",
                        b"subject",
                        b"date",
                        b"message-id",
                        b"list-unsubscribe",
                        b"list-unsubscribe-post",
                    ],
                )
                + data_bytes
            )
        out.append(data_bytes)
    return out


def _markup(html: str) -> Any:
    from markupsafe import Markup

    return Markup(html)  # noqa: S704 (sanitised by markdown_to_html above)


def fast_path(config: Settings, signer: DkimSigner | None, people: list[dict[str, str]]) -> list[bytes]:
    compiled = compile_email("newsletter", newsletter_context(), config)
    skeleton = MessageSkeleton.build(
        from_addr=f"news@{DOMAIN}",
        from_name="Riverside Practice",
        list_id=f"newsletter.{DOMAIN}",
        list_name="Riverside newsletter",
        feedback_id="bench:newsletter:riverside",
        bulk=True,
    )
    out = []
    for person in people:
        subject, body_html, body_text = compiled.fill_bytes(person)
        data = skeleton.render(
            to_addr=person["email"],
            to_name=person["name"],
            subject=subject,
            html=body_html,
            text=body_text,
            message_id=make_message_id(DOMAIN),
            unsubscribe_url=person["unsubscribe_url"],
        )
        out.append(signer.sign(data) if signer else data)
    return out


def raw_limits(private_key: rsa.RSAPrivateKey, body_html: str, body_text: str, count: int) -> tuple[float, float]:
    payload = b"x" * 500

    def sign_all() -> None:
        for _ in range(count):
            private_key.sign(payload, padding.PKCS1v15(), hashes.SHA256())

    def encode_all() -> None:
        for _ in range(count):
            binascii.b2a_base64(body_html.encode(), newline=False)
            binascii.b2a_base64(body_text.encode(), newline=False)

    return rate(count, sign_all)[0], rate(count, encode_all)[0]


def measure(name: str, run: Callable[[], list[bytes]], count: int, signed: bool, record: bytes) -> float:
    produced: list[list[bytes]] = []
    cpu_rate, wall_rate = rate(count, lambda: produced.append(run()))
    check(produced[0], record, signed)
    print(f"  {name}: {cpu_rate:,.0f} msg/s per CPU second ({1e6 / cpu_rate:,.0f} µs each); {wall_rate:,.0f} wall")
    return cpu_rate


def check(messages: list[bytes], public_record: bytes, signed: bool) -> None:
    """Every figure is for correct output: parse one message back and verify its signature."""
    message = BytesParser(policy=policy.default).parsebytes(messages[-1])
    assert message.get_body(("html",)) is not None and message.get_body(("plain",)) is not None
    if signed:
        assert dkim.verify(messages[-1], dnsfunc=lambda name, timeout=5: public_record), "DKIM does not verify"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="members for cop-mail's way (default 10,000)")
    parser.add_argument("--naive-n", type=int, default=300, help="members for the naive way (default 300)")
    args = parser.parse_args()

    config = settings()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    record = public_key_record(private_pem).encode()
    people = recipients(max(args.n, args.naive_n))
    compiled = compile_email("newsletter", newsletter_context(), config)
    _, body_html, body_text = compiled.fill(people[0])
    print(
        f"newsletter: {len(body_html.encode()) / 1024:.1f} KB HTML + {len(body_text.encode()) / 1024:.1f} KB text; "
        f"cop-mail's way on {args.n:,} members, naive way on {args.naive_n:,} (it is slow); one core"
    )

    signer = DkimSigner(SELECTOR, DOMAIN, private_pem)
    runs: list[tuple[str, Callable[[], list[bytes]], int, bool]] = [
        (
            "render_naive_nodkim",
            lambda: naive_path(config, private_pem, people[: args.naive_n], False),
            args.naive_n,
            False,
        ),
        (
            "render_naive_dkim",
            lambda: naive_path(config, private_pem, people[: args.naive_n], True),
            args.naive_n,
            True,
        ),
        ("render_fast_nodkim", lambda: fast_path(config, None, people[: args.n]), args.n, False),
        ("render_fast_dkim", lambda: fast_path(config, signer, people[: args.n]), args.n, True),
    ]
    results: dict[str, float] = {}
    for name, run, count, signed in runs:
        results[name] = measure(name, run, count, signed, record)

    sign_rate, encode_rate = raw_limits(key, body_html, body_text, min(args.n, 2_000))
    print(
        f"  raw limits per CPU second: OpenSSL RSA-2048 {sign_rate:,.0f} signatures; "
        f"base64 of both bodies {encode_rate:,.0f}"
    )
    print(f"BENCH render_naive_nodkim {results['render_naive_nodkim']:.0f} msg/s")
    print(f"BENCH render_naive_dkim {results['render_naive_dkim']:.0f} msg/s")
    print(f"BENCH render_fast_nodkim {results['render_fast_nodkim']:.0f} msg/s")
    print(f"BENCH render_fast_dkim {results['render_fast_dkim']:.0f} msg/s")
    print(f"BENCH render_speedup_nodkim {results['render_fast_nodkim'] / results['render_naive_nodkim']:.1f} x")
    print(f"BENCH render_speedup_dkim {results['render_fast_dkim'] / results['render_naive_dkim']:.1f} x")
    print(f"BENCH render_raw_rsa2048_sign {sign_rate:.0f} sign/s")
    print(f"BENCH render_raw_base64_bodies {encode_rate:.0f} msg/s")


if __name__ == "__main__":
    main()
