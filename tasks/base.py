"""The one task decorator: every task gets a routed name, soft and hard time limits, and retries
on the errors that may pass on their own, and on nothing else.

Why one decorator (as Sentry's ``tasks/base.py``): a task declared without limits runs forever on
a hung socket, one retried on every exception retries bad input forever, and one whose name has
no route lands on the default queue where no worker of its kind listens. Queues come from
``worker.queues.TASK_ROUTES`` through ``task_routes``, not from a per-task ``queue`` attribute
(deprecated by Celery 6).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc

from worker.celery_app import app
from worker.queues import queue_of

# Errors that may pass on their own (a database or Redis that blinked). Everything else (bad
# data, bugs) fails at once.
TRANSIENT: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
)


def task(name: str, *, soft_time_limit: float, time_limit: float, max_retries: int = 6,
         **options: Any) -> Callable[[Callable[..., Any]], Any]:
    """Register a bound task on the app.

    Args:
        name: the task's public name (``rmsml.<area>.<verb>``); must have a route.
        soft_time_limit, time_limit: seconds; the soft one raises inside the task so it can
            record what it did, the hard one kills the process.
        max_retries: retries on ``TRANSIENT`` errors, with exponential backoff (5 s .. 5 min,
            jittered).
        options: further Celery task options (e.g. ``acks_late``).
    """
    if queue_of(name) is None:
        raise ValueError(f"task {name!r} has no route in worker.queues.TASK_ROUTES")
    if not 0 < soft_time_limit < time_limit:
        raise ValueError(f"task {name!r}: soft_time_limit must be positive and below time_limit")
    return app.task(
        name=name,
        bind=True,
        soft_time_limit=soft_time_limit,
        time_limit=time_limit,
        autoretry_for=TRANSIENT,
        retry_backoff=5,
        retry_backoff_max=300,
        retry_jitter=True,
        max_retries=max_retries,
        **options,
    )
