"""Pure parts of sending: backoff schedules, limit buckets, reply classification, dot-stuffing."""

from __future__ import annotations

import pytest

from cop_mail.sending.smtp import Outcome, Reply, Stage, _dot_stuffed, classify
from cop_mail.sending.throttle import MAX_PUSHBACK_SECONDS, MAX_RETRY_SECONDS, Limits, pushback_delay, retry_delay


def test_retry_delay_doubles_and_is_capped():
    assert [retry_delay(n, 60) for n in (1, 2, 3, 4)] == [60, 120, 240, 480]
    assert retry_delay(40, 60) == MAX_RETRY_SECONDS


def test_pushback_delay_doubles_and_is_capped():
    assert [pushback_delay(n, 0.5) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert pushback_delay(30, 5) == MAX_PUSHBACK_SECONDS


def test_batches_shrink_to_a_minute_of_the_slowest_limit():
    assert Limits().batch_size(250, seconds=60) == 250
    assert Limits(per_second=100, campaign_per_hour=600).batch_size(250, seconds=60) == 10
    assert Limits(per_hour=1).batch_size(250, seconds=60) == 1


def test_only_configured_limits_become_buckets():
    assert Limits().buckets(7) == []
    buckets = Limits(per_second=10, campaign_per_hour=3600).buckets(7)
    assert buckets == [
        ("cop-mail:throttle:rate:all:1", 100.0, 100.0),
        ("cop-mail:throttle:rate:campaign:7:3600", 1000.0, 1000.0),
    ]


@pytest.mark.parametrize(
    ("code", "text", "stage", "outcome", "hard", "pushback"),
    [
        (250, "OK", Stage.END, Outcome.SENT, False, False),
        (451, "try later", Stage.END, Outcome.DEFERRED, False, False),
        (421, "closing", Stage.RCPT, Outcome.DEFERRED, False, True),
        (454, "throttled", Stage.END, Outcome.DEFERRED, False, True),
        (550, "no such user", Stage.RCPT, Outcome.FAILED, True, False),
        (550, "5.1.1 no such user", Stage.END, Outcome.FAILED, True, False),
        (554, "5.7.1 spam", Stage.END, Outcome.FAILED, False, False),
        (552, "too big", Stage.END, Outcome.FAILED, False, False),
        # A refused sender is the sender's problem, not the member's: retry, never suppress.
        (550, "5.7.1 sender rejected", Stage.MAIL, Outcome.DEFERRED, False, False),
    ],
)
def test_replies_map_to_outcomes(code, text, stage, outcome, hard, pushback):
    reply = classify(code, text, stage)
    assert (reply.outcome, reply.hard_bounce, reply.pushback) == (outcome, hard, pushback)


def test_uncertain_is_never_a_bounce():
    assert not Reply(Outcome.UNCERTAIN, None, "timed out", Stage.END).hard_bounce


@pytest.mark.parametrize(
    ("message", "wire"),
    [
        (b"a\r\nb\r\n", b"a\r\nb\r\n.\r\n"),
        (b"a\r\n.b\r\n", b"a\r\n..b\r\n.\r\n"),
        (b".a\r\nb", b"..a\r\nb\r\n.\r\n"),
        (b"x.y\r\n..\r\n", b"x.y\r\n...\r\n.\r\n"),
    ],
)
def test_dot_stuffing(message, wire):
    assert _dot_stuffed(message) == wire
