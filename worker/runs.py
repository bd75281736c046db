"""The one run loop: begin a run, run its shards, finish it.

The CLI runs the three steps in-process; Celery runs the shards as a chord across workers. Both
call these same functions with ids and plain values, so a run behaves the same wherever it runs.

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
import redis.exceptions
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import Engine

from core.replica import ReplicaReader
from core.units import PredictionUnit, Scope
from features.quality import count_malformed
from features.restaurants import first_order_at, inactive_restaurant_ids, load_restaurants
from reporting.accuracy import after_run
from webhooks.deliveries import emit_run_completed
from worker import db, records
from worker.catalog import SCHEDULES, units_for
from worker.failures import failure_reason, is_transient, with_retries
from worker.locks import Heartbeat, RunLock
from worker.metrics import publish_run_metrics
from worker.records import RunRecords
from worker.settings import Settings, get_settings
from worker.writer import PredictionWriter

log = logging.getLogger(__name__)

# A timestamp later than the wall clock plus this cannot be real.
FUTURE_TOLERANCE = pd.Timedelta(hours=1)
# How far an --as-of may run ahead of this machine's clock (clock skew between hosts), unforced.
AS_OF_CLOCK_SKEW = pd.Timedelta(minutes=5)


class RunInputError(ValueError):
    """The run was asked for something that cannot be run (bad schedule, unknown restaurant)."""


@dataclass(frozen=True)
class LockHeld:
    """A run was not started: another run of the schedule holds its lock."""

    schedule: str
    holder: str


@dataclass(frozen=True)
class RunPlan:
    run_id: str
    schedule: str
    as_of: pd.Timestamp
    shards: list[list[int]]
    prediction_types: list[str]


def parse_as_of(as_of: str | datetime | None) -> pd.Timestamp:
    """A UTC instant; naive input is taken as UTC. Defaults to now."""
    if as_of is None or as_of == "":
        return pd.Timestamp(datetime.now(timezone.utc)).floor("s")
    ts = pd.Timestamp(as_of)
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).floor("s")


def checked_as_of(as_of: str | datetime | None, *, allow_future: bool = False) -> pd.Timestamp:
    """``parse_as_of`` for what a user typed: ``RunInputError`` for a malformed instant, and for one
    later than now (plus ``AS_OF_CLOCK_SKEW``) unless ``allow_future``.

    Why refuse the future: a run predicts from its as-of, and rows of a later as-of are never
    replaced by an earlier one, so a run "as of 2030" would have frozen today's forecasts. (Rows of
    a forced future run do not block the present either: ``worker.writer`` ignores as-ofs ahead of
    the clock when it keeps newer rows.)
    """
    try:
        when = parse_as_of(as_of)
    except (TypeError, ValueError, OverflowError):
        raise RunInputError(f"as_of is not an ISO 8601 instant (e.g. 2026-11-20T04:15Z): {as_of!r}") from None
    now = pd.Timestamp(datetime.now(timezone.utc))
    if when > now + AS_OF_CLOCK_SKEW and not allow_future:
        raise RunInputError(f"as_of {when.isoformat()} is later than now ({now.floor('s').isoformat()}); a run "
                            "predicts from its as-of and its rows would stand until then "
                            "(force it with --allow-future-as-of / allow_future_as_of=true)")
    return when


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


def unit_key(unit: PredictionUnit, units: list[PredictionUnit]) -> str:
    """How the run record names a unit: its type, plus the entity type when a type has several units."""
    if sum(u.prediction_type == unit.prediction_type for u in units) > 1:
        return f"{unit.prediction_type}/{unit.entity_type}"
    return unit.prediction_type


def _close_abandoned(run_id: str, schedule: str, reason: str, settings: Settings) -> dict:
    """Fail a dead run's unfinished shards, close it from what it committed, record its event."""
    predictions = _engines()[1]
    RunRecords(predictions).abandon_unfinished_shards(run_id, reason)
    record = finish_run(run_id, settings=settings)
    emit_run_completed(record, send="none", engine=predictions, settings=settings.webhooks)
    log.warning("run %s (%s) was abandoned; closed as %s", run_id, schedule, record["status"])
    return record


