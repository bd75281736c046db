"""The one run loop: begin a run, run its shards, finish it.

The start protocol (the run lock, abandoned runs, the as-of, the run record and its shards) is
``worker.run_start``, the finishing step ``worker.run_finish``; this module runs the shards, and a
whole schedule in-process. The CLI runs the three steps in-process; Celery runs the shards as a
chord across workers. Both call these same functions with ids and plain values, so a run behaves the same wherever it runs.

Failure model: a unit that fails in a shard is recorded and the shard's other units go on; the
predictions it would have replaced stay as they were (the writer replaces atomically). Every step
is idempotent for a given run id, so a retried or redelivered step writes no duplicates.
"""

from __future__ import annotations

import contextlib
import logging
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import Engine

from core.replica import ReplicaReader
from core.units import PredictionUnit, Scope
from features.quality import count_malformed
from features.restaurants import load_restaurants
from webhooks.deliveries import emit_run_completed
from worker import catalog, db, records
from worker.aggregates import AggregateKeeper, replica_source
from worker.failures import failure_reason, is_transient, with_retries
from worker.locks import Heartbeat, RunLock
from worker.malformed_counts import MalformedKeeper
from worker.records import RunRecords
from worker.run_finish import finish_run
from worker.run_start import LockHeld, RunInputError, RunPlan, begin_locked, begin_run, unit_key
from worker.settings import Settings, get_settings
from worker.writer import PredictionWriter

log = logging.getLogger(__name__)

# A timestamp later than the wall clock plus this cannot be real.
FUTURE_TOLERANCE = pd.Timedelta(hours=1)


def _engines() -> tuple[Engine, Engine]:
    """The replica and predictions engines (cached per process by ``worker.db``)."""
    return db.replica_engine(), db.predictions_engine()


class SharedReads:
    """The shard's reads that several units declared they share (``PredictionUnit.shares``).

    The first unit with a key reads; the others get the same object; the read is dropped as soon
    as the last unit sharing it has taken it, so a long-lived worker never holds a shard's data
    between tasks. A read that failed is tried again by the next unit that needs it.
    """

    def __init__(self, units: list[PredictionUnit]):
        self._left: dict[str, int] = {}
        for unit in units:
            if unit.shares:
                self._left[unit.shares] = self._left.get(unit.shares, 0) + 1
        self._held: dict[str, object] = {}

    def features(self, unit: PredictionUnit, reader: ReplicaReader, scope: Scope) -> object:
        key = unit.shares
        if key is None:
            return unit.features(reader, scope)
        try:
            if key not in self._held:
                self._held[key] = unit.features(reader, scope)
            return self._held[key]
        finally:
            self._left[key] -= 1
            if self._left[key] == 0:
                self._held.pop(key, None)


@dataclass
class _ShardWork:
    """What one shard did: rows written per type, malformed rows skipped per table, messages,
    errors, seconds per unit, and whether the soft time limit stopped it."""

    written: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # time per unit, for the run report
    out_of_time: bool = False


