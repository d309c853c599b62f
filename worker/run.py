"""Start an RQ worker or the periodic scheduler with cop-mail's settings and logging."""

from __future__ import annotations

import importlib
import logging
import socket
import sys
from collections.abc import Sequence

from rq import Queue
from rq.cron import CronScheduler

from cop_mail.periodic import PERIODIC_JOBS
from cop_mail.queues import ALL_QUEUES, PromptWorker, check_redis, connect_redis
from cop_mail.settings import Settings

# Imported in the parent before forking, so each job's child does not import them again.
PRELOAD = (
    "cop_mail.jobs",
    "cop_mail.models",
    "cop_mail.maintenance",
    "cop_mail.rendering",
    "cop_mail.sending.jobs",
    "cop_mail.sending.transactional_jobs",
    "cop_mail.inbound.jobs",
    "cop_mail.audience.jobs",
    "cop_mail.connect.jobs",
    "cop_mail.stories.jobs",
    "cop_mail.integrations.jobs",
    "cop_mail.journeys.jobs",
    "cop_mail.notices.jobs",
)


def configure_logging(name: str) -> None:
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s", stream=sys.stdout
    )


def preload() -> None:
    for module in PRELOAD:
        importlib.import_module(module)


def run_worker(settings: Settings, queues: Sequence[str] = ALL_QUEUES, burst: bool = False) -> bool:
    assert settings.redis_url
    check_redis(settings.redis_url)
    configure_logging("worker")
    preload()
    connection = connect_redis(settings.redis_url)
    worker = PromptWorker(
        [Queue(name, connection=connection) for name in queues],
        connection=connection,
        name=f"{socket.gethostname()}.{__import__('os').getpid()}",
    )
    return worker.work(burst=burst, with_scheduler=True, logging_level="INFO")


def run_scheduler(settings: Settings) -> None:
    assert settings.redis_url
    check_redis(settings.redis_url)
    configure_logging("scheduler")
    connection = connect_redis(settings.redis_url)
    scheduler = CronScheduler(connection=connection, logging_level="INFO")
    for func_path, interval, queue in PERIODIC_JOBS:
        module, _, name = func_path.rpartition(".")
        scheduler.register(getattr(importlib.import_module(module), name), queue_name=queue, interval=interval)
    scheduler.start()