def close_abandoned_runs(schedule: str, *, settings: Settings | None = None,
                         lock: RunLock | None = None) -> list[dict]:
    """Close runs of ``schedule`` whose workers all died, before a new run of it starts.

    A run that no shard started for ``tasks.stranded_after_s`` and with no live shard (see
    ``records.stale_runs``) can no longer be finishing (its workers died, or its queued shards
    were lost with the broker): its unfinished shards are recorded failed, the run is closed from
    what it committed (``partial`` or ``failed``), and its completion event is recorded for the
    webhook sweep, so the RMS hears about every run that ended.

    ``lock``: also free each closed run's lock if the broker still holds it for that run (its
    workers died, Redis did not), so the schedule is free now rather than when the lock's TTL
    (hours) runs out. Compare-and-delete: a lock another run holds is left alone; a broker that
    does not answer leaves the lock to expire.
    """
    settings = settings or get_settings()
    _, predictions = _engines()
    run_records = RunRecords(predictions)
    closed = []
    silent_for = settings.tasks.stranded_after_s
    for run_id in records.stale_runs(predictions, schedule, silent_for, settings.tasks.shard_time_limit_s):
        record = _close_abandoned(run_id, schedule, f"abandoned: no heartbeat for {silent_for} s (workers gone)",
                                  settings)
        if lock is not None:
            try:
                lock.release(schedule, str(run_id))
            except redis.exceptions.RedisError as exc:
                log.warning("run %s closed; its lock is left to expire (%s: %s)", run_id, type(exc).__name__, exc)
        closed.append(record)
    return closed


def replica_role_risks(reader: ReplicaReader, settings: Settings) -> list[str]:
    """What the replica role can do beyond reading, said loudly; ``RunInputError`` when the
    settings refuse such a role (``replica.refuse_writable_role``)."""
    risks = reader.role_risks()
    for risk in risks:
        log.warning("replica role can write: %s; use a SELECT-only role (docs/replica.md)", risk)
    if risks and settings.replica.refuse_writable_role:
        raise RunInputError(f"refused: {risks[0]}; RMSML_REPLICA__REFUSE_WRITABLE_ROLE is set, "
                            "connect the replica with a SELECT-only role (docs/replica.md)")
    return risks


def begin_run(
    schedule: str,
    as_of: str | datetime | None = None,
    restaurant_ids: list[int] | None = None,
    *,
    trigger: str = "cli",
    run_id: str | None = None,
    settings: Settings | None = None,
    allow_future_as_of: bool = False,
) -> RunPlan:
    """Create the run record and its shards. Raises ``RunInputError`` for bad input, recorded as failed."""
    settings = settings or get_settings()
    replica, predictions = _engines()
    run_records = RunRecords(predictions)
    run_id = str(run_id or uuid.uuid4())
    when = checked_as_of(as_of, allow_future=allow_future_as_of)
    try:
        units = units_for(schedule)
    except ValueError as exc:
        raise RunInputError(str(exc)) from None
    close_abandoned_runs(schedule, settings=settings)
    if restaurant_ids is not None:
        try:
            restaurant_ids = sorted({int(i) for i in restaurant_ids})
        except (TypeError, ValueError):
            raise RunInputError(f"restaurant_ids must be integers, got {restaurant_ids!r}") from None
    reader = ReplicaReader(replica)
    role_risks = replica_role_risks(reader, settings)
    found = load_restaurants(reader, restaurant_ids)
    modules_skipped = {}
    for unit in units:
        reasons = reader.missing(unit.requires)
        if not reasons and unit.unusable is not None:
            reasons = [r for r in [unit.unusable(reader)] if r]
        if reasons:
            modules_skipped[unit_key(unit, units)] = "; ".join(reasons)
    if as_of not in (None, "") and not found.unknown_ids and len(found.restaurants):
        first = first_order_at(reader, [int(i) for i in found.restaurants["id"]])
        if first is not None and when <= first:
            raise RunInputError(f"as_of {when.isoformat()} is before the first order in the replica "
                                f"({first.floor('s').isoformat()}): there is nothing to predict from")
    messages = [f"replica role can write: {r}" for r in role_risks] + list(found.rejected.values())
    skipped = {"restaurants_restaurant": len(found.rejected)} if found.rejected else {}
    ids = [int(i) for i in found.restaurants["id"]]
    size = max(1, settings.schedules.shard_size)
    shards = [ids[i : i + size] for i in range(0, len(ids), size)]
    types = [u.prediction_type for u in units]
    run_records.create_run(
        uuid.UUID(run_id),
        schedule,
        when.to_pydatetime(),
        trigger=trigger,
        restaurant_ids=ids,
        prediction_types=types,
        rows_skipped=skipped,
        modules_skipped=modules_skipped,
        messages=messages,
    )
    if found.unknown_ids:
        error = f"unknown restaurant id(s): {found.unknown_ids}"
        run_records.fail_run(run_id, error)
        _announce_rejected(run_id, predictions, settings)
        raise RunInputError(error)
    run_records.plan_shards(run_id, shards)
    if restaurant_ids is None:
        retired = inactive_restaurant_ids(reader)
        if PredictionWriter(predictions).retire_restaurants(retired, types):
            run_records.append_run_messages(run_id, [f"restaurants deactivated in the RMS lose their predictions: {retired}"])
    log.info("run %s (%s, as of %s): %d restaurants in %d shards", run_id, schedule, when, len(ids), len(shards))
    return RunPlan(run_id, schedule, when, shards, types)


