"""Fixed-window counters in Redis, shared by every process (login attempts, signups)."""

from __future__ import annotations

import time

from redis import Redis


def hit(connection: Redis, key: str, limit: int, window_seconds: int) -> bool:
    """Count one attempt; return False once the window's limit is exceeded."""
    window = int(time.time() // window_seconds)
    full_key = f"cop-mail:rate:{key}:{window}"
    pipe = connection.pipeline()
    pipe.incr(full_key)
    pipe.expire(full_key, window_seconds + 5)
    count, _ = pipe.execute()
    return int(count) <= limit


def reset(connection: Redis, key: str, window_seconds: int) -> None:
    window = int(time.time() // window_seconds)
    connection.delete(f"cop-mail:rate:{key}:{window}")