def run_shard(run_id: str, shard_no: int, *, settings: Settings | None = None,
              escalate_transient: bool = True) -> dict:
    """Compute and write every unit of the run's schedule for one shard of restaurants.

    A unit failing with a transient error (connection lost, deadlock) is retried in place; if it
    still fails, the error leaves this function (``escalate_transient``) so that the shard task's
    own retry runs the shard again, instead of recording the shard failed after one attempt.
    ``escalate_transient=False`` (the in-process run, which has no task retry) records it failed.
    Errors that will not pass fail only their unit.
    """
    settings = settings or get_settings()
    replica, predictions = _engines()
    run = records.get_run(predictions, run_id)
    shard = records.get_shard(predictions, run_id, shard_no)
    if run is None or shard is None:
        raise RunInputError(f"no shard {shard_no} in run {run_id}")
    writer = PredictionWriter(predictions)
    run_records = RunRecords(predictions)
    run_records.start_shard(run_id, shard_no, shard["restaurant_ids"])
    reader = ReplicaReader(replica)
    valid_until = datetime.now(timezone.utc) + FUTURE_TOLERANCE.to_pytimedelta()
    scheduled = catalog.units_for(run["schedule"])
    units = [u for u in scheduled if unit_key(u, scheduled) not in run["modules_skipped"]]
    work = _ShardWork()
    try:
        found = load_restaurants(reader, list(shard["restaurant_ids"]))
        tables = sorted({t for u in units for t in u.tables})
        forecast = settings.forecast
        source = replica_source(settings.replica.url.get_secret_value())
        work.skipped = count_malformed(reader, tables, list(found.restaurants["id"]), valid_until,
                                       MalformedKeeper(predictions, source) if forecast.keep_aggregates else None,
                                       forecast.aggregates_reread_days, forecast.aggregates_check_cycle_days)
        scope = Scope(
            run_id=run_id,
            schedule=run["schedule"],
            as_of=pd.Timestamp(run["as_of"]).tz_convert("UTC"),
            restaurants=found.restaurants,
            forecast=settings.forecast,
            inventory=settings.inventory,
            model_store=settings.model_store.path,
            valid_until=valid_until,
            registry=records.registry_frame(predictions, [u.prediction_type for u in units]),
            aggregates=AggregateKeeper(predictions, source) if forecast.keep_aggregates else None,
        )
        generated_at = datetime.now(timezone.utc)
        expires_at = generated_at + pd.Timedelta(hours=settings.forecast.expires_after_hours).to_pytimedelta()
        shared = SharedReads(units)
        for unit in units:
            unit_started = time.monotonic()
            try:
                result = with_retries(lambda unit=unit: unit.predict(shared.features(unit, reader, scope), scope),
                                       f"run {run_id} shard {shard_no}: {unit.prediction_type}")
                work.written[unit.prediction_type] = work.written.get(unit.prediction_type, 0) + \
                    writer.replace_predictions(run_id, unit.prediction_type, unit.entity_type, result.rows,
                                               generated_at=generated_at, expires_at=expires_at,
                                               scope_entity_ids=result.scope_entity_ids, keep_history=unit.scored)
                for model in result.models:
                    run_records.register_model(prediction_type=unit.prediction_type, run_id=run_id, **vars(model))
                work.messages.extend(result.messages)
            except SoftTimeLimitExceeded:
                # Out of time: record what was done, then let the task stop before the hard kill.
                work.errors.append(f"{unit.prediction_type}: soft time limit reached, shard stopped")
                work.out_of_time = True
                break
            except Exception as exc:  # one unit failing must not take the others down
                if escalate_transient and is_transient(exc):
                    raise
                log.exception("run %s shard %d: %s failed", run_id, shard_no, unit.prediction_type)
                work.errors.append(f"{unit.prediction_type}: {failure_reason(exc)}")
            _log_unit_done(run_id, shard_no, unit_key(unit, units), time.monotonic() - unit_started,
                           work.written.get(unit.prediction_type, 0), work)
    except Exception as exc:
        if escalate_transient and is_transient(exc):
            # Still failing after the retries in place: the shard's own retry (the task's, with
            # backoff) runs it again; its record stays running until then.
            log.warning("run %s shard %d: transient error, left to the shard's retry: %s", run_id, shard_no,
                        failure_reason(exc))
            raise
        work.errors.append(f"shard: {failure_reason(exc)}")
        log.error("run %s shard %d failed:\n%s", run_id, shard_no, traceback.format_exc())
    return _close_shard(run_records, writer, run_id, shard_no, work)


def _log_unit_done(run_id: str, shard_no: int, key: str, took: float, rows: int, work: _ShardWork) -> None:
    work.seconds[key] = took
    log.info("run %s shard %d: %s done in %.1f s", run_id, shard_no, key, took,
             extra={"run_id": run_id, "shard": shard_no, "unit": key, "seconds": round(took, 3), "rows": rows})