def _take_over_dead_holder(lock: RunLock, schedule: str, holder: str, run_id: str,
                           settings: Settings | None) -> bool:
    """Take the schedule's lock from a holder that died, closing its run; False if it may live.

    Dead means: an in-process holder (``worker run``) silent for ``tasks.stranded_after_s`` (it
    beats every few seconds while alive, ``worker.locks.Heartbeat``), or a run the records call
    stranded (``records.stale_runs``: no shard started for that long and none running). Without
    this the lock of a SIGKILLed run blocked its schedule for the lock's TTL (hours), and installs
    without beat had no sweep to free it. The hand-over is compare-and-swap, so of two starts
    racing for a dead holder's lock one wins and the other sees the winner.
    """
    settings = settings or get_settings()
    silence = lock.silent_for(holder)
    limit = settings.tasks.stranded_after_s
    if silence is not None and silence >= limit:
        predictions = _engines()[1]
        if holder in records.running_runs(predictions, schedule):
            _close_abandoned(holder, schedule, f"abandoned: its process stopped beating {int(silence)} s ago "
                                               "(killed in-process run)", settings)
        lock.stop_beating(holder)
    elif silence is None and holder in [str(r["id"]) for r in close_abandoned_runs(schedule, settings=settings,
                                                                                    lock=lock)]:
        pass  # stranded, closed just now and its lock freed (compare-and-delete): take the free lock below
    else:
        return False
    if lock.take_over(schedule, holder, run_id) or lock.acquire(schedule, run_id).acquired:
        log.warning("%s run %s took over the lock of run %s, whose holder was gone", schedule, run_id, holder)
        return True
    return False


def begin_locked(
    lock: RunLock,
    schedule: str,
    as_of: str | datetime | None = None,
    restaurant_ids: list[int] | None = None,
    *,
    trigger: str,
    run_id: str,
    settings: Settings | None = None,
    allow_future_as_of: bool = False,
) -> RunPlan | LockHeld:
    """Begin a run under its schedule's lock: the one start protocol of beat, Flower and the CLI.

    - another run of the schedule holds the lock: nothing is recorded, ``LockHeld`` is returned;
    - bad input: the trigger is recorded as a failed run (``reject_run``), the lock freed, and
      ``RunInputError`` raised;
    - any other error: the lock is freed (a retry re-takes it under the same run id) and the
      error raised.
    On success the caller holds the lock until the run is finished.
    """
    if schedule not in SCHEDULES:
        error = f"unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}"
        reject_run(run_id, schedule, as_of, trigger=trigger, error=error, settings=settings)
        raise RunInputError(error)
    taken = lock.acquire(schedule, run_id)
    if not taken.acquired and not _take_over_dead_holder(lock, schedule, str(taken.holder), run_id, settings):
        log.warning("%s run not started: run %s still holds the lock", schedule, taken.holder)
        return LockHeld(schedule, str(taken.holder))
    try:
        # The lock lives in Redis and goes with it; the run table does not. A run recorded as
        # running that is still alive holds the schedule even when the broker forgot its lock.
        close_abandoned_runs(schedule, settings=settings)
        alive = [r for r in records.running_runs(_engines()[1], schedule) if r != str(run_id)]
        if alive:
            lock.release(schedule, run_id)
            log.warning("%s run not started: run %s is still running (the broker had lost its lock)", schedule,
                        alive[0])
            return LockHeld(schedule, alive[0])
        return begin_run(schedule, as_of, restaurant_ids, trigger=trigger, run_id=run_id, settings=settings,
                         allow_future_as_of=allow_future_as_of)
    except RunInputError as exc:
        lock.release(schedule, run_id)
        reject_run(run_id, schedule, as_of, trigger=trigger, error=str(exc), settings=settings)
        raise
    except BaseException:
        lock.release(schedule, run_id)
        raise


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
    scheduled = units_for(run["schedule"])
    units = [u for u in scheduled if unit_key(u, scheduled) not in run["modules_skipped"]]
    work = _ShardWork()
    try:
        found = load_restaurants(reader, list(shard["restaurant_ids"]))
        tables = sorted({t for u in units for t in u.tables})
        work.skipped = count_malformed(reader, tables, list(found.restaurants["id"]), valid_until)
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


