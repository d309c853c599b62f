"""Workers stop promptly: RQ's command listener must not hold a stopping worker for a minute."""

from __future__ import annotations

import time

import pytest
from rq import Queue

from cop_mail.queues import HIGH, PromptSimpleWorker, PromptWorker


@pytest.mark.parametrize("worker_class", [PromptWorker, PromptSimpleWorker])
def test_a_worker_stops_listening_for_commands_within_seconds(redis_conn, worker_class):
    worker = worker_class([Queue(HIGH, connection=redis_conn)], connection=redis_conn)
    worker.subscribe()
    time.sleep(0.3)  # the listener is now blocked reading the channel
    started = time.monotonic()
    # What unsubscribe() does once the channel's goodbye has been read: stop the listener and
    # wait for it. RQ's own listener reads for 60 s at a time, so this wait could last a minute.
    worker.pubsub_thread.stop()
    assert time.monotonic() - started < 5
    assert not worker.pubsub_thread.is_alive()
    worker.pubsub.close()
