"""Celery settings, all read from ``worker.settings`` (the environment), none hard-coded elsewhere.

Loaded by ``worker.celery_app`` with ``config_from_object("celeryconfig")``. The choices that
matter, and why:

- JSON only, both ways: a pickle message is refused by the worker, so a message can never run code.
- ``task_acks_late`` + ``worker_prefetch_multiplier=1``: a shard is acknowledged only when done, so
  a worker that dies mid-shard leaves the message for another worker, and a worker never sits on
  queued shards another idle worker could run. Only idempotent tasks may be acked late: every task
  here is (the writer upserts, begin/finish are keyed by run id).
- The Redis ``visibility_timeout`` is when an unacknowledged message is handed out again; it must
  exceed the longest hard time limit, or a slow shard runs twice at once. Checked at load.
"""

from __future__ import annotations

from kombu import Queue as KombuQueue

from worker.queues import TASK_ROUTES, Queue
from worker.schedule import beat_schedule as _beat_schedule
from worker.settings import get_settings

_settings = get_settings()
_broker = _settings.broker
_tasks = _settings.tasks

if _broker.visibility_timeout_s <= _tasks.shard_time_limit_s:
    raise ValueError(
        f"broker.visibility_timeout_s ({_broker.visibility_timeout_s}) must exceed tasks.shard_time_limit_s "
        f"({_tasks.shard_time_limit_s}): Redis would hand a running shard to a second worker"
    )
if _tasks.shard_soft_time_limit_s >= _tasks.shard_time_limit_s:
    raise ValueError("tasks.shard_soft_time_limit_s must be below tasks.shard_time_limit_s")

broker_url = _broker.url.get_secret_value()
result_backend = _broker.result_backend.get_secret_value()
broker_connection_retry_on_startup = True
broker_transport_options = {
    "visibility_timeout": _broker.visibility_timeout_s,
    "unacked_restore_interval": _broker.unacked_restore_interval_s,
    "unacked_restore_throttle": _broker.unacked_restore_throttle,
}
result_backend_transport_options = {"visibility_timeout": _broker.visibility_timeout_s}

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]
result_expires = _broker.result_expires_s
result_extended = True  # task name and args in the result, for Flower and `worker trigger --wait`

task_acks_late = True
worker_prefetch_multiplier = 1
# A pool child killed outright (OOM) fails its task instead of requeueing it: a shard that kills
# its process would otherwise loop forever. The run finishes `partial` naming the shard; rerun it
# with the same run id. A whole worker killed leaves its message unacked: redelivered after
# the visibility timeout (docs/operations.md).
task_reject_on_worker_lost = False
task_track_started = True
# Flower builds task state from events.
worker_send_task_events = True
task_send_sent_event = True

# Queues are declared once (worker.queues); a worker consumes what its -Q names.
task_queues = [KombuQueue(q.value, routing_key=q.value) for q in Queue]
task_default_queue = Queue.RUNS.value
task_create_missing_queues = False
# By name too, so `send_task`, Flower's send-task and beat route the same as `.delay()`.
task_routes = {name: {"queue": queue.value} for name, queue in TASK_ROUTES.items()}

timezone = _settings.schedules.timezone
enable_utc = True
beat_schedule = _beat_schedule(_settings)
