"""The run loop end to end on a synthetic chain: rows, run records, bad input, failures, replays."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest
from sqlalchemy import text

from tests.conftest import CHAIN, DB_SUFFIX, drop_database, recreate_database, use_replica
from worker import catalog, db, run_start, runs
from core.units import PredictionUnit

AS_OF = "2026-10-31T04:15:00Z"


@pytest.fixture()
def demand_only(monkeypatch):
    """Loop-behaviour tests run only the restaurant demand units: the loop is generic, other models slow."""
    real_units_for = catalog.units_for

    def only_demand(schedule):
        return [u for u in real_units_for(schedule) if u.prediction_type in ("demand_daily", "demand_hourly")]

    monkeypatch.setattr(catalog, "units_for", only_demand)


def q(sql, **params):
    with db.predictions_engine().connect() as conn:
        return conn.execute(text(sql), params).all()


def test_daily_run_writes_demand_rows_for_every_valid_restaurant(seeded_replica, clean_predictions):
    record = runs.execute_run("daily", AS_OF)
    n = CHAIN["restaurants"]
    assert record["status"] == "succeeded", record
    assert record["rows_written"]["demand_daily"] == 28 * n
    assert record["rows_written"]["demand_hourly"] == 168 * n
    per_restaurant = q(
        "SELECT restaurant_id, prediction_type, count(*), min(target_start), bool_and(value >= 0), "
        "bool_and(lower <= value AND value <= upper) FROM m_l_predictions "
        "WHERE prediction_type IN ('demand_daily', 'demand_hourly') GROUP BY 1, 2"
    )
    assert len(per_restaurant) == 2 * n
    for rid, ptype, count, first, nonneg, ordered in per_restaurant:
        assert count == (168 if ptype == "demand_hourly" else 28)
        assert nonneg and ordered
        if ptype == "demand_hourly":
            assert first >= pd.Timestamp(AS_OF)
    revenue = q("SELECT count(*) FROM m_l_predictions WHERE prediction_type = 'demand_daily' AND (details->>'revenue')::float > 0")
    assert revenue[0][0] > 0


def test_malformed_rows_and_unknown_timezone_are_counted_and_skipped(seeded_replica, clean_predictions, demand_only):
    record = runs.execute_run("daily", AS_OF)
    truth = seeded_replica["ground_truth"]["malformed"]
    assert record["rows_skipped"]["restaurants_restaurant"] >= 1
    assert any("unknown timezone" in m for m in record["messages"])
    # "In the future" means after the wall clock: planted orders 1.5, 7 and 29 days after the chain's
    # fixed end date are future only while that is still ahead of today.
    detail = seeded_replica["ground_truth"]["malformed_detail"]["orders_order"]
    with db.replica_engine().connect() as conn:
        still_future = conn.execute(
            text("SELECT count(*) FROM orders_order WHERE id = ANY(:ids) AND created_at > now() + interval '1 hour'"),
            {"ids": detail["future_created_at"]},
        ).scalar()
    assert record["rows_skipped"]["orders_order"] == len(detail["negative_total"]) + still_future
    assert truth["orders_order"] == len(detail["negative_total"]) + len(detail["future_created_at"])
    assert record["rows_skipped"]["restaurants_restaurant"] == truth["restaurants_restaurant"]
    bad = [seeded_replica["ground_truth"]["unknown_timezone_restaurant_id"]]
    assert bad[0] is not None
    assert q("SELECT count(*) FROM m_l_predictions WHERE restaurant_id = ANY(:ids)", ids=bad)[0][0] == 0


def test_same_run_twice_writes_no_duplicates_and_next_run_replaces(seeded_replica, clean_predictions, demand_only):
    first = runs.execute_run("daily", AS_OF, run_id="00000000-0000-0000-0000-000000000001")
    again = runs.execute_run("daily", AS_OF, run_id="00000000-0000-0000-0000-000000000001")
    assert again["rows_written"] == first["rows_written"]
    total = sum(first["rows_written"].values())
    assert q("SELECT count(*) FROM m_l_predictions")[0][0] == total
    nxt = runs.execute_run("daily", "2026-10-31T05:15:00Z")
    assert q("SELECT count(*) FROM m_l_predictions")[0][0] == sum(nxt["rows_written"].values())
    assert q("SELECT count(DISTINCT run_id) FROM m_l_predictions")[0][0] == 1


def test_as_of_replays_history_strictly_before_it(seeded_replica, clean_predictions, demand_only):
    """A replay a month back predicts from then; the orders after it do not leak in."""
    as_of = pd.Timestamp("2026-09-30T04:15:00Z")
    record = runs.execute_run("daily", as_of.isoformat())
    assert record["status"] == "succeeded"
    first = q("SELECT min(target_start), max(target_start) FROM m_l_predictions WHERE prediction_type = 'demand_hourly'")[0]
    assert first[0] >= as_of and first[1] < as_of + pd.Timedelta(hours=170)
    daily = q("SELECT min(target_start) FROM m_l_predictions WHERE prediction_type = 'demand_daily'")[0][0]
    assert as_of - pd.Timedelta(days=1) < daily <= as_of + pd.Timedelta(days=1)


def test_unit_failure_keeps_previous_rows_and_rerun_completes(seeded_replica, clean_predictions, demand_only, monkeypatch):
    good = runs.execute_run("daily", AS_OF)
    real_units_for = catalog.units_for

    def failing_hourly(schedule):
        units = real_units_for(schedule)
        return [
            PredictionUnit(u.prediction_type, u.entity_type, u.schedules, u.requires, u.features,
                           _boom if u.prediction_type == "demand_hourly" else u.predict)
            for u in units
        ]

    monkeypatch.setattr(catalog, "units_for", failing_hourly)
    broken = runs.execute_run("daily", "2026-10-31T05:15:00Z")
    assert broken["status"] == "partial"
    assert "demand_hourly" in broken["error"]
    assert "demand_hourly" not in broken["rows_written"]
    assert broken["rows_written"]["demand_daily"] == 28 * CHAIN["restaurants"]
    hourly_runs = q("SELECT DISTINCT run_id::text FROM m_l_predictions WHERE prediction_type = 'demand_hourly'")
    assert hourly_runs == [(str(good["id"]),)]
    monkeypatch.setattr(catalog, "units_for", real_units_for)
    retried = runs.execute_run("daily", "2026-10-31T05:15:00Z", run_id=str(broken["id"]))
    assert retried["status"] == "succeeded"
    assert q("SELECT count(*) FROM m_l_predictions")[0][0] == sum(good["rows_written"].values())


def _boom(features, scope):
    raise RuntimeError("model exploded")


def test_bad_input_is_a_clear_error_recorded_and_writes_nothing(seeded_replica, clean_predictions, demand_only):
    with pytest.raises(run_start.RunInputError, match="unknown schedule"):
        runs.execute_run("hourly", AS_OF)
    with pytest.raises(run_start.RunInputError, match="unknown restaurant"):
        runs.execute_run("daily", AS_OF, restaurant_ids=[1, 987654])
    failed = q("SELECT status, error FROM ml_run")
    assert failed == [("failed", "unknown restaurant id(s): [987654]")]
    assert q("SELECT count(*) FROM m_l_predictions")[0][0] == 0


def test_missing_module_skips_what_needs_it_and_writes_the_rest(clean_predictions):
    from synthetic import ChainConfig, seed_database

    name = "rmsml_test_noinv" + DB_SUFFIX
    url = recreate_database(name)
    seed_database(url, ChainConfig(restaurants=2, days=60, seed=5, end=CHAIN["end"], modules=("customers",)))
    previous_url = use_replica(url)
    try:
        record = runs.execute_run("daily", AS_OF)
        assert record["status"] == "succeeded", record
        for ptype in ("stock_daily", "stockout", "reorder"):
            assert "RMS module 'inventory' not installed" in record["modules_skipped"][ptype]
        assert "RMS module 'kitchen' not installed" in record["modules_skipped"]["prep_time"]
        assert record["rows_written"]["demand_daily"] == 28 * 2
        assert record["rows_written"]["demand_hourly"] == 168 * 2
        assert not set(record["rows_written"]) & {"stock_daily", "stockout", "reorder", "prep_time"}
    finally:
        use_replica(previous_url)
        drop_database(name)


def test_a_weekly_run_without_customers_says_churn_and_ltv_were_skipped_and_why(clean_predictions):
    """The customers table is there but empty and no order carries a customer (a till that never
    asks): the run reported succeeded with rows_written {} and no word. It must name the reason."""
    import psycopg2

    from synthetic import ChainConfig, seed_database

    name = "rmsml_test_nocust" + DB_SUFFIX
    url = recreate_database(name)
    seed_database(url, ChainConfig(restaurants=2, days=60, seed=5, end=CHAIN["end"], modules=("customers",)))
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("UPDATE orders_order SET customer_id = NULL")
        cur.execute("DELETE FROM customers_customerprofile")
        cur.execute("SELECT count(*) FROM orders_order")
        orders = cur.fetchone()[0]
    previous_url = use_replica(url)
    try:
        record = runs.execute_run("weekly", AS_OF)
        for ptype in ("churn", "ltv"):
            assert record["modules_skipped"][ptype] == f"no customer profiles; 0 of {orders:,} orders carry a customer"
        assert not set(record["rows_written"]) & {"churn", "ltv"}
    finally:
        use_replica(previous_url)
        drop_database(name)


def test_abandoned_run_is_closed_and_announced_before_the_next_one(seeded_replica, clean_predictions, demand_only):
    """Workers all died mid-run: the next run of the schedule closes it, from what it committed."""
    plan = run_start.begin_run("daily", AS_OF)
    runs.run_shard(plan.run_id, 0)  # one shard done, then everyone died
    with db.predictions_engine().begin() as conn:
        conn.execute(text("INSERT INTO ml_run_shard (run_id, shard_no, restaurant_ids, status) "
                          "VALUES (:id, 99, '[999]', 'running')"), {"id": plan.run_id})
        conn.execute(text("UPDATE ml_run SET heartbeat_at = now() - interval '3 hours' WHERE id = :id"),
                     {"id": plan.run_id})
    fresh = run_start.begin_run("daily", "2026-10-31T05:15:00Z")
    (status, error), = q("SELECT status, error FROM ml_run WHERE id = :id", id=plan.run_id)
    assert status == "partial" and "abandoned" in error
    assert q("SELECT status FROM ml_run WHERE id = :id", id=fresh.run_id) == [("running",)]
    # What it committed stays readable.
    assert q("SELECT count(*) FROM m_l_predictions WHERE run_id = :id", id=plan.run_id)[0][0] > 0
    # A run that is merely slow (recent heartbeat) is left alone.
    assert run_start.close_abandoned_runs("daily") == []


def _db_error(sqlstate: str, message: str, cls=None):
    """A SQLAlchemy error as a dropped connection or a bad statement raises it (class, pgcode, SQL)."""
    import psycopg2
    import sqlalchemy.exc

    class _Orig(psycopg2.OperationalError):
        pgcode = sqlstate

    wrapper = cls or sqlalchemy.exc.OperationalError
    return wrapper("SELECT secret_column FROM orders_order WHERE id = %(id)s", {"id": 424242}, _Orig(message))


def test_a_dropped_connection_in_a_unit_is_retried_not_recorded_failed(seeded_replica, clean_predictions, demand_only,
                                                                       monkeypatch):
    """The fault drill terminated one replica connection mid-query: the unit swallowed it and the
    shard failed after one attempt. A transient error is retried in place; one that persists leaves
    the shard for the task's retry; the record never holds the statement or its parameters."""
    from worker import failures

    monkeypatch.setattr(failures, "UNIT_RETRY_PAUSES_S", (0.0, 0.0))
    real_units_for = catalog.units_for
    calls = {"n": 0}

    def flaky(features, scope):
        calls["n"] += 1
        if calls["n"] == 1:
            raise _db_error("57P01", "terminating connection due to administrator command")
        return real_hourly(features, scope)

    hourly = next(u for u in real_units_for("daily") if u.prediction_type == "demand_hourly")
    real_hourly = hourly.predict

    def with_unit(predict):
        def units_for(schedule):
            return [PredictionUnit(u.prediction_type, u.entity_type, u.schedules, u.requires, u.features,
                                   predict if u.prediction_type == "demand_hourly" else u.predict)
                    for u in real_units_for(schedule)]
        return units_for

    monkeypatch.setattr(catalog, "units_for", with_unit(flaky))
    record = runs.execute_run("daily", AS_OF)
    assert record["status"] == "succeeded" and calls["n"] == 2
    assert record["rows_written"]["demand_hourly"] == 168 * CHAIN["restaurants"]

    def always_down(features, scope):
        raise _db_error("57P01", "terminating connection due to administrator command")

    monkeypatch.setattr(catalog, "units_for", with_unit(always_down))
    plan = run_start.begin_run("daily", "2026-10-31T06:15:00Z")
    import sqlalchemy.exc

    with pytest.raises(sqlalchemy.exc.OperationalError):
        runs.run_shard(plan.run_id, 0)  # the task's path: left to the shard's retry
    assert q("SELECT status FROM ml_run_shard WHERE run_id = :id AND shard_no = 0", id=plan.run_id) == [("running",)]

    def bad_sql(features, scope):
        raise _db_error("42703", 'column "secret_column" does not exist\nLINE 1: SELECT secret_column ...',
                        cls=sqlalchemy.exc.ProgrammingError)

    monkeypatch.setattr(catalog, "units_for", with_unit(bad_sql))
    failed = runs.execute_run("daily", "2026-10-31T07:15:00Z")
    assert failed["status"] == "partial"
    assert "demand_hourly: _Orig: column \"secret_column\" does not exist" in failed["error"]
    assert "SELECT" not in failed["error"] and "424242" not in failed["error"]


