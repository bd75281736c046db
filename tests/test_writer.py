"""The one writer: atomic replacement per entity and type, idempotent re-runs, nothing half-written."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from sqlalchemy import text

from worker.records import RunRecords
from worker.writer import InvalidPredictionRows, PredictionWriter

NOW = datetime(2026, 11, 1, 4, 0, tzinfo=timezone.utc)


def hourly_rows(restaurant_ids, hours=168, value=10.0, start=NOW):
    frames = []
    for rid in restaurant_ids:
        frames.append(
            pd.DataFrame(
                {
                    "entity_id": rid,
                    "restaurant_id": rid,
                    "target_start": pd.date_range(start, periods=hours, freq="h"),
                    "granularity": "hour",
                    "value": value,
                    "lower": value - 1,
                    "upper": value + 1,
                    "details": [{"interval_level": 0.8}] * hours,
                    "model_name": "test",
                    "model_version": "1",
                    "method": "model",
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def write(writer, run_id, rows, **kw):
    return writer.replace_predictions(
        run_id, "demand_hourly", "restaurant", rows, generated_at=NOW, expires_at=NOW + timedelta(hours=36), **kw
    )


def count(engine, where="true", **params):
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM m_l_predictions WHERE {where}"), params).scalar()


def test_rerun_of_same_run_writes_no_duplicates(clean_predictions, predictions_engine):
    writer = PredictionWriter(predictions_engine)
    run_id = uuid.uuid4()
    assert write(writer, run_id, hourly_rows([1, 2])) == 336
    assert write(writer, run_id, hourly_rows([1, 2])) == 336
    assert count(predictions_engine) == 336


def test_new_run_replaces_entity_rows_in_place_and_drops_stale_targets(clean_predictions, predictions_engine):
    writer = PredictionWriter(predictions_engine)
    first, second = uuid.uuid4(), uuid.uuid4()
    write(writer, first, hourly_rows([1, 2], value=10))
    # The next day's run covers a horizon shifted by 24 h for restaurant 1 only.
    write(writer, second, hourly_rows([1], value=20, start=NOW + timedelta(hours=24)))
    assert count(predictions_engine, "entity_id = 1") == 168
    assert count(predictions_engine, "entity_id = 1 AND run_id = :r", r=str(second)) == 168
    assert count(predictions_engine, "entity_id = 1 AND value <> 20") == 0
    # Restaurant 2 was not in the second run: its rows stay readable.
    assert count(predictions_engine, "entity_id = 2 AND run_id = :r", r=str(first)) == 168


def test_scope_entity_without_rows_loses_its_old_rows(clean_predictions, predictions_engine):
    writer = PredictionWriter(predictions_engine)
    write(writer, uuid.uuid4(), hourly_rows([1, 2]))
    write(writer, uuid.uuid4(), hourly_rows([1]), scope_entity_ids=[1, 2])
    assert count(predictions_engine, "entity_id = 2") == 0
    assert count(predictions_engine, "entity_id = 1") == 168


def test_invalid_rows_write_nothing_and_keep_previous(clean_predictions, predictions_engine):
    writer = PredictionWriter(predictions_engine)
    good_run = uuid.uuid4()
    write(writer, good_run, hourly_rows([1]))
    bad = hourly_rows([1], value=5)
    bad.loc[10, "value"] = float("nan")
    with pytest.raises(InvalidPredictionRows, match="finite"):
        write(writer, uuid.uuid4(), bad)
    bad = hourly_rows([1])
    bad.loc[3, "method"] = "guess"
    with pytest.raises(InvalidPredictionRows, match="method"):
        write(writer, uuid.uuid4(), bad)
    assert count(predictions_engine, "run_id = :r", r=str(good_run)) == 168


def test_failure_inside_the_transaction_leaves_previous_rows(clean_predictions, predictions_engine):
    """A database error mid-write (here: a value the table rejects) rolls the whole entity back."""
    writer = PredictionWriter(predictions_engine)
    good_run = uuid.uuid4()
    write(writer, good_run, hourly_rows([1, 2]))
    bad = hourly_rows([1, 2], value=7)
    bad.loc[200, "granularity"] = "fortnight"  # violates the granularity CHECK at INSERT time
    with pytest.raises(Exception, match="granularity"):
        write(writer, uuid.uuid4(), bad)
    assert count(predictions_engine, "run_id = :r", r=str(good_run)) == 336
    assert count(predictions_engine, "value = 7") == 0


def test_reader_never_sees_a_half_written_entity(clean_predictions, predictions_engine):
    """While large replacements commit, every read sees each entity's rows from a single run."""
    writer = PredictionWriter(predictions_engine)
    write(writer, uuid.uuid4(), hourly_rows(range(1, 21)))
    seen_mixed = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            with predictions_engine.connect() as conn:
                mixed = conn.execute(
                    text(
                        "SELECT entity_id FROM m_l_predictions GROUP BY entity_id "
                        "HAVING count(DISTINCT run_id) > 1 OR count(*) <> 168"
                    )
                ).all()
            seen_mixed.extend(mixed)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(6):
            write(writer, uuid.uuid4(), hourly_rows(range(1, 21), value=float(i)))
    finally:
        stop.set()
        thread.join()
    assert seen_mixed == []
    assert count(predictions_engine) == 20 * 168


