"""The delivery-row protocol that lets any number of workers share a campaign safely.

1. Claim: one statement moves up to N due rows to `sending` under a claim token with a
   lease (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: a single UPDATE ... WHERE id IN
   (SELECT ... LIMIT n) RETURNING, which holds the write lock for the whole statement).
   The row's Message-ID is fixed at its first claim and kept across retries.
2. Mark: just before a message's SMTP transaction, one autocommitted UPDATE sets
   `data_sent_at` on its row, and only if the row is still ours, the campaign is still
   sending and the member may still receive the stream (not unsubscribed, paused or
   suppressed). The mark is the fence against duplicates, pause and unsubscribe at once.
3. Record: a 2xx needs no write of its own: the next row's mark proves it was received.
   Sent rows are written in bulk; any other reply is written before the next mark.

So after a crash, among a claim's rows still `sending`, the one with the latest mark is
the only message that may have been in flight (uncertain); earlier marked rows were
sent; unmarked rows were never transmitted (see reconcile.py).

Rows held by the attention budget (budget.py) are claimable again once their
`next_attempt_at` comes, and are checked against the budget again then.
"""

from __future__ import annotations

import random
import secrets
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Update, bindparam, cast, exists, func, literal, or_, select, update
from sqlalchemy import String as SqlString

from cop_mail.db import utcnow
from cop_mail.models import Campaign, CampaignStatus, CommunitySettings, Delivery, DeliveryStatus, Member
from cop_mail.sending.audience import receivable_now, still_on_audience

D = DeliveryStatus
CLAIMABLE = (D.QUEUED, D.DEFERRED, D.HELD)
SQLITE_BUSY_PATIENCE = 30.0
SQLITE_BUSY_TIMEOUT_MS = 30000  # as cop_mail.db sets it for every SQLite connection


@dataclass(frozen=True, slots=True)
class ClaimedRow:
    delivery_id: int
    member_id: int | None
    message_id: str
    attempts: int
    # The community's attention budget cap when claimed (0: none): read by the claim itself, so
    # an uncapped send asks nothing more.
    budget_cap: int = 0


def new_claim_token(worker: str) -> str:
    return f"{worker[:70]}:{secrets.token_hex(6)}"


def due_clause(campaign_id: int, now: datetime) -> Any:
    return (
        (Delivery.campaign_id == campaign_id)
        & Delivery.status.in_([str(s) for s in CLAIMABLE])
        & or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now)
    )


def claim_batch(
    conn: Connection, campaign_id: int, token: str, size: int, lease_seconds: float, domain: str
) -> list[ClaimedRow]:
    """Claim up to `size` due rows of the campaign for this token; commits."""
    now = utcnow()
    picked = select(Delivery.id).where(due_clause(campaign_id, now)).limit(size)
    # Unguessable, stable across retries, and on the community's domain.
    message_id = literal(f"<{campaign_id}.{secrets.token_hex(4)}.") + cast(Delivery.id, SqlString) + f"@{domain}>"
    values = {
        "status": str(D.SENDING),
        "claimed_by": token,
        "lease_until": now + timedelta(seconds=lease_seconds),
        "data_sent_at": None,
        "message_id": func.coalesce(Delivery.message_id, message_id),
    }
    if conn.dialect.name == "postgresql":
        locked = picked.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
        statement: Update = update(Delivery).where(Delivery.id == locked.c.id)
    else:
        statement = update(Delivery).where(Delivery.id.in_(picked.scalar_subquery()))
    returning = statement.values(**values).returning(
        Delivery.id, Delivery.member_id, Delivery.message_id, Delivery.attempts, _budget_cap()
    )
    rows = [ClaimedRow(row[0], row[1], row[2] or "", row[3], int(row[4] or 0)) for row in conn.execute(returning)]
    _commit(conn)
    return rows


def _budget_cap() -> Any:
    stored = CommunitySettings.values["budget_max_emails"].as_integer()
    return select(stored).where(CommunitySettings.id == 1).scalar_subquery()


def _commit(conn: Connection) -> None:
    if conn.in_transaction():
        conn.commit()