def test_transient_errors_are_told_from_ones_that_will_fail_again():
    import sqlalchemy.exc

    from worker import failures

    assert failures.is_transient(_db_error("40P01", "deadlock detected"))
    assert failures.is_transient(_db_error("40001", "could not serialize access"))
    assert failures.is_transient(_db_error("57P01", "terminating connection"))
    assert not failures.is_transient(_db_error("57014", "canceling statement due to statement timeout"))
    assert not failures.is_transient(_db_error("42703", "no such column", cls=sqlalchemy.exc.ProgrammingError))
    assert not failures.is_transient(RuntimeError("model exploded"))
    import kombu.exceptions
    import redis.exceptions

    assert failures.is_transient(redis.exceptions.ConnectionError("Connection refused"))
    assert failures.is_transient(kombu.exceptions.OperationalError("broker gone"))
    assert not failures.is_transient(redis.exceptions.ResponseError("WRONGTYPE"))


def test_a_task_retries_what_the_shard_loop_calls_transient_and_nothing_else():
    """One rule for both (worker.failures.is_transient): a deadlock is retried with backoff, a
    statement timeout fails the task at once, as it fails the unit in the shard loop."""
    from types import SimpleNamespace

    from tasks.base import RETRY_BACKOFF_MAX_S, retry_transient

    class Retried(Exception):
        pass

    def retry(exc, countdown):
        assert 0 <= countdown <= RETRY_BACKOFF_MAX_S
        return Retried(exc)

    fake = SimpleNamespace(request=SimpleNamespace(retries=3), retry=retry)
    for error, retried in ((_db_error("40P01", "deadlock detected"), True),
                           (_db_error("57014", "canceling statement due to statement timeout"), False),
                           (ValueError("bad input"), False)):
        def body(self, error=error):
            raise error

        with pytest.raises(Retried if retried else type(error)):
            retry_transient(body)(fake)