def test_run_record_counts_come_from_committed_rows(clean_predictions, predictions_engine):
    writer = PredictionWriter(predictions_engine)
    run_id = uuid.uuid4()
    run_records = RunRecords(predictions_engine)
    run_records.create_run(run_id, "daily", NOW, trigger="test", restaurant_ids=[1, 2],
                      prediction_types=["demand_hourly"], rows_skipped={"restaurants_restaurant": 1})
    run_records.plan_shards(run_id, [[1], [2]])
    for shard_no, rid in enumerate([1, 2]):
        run_records.start_shard(run_id, shard_no, [rid])
        write(writer, run_id, hourly_rows([rid]))
        run_records.finish_shard(run_id, shard_no, status="succeeded", rows_written={"demand_hourly": 168},
                            rows_skipped={"orders_order": 2}, messages=[])
    record = run_records.finish_run(run_id)
    assert record["status"] == "succeeded"
    assert record["rows_written"] == {"demand_hourly": 336}
    assert record["rows_skipped"] == {"restaurants_restaurant": 1, "orders_order": 4}
    assert record["finished_at"] is not None


def test_finishing_a_run_twice_records_the_same_figures(clean_predictions, predictions_engine):
    """A redelivered finish message must not merge the shards' malformed-row counts again (the
    fault drill saw orders_order 8 -> 16), and a re-run under the same id starts from its new
    begin figures."""
    from worker.run_finish import finish_run

    run_records = RunRecords(predictions_engine)
    run_id = uuid.uuid4()
    run_records.create_run(run_id, "daily", NOW, trigger="test", restaurant_ids=[1],
                           prediction_types=["demand_hourly"], rows_skipped={"restaurants_restaurant": 1})
    run_records.plan_shards(run_id, [[1]])
    run_records.start_shard(run_id, 0, [1])
    write(PredictionWriter(predictions_engine), run_id, hourly_rows([1]))
    run_records.finish_shard(run_id, 0, status="succeeded", rows_written={"demand_hourly": 168},
                             rows_skipped={"orders_order": 8}, messages=[])
    first = finish_run(str(run_id))
    again = finish_run(str(run_id))
    assert first["rows_skipped"] == again["rows_skipped"] == {"restaurants_restaurant": 1, "orders_order": 8}
    assert again["finished_at"] == first["finished_at"] and again["status"] == first["status"] == "succeeded"

    run_records.create_run(run_id, "daily", NOW, trigger="test", restaurant_ids=[1],
                           prediction_types=["demand_hourly"], rows_skipped={})
    rerun = run_records.finish_run(run_id)
    assert rerun["rows_skipped"] == {"orders_order": 8}


def test_an_older_as_of_never_replaces_a_newer_runs_rows(clean_predictions, predictions_engine):
    """Re-running an old run (as of an earlier instant) replaced every row of a newer run in the
    fault drill. Entities holding a newer run's rows keep them; the others are written."""
    run_records = RunRecords(predictions_engine)
    newer, older = uuid.uuid4(), uuid.uuid4()
    for rid, as_of in ((newer, NOW), (older, NOW - timedelta(days=3))):
        run_records.create_run(rid, "daily", as_of, trigger="test", restaurant_ids=[1, 2, 3],
                               prediction_types=["demand_hourly"])
    writer = PredictionWriter(predictions_engine)
    write(writer, newer, hourly_rows([1, 2], value=20))
    assert write(writer, older, hourly_rows([1, 2, 3], value=5), scope_entity_ids=[1, 2, 3]) == 168
    assert writer.kept_newer == {"demand_hourly": 2}
    with predictions_engine.connect() as conn:
        by_entity = dict(conn.execute(text(
            "SELECT entity_id, min(run_id::text) FROM m_l_predictions GROUP BY entity_id")).all())
    assert by_entity == {1: str(newer), 2: str(newer), 3: str(older)}
    # the newer run, re-run, still replaces what the older one wrote
    write(writer, newer, hourly_rows([3], value=21))
    with predictions_engine.connect() as conn:
        assert conn.execute(text("SELECT DISTINCT run_id::text FROM m_l_predictions WHERE entity_id = 3")).all() == [
            (str(newer),)]