def finish_run(run_id: str, *, settings: Settings | None = None) -> dict:
    """Close the run from what was committed and return its record.

    Then score earlier runs' predictions, raise drift alerts and write the run report
    (``reporting.accuracy.after_run``, never raises): the record gains alerts, retrain, accuracy and
    report_path, which the completion webhook carries.

    Idempotent: a run already closed is returned as recorded, not counted again.
    """
    settings = settings or get_settings()
    replica, predictions = _engines()
    run_records = RunRecords(predictions)
    closed = run_records.closed_record(run_id)
    if closed is not None:
        # Finished before (a redelivered finish message): the same figures, nothing recounted, so
        # the completion event keeps its webhook-id and no receiver hears of it twice.
        log.info("run %s was already closed (%s); its record is returned unchanged", run_id, closed["status"])
        return closed
    record = run_records.finish_run(run_id)
    record.update(after_run(str(run_id), engine=predictions, reader=ReplicaReader(replica),
                            settings=settings.accuracy, model_store=settings.model_store.path,
                            run_records=run_records))
    publish_run_metrics(record, engine=predictions, textfile_dir=settings.metrics.textfile_dir,
                        pushgateway_url=settings.metrics.pushgateway_url)
    return record


def reject_run(
    run_id: str,
    schedule: str,
    as_of: str | datetime | None,
    *,
    trigger: str,
    error: str,
    settings: Settings | None = None,
) -> None:
    """Record a trigger that could not become a run (bad schedule or arguments) as a failed run.

    Admins look for runs in ``ml_run``; a rejected trigger belongs there with its reason. A run
    that ``begin_run`` already recorded (and failed) is left as it is.
    """
    settings = settings or get_settings()
    _, predictions = _engines()
    if records.get_run(predictions, run_id) is not None:
        return
    try:
        when = parse_as_of(as_of)
    except (TypeError, ValueError):
        when = parse_as_of(None)
    run_records = RunRecords(predictions)
    run_records.create_run(uuid.UUID(run_id), str(schedule)[:64], when.to_pydatetime(), trigger=trigger,
                           restaurant_ids=[], prediction_types=[])
    run_records.fail_run(run_id, error)
    _announce_rejected(run_id, predictions, settings)


def _announce_rejected(run_id: str, predictions: Engine, settings: Settings) -> None:
    """The RMS hears about every run that was recorded, a rejected one included (a ``run`` failure
    in the event's ``failed``). Recorded for the webhook sweep (beat, every few minutes), not sent
    here: the caller is about to raise the input error to whoever triggered the run."""
    record = RunRecords(predictions).closed_record(run_id)
    if record is not None:
        emit_run_completed(record, send="none", engine=predictions, settings=settings.webhooks)


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


__all__ = [
    "SCHEDULES", "RunInputError", "RunPlan", "LockHeld", "begin_run", "begin_locked", "run_shard", "finish_run", "execute_run",
    "reject_run", "unfinished_shards", "checked_as_of",
]