def test_a_run_stranded_by_a_broker_loss_holds_its_schedule_then_closes_within_minutes(
        seeded_replica, clean_predictions, demand_only):
    """Redis restarted without persistence: the lock and the queued shards are gone, the run table
    is not. The next trigger must not start a second run beside a live one, and a run nothing
    works on any more is closed as partial from what it committed after ``stranded_after_s``
    (minutes), not after the lock's TTL (hours)."""
    from tests.conftest import cleared_run_lock
    from worker.settings import get_settings

    settings = get_settings().model_copy(deep=True)
    settings.schedules.shard_size = 2
    with cleared_run_lock("daily") as lock:
        plan = run_start.begin_locked(lock, "daily", AS_OF, trigger="test", run_id=str(uuid.uuid4()), settings=settings)
        assert len(plan.shards) == 2
        runs.run_shard(plan.run_id, 0, settings=settings)  # shard 1 was queued in the Redis that was lost
        lock.client.delete(lock.key("daily"))

        held = run_start.begin_locked(lock, "daily", "2026-10-31T05:15:00Z", trigger="test", run_id=str(uuid.uuid4()),
                                 settings=settings)
        assert held == run_start.LockHeld("daily", plan.run_id)
        assert lock.holder("daily") is None  # nothing was started, and the lock is not kept

        with db.predictions_engine().begin() as conn:
            conn.execute(text("UPDATE ml_run SET heartbeat_at = now() - make_interval(secs => :s) WHERE id = :id"),
                         {"id": plan.run_id, "s": settings.tasks.stranded_after_s + 60})
        fresh = run_start.begin_locked(lock, "daily", "2026-10-31T05:15:00Z", trigger="test", run_id=str(uuid.uuid4()),
                                  settings=settings)
        assert isinstance(fresh, run_start.RunPlan)
        (status, written), = q("SELECT status, rows_written FROM ml_run WHERE id = :id", id=plan.run_id)
        assert status == "partial" and written.get("demand_daily", 0) > 0
        assert get_settings().tasks.stranded_after_s <= 15 * 60 < get_settings().tasks.run_lock_ttl_s