def _close_shard(run_records: RunRecords, writer: PredictionWriter, run_id: str, shard_no: int,
                 work: _ShardWork) -> dict:
    """Record the shard's outcome and seconds; stop the task when the soft time limit stopped the
    shard, else return what the shard task returns."""
    for prediction_type, n in writer.kept_newer.items():
        work.messages.append(f"{prediction_type}: {n} entit{'y' if n == 1 else 'ies'} kept the rows of a run with a "
                             "later as-of; an older as-of never replaces newer predictions")
    status = "failed" if work.errors else "succeeded"
    run_records.finish_shard(run_id, shard_no, status=status, rows_written=work.written, rows_skipped=work.skipped,
                             messages=work.messages, error="; ".join(work.errors) or None)
    run_records.record_step_seconds(run_id, shard_no, work.seconds)
    if work.out_of_time:
        raise SoftTimeLimitExceeded(f"run {run_id} shard {shard_no}")
    return {"run_id": run_id, "shard_no": shard_no, "status": status, "rows_written": work.written,
            "errors": work.errors}


def unfinished_shards(run_id: str, *, settings: Settings | None = None) -> list[int]:
    """Shards of the run still pending or running: a finishing step waits for these."""
    settings = settings or get_settings()
    _, predictions = _engines()
    return [
        n
        for n in records.shard_numbers(predictions, run_id)
        if (records.get_shard(predictions, run_id, n) or {}).get("status") in ("pending", "running")
    ]


def execute_run(
    schedule: str,
    as_of: str | datetime | None = None,
    restaurant_ids: list[int] | None = None,
    *,
    trigger: str = "cli",
    run_id: str | None = None,
    settings: Settings | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    lock: RunLock | None = None,
    allow_future_as_of: bool = False,
) -> dict | LockHeld:
    """Run a whole schedule in this process: the CLI's and the demo's path.

    ``lock``: take the schedule's run lock as beat and Flower runs do (``begin_locked``), keep it
    fresh after every shard and free it at the end; ``LockHeld`` is returned when another run
    holds it. None runs without one (no workers share the databases).

    ``progress(step, done, total)`` is told after each shard ("shards") and at the finishing
    step ("finish"), for a progress bar.

    Like the Celery finishing step, it ends by announcing the run to the webhook receivers (sent
    inline, within the webhooks' inline budget; a dead receiver never fails the run).
    """
    run_id = str(run_id or uuid.uuid4())
    if lock is None:
        plan = begin_run(schedule, as_of, restaurant_ids, trigger=trigger, run_id=run_id, settings=settings,
                         allow_future_as_of=allow_future_as_of)
    else:
        started = begin_locked(lock, schedule, as_of, restaurant_ids, trigger=trigger, run_id=run_id, settings=settings,
                               allow_future_as_of=allow_future_as_of)
        if isinstance(started, LockHeld):
            return started
        plan = started
    beating = (Heartbeat(lock, schedule, plan.run_id, max(1.0, get_settings().tasks.stranded_after_s / 6))
               if lock is not None else contextlib.nullcontext())
    try:
        with beating:
            _run_shards(plan, settings, lock, progress)
        record = finish_run(plan.run_id, settings=settings)
    finally:
        if lock is not None:
            lock.release(schedule, plan.run_id)
    record["webhook_deliveries"] = emit_run_completed(
        record, send="inline", engine=db.predictions_engine(), settings=(settings or get_settings()).webhooks
    )
    return record


def _run_shards(plan: RunPlan, settings: Settings | None, lock: RunLock | None,
                progress: Callable[[str, int, int], None] | None) -> None:
    for shard_no in range(len(plan.shards)):
        run_shard(plan.run_id, shard_no, settings=settings, escalate_transient=False)
        if lock is not None:
            lock.refresh(plan.schedule, plan.run_id)  # a long in-process run keeps its lock, as shards do
        if progress:
            progress("shards", shard_no + 1, len(plan.shards))
    if progress:
        progress("finish", 0, 1)


__all__ = ["run_shard", "unfinished_shards", "execute_run"]
