"""How a run starts: the one start protocol of beat, Flower and the CLI.

``begin_locked`` takes the schedule's run lock (taking it over from a holder that died,
``_take_over_dead_holder``), closes runs of the schedule whose workers all died
(``close_abandoned_runs``), and records the run and its shards (``begin_run``); an as-of is
checked (``checked_as_of``) and a trigger that cannot become a run is recorded failed
(``reject_run``). ``worker.runs`` then runs the shards and finishes the run.

Which units a schedule runs is read through ``worker.catalog.units_for`` (the module's attribute,
so that tests narrowing it narrow the start and the shards alike).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd
import redis.exceptions
from sqlalchemy import Engine

from core.replica import ReplicaReader
from core.units import PredictionUnit
from features.restaurants import first_order_at, inactive_restaurant_ids, load_restaurants
from webhooks.deliveries import emit_run_completed
from worker import catalog, db, records
from worker.catalog import SCHEDULES
from worker.locks import RunLock
from worker.records import RunRecords
from worker.run_finish import finish_run
from worker.settings import Settings, get_settings
from worker.writer import PredictionWriter

log = logging.getLogger("worker.runs")  # the run loop's logger: a run's start, shards and finish log under one name

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
        units = catalog.units_for(schedule)
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


__all__ = [
    "RunInputError", "RunPlan", "LockHeld", "parse_as_of", "checked_as_of", "unit_key", "close_abandoned_runs",
    "replica_role_risks", "reject_run", "begin_run", "begin_locked",
]
