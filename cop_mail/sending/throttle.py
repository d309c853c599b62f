"""Sending limits shared by every worker on every machine, kept in Redis.

- Rates: messages per second, minute and hour, globally and per campaign. Each limit is a
  GCRA bucket (one timestamp per key, Redis server time) pacing messages evenly, checked and
  taken atomically for all limits at once by one Lua script, so several workers never
  overshoot together.
- Connections: at most N open connections per SMTP server (a sorted set of leases).
- Pushback: a 421 or 454 from a server starts a shared backoff for that server that
  doubles while the replies continue and ends at the first success; workers wait instead
  of skipping anyone.

Limits of 0 mean "none": with no rate limit the only Redis traffic is a pushback check
every quarter of a second. If Redis is unreachable the limits cannot be honoured, so a
worker with rate limits stops its batch (its rows go back to the queue); pushback and
connection counts fail open, since they only ever slow sending down.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger("cop_mail.sending.throttle")
PREFIX = "cop-mail:throttle"
MAX_PUSHBACK_SECONDS = 60.0
MAX_RETRY_SECONDS = 6 * 3600.0
PUSHBACK_CHECK_EVERY = 0.25
REDIS_PATIENCE_SECONDS = 30.0

# KEYS[1]: the server's pushback hash; KEYS[2..]: one GCRA bucket per limit.
# ARGV[1]: tokens wanted; then per bucket: emission interval (ms), burst window (ms).
# Returns the milliseconds to wait (nothing taken), or 0 (tokens taken).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if until_ms > now then return until_ms - now end
local n = tonumber(ARGV[1])
local wait = 0
local tats = {}
for i = 2, #KEYS do
  local interval = tonumber(ARGV[2 * i - 2])
  local period = tonumber(ARGV[2 * i - 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  tats[i] = tat + interval * n
  local allow_at = tats[i] - period
  if allow_at - now > wait then wait = allow_at - now end
end
if wait > 0 then return math.ceil(wait) end
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], tostring(tats[i]), 'PX', math.ceil(tonumber(ARGV[2 * i - 1]) * 2) + 1000)
end
return 0
"""

# KEYS[1]: pushback hash. ARGV[1]: base delay (ms), ARGV[2]: cap (ms). Returns the delay (ms).
_PUSHBACK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local streak = redis.call('HINCRBY', KEYS[1], 'streak', 1)
local delay = math.min(tonumber(ARGV[1]) * 2 ^ (streak - 1), tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 'until', math.floor(now + delay))
redis.call('PEXPIRE', KEYS[1], math.floor(delay) + 3600000)
return math.floor(delay)
"""

# KEYS[1]: connection leases. ARGV: holder, lease expiry (ms), limit. Returns 1 if granted.
_CONNECT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + 60000)
  return 1
end
return 0
"""


class ThrottleUnavailable(RuntimeError):
    """Rate limits are configured but Redis cannot be reached to honour them."""


class Stopped(RuntimeError):
    """The caller's keep-alive asked to stop while waiting (campaign paused, lease lost)."""


@dataclass(frozen=True)
class Limits:
    per_second: float = 0.0
    per_minute: float = 0.0
    per_hour: float = 0.0
    campaign_per_second: float = 0.0
    campaign_per_minute: float = 0.0
    campaign_per_hour: float = 0.0
    connections: int = 0

    @classmethod
    def from_settings(cls, settings: object) -> Limits:
        return cls(
            per_second=getattr(settings, "send_rate_per_second", 0.0),
            per_minute=getattr(settings, "send_rate_per_minute", 0.0),
            per_hour=getattr(settings, "send_rate_per_hour", 0.0),
            campaign_per_second=getattr(settings, "campaign_rate_per_second", 0.0),
            campaign_per_minute=getattr(settings, "campaign_rate_per_minute", 0.0),
            campaign_per_hour=getattr(settings, "campaign_rate_per_hour", 0.0),
            connections=getattr(settings, "smtp_connections", 0),
        )

    def batch_size(self, largest: int, seconds: float) -> int:
        """How many messages the slowest limit lets out in `seconds` (at least 1, at most `largest`)."""
        rates = [
            rate / period
            for period, rate in zip(
                (1.0, 60.0, 3600.0, 1.0, 60.0, 3600.0),
                (self.per_second, self.per_minute, self.per_hour)
                + (self.campaign_per_second, self.campaign_per_minute, self.campaign_per_hour),
                strict=True,
            )
            if rate > 0
        ]
        if not rates:
            return largest
        return max(1, min(largest, int(min(rates) * seconds)))

    def buckets(self, campaign_id: int) -> list[tuple[str, float, float]]:
        """(key, emission interval ms, burst window ms) for each limit that is set.

        The window is one interval: messages are paced evenly, never in bursts, so no stretch of
        time as long as a limit's period (a provider's hourly cap) ever holds more than the limit.
        """
        found = []
        for scope, rates in (
            ("all", (self.per_second, self.per_minute, self.per_hour)),
            (f"campaign:{campaign_id}", (self.campaign_per_second, self.campaign_per_minute, self.campaign_per_hour)),
        ):
            for period, rate in zip((1.0, 60.0, 3600.0), rates, strict=True):
                if rate > 0:
                    interval = period * 1000 / rate
                    found.append((f"{PREFIX}:rate:{scope}:{int(period)}", interval, interval))
        return found


