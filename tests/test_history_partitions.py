"""ml_prediction_history is partitioned by month of as_of (issue 28, migration 0004): the writer
creates a run's month (and the months ahead) when missing, retention drops whole months, never
deletes rows, and the readers of the history read what they read before."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pandas as pd
from sqlalchemy import text

from reporting.records import demand_daily_history, history_for_window
from worker.records import RunRecords
from worker.history_partitions import HISTORY_MONTHS_AHEAD, history_partition_name, history_partitions
from worker.writer import PredictionWriter

# One run on the 3rd and one on the 20th of each month, June to November 2026.
AS_OFS = [datetime(2026, m, d, 4, 0, tzinfo=timezone.utc) for m in range(6, 12) for d in (3, 20)]


def daily_rows(restaurant_ids, as_of, days=7, value=10.0):
    return pd.DataFrame([
        {"entity_id": rid, "restaurant_id": rid, "target_start": as_of + timedelta(days=k), "granularity": "day",
         "value": value, "lower": value - 1, "upper": value + 1, "details": {}, "model_name": "test",
         "model_version": "1", "method": "model"}
        for rid in restaurant_ids for k in range(days)
    ])


def partitions(engine):
    with engine.connect() as conn:
        return {name for name, _, _ in history_partitions(conn)}


def history_rows(engine, where="TRUE", **params):
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM ml_prediction_history WHERE {where}"), params).scalar()


def test_history_across_months_is_pruned_by_dropping_whole_partitions(clean_predictions, predictions_engine):
    run_records = RunRecords(predictions_engine)
    writer = PredictionWriter(predictions_engine)
    runs = {}
    for as_of in AS_OFS:
        run_id = uuid.uuid4()
        runs[as_of] = run_id
        run_records.create_run(run_id, "daily", as_of, trigger="test", restaurant_ids=[1, 2],
                               prediction_types=["demand_daily"])
        writer.replace_predictions(run_id, "demand_daily", "restaurant", daily_rows([1, 2], as_of, value=as_of.month),
                                   generated_at=as_of, expires_at=as_of + timedelta(days=2), keep_history=True)
    months = [history_partition_name(datetime(2026, m, 1, tzinfo=timezone.utc)) for m in range(6, 12)]
    ahead = [history_partition_name(datetime(2027, m, 1, tzinfo=timezone.utc)) for m in range(1, HISTORY_MONTHS_AHEAD)]
    assert set(months) | {"ml_prediction_history_p202612"} | set(ahead) <= partitions(predictions_engine)
    assert history_rows(predictions_engine) == len(AS_OFS) * 14
    with predictions_engine.connect() as conn:
        # Each month's rows live in that month's partition.
        assert conn.execute(text("SELECT count(*) FROM ml_prediction_history_p202607")).scalar() == 28
        assert conn.execute(text(
            "SELECT relkind FROM pg_class WHERE relname = 'ml_prediction_history'")).scalar() == "p"

    # Retention to 2026-08-10: June and July are wholly older and go; August straddles the cutoff
    # and stays whole, its run of the 3rd (older than the cutoff) included.
    cutoff = datetime(2026, 8, 10, tzinfo=timezone.utc)
    assert writer.prune_history(cutoff) == 2
    left = partitions(predictions_engine)
    assert not {months[0], months[1]} & left and set(months[2:]) <= left
    with predictions_engine.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('ml_prediction_history_p202606')")).scalar() is None
    assert history_rows(predictions_engine) == (len(AS_OFS) - 4) * 14
    assert history_rows(predictions_engine, "as_of < :c", c=cutoff) == 14  # the 3rd of August, kept
    assert history_rows(predictions_engine, "as_of < '2026-08-01'") == 0
    assert writer.prune_history(cutoff) == 0  # nothing more until August has wholly expired

    # The readers of the history read the same rows as before.
    rid_frame = demand_daily_history(predictions_engine, 1, datetime(2026, 6, 1, tzinfo=timezone.utc),
                                     datetime(2026, 12, 1, tzinfo=timezone.utc))
    assert len(rid_frame) == (len(AS_OFS) - 4) * 7
    assert set(rid_frame["run_id"]) == {str(runs[a]) for a in AS_OFS[4:]}
    as_of = pd.Timestamp("2026-10-25T04:00Z")
    window = history_for_window(predictions_engine, [1, 2], pd.Timestamp("2026-10-01T00:00Z"), as_of)
    expected_runs = {str(runs[a]) for a in AS_OFS if a < as_of and a + timedelta(days=6) >= datetime(
        2026, 9, 29, tzinfo=timezone.utc)}
    assert set(window["run_id"]) == expected_runs
    assert (window["target_start"] >= pd.Timestamp("2026-09-29T00:00Z")).all()
    assert set(window["value"]) <= {9.0, 10.0}

    # A replayed run of a month already dropped gets its partition back.
    old = datetime(2026, 6, 10, 4, tzinfo=timezone.utc)
    run_id = uuid.uuid4()
    run_records.create_run(run_id, "daily", old, trigger="test", restaurant_ids=[3], prediction_types=["demand_daily"])
    writer.replace_predictions(run_id, "demand_daily", "restaurant", daily_rows([3], old),
                               generated_at=old, expires_at=old + timedelta(days=2), keep_history=True)
    assert months[0] in partitions(predictions_engine)
    assert history_rows(predictions_engine, "run_id = :r", r=str(run_id)) == 7


def test_prune_finishes_a_detach_left_pending(clean_predictions, predictions_engine):
    """An interrupted DETACH ... CONCURRENTLY leaves the partition detach-pending; the next prune
    finishes it (FINALIZE) and drops it."""
    writer = PredictionWriter(predictions_engine)
    writer.ensure_history_partitions(datetime(2025, 1, 15, tzinfo=timezone.utc), months_ahead=0)
    assert "ml_prediction_history_p202501" in partitions(predictions_engine)
    with predictions_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # What a detach cancelled after its first phase leaves behind.
        conn.exec_driver_sql(
            "UPDATE pg_inherits SET inhdetachpending = true WHERE inhrelid = 'ml_prediction_history_p202501'::regclass")
    assert writer.prune_history(datetime(2025, 3, 1, tzinfo=timezone.utc)) >= 1
    assert "ml_prediction_history_p202501" not in partitions(predictions_engine)


def test_shards_of_a_new_month_create_its_partition_once(clean_predictions, predictions_engine):
    """Four shards of a run in a month without a partition write at once: each writes its rows,
    the partitions are created once."""
    import threading

    as_of = datetime(2024, 3, 5, 4, tzinfo=timezone.utc)  # far from every other test's months
    run_id = uuid.uuid4()
    RunRecords(predictions_engine).create_run(run_id, "daily", as_of, trigger="test", restaurant_ids=[1, 2, 3, 4],
                                              prediction_types=["demand_daily"])
    errors = []

    def shard(rid):
        try:
            PredictionWriter(predictions_engine).replace_predictions(
                run_id, "demand_daily", "restaurant", daily_rows([rid], as_of), generated_at=as_of,
                expires_at=as_of + timedelta(days=2), keep_history=True)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=shard, args=(rid,)) for rid in (1, 2, 3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert {"ml_prediction_history_p202403", "ml_prediction_history_p202404",
            "ml_prediction_history_p202405"} <= partitions(predictions_engine)
    assert history_rows(predictions_engine, "run_id = :r", r=str(run_id)) == 28
    PredictionWriter(predictions_engine).prune_history(datetime(2024, 7, 1, tzinfo=timezone.utc))
    assert not {"ml_prediction_history_p202403", "ml_prediction_history_p202405"} & partitions(predictions_engine)
