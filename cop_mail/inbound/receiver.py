"""The inbound SMTP receiver: accept mail for our addresses, store it raw, commit,
then hand it to a job. Parsing never happens here, so a crash mid-parse loses nothing."""

from __future__ import annotations

import logging
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session
from redis.exceptions import RedisError
from sqlalchemy import Engine

from cop_mail.db import make_engine, make_session_factory
from cop_mail.inbound import store
from cop_mail.queues import connect_redis
from cop_mail.settings import Settings

log = logging.getLogger("cop_mail.inbound")


class InboundHandler:
    def __init__(self, settings: Settings, engine: Engine):
        self.settings = settings
        self.engine = engine
        self.sessions = make_session_factory(engine)
        self.redis = connect_redis(settings.redis_url) if settings.redis_url else None

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        refusal = store.refuse_recipient(self.settings, address)
        if refusal:
            return f"550 5.1.1 {refusal}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if len(raw) > self.settings.inbound_max_bytes:
            return "552 5.3.4 Message too big"
        with self.sessions() as db:
            message = store.save_raw(db, raw, envelope.mail_from or "", list(envelope.rcpt_tos), "smtp")
            db.commit()
            message_id = message.id
        if self.redis is not None:
            try:
                store.enqueue_processing(self.redis, message_id)
            except RedisError:
                # Stored and committed: the reconciler queues it once Redis is back.
                log.warning("inbound message %s stored, but Redis is unreachable", message_id)
        log.info("stored inbound message %s (%d bytes)", message_id, len(raw))
        return "250 2.0.0 Message accepted"


class InboundController(Controller):
    """Speaks SMTP (or LMTP, for an MTA's local delivery); stopping releases the database and Redis."""

    lmtp = False

    def factory(self) -> SMTP:
        return (LMTP if self.lmtp else SMTP)(self.handler, **self.SMTP_kwargs)

    def stop(self, no_assert: bool = False) -> None:
        super().stop(no_assert)
        handler: InboundHandler = self.handler
        handler.engine.dispose()
        if handler.redis is not None:
            handler.redis.close()


def start(settings: Settings, host: str, port: int, lmtp: bool = False) -> Controller:
    handler = InboundHandler(settings, make_engine(settings.database_url))
    controller = InboundController(
        handler,
        hostname=host,
        port=port,
        data_size_limit=settings.inbound_max_bytes,
        server_hostname=settings.mail_domain,
    )
    controller.lmtp = lmtp
    controller.start()
    return controller


def serve_forever(settings: Settings, host: str, port: int, lmtp: bool = False) -> None:
    from cop_mail.embedded import StartupError, _run_until_signal, port_is_free

    if not port_is_free(host, port):
        raise StartupError(f"port {port} on {host} is already in use; choose another with --port")
    _run_until_signal(
        lambda: start(settings, host, port, lmtp), f"receiving mail for @{settings.mail_domain} on {host}:{port}"
    )
