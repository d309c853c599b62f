"""Redis connection, queue names and the one enqueue helper.

Redis only rings the doorbell: every job takes ids, and the database says what
work really exists, so a lost job is found again by the reconciler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis import Redis
from rq import Queue, Retry, SimpleWorker, Worker
from rq.worker.base import BaseWorker

# Queue names, most urgent first: a worker listening on several takes from the first non-empty one.
HIGH = "high"  # inbound mail, transactional messages, confirmations
SEND = "send"  # campaign batches
DEFAULT = "default"
LOW = "low"  # imports, exports, reports
ALL_QUEUES = (HIGH, SEND, DEFAULT, LOW)

DEFAULT_JOB_TIMEOUT = 600


class RedisUnavailable(RuntimeError):
    pass


def connect_redis(url: str) -> Redis:
    return Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)


def check_redis(url: str) -> None:
    try:
        connect_redis(url).ping()
    except Exception as exc:  # any connection problem gets the same plain message
        raise RedisUnavailable(
            f"cannot reach Redis at {url} ({exc.__class__.__name__}); start Redis or set REDIS_URL"
        ) from exc


def enqueue(
    connection: Redis,
    func: Callable[..., Any],
    *args: int | str,
    queue: str = DEFAULT,
    job_id: str | None = None,
    retries: int = 3,
    timeout: int = DEFAULT_JOB_TIMEOUT,
) -> Any:
    """Enqueue a job with plain id arguments and a bounded retry with backoff."""
    return Queue(queue, connection=connection).enqueue(
        func,
        *args,
        job_id=job_id,
        job_timeout=timeout,
        retry=Retry(max=retries, interval=[10, 60, 300][:retries]) if retries else None,
        result_ttl=3600,
        failure_ttl=7 * 86400,
    )


# RQ listens for commands (stop a job, shut down) on a pub/sub thread that blocks up to 60 s per
# read, and redis-py 8 waits for that thread when the worker stops: a worker would linger up to a
# minute after SIGTERM or at the end of a burst. A one-second read keeps shutdown prompt.
COMMAND_POLL_SECONDS = 1.0


def _subscribe_with_short_reads(worker: BaseWorker) -> None:
    worker.log.info("Worker %s: subscribing to channel %s", worker.name, worker.pubsub_channel_name)
    worker.pubsub = worker.connection.pubsub()
    worker.pubsub.subscribe(**{worker.pubsub_channel_name: worker.handle_payload})
    worker.pubsub_thread = worker.pubsub.run_in_thread(  # type: ignore[assignment]  # rq types it as None
        sleep_time=COMMAND_POLL_SECONDS, daemon=True, exception_handler=worker._pubsub_exception_handler
    )


class PromptWorker(Worker):
    """The RQ worker cop-mail runs: forks a child per job, stops within about a second."""

    def subscribe(self) -> None:
        _subscribe_with_short_reads(self)


class PromptSimpleWorker(SimpleWorker):
    """Runs jobs in its own process (tests, one-off runs), stops within about a second."""

    def subscribe(self) -> None:
        _subscribe_with_short_reads(self)