def test_history_holds_each_runs_rows_once_whichever_way_they_went_in(clean_predictions, predictions_engine):
    """Rows go straight in by COPY, or, when the run's own rows are there already (a re-run),
    staged and upserted: either way the history of a scored type holds exactly what each run
    wrote last, once, and another run's rows of the same entity never."""
    run_records = RunRecords(predictions_engine)
    first, second = uuid.uuid4(), uuid.uuid4()
    for rid, as_of in ((first, NOW - timedelta(days=1)), (second, NOW)):
        run_records.create_run(rid, "daily", as_of, trigger="test", restaurant_ids=[1, 2],
                               prediction_types=["demand_hourly"])
    writer = PredictionWriter(predictions_engine)

    def history():
        with predictions_engine.connect() as conn:
            return conn.execute(text(
                "SELECT run_id::text, entity_id, count(*), min(value), max(value) FROM ml_prediction_history "
                "GROUP BY 1, 2 ORDER BY 1, 2")).all()

    write(writer, first, hourly_rows([1], value=5), keep_history=True)  # straight in
    write(writer, first, hourly_rows([1], value=6), keep_history=True)  # a re-run: upserted
    write(writer, first, hourly_rows([2], value=7), keep_history=True)  # the run's next shard
    write(writer, second, hourly_rows([1], value=8), keep_history=True)  # a newer run replaces entity 1
    write(writer, second, hourly_rows([1, 2], value=9), keep_history=False)  # an unscored write adds none
    assert sorted(history()) == sorted([(str(first), 1, 168, 6.0, 6.0), (str(first), 2, 168, 7.0, 7.0),
                                        (str(second), 1, 168, 8.0, 8.0)])
    assert count(predictions_engine) == 336 and count(predictions_engine, "value = 9") == 336


def test_history_append_reads_only_the_rows_of_its_write(clean_predictions, predictions_engine):
    """A scored write appends its rows to the history from m_l_predictions by the contract's key,
    one look-up per entity: it reads this write's rows, not every row the run has written so far
    (its earlier shards), which the statistics do not know of right after the COPY. Reading them
    all and checking each against the id list made a weekly's churn writes grow with the shards
    before them (the 4th shard of 20 restaurants: 52 s)."""
    from sqlalchemy import event

    run_id = uuid.uuid4()
    RunRecords(predictions_engine).create_run(run_id, "daily", NOW, trigger="test", restaurant_ids=[1],
                                              prediction_types=["demand_hourly"])
    writer = PredictionWriter(predictions_engine)
    write(writer, run_id, hourly_rows(range(1, 31)), keep_history=True)  # the run's earlier shards
    appends = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO ml_prediction_history"):
            appends.append((statement, parameters))

    event.listen(predictions_engine, "before_cursor_execute", seen)
    try:
        write(writer, run_id, hourly_rows([31, 32]), keep_history=True)  # this shard: 336 rows
    finally:
        event.remove(predictions_engine, "before_cursor_execute", seen)
    assert len(appends) == 1
    statement, parameters = appends[0]
    select = statement[statement.index("SELECT r.as_of"):]
    with predictions_engine.connect() as conn:
        plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + select, parameters).scalar()[0]["Plan"]

    def read_from_predictions(node) -> int:
        own = (node["Actual Rows"] * node["Actual Loops"] + node.get("Rows Removed by Filter", 0)
               if node.get("Relation Name") == "m_l_predictions" else 0)
        return own + sum(read_from_predictions(child) for child in node.get("Plans", []))

    assert plan["Actual Rows"] == 336
    assert read_from_predictions(plan) == 336
    with predictions_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ml_prediction_history")).scalar() == 32 * 168


@pytest.mark.pure
def test_encode_details_is_dumps_text_for_text():
    """The writer encodes details column by column (encode_details); the text must be exactly
    core.jsonb.dumps per row: key order, nesting, numpy scalars, non-text keys, timestamps."""
    import numpy as np

    from core.jsonb import dumps
    from worker.writer import encode_details

    ts = pd.Timestamp("2026-11-01T04:00:00Z")
    details = [
        {"interval_level": 0.8, "n": 3, "ok": True, "note": None},
        {"interval_level": np.float64(0.1), "n": np.int64(7), "ok": False, "note": "a,b \"q\" é"},
        {"n": 1, "interval_level": 0.8},  # same keys, other order: its own group
        {"nested": {"a": [1, 2.5, {"b": None}], "c": "x"}, "list": [np.float32(0.5), np.int32(2)]},
        {1: "one", 2.5: "two and a half", True: "yes", None: "none"},
        {"when": ts, "float32": np.float32(1.25), "big": 1e300, "tiny": 5e-324, "neg": -0.0},
        {"s": "same"}, {"s": "same"}, {"s": "other"}, {"s": 3},
        {}, None, [1, "two"], "text", 4.5,
        {"mixed": 1}, {"mixed": 2.0}, {"mixed": np.float64(3.5)}, {"mixed": None}, {"mixed": True},
    ]
    assert encode_details(details) == [dumps(d) for d in details]
    assert encode_details([]) == []
    # NaN is refused as dumps refuses it (jsonb has no NaN), in a column of plain floats too.
    for bad in ([{"x": float("nan")}], [{"x": 1.0}, {"x": np.float64("inf")}], [{"x": {"y": float("nan")}}]):
        with pytest.raises(ValueError):
            dumps(bad[-1])
        with pytest.raises(ValueError):
            encode_details(bad)
