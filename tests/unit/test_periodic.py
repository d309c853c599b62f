"""Every periodic job exists, and every module holding jobs is preloaded by the worker."""

from __future__ import annotations

import importlib
import pkgutil

import cop_mail
from cop_mail.periodic import PERIODIC_JOBS
from cop_mail.queues import ALL_QUEUES
from worker.run import PRELOAD


def job_modules() -> set[str]:
    """Modules under cop_mail defining a function whose name ends in _job."""
    found = set()
    for info in pkgutil.walk_packages(cop_mail.__path__, "cop_mail."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            public_job = name.endswith("_job") and not name.startswith("_") and callable(value)
            if public_job and getattr(value, "__module__", "") == info.name:
                found.add(info.name)
    return found


def test_every_periodic_job_resolves_to_a_function_on_a_known_queue():
    for path, interval, queue in PERIODIC_JOBS:
        module, _, name = path.rpartition(".")
        assert callable(getattr(importlib.import_module(module), name)), path
        assert interval > 0 and queue in ALL_QUEUES, path
    assert len({path for path, _, _ in PERIODIC_JOBS}) == len(PERIODIC_JOBS)


def test_the_worker_preloads_every_module_with_jobs():
    assert job_modules() - set(PRELOAD) == set()
