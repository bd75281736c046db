"""Which failures pass on their own, and what a run record may say about a failure.

The one transient rule of the project: the shard loop (``worker.runs``) retries a transient error
in place and then leaves it to the shard task's retry (any other error fails only its unit), and
the task decorator (``tasks.base.task``) retries a task on a transient error and on nothing else.
Apart from both so the rule is read (and tested) in one place.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc

log = logging.getLogger(__name__)
T = TypeVar("T")


# SQLSTATEs that pass on their own: serialization failure, deadlock, the server shutting a
# connection down (restart, pg_terminate_backend), connection failures.
_TRANSIENT_SQLSTATES = {"40001", "40P01", "57P01", "57P02", "57P03", "08000", "08001", "08003", "08004", "08006"}


# Retries of a unit in place after a transient error, with these pauses (s), before the shard's
# own retry (the Celery task's) takes over.
UNIT_RETRY_PAUSES_S = (1.0, 4.0)


# Redis and the broker: a connection lost or timed out may come back.
_TRANSIENT_CLASSES: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether an error may pass on its own (a connection to the database, Redis or the broker
    lost, a deadlock, a serialization failure), as opposed to one that will fail the same way
    again (bad data, a bug, a statement timeout: the same statement times out again)."""
    if isinstance(exc, _TRANSIENT_CLASSES):
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        code = getattr(exc.orig, "pgcode", None)
        if code is not None:
            return code in _TRANSIENT_SQLSTATES
        return isinstance(exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError))
    return False


def failure_reason(exc: BaseException) -> str:
    """What the run record and the webhook say about a failure: the error class and the first line
    of its message. Never the statement or its parameters (SQLAlchemy puts both in ``str(exc)``);
    those go to the worker log with the traceback."""
    cause = exc.orig if isinstance(exc, sqlalchemy.exc.StatementError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0][:300] if lines else ''}".rstrip(": ")


def with_retries(compute: Callable[[], T], what: str) -> T:
    """``compute()``, tried again after each pause of ``UNIT_RETRY_PAUSES_S`` while it fails with a
    transient error; the last error is raised."""
    for pause in (*UNIT_RETRY_PAUSES_S, None):
        try:
            return compute()
        except Exception as exc:
            if pause is None or not is_transient(exc):
                raise
            log.warning("%s: transient error, retrying in %.0f s: %s", what, pause, failure_reason(exc))
            time.sleep(pause)
    raise AssertionError("unreachable")