def renew_lease(conn: Connection, token: str, lease_seconds: float) -> int:
    statement = (
        update(Delivery)
        .where(Delivery.claimed_by == token, Delivery.status == D.SENDING)
        .values(lease_until=utcnow() + timedelta(seconds=lease_seconds))
    )
    count = conn.execute(statement).rowcount
    _commit(conn)
    return int(count)


def release_unmarked(conn: Connection, token: str, not_before: datetime | None = None) -> int:
    """Give back rows this claim never started to transmit (pause, stop, pushback)."""
    statement = (
        update(Delivery)
        .where(Delivery.claimed_by == token, Delivery.status == D.SENDING, Delivery.data_sent_at.is_(None))
        .values(status=str(D.QUEUED), claimed_by=None, lease_until=None, next_attempt_at=not_before)
    )
    count = conn.execute(statement).rowcount
    _commit(conn)
    return int(count)


def mark_statement(kind: str, list_ids: Sequence[int], segment_ids: Sequence[int], now: datetime) -> Update:
    """The per-message fence (see the module docstring), built once per batch.

    Parameters: p_id, p_token, p_at (the mark time).
    """
    member_ok = exists().where(
        Member.id == Delivery.member_id,
        receivable_now(kind, now),
        still_on_audience(list_ids, segment_ids),
    )
    campaign_ok = exists().where(Campaign.id == Delivery.campaign_id, Campaign.status == CampaignStatus.SENDING)
    return (
        update(Delivery)
        .where(
            Delivery.id == bindparam("p_id", 0),
            Delivery.claimed_by == bindparam("p_token", ""),
            Delivery.status == D.SENDING,
            campaign_ok,
            member_ok,
        )
        .values(data_sent_at=bindparam("p_at", now, type_=Delivery.data_sent_at.type), attempts=Delivery.attempts + 1)
    )


class Marker:
    """The mark statement compiled once per batch and run on the raw driver cursor.

    It runs before every message, so SQLAlchemy's per-execution work (about 60 us, a third of
    the mark) is done here once: constant parameters are processed up front and only the row
    id, claim token and times change per call.
    """

    def __init__(self, conn: Connection, statement: Update):
        dialect = conn.dialect
        compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        self.sql = compiled.string
        self.positions = compiled.positiontup  # qmark drivers (SQLite); None for named (psycopg)
        binds = compiled.binds
        self._processors = {name: bind.type.bind_processor(dialect) for name, bind in binds.items()}
        self._constants = {
            name: self._process(name, value)
            for name, value in compiled.construct_params().items()
            if name not in ("p_id", "p_token", "p_at", "updated_at")
        }
        self.conn = conn
        self._cursor: Any = None
        # psycopg: a server-side prepared statement skips ~0.4 ms of planning per message.
        self._options = {"prepare": True} if dialect.name == "postgresql" else {}
        self._sqlite = dialect.name == "sqlite"

    def _process(self, name: str, value: Any) -> Any:
        processor = self._processors.get(name)
        return processor(value) if processor is not None else value

    def __call__(self, delivery_id: int, token: str, at: datetime) -> bool:
        """Autocommitted: True if the row may be transmitted now."""
        values = dict(self._constants)
        values["p_id"] = delivery_id
        values["p_token"] = token
        values["p_at"] = values["updated_at"] = self._process("p_at", at)
        params: Any = tuple(values[name] for name in self.positions) if self.positions else values
        if self._cursor is None:
            self._cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        if self._sqlite:
            return self._sqlite_execute(params)
        self._cursor.execute(self.sql, params, **self._options)
        return bool(self._cursor.rowcount == 1)

    def _sqlite_execute(self, params: Any) -> bool:
        """SQLite's own busy handler sleeps at least 1 ms when another worker holds the write lock
        (a few microseconds per write here); retrying after ~0.1 ms keeps workers in step."""
        cursor = self._cursor
        cursor.execute("PRAGMA busy_timeout = 0")
        deadline = time.monotonic() + SQLITE_BUSY_PATIENCE
        try:
            while True:
                try:
                    cursor.execute(self.sql, params)
                    return bool(cursor.rowcount == 1)
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(random.uniform(0.00005, 0.0002))
        finally:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")

    def close(self) -> None:
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None


