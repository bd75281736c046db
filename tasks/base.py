"""The one task decorator: every task gets a routed name, soft and hard time limits, and retries
on the errors that may pass on their own (``worker.failures.is_transient``), and on nothing else.

Why one decorator (as Sentry's ``tasks/base.py``): a task declared without limits runs forever on
a hung socket, one retried on every exception retries bad input forever, and one whose name has
no route lands on the default queue where no worker of its kind listens. Queues come from
``worker.queues.TASK_ROUTES`` through ``task_routes``, not from a per-task ``queue`` attribute
(deprecated by Celery 6).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from celery.utils.time import get_exponential_backoff_interval

from worker.celery_app import app
from worker.failures import is_transient
from worker.queues import queue_of

# Retries after a transient error (``worker.failures.is_transient``, the rule the shard loop uses
# too): exponential backoff from this many seconds up to the maximum, fully jittered. Everything
# else (bad data, bugs, a statement timeout) fails at once.
RETRY_BACKOFF_S = 5
RETRY_BACKOFF_MAX_S = 300


def retry_transient(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a bound task's function: a transient error becomes the task's retry, with backoff;
    any other error (and Celery's own Retry, Ignore, Reject) propagates as it is."""

    @functools.wraps(fn)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except Exception as exc:
            if not is_transient(exc):
                raise
            countdown = get_exponential_backoff_interval(
                factor=RETRY_BACKOFF_S, retries=self.request.retries, maximum=RETRY_BACKOFF_MAX_S, full_jitter=True)
            raise self.retry(exc=exc, countdown=countdown)

    run.retries_transient = True  # type: ignore[attr-defined]
    # Celery checks a call's arguments against the task's signature before sending it (an unknown
    # keyword is the caller's mistake, answered at once: Flower's 400); the wrapper's own
    # (*args, **kwargs) would let any argument through to fail later on a worker.
    run.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
    return run


def task(name: str, *, soft_time_limit: float, time_limit: float, max_retries: int = 6,
         **options: Any) -> Callable[[Callable[..., Any]], Any]:
    """Register a bound task on the app.

    Args:
        name: the task's public name (``rmsml.<area>.<verb>``); must have a route.
        soft_time_limit, time_limit: seconds; the soft one raises inside the task so it can
            record what it did, the hard one kills the process.
        max_retries: retries on transient errors (``worker.failures.is_transient``), with
            exponential backoff (5 s .. 5 min, jittered).
        options: further Celery task options (e.g. ``acks_late``).
    """
    if queue_of(name) is None:
        raise ValueError(f"task {name!r} has no route in worker.queues.TASK_ROUTES")
    if not 0 < soft_time_limit < time_limit:
        raise ValueError(f"task {name!r}: soft_time_limit must be positive and below time_limit")
    register = app.task(
        name=name,
        bind=True,
        soft_time_limit=soft_time_limit,
        time_limit=time_limit,
        retry_backoff=RETRY_BACKOFF_S,
        retry_backoff_max=RETRY_BACKOFF_MAX_S,
        retry_jitter=True,
        max_retries=max_retries,
        **options,
    )
    return lambda fn: register(retry_transient(fn))