def retry_delay(attempt: int, base_seconds: float) -> float:
    """Backoff before retrying a deferred row: base, 2x, 4x, ... capped at six hours."""
    return float(min(base_seconds * 2 ** max(attempt - 1, 0), MAX_RETRY_SECONDS))


def pushback_delay(streak: int, base_seconds: float) -> float:
    """Shared wait after the `streak`-th 421/454 in a row (mirrors the Lua script)."""
    return float(min(base_seconds * 2 ** max(streak - 1, 0), MAX_PUSHBACK_SECONDS))


KeepAlive = Callable[[], bool]


class Throttle:
    """One per batch: waits before each message as the shared limits require."""

    def __init__(
        self,
        redis: Redis | None,
        limits: Limits,
        campaign_id: int,
        server_key: str,
        pushback_seconds: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.redis = redis
        self.limits = limits
        self.buckets = limits.buckets(campaign_id)
        self.pushback_key = f"{PREFIX}:pushback:{server_key}"
        self.connections_key = f"{PREFIX}:connections:{server_key}"
        self.pushback_seconds = pushback_seconds
        self.holder = secrets.token_hex(8)
        self.sleep = sleep
        self._pushback_until = 0.0
        self._pushback_checked = 0.0
        self._pushback_streak = 0
        self.waited = 0.0

    # --- rates and pushback --------------------------------------------------------

    def wait_turn(self, keep_alive: KeepAlive) -> None:
        """Block until one more message may go out. Raises Stopped or ThrottleUnavailable."""
        while True:
            delay = self._delay()
            if delay <= 0:
                return
            self._sleep(min(delay, 0.5), keep_alive)

    def _delay(self) -> float:
        if self.redis is None:
            return max(self._pushback_until - time.monotonic(), 0.0)
        if not self.buckets:
            return self._cached_pushback()
        keys = [self.pushback_key] + [key for key, _, _ in self.buckets]
        args: list[float] = [1]
        for _, interval, period in self.buckets:
            args += [interval, period]
        started = time.monotonic()
        while True:
            try:
                return float(self.redis.eval(_ACQUIRE, len(keys), *keys, *args)) / 1000
            except RedisError as exc:
                if time.monotonic() - started > REDIS_PATIENCE_SECONDS:
                    raise ThrottleUnavailable("Redis is unreachable, so the sending limits cannot be kept") from exc
                time.sleep(0.5)

    def _cached_pushback(self) -> float:
        now = time.monotonic()
        if now - self._pushback_checked >= PUSHBACK_CHECK_EVERY:
            self._pushback_checked = now
            try:
                until_ms = self.redis.hget(self.pushback_key, "until") if self.redis else None
                server_now = self._server_ms() if until_ms else 0
            except RedisError:
                until_ms = None  # fail open: pushback only ever slows sending down
            if until_ms:
                self._pushback_until = now + max(int(until_ms) - server_now, 0) / 1000
        return max(self._pushback_until - now, 0.0)

    def _server_ms(self) -> int:
        assert self.redis is not None
        seconds, micros = self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def _sleep(self, seconds: float, keep_alive: KeepAlive) -> None:
        if not keep_alive():
            raise Stopped("asked to stop while waiting")
        self.sleep(seconds)
        self.waited += seconds

    def pushback(self) -> float:
        """Record a 421/454 reply; returns the shared wait in seconds."""
        self._pushback_streak += 1
        delay = pushback_delay(self._pushback_streak, self.pushback_seconds)
        if self.redis is not None:
            try:
                base_ms, cap_ms = self.pushback_seconds * 1000, MAX_PUSHBACK_SECONDS * 1000
                waited = self.redis.eval(_PUSHBACK, 1, self.pushback_key, base_ms, cap_ms)
                delay = float(waited) / 1000
            except RedisError:
                log.warning("could not share a pushback for %s; waiting locally", self.pushback_key)
        self._pushback_until = time.monotonic() + delay
        log.info("server asked to slow down; waiting %.2fs before the next message", delay)
        return delay

    def success(self) -> None:
        """A message went through: the run of pushbacks is over."""
        if self._pushback_streak == 0 and self._pushback_until == 0.0:
            return
        self._pushback_streak = 0
        self._pushback_until = 0.0
        if self.redis is not None:
            with contextlib.suppress(RedisError):
                self.redis.hdel(self.pushback_key, "streak")

    # --- connections ---------------------------------------------------------------

    def acquire_connection(self, lease_seconds: float, patience: float, keep_alive: KeepAlive) -> bool:
        """Take one of the server's connection slots, waiting up to `patience` seconds."""
        if self.redis is None or self.limits.connections <= 0:
            return True
        deadline = time.monotonic() + patience
        while True:
            try:
                if self._connect_script(lease_seconds):
                    return True
            except RedisError:
                return True  # fail open: the job itself only runs while Redis is up
            if time.monotonic() >= deadline or not keep_alive():
                return False
            self.sleep(0.1)

    def refresh_connection(self, lease_seconds: float) -> None:
        if self.redis is None or self.limits.connections <= 0:
            return
        with contextlib.suppress(RedisError):
            self._connect_script(lease_seconds)

    def _connect_script(self, lease_seconds: float) -> bool:
        assert self.redis is not None
        granted = self.redis.eval(
            _CONNECT,
            1,
            self.connections_key,
            self.holder,
            int(lease_seconds * 1000),
            self.limits.connections,
        )
        return bool(granted)

    def release_connection(self) -> None:
        if self.redis is None or self.limits.connections <= 0:
            return
        with contextlib.suppress(RedisError):
            self.redis.zrem(self.connections_key, self.holder)
