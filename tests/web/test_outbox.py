"""The Outbox shows what the local mail catcher caught, over real SMTP."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from cop_mail import mailcatcher
from tests.conftest import free_port


def send(port: int, subject: str, html: str | None = None) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "Community <c@example.org>", "ana@example.org", subject
    message.set_content("Plain words for Ana")
    if html:
        message.add_alternative(html, subtype="html")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(message)


def test_outbox_lists_and_shows_caught_messages(make_settings, make_app, tmp_path, login):
    outbox = tmp_path / "outbox"
    outbox.mkdir()  # an existing empty folder must work too
    port = free_port()
    controller = mailcatcher.start(outbox, "127.0.0.1", port)
    try:
        send(port, "First letter")
        send(port, "Second letter — ünïcode", html="<p>Hello <script>alert(1)</script><b>Ana</b></p>")
    finally:
        controller.stop()
    app = make_app(make_settings(outbox_dir=outbox))
    client = app.test_client()
    from tests.conftest import csrf_token_from

    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    from cop_mail import accounts
    from cop_mail.models import Role

    with app.extensions["cop_mail.sessions"]() as session:
        accounts.create_admin(session, "viewer@example.org", "correct horse battery", Role.VIEWER)
        session.commit()
    credentials = {"email": "viewer@example.org", "password": "correct horse battery", "csrf_token": token}
    client.post("/login", data=credentials)
    page = client.get("/admin/outbox").get_data(as_text=True)
    assert "2 messages" in page
    assert page.index("Second letter — ünïcode") < page.index("First letter")  # newest first
    total, messages = mailcatcher.list_messages(outbox)
    key = next(m.key for m in messages if m.subject.startswith("Second"))
    detail = client.get(f"/admin/outbox/{key}").get_data(as_text=True)
    assert "Plain words for Ana" in detail
    # The HTML part is shown only inside a sandboxed iframe, escaped into srcdoc.
    assert "<iframe" in detail and "sandbox" in detail
    assert "<script>alert(1)</script>" not in detail
    assert client.get("/admin/outbox/not-a-key").status_code == 404


def test_outbox_without_a_catcher_explains_itself(client, login):
    login("viewer")
    page = client.get("/admin/outbox").get_data(as_text=True)
    assert "no local Outbox" in page
