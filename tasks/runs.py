"""A run as Celery tasks: ``start`` -> chord of ``shard`` over restaurant shards -> ``finish``.

``start`` takes the schedule's run lock (worker.locks), records the run, and fans its shards out
as a chord, so any number of workers on the shard queue share one run. ``finish`` closes the run
from what was committed, frees the lock and emits the completion event. The run id is the start
task's id: a redelivered start message re-enters its own lock and its own run record instead of
starting a second run.

Failure handling:
- bad input (unknown schedule or restaurant, wrong argument types) fails fast: the task fails with
  ``RunInputError`` and the run record says why; nothing is written, nothing retried;
- connection errors (database, Redis) may pass: those, and only those, are retried with backoff
  and jitter;
- a shard whose worker died is redelivered by Redis after the visibility timeout (acks late) and
  rewritten idempotently; a shard that failed for good makes the chord call ``finish`` anyway (as
  its error callback), and the run ends ``partial`` or ``failed`` naming the shard.
"""

from __future__ import annotations

import logging
import uuid
from datetime import date, datetime
from typing import Any

from celery import chord

from tasks import webhooks as webhook_tasks
from tasks.base import task
from webhooks.deliveries import emit_run_completed
from worker import db, run_finish, run_start, runs
from worker.locks import RunLock
from worker.queues import SHARD_QUEUE
from worker.run_start import LockHeld, RunInputError
from worker.settings import get_settings

log = logging.getLogger(__name__)

# How often `finish` looks again while a redelivered shard is still being written.
FINISH_POLL_S = 5

_limits = get_settings().tasks


def _json_safe(value: Any) -> Any:
    """Run records carry UUIDs and datetimes; results stay plain JSON for Flower and clients."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _run_id_from(task_id: str | None) -> str:
    """The task id when it is a UUID (Celery's default), else a UUID derived from it."""
    try:
        return str(uuid.UUID(str(task_id)))
    except (TypeError, ValueError, AttributeError):
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"rmsml-run:{task_id}"))


def parse_start_args(schedule: Any, as_of: Any, restaurant_ids: Any, trigger: Any) -> dict[str, Any]:
    """Check the JSON arguments a trigger sent; a wrong type is the sender's error, said plainly."""
    if not isinstance(schedule, str) or not schedule:
        raise RunInputError(f"schedule must be a schedule name (string), got {schedule!r}")
    if as_of is not None and not isinstance(as_of, str):
        raise RunInputError(f"as_of must be an ISO 8601 string or null, got {as_of!r}")
    if as_of:
        try:
            run_start.parse_as_of(as_of)
        except (TypeError, ValueError):
            raise RunInputError(f"as_of is not an ISO 8601 instant: {as_of!r}") from None
    if restaurant_ids is not None:
        if not isinstance(restaurant_ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in restaurant_ids
        ):
            raise RunInputError(f"restaurant_ids must be a list of integers or null, got {restaurant_ids!r}")
        if not restaurant_ids:
            raise RunInputError("restaurant_ids must not be empty (leave it out to run every restaurant)")
    if not isinstance(trigger, str) or not trigger:
        raise RunInputError(f"trigger must be a string, got {trigger!r}")
    return {"schedule": schedule, "as_of": as_of or None, "restaurant_ids": restaurant_ids, "trigger": trigger[:64]}