def mark(conn: Connection, statement: Update, delivery_id: int, token: str, at: datetime) -> bool:
    """Autocommitted: True if the row may be transmitted now (the slower, plain SQLAlchemy way)."""
    result = conn.execute(statement, {"p_id": delivery_id, "p_token": token, "p_at": at})
    _commit(conn)
    return result.rowcount == 1


def why_not_marked(conn: Connection, campaign_id: int, delivery_id: int, token: str) -> str:
    """'campaign' (no longer sending), 'lost' (the row is not ours any more) or 'member' (may not receive)."""
    status = conn.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
    row = conn.execute(select(Delivery.status, Delivery.claimed_by).where(Delivery.id == delivery_id)).first()
    _commit(conn)
    if status != CampaignStatus.SENDING:
        return "campaign"
    if row is None or row.status != D.SENDING or row.claimed_by != token:
        return "lost"
    return "member"


def _ours(token: str, ids: Sequence[int]) -> Any:
    return Delivery.id.in_(list(ids)) & (Delivery.claimed_by == token)


def record_sent(conn: Connection, token: str, ids: Sequence[int]) -> int:
    """Bulk: rows whose 2xx was received. An `uncertain` set by the reconciler meanwhile is corrected."""
    if not ids:
        return 0
    statement = (
        update(Delivery)
        .where(_ours(token, ids), Delivery.status.in_([str(D.SENDING), str(D.UNCERTAIN)]))
        .values(
            status=str(D.SENT), sent_at=Delivery.data_sent_at, smtp_code=250, lease_until=None, next_attempt_at=None
        )
    )
    count = conn.execute(statement).rowcount
    _commit(conn)
    return int(count)


def record_outcome(
    conn: Connection,
    token: str,
    delivery_id: int,
    status: DeliveryStatus,
    *,
    code: int | None = None,
    error: str = "",
    next_attempt_at: datetime | None = None,
    bounce_type: str | None = None,
) -> None:
    """One non-2xx outcome, written before the next mark so recovery can trust the order."""
    statement = (
        update(Delivery)
        .where(_ours(token, [delivery_id]), Delivery.status == D.SENDING)
        .values(
            status=str(status),
            smtp_code=code,
            last_error=error[:1000],
            next_attempt_at=next_attempt_at,
            bounce_type=bounce_type,
            lease_until=None,
        )
    )
    conn.execute(statement)
    _commit(conn)


def record_suppressed(conn: Connection, token: str, ids: Sequence[int], reason: str) -> int:
    if not ids:
        return 0
    statement = (
        update(Delivery)
        .where(_ours(token, ids), Delivery.status == D.SENDING, Delivery.data_sent_at.is_(None))
        .values(status=str(D.SUPPRESSED), last_error=reason, lease_until=None)
    )
    count = conn.execute(statement).rowcount
    _commit(conn)
    return int(count)


def record_budget(
    conn: Connection, token: str, outcomes: Sequence[tuple[int, DeliveryStatus, datetime | None, str]]
) -> int:
    """Bulk: (delivery id, HELD or DROPPED, when to check again, reason) for rows not yet transmitted."""
    if not outcomes:
        return 0
    statement = (
        update(Delivery)
        .where(
            Delivery.id == bindparam("b_id"),
            Delivery.claimed_by == token,
            Delivery.status == D.SENDING,
            Delivery.data_sent_at.is_(None),
        )
        .values(
            status=bindparam("b_status"),
            next_attempt_at=bindparam("b_at", type_=Delivery.next_attempt_at.type),
            last_error=bindparam("b_error"),
            claimed_by=None,
            lease_until=None,
        )
    )
    params = [
        {"b_id": delivery_id, "b_status": str(status), "b_at": at, "b_error": reason[:1000]}
        for delivery_id, status, at, reason in outcomes
    ]
    count = conn.execute(statement, params).rowcount
    _commit(conn)
    return int(count)
