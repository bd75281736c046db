"""The history's retention, before and after partitioning (issue 28): dropping one month of
``ml_prediction_history`` (``PredictionWriter.prune_history``: DETACH ... CONCURRENTLY + DROP of its
partition) against deleting the same rows from an unpartitioned copy with the old key and indexes
(the ``DELETE ... WHERE as_of < cutoff`` the writer ran before migration 0004), plus the VACUUM
that DELETE leaves to autovacuum.

    .venv/bin/python -m bench.scale_retention                 # 3 months of 500k rows each
    .venv/bin/python -m bench.scale_retention --rows-per-month 200000

Rows are generated in SQL (one run a day, the history's row shape), into a scratch database
migrated to head; the same rows in both tables. Prints one JSON line last; ``bench.scale`` adds
its keys (``retention_drop_s``, ``retention_delete_s``, ``retention_ratio``) to its own line.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import datetime, timezone

from bench.scale_common import log

DB = "rmsml_bench_retention" + os.environ.get("RMSML_TEST_DB_SUFFIX", "")
FIRST_MONTH = datetime(2026, 8, 1, tzinfo=timezone.utc)
MONTHS = 3
CUTOFF = datetime(2026, 9, 1, tzinfo=timezone.utc)  # the first month wholly expired, nothing else
COLS = ("run_id, as_of, prediction_type, entity_id, restaurant_id, target_start, value, lower, upper, "
        "model_name, model_version, method")


def _fill(conn, rows_per_month: int) -> None:
    """Same rows into the partitioned table and into bench_history_plain (0003's shape)."""
    per_day = max(1, rows_per_month // 30)
    conn.exec_driver_sql(
        "CREATE TABLE bench_history_plain (LIKE ml_prediction_history INCLUDING DEFAULTS)")
    conn.exec_driver_sql(
        f"INSERT INTO bench_history_plain ({COLS}) "
        "SELECT md5(d::text)::uuid, as_of, 'item_demand_daily', 1000 + i / 14, 1 + mod(i / 14, 100), "
        "date_trunc('day', as_of) + make_interval(days => 1 + mod(i, 14)), random() * 50, random() * 20, "
        "50 + random() * 20, 'lightgbm', '1', 'model' "
        f"FROM generate_series(0, {MONTHS * 30 + 2}) d, "
        "LATERAL (SELECT timestamptz '2026-08-01 04:00Z' + make_interval(days => d) AS as_of) a, "
        f"generate_series(0, {per_day - 1}) i "
        f"WHERE as_of < timestamptz '2026-08-01 00:00Z' + interval '{MONTHS} months'")
    conn.exec_driver_sql(
        "ALTER TABLE bench_history_plain ADD CONSTRAINT bench_history_plain_key UNIQUE NULLS NOT DISTINCT "
        "(run_id, prediction_type, entity_id, target_start)")
    conn.exec_driver_sql("CREATE INDEX bench_history_plain_target ON bench_history_plain (prediction_type, target_start)")
    conn.exec_driver_sql("CREATE INDEX bench_history_plain_as_of ON bench_history_plain (as_of)")
    conn.exec_driver_sql(f"INSERT INTO ml_prediction_history ({COLS}) SELECT {COLS} FROM bench_history_plain")


def retention_drop_vs_delete(url: str, rows_per_month: int = 500_000) -> dict:
    """Seconds to drop one month of history as partitions now, and to DELETE (and VACUUM) the same
    rows from an unpartitioned table as before; ``url`` is a scratch database at head."""
    from sqlalchemy import create_engine, text

    from worker.db import sqlalchemy_url
    from worker.writer import PredictionWriter

    engine = create_engine(sqlalchemy_url(url))
    try:
        writer = PredictionWriter(engine)
        writer.ensure_history_partitions(FIRST_MONTH, months_ahead=MONTHS - 1)
        started = time.perf_counter()
        with engine.begin() as conn:
            _fill(conn, rows_per_month)
        fill_s = time.perf_counter() - started
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE bench_history_plain")
            conn.exec_driver_sql("VACUUM ANALYZE ml_prediction_history")
            rows = conn.execute(text("SELECT count(*) FROM bench_history_plain")).scalar()
            expired = conn.execute(text("SELECT count(*) FROM bench_history_plain WHERE as_of < :c"),
                                   {"c": CUTOFF}).scalar()
            plain_mb = conn.execute(text("SELECT pg_total_relation_size('bench_history_plain')")).scalar() / 2**20

        started = time.perf_counter()
        with engine.begin() as conn:
            deleted = conn.execute(text("DELETE FROM bench_history_plain WHERE as_of < :c"), {"c": CUTOFF}).rowcount
        delete_s = time.perf_counter() - started
        started = time.perf_counter()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM bench_history_plain")
        vacuum_s = time.perf_counter() - started

        started = time.perf_counter()
        dropped = writer.prune_history(CUTOFF)
        drop_s = time.perf_counter() - started
        with engine.connect() as conn:
            left = conn.execute(text("SELECT count(*) FROM ml_prediction_history")).scalar()
        assert deleted == expired and dropped == 1 and left == rows - expired, (deleted, expired, dropped, left)
    finally:
        engine.dispose()
    out = {
        "rows": rows,
        "rows_dropped": expired,
        "plain_table_mb": round(plain_mb, 1),
        "fill_s": round(fill_s, 1),
        "retention_drop_s": round(drop_s, 3),
        "retention_delete_s": round(delete_s, 3),
        "retention_vacuum_s": round(vacuum_s, 3),
        # how many times cheaper a month's retention is now (the DELETE alone; with its VACUUM)
        "retention_ratio": round(delete_s / drop_s, 1),
        "retention_ratio_with_vacuum": round((delete_s + vacuum_s) / drop_s, 1),
    }
    log(f"retention drop vs delete: {out}")
    return out


def measure(rows_per_month: int) -> dict:
    """On a scratch database of its own, dropped afterwards."""
    from synthetic.scratch import drop_database, recreate_database
    from worker.migrations import upgrade

    url = recreate_database(DB)
    try:
        upgrade(url)
        return retention_drop_vs_delete(url, rows_per_month)
    finally:
        drop_database(DB)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows-per-month", type=int, default=500_000)
    args = parser.parse_args(argv)
    result = {"bench": "scale_retention", "months": MONTHS, "rows_per_month": args.rows_per_month,
              **measure(args.rows_per_month)}
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