@task("rmsml.runs.start", soft_time_limit=240, time_limit=300)
def start_run(
    self,
    schedule: str,
    as_of: str | None = None,
    restaurant_ids: list[int] | None = None,
    trigger: str = "manual",
    run_id: str | None = None,
    allow_future_as_of: bool = False,
) -> dict[str, Any]:
    """Begin a run of ``schedule`` unless one is running, and fan its shards out.

    ``run_id`` (optional) re-runs an earlier run under its own id: its shards are rewritten in
    place, so a run that ended ``partial`` after a crash can be completed without duplicates.
    ``allow_future_as_of``: accept an ``as_of`` later than now (refused otherwise, see
    ``worker.run_start.checked_as_of``).
    """
    try:
        rid = str(uuid.UUID(str(run_id))) if run_id else _run_id_from(self.request.id)
    except ValueError:
        raise RunInputError(f"run_id must be a UUID, got {run_id!r}") from None
    try:
        args = parse_start_args(schedule, as_of, restaurant_ids, trigger)
    except RunInputError as exc:
        run_start.reject_run(rid, str(schedule), None, trigger=str(trigger)[:64], error=str(exc))
        raise

    lock = RunLock.from_settings()
    earlier = lock.dispatched(self.request.id) if self.request.id else None
    if earlier is not None:
        # the same message again, after its shards went out: they are running or done
        log.warning("start %s redelivered after its shards were dispatched; not sending them again", self.request.id)
        return {**earlier, "redelivered": True}
    plan = run_start.begin_locked(lock, args["schedule"], args["as_of"], args["restaurant_ids"],
                                  trigger=args["trigger"], run_id=rid, allow_future_as_of=allow_future_as_of is True)
    if isinstance(plan, LockHeld):
        return {
            "status": "skipped",
            "schedule": plan.schedule,
            "running_run_id": plan.holder,
            "reason": f"a {plan.schedule} run ({plan.holder}) is still running",
        }

    queue = SHARD_QUEUE[plan.schedule].value
    # Task ids name the run and shard; the dispatch suffix keeps a re-run of the same run id from
    # reading the previous dispatch's stored results.
    dispatch = uuid.uuid4().hex[:8]
    shard_ids = [f"{rid}:shard:{n}:{dispatch}" for n in range(len(plan.shards))]
    header = [
        shard_run.si(rid, n, plan.schedule).set(task_id=shard_ids[n], queue=queue) for n in range(len(plan.shards))
    ]
    finish_id = f"{rid}:finish:{dispatch}"
    body = finish_run.si(rid).set(task_id=finish_id)
    if header:
        # A shard that fails for good skips the chord body: its error callback closes the run.
        chord(header, body.on_error(finish_run.si(rid))).apply_async()
    else:
        body.apply_async()
    result = {
        "status": "started",
        "run_id": rid,
        "schedule": plan.schedule,
        "as_of": plan.as_of.isoformat(),
        "prediction_types": plan.prediction_types,
        "shards": len(plan.shards),
        "shard_task_ids": shard_ids,
        "finish_task_id": finish_id,
    }
    if self.request.id:
        lock.mark_dispatched(self.request.id, result, 2 * get_settings().broker.visibility_timeout_s)
    return result


@task("rmsml.runs.shard", soft_time_limit=_limits.shard_soft_time_limit_s, time_limit=_limits.shard_time_limit_s)
def shard_run(self, run_id: str, shard_no: int, schedule: str | None = None) -> dict[str, Any]:
    """Predict and write one shard of restaurants; safe to run again (the writer upserts)."""
    rid = str(uuid.UUID(str(run_id)))
    if isinstance(shard_no, bool) or not isinstance(shard_no, int):
        raise RunInputError(f"shard_no must be an integer, got {shard_no!r}")
    settings = get_settings()
    lock = RunLock.from_settings(settings)
    if schedule:
        lock.refresh(schedule, rid)
    result = runs.run_shard(rid, shard_no, settings=settings)
    if schedule:
        lock.refresh(schedule, rid)
    return {**_json_safe(result), "worker": self.request.hostname}


@task("rmsml.runs.finish", soft_time_limit=240, time_limit=300)
def finish_run(self, run_id: str) -> dict[str, Any]:
    """Close the run from committed rows, free its lock, emit the completion event.

    Normally every shard is done when this runs. When it runs as the chord's error callback, or a
    shard was delivered twice, some shard may still be writing: wait for it (polling) up to one
    shard's hard time limit, then close the run with whatever is unfinished counted as failed.
    """
    rid = str(uuid.UUID(str(run_id)))
    waiting = runs.unfinished_shards(rid)
    if waiting and self.request.retries * FINISH_POLL_S < _limits.shard_time_limit_s:
        raise self.retry(countdown=FINISH_POLL_S, max_retries=None)
    record = run_finish.finish_run(rid)
    RunLock.from_settings().release(record["schedule"], rid)
    record = _json_safe(record)
    record["webhook_deliveries"] = on_run_finished(record)
    log.info("run %s (%s) finished: %s %s", rid, record["schedule"], record["status"], record["rows_written"])
    return record


def on_run_finished(record: dict[str, Any]) -> list[str]:
    """Hook point for the completion event: ``webhooks.deliveries.emit_run_completed`` (issue 6).

    Called with the JSON-safe run record each time a run is closed; returns the delivery ids
    (one per receiver) enqueued on the webhooks queue. Calling it again for the same outcome (a
    redelivered finish) returns the recorded deliveries instead of duplicating them, and it never
    raises: a webhook problem must not undo a finished run.
    """
    return list(
        emit_run_completed(
            record,
            send="enqueue",
            engine=db.predictions_engine(),
            settings=get_settings().webhooks,
            enqueue=webhook_tasks.enqueue,
        )
    )
