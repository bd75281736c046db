"""The nightly run at chain scale: time per unit, rows, memory, the writer, and what N restaurants need.

    python -m bench.scale [--quick] [--keep]

Seeds a synthetic chain (default the issue's 100 restaurants x 730 days; --quick 20 x 365, seeded 730: see below) into a
scratch replica (in a child process, so the peak RSS reported is the run's, not the generator's),
makes a fresh predictions database with the migrations, and runs in this process, through
``worker.runs.execute_run`` as the CLI does (no Celery, no run lock, no webhook receivers):
- the daily schedule twice at the same as-of: ``cold`` (empty registry and model store: every
  shard runs its backtests/selection) and ``warm`` (the next night's path: selections reused
  within ``forecast.reselect_days``, only refits);
- the daily schedule again on 1, then 2 real Celery workers (``two_workers_speedup``, below);
- the weekly schedule twice the same way.
Per unit seconds are the run record's per-shard ``step_seconds`` (``ml_run_shard``), summed over
shards: ``units`` (warm daily, seconds); ``units_detail`` also gives the slowest shard per unit and
the rows written, for the cold daily and the warm weekly too. ``tables_after_daily``: rows and MB of
``m_l_predictions`` and ``ml_prediction_history`` after the two daily runs (dead rows of the
replaced run included, as between two nights before a vacuum), and what one daily run adds to the
history.

``writer_vs_copy``: the rows the warm daily run wrote for its largest type (``item_demand_daily`` or
``stock_daily``; ``writer_weekly``: the weekly's, ``churn``, best of 1),
replicated to ``--writer-rows`` rows (entity ids shifted), written by ``PredictionWriter.
replace_predictions`` (keep_history, as the unit does) into an emptied ``m_l_predictions``
("fresh") and again over those rows (a "replace", the nightly case), against a raw ``COPY`` of
the same rows, already encoded as CSV, into an unindexed table (``CREATE TABLE ... (LIKE
m_l_predictions)``): ratio = copy seconds / writer seconds (1.0 = as fast as a raw COPY). Measured
side by side, alternating, best of ``--repeat``. The top-level figure is the replace ratio (the
nightly case); ``writer`` has both.

``retention_drop_s`` against ``retention_delete_s`` (``bench/scale_retention.py``, issue 28): one
month of ``--retention-rows`` history rows dropped as a partition (``prune_history``) against the
same rows deleted from an unpartitioned copy with the old indexes (and ``retention_vacuum_s``, the
VACUUM that DELETE needed); ``retention_ratio`` = delete / drop; ``retention`` has the details.

``extrapolated_minutes``: the warm daily run's worker time per restaurant (the shards' summed
step seconds / restaurants) and its serial part (plan + finish: run wall time minus shard wall
time, taken as growing with restaurants too, which is pessimistic), for N restaurants on W
workers: (serial x N/n + per_restaurant x N / W) / 60, keyed "NxW". Per-restaurant costs are at
the measured days of history; whether a night grows with history is ``history_cost_ratio`` (below).
``two_workers_speedup``: the warm daily run on 1 then 2 real Celery workers (``celery_runs``: the
project's app, its own redis-server on a spare port, triggered by ``python -m worker trigger --wait``),
wall time of one over two; null with ``two_workers_reason`` when it could not be measured.

``warm_s_per_100_restaurants_by_days`` and ``history_cost_ratio`` (``bench/scale_history.py``):
the daily cold and warm again on the same replica at an as-of with each of ``--histories`` days
behind it (default 365 and 730; a fresh predictions database and model store each), beside the
main runs at ``--days``; the ratio is 730 over 365. The replica is seeded with the longest of
them (--quick: 20 x 730) and every run's as-of is as many days before its last day as it should
not see: the main runs of --quick still see 365 days (its weekly at 730 days alone took 6 min here). ``read_s_per_100_restaurants`` (cold, warm): the seconds a
daily run spends inside ``ReplicaReader`` calls (``bench/scale_reads.py``'s ``ReadClock``: the
statement, its rows' transfer and the frame), per 100 restaurants; ``reads`` per run.
``replica_read_rows_per_s`` (``before``, ``after``): one ``--read-rows`` read of kitchen tickets
turned into a DataFrame from SQLAlchemy Row objects (the reader until issue 28) and by
``ReplicaReader.frame`` (the driver's tuples), side by side in this run; ``replica_read`` has the
seconds and their ratio.

Scratch databases: ``rmsml_bench_scale_replica`` and ``rmsml_bench_scale_ml`` + RMSML_TEST_DB_SUFFIX;
--keep keeps both and reuses a replica seeded with the same size (only the predictions database
is made again). Prints one JSON line last. The machine may be shared: ``load_avg_1m`` says how.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import datetime, timedelta, timezone

from bench.scale_celery import celery_runs
from bench.scale_common import END, ML_DB, REPLICA_DB, count, point_at, prepare_replica, rss_mb
from bench.scale_history import by_days, other_history_runs
from bench.scale_reads import read_throughput
from bench.scale_runs import extrapolate, run_schedule, table_sizes
from bench.scale_retention import measure as retention_figures
from bench.scale_writer import writer_rows, writer_vs_copy


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale")
    parser.add_argument("--quick", action="store_true", help="20 restaurants x 365 days (and 730 for the history figures)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases; reuse a seeded replica")
    parser.add_argument("--writer-rows", type=int, default=None, help="rows for writer_vs_copy (default 350k; quick 100k)")
    parser.add_argument("--repeat", type=int, default=2, help="writer_vs_copy: best of this many")
    parser.add_argument("--only-writer", action="store_true",
                        help="with --keep: skip the runs, measure the writer on the kept predictions database")
    parser.add_argument("--retention-rows", type=int, default=None,
                        help="history rows per month for retention_drop_s/_delete_s (default 2M; quick 500k; 0: skip)")
    parser.add_argument("--no-celery", action="store_true", help="skip the 1- vs 2-worker Celery runs")
    parser.add_argument("--restaurants", type=int, default=None, help="chain size (default 100; --quick 20)")
    parser.add_argument("--days", type=int, default=None, help="days of history of the main runs (default 730; --quick 365)")
    parser.add_argument("--shard-size", type=int, default=None,
                        help="restaurants per shard for every run (default 10, the production default; --quick 5, "
                             "so two workers have four shards to share)")
    parser.add_argument("--histories", default="365,730",
                        help="days of history (comma-separated) to run the daily cold and warm at as well, beside "
                             "--days, for warm_s_per_100_restaurants_by_days; '' skips them")
    parser.add_argument("--read-rows", type=int, default=1_000_000,
                        help="rows of the replica_read_rows_per_s read (0: skip)")
    return parser.parse_args(argv)


def _as_of(seeded: int, days: int) -> datetime:
    """The as-of of a run with ``days`` of history on a replica seeded with ``seeded`` days: the
    seeded chain's last day, 04:15 UTC (the nightly run's hour), ``seeded - days`` days earlier
    (an as-of run sees the replica as it was then)."""
    return datetime(END.year, END.month, END.day, 4, 15, tzinfo=timezone.utc) - timedelta(days=seeded - days)


def _run_figures(result: dict, replica_url: str, restaurants: int, shard_size: int, celery: bool,
                 as_of: datetime) -> tuple[dict, dict]:
    """The daily (cold, warm) and weekly (cold, warm) runs at ``as_of`` and what follows from them,
    into ``result``; the two-worker runs between them unless not ``celery``. Returns those and the runs."""
    runs = {
        "daily_cold": run_schedule("daily", as_of, "cold"),
        "daily_warm": run_schedule("daily", as_of, "warm"),
    }
    sizes = table_sizes(runs["daily_warm"]["run_id"])
    two = celery_runs(as_of, shard_size) if celery else {"speedup": None, "reason": "not run (--no-celery or --only-writer)"}
    runs["weekly_cold"] = run_schedule("weekly", as_of, "cold")
    runs["weekly_warm"] = run_schedule("weekly", as_of, "warm")
    # customers the weekly saw: joined before its as-of (the replica may hold more history than the runs)
    customers = count(replica_url, "SELECT count(*) FROM customers_customerprofile "
                                   f"WHERE date_joined < '{as_of.isoformat()}'")
    warm = runs["daily_warm"]
    per_restaurant_s = sum(u["s"] for u in warm["units"].values()) / restaurants
    result.update({
        "daily_cold_s": runs["daily_cold"]["wall_s"],
        "daily_warm_s": warm["wall_s"],
        "warm_s_per_100_restaurants": round(warm["wall_s"] * 100 / restaurants, 1),
        "warm_worker_s_per_restaurant": round(per_restaurant_s, 2),
        "weekly_s": runs["weekly_warm"]["wall_s"],
        "weekly_cold_s": runs["weekly_cold"]["wall_s"],
        "customers": customers,
        "weekly_s_per_100k_customers": round(runs["weekly_warm"]["wall_s"] * 100_000 / max(customers, 1), 1),
        "units": {u: v["s"] for u, v in warm["units"].items()},
        "units_detail": {"daily_warm": warm["units"], "daily_cold": runs["daily_cold"]["units"],
                         "weekly_warm": runs["weekly_warm"]["units"]},
        "rows": {k: r["rows"] for k, r in runs.items()},
        "serial_s": {k: r["serial_s"] for k, r in runs.items()},
        "status": {k: r["status"] for k, r in runs.items()},
        "shards": warm["shards"],
        "tables_after_daily": sizes,
        "extrapolated_minutes": extrapolate(warm, restaurants),
        "extrapolated_weekly_minutes": extrapolate(runs["weekly_warm"], restaurants),
        # seconds inside ReplicaReader calls (statement, transfer, frame), per 100 restaurants
        "read_s_per_100_restaurants": {k.removeprefix("daily_"): round(runs[k]["read"]["s"] * 100 / restaurants, 1)
                                       for k in ("daily_cold", "daily_warm")},
        "reads": {k: r["read"] for k, r in runs.items()},
    })
    return two, runs


def _writer_figures(result: dict, n_writer: int, repeat: int, weekly: bool, restaurants: int) -> None:
    """The writer against a raw COPY, on the daily run's rows (and the weekly's), into ``result``."""
    # the nightly case: the warm daily run's largest type (item rows), replacing the last run's rows
    daily_rows = writer_rows(n_writer, "daily")
    # and the weekly's (customer rows: narrow, so a raw COPY of them is cheaper still); both
    # read before the measurement empties m_l_predictions
    weekly_rows = writer_rows(n_writer, "weekly") if weekly else None
    writer = writer_vs_copy(daily_rows, repeat)
    result["writer_vs_copy"] = writer["replace_ratio"]
    result["writer"] = writer
    if weekly_rows is not None:
        result["writer_weekly"] = writer_vs_copy(weekly_rows, 1)
    if "rows" in result:  # the predictions database's write volume per night, at the measured writer rate
        rows_per_restaurant = result["rows"]["daily_warm"] / restaurants
        replace_rows_per_s = writer["rows"] / writer["writer_replace_s"]
        result["extrapolated_write"] = {
            str(n): {"rows": round(rows_per_restaurant * n),
                     "writer_minutes_serial": round(rows_per_restaurant * n / replace_rows_per_s / 60, 1)}
            for n in (100, 1000, 10000)}


def main(argv: list[str] | None = None) -> dict:
    args = _arguments(argv)
    restaurants, days = (20, 365) if args.quick else (100, 730)
    restaurants, days = args.restaurants or restaurants, args.days or days
    shard_size = args.shard_size or (5 if args.quick else 10)
    os.environ["RMSML_SCHEDULES__SHARD_SIZE"] = str(shard_size)
    n_writer = args.writer_rows or (100_000 if args.quick else 350_000)
    began = time.perf_counter()
    from synthetic.scratch import database_url, drop_database, recreate_database
    from worker.migrations import upgrade

    result: dict = {"bench": "scale", "quick": args.quick, "restaurants": restaurants, "days": days,
                    "shard_size": shard_size}
    histories = [int(h) for h in args.histories.split(",") if h.strip()] if not args.only_writer else []
    seeded = max([days, *histories])  # one replica for every history: runs see less of it by their as-of
    replica_url, seed_s = prepare_replica(restaurants, seeded, args.keep)
    result["seed_s"] = seed_s
    store = tempfile.mkdtemp(prefix="bench-scale-models-")
    two: dict = {"speedup": None, "reason": "not run (--no-celery or --only-writer)"}
    try:
        if args.only_writer:
            point_at(replica_url, database_url(ML_DB), store)
        else:
            others = other_history_runs(replica_url, lambda h: _as_of(seeded, h), [h for h in histories if h != days])
            ml_url = recreate_database(ML_DB)
            upgrade(ml_url)
            point_at(replica_url, ml_url, store)
            two, runs = _run_figures(result, replica_url, restaurants, shard_size, celery=not args.no_celery,
                                     as_of=_as_of(seeded, days))
            result.update(by_days(others, runs["daily_warm"], days, restaurants))
        if args.read_rows:
            reads = read_throughput(args.read_rows)
            result["replica_read_rows_per_s"] = {k: reads[k] for k in ("before", "after")}
            result["replica_read"] = reads
        _writer_figures(result, n_writer, args.repeat, weekly=not args.only_writer, restaurants=restaurants)
        n_retention = args.retention_rows if args.retention_rows is not None else (
            500_000 if args.quick else 2_000_000)
        if n_retention:
            retention = retention_figures(n_retention)
            result.update({k: retention[k] for k in ("retention_drop_s", "retention_delete_s", "retention_ratio")})
            result["retention"] = retention
    finally:
        if not args.keep:
            drop_database(ML_DB)
            drop_database(REPLICA_DB)
    result["two_workers_speedup"] = two.get("speedup")
    if two.get("speedup") is None:
        result["two_workers_reason"] = two.get("reason")
    result["two_workers"] = two
    result["peak_rss_mb"] = rss_mb()
    result["seconds"] = round(time.perf_counter() - began, 1)
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)
    result["cpus"] = os.cpu_count()
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