def test_the_demand_units_share_one_daily_forecast_per_shard_declared_not_cached(seeded_replica, clean_predictions,
                                                                                 demand_only, monkeypatch):
    """The hourly forecast is scaled to the daily one: demand_daily's chain runs once per shard,
    through the inputs the units declare they share (shares="demand"), and nothing of it is left
    in the process after the shard."""
    import prediction_types.demand as demand

    calls = []
    real = demand.forecast

    def counted(features, spec, scope, **kw):
        calls.append((spec.prediction_type, tuple(scope.restaurant_ids)))
        return real(features, spec, scope, **kw)

    monkeypatch.setattr(demand, "forecast", counted)
    record = runs.execute_run("daily", AS_OF)
    assert record["status"] == "succeeded"
    daily = [c for c in calls if c[0] == "demand_daily"]
    assert len(daily) == len(set(daily)) == len({c[1] for c in calls})  # once per shard
    assert {u.shares for u in catalog.units_for("daily")} == {"demand"}
    module_state = {k: v for k, v in vars(demand).items() if isinstance(v, dict) and not k.startswith("__")}
    assert not any(module_state.values()), module_state  # no process-global cache holds a shard


def test_the_webhook_sweep_closes_a_run_whose_workers_all_died_and_frees_its_lock(
        seeded_replica, clean_predictions, demand_only):
    """Every worker of a run died and Redis did not: its lock would hold the schedule until the
    lock's TTL (hours) and the run would stay ``running`` until then. Beat's sweep
    (``rmsml.webhooks.deliver_due``) closes the run once it is stranded, as partial from what it
    committed, and frees its lock, so the next trigger runs."""
    from tasks.webhooks import deliver_due
    from tests.conftest import cleared_run_lock
    from worker.settings import get_settings

    settings = get_settings().model_copy(deep=True)
    settings.schedules.shard_size = 2
    with cleared_run_lock("daily") as lock:
        plan = run_start.begin_locked(lock, "daily", AS_OF, trigger="test", run_id=str(uuid.uuid4()), settings=settings)
        runs.run_shard(plan.run_id, 0, settings=settings)  # then the workers died: shard 1 never ran
        swept = deliver_due.apply(kwargs={"overdue_s": 0}).get()
        assert "closed_runs" not in swept and lock.holder("daily") == plan.run_id  # not stranded yet

        with db.predictions_engine().begin() as conn:
            conn.execute(text("UPDATE ml_run SET heartbeat_at = now() - make_interval(secs => :s) WHERE id = :id"),
                         {"id": plan.run_id, "s": settings.tasks.stranded_after_s + 60})
        swept = deliver_due.apply(kwargs={"overdue_s": 0}).get()
        assert swept["closed_runs"] == [plan.run_id]
        (status, written), = q("SELECT status, rows_written FROM ml_run WHERE id = :id", id=plan.run_id)
        assert status == "partial" and written.get("demand_daily", 0) > 0
        assert lock.holder("daily") is None
        fresh = run_start.begin_locked(lock, "daily", "2026-10-31T05:15:00Z", trigger="test", run_id=str(uuid.uuid4()),
                                  settings=settings)
        assert isinstance(fresh, run_start.RunPlan)
