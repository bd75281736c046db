"""Every Celery queue, named once.

Routing is by queue, not by worker name, so a deployment scales a kind of work by starting more
workers on its queue (docs/operations.md shows which compose service consumes which queue).
"""

from __future__ import annotations

from enum import Enum
from fnmatch import fnmatchcase


class Queue(str, Enum):
    # Run bookkeeping: start (lock, run record, fan out) and finish (counts, record, webhook event).
    # Short tasks; consumed by every scoring worker (`worker` service: -Q runs,scoring).
    RUNS = "runs"
    # Shards of the daily schedule: read, fit light models, write. Consumed by the `worker` service,
    # as many replicas as the replica database tolerates.
    SCORING = "scoring"
    # Shards of the weekly and monthly schedules, which fit the heavy models (churn, LTV, prices):
    # consumed by `worker-training`, one task per process, recycled by memory.
    TRAINING = "training"
    # Completion webhook deliveries (tasks/webhooks.py): consumed by `worker-webhooks`, many small
    # I/O-bound tasks, so they never wait behind a shard.
    WEBHOOKS = "webhooks"


# Which queue runs the shards of each schedule.
SHARD_QUEUE: dict[str, Queue] = {
    "daily": Queue.SCORING,
    "weekly": Queue.TRAINING,
    "monthly": Queue.TRAINING,
}


# Where each task goes (celeryconfig.task_routes). Shards are sent to their schedule's queue at
# dispatch (SHARD_QUEUE); the route here is their default.
TASK_ROUTES: dict[str, Queue] = {
    "rmsml.runs.start": Queue.RUNS,
    "rmsml.runs.finish": Queue.RUNS,
    "rmsml.runs.shard": Queue.SCORING,
    "rmsml.webhooks.*": Queue.WEBHOOKS,
}


def queue_of(task_name: str) -> Queue | None:
    """The queue ``TASK_ROUTES`` sends a task to (glob patterns as Celery reads them), or None."""
    for pattern, queue in TASK_ROUTES.items():
        if fnmatchcase(task_name, pattern):
            return queue
    return None
