"""The nightly run at chain scale: time per unit, rows, memory, the writer, and what N restaurants need.

    python -m bench.scale [--quick] [--keep]

Seeds a synthetic chain (default the issue's 100 restaurants x 730 days; --quick 20 x 365) into a
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

``extrapolated_minutes``: the warm daily run's worker time per restaurant (the shards' summed
step seconds / restaurants) and its serial part (plan + finish: run wall time minus shard wall
time, taken as growing with restaurants too, which is pessimistic), for N restaurants on W
workers: (serial x N/n + per_restaurant x N / W) / 60, keyed "NxW". Per-restaurant costs are at
the measured days of history; reads grow with history, so 730 days costs more than --quick's 365.
``two_workers_speedup``: the warm daily run on 1 then 2 real Celery workers (``celery_runs``: the
project's app, its own redis-server on a spare port, triggered by ``python -m worker trigger --wait``),
wall time of one over two; null with ``two_workers_reason`` when it could not be measured.

Scratch databases: ``rmsml_bench_scale_replica`` and ``rmsml_bench_scale_ml`` + RMSML_TEST_DB_SUFFIX;
--keep keeps both and reuses a replica seeded with the same size (only the predictions database
is made again). Prints one JSON line last. The machine may be shared: ``load_avg_1m`` says how.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta, timezone

import pandas as pd

SUFFIX = os.environ.get("RMSML_TEST_DB_SUFFIX", "")
REPLICA_DB = "rmsml_bench_scale_replica" + SUFFIX
ML_DB = "rmsml_bench_scale_ml" + SUFFIX
END = date(2026, 11, 1)
SEED = 19
PLAN = [(n, w) for n in (100, 1000, 10000) for w in (2, 16, 64)]


def log(msg: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# ------------------------------------------------------------------ databases
def _seeded_size(url: str) -> tuple[int, int] | None:
    """(restaurants, days) of a replica seeded before, or None."""
    import psycopg2

    try:
        conn = psycopg2.connect(url)
    except psycopg2.Error:
        return None
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM restaurants_restaurant")
            restaurants = cur.fetchone()[0]
            cur.execute("SELECT min(created_at)::date, max(created_at)::date FROM orders_order")
            first, last = cur.fetchone()
        return (restaurants, (last - first).days + 1) if first else None
    except psycopg2.Error:
        return None
    finally:
        conn.close()


def prepare_replica(restaurants: int, days: int, keep: bool) -> tuple[str, float | None]:
    from synthetic.scratch import database_url, recreate_database

    url = database_url(REPLICA_DB)
    if keep:
        size = _seeded_size(url)
        if size and size[0] == restaurants and abs(size[1] - days) <= 2:
            log(f"reusing {REPLICA_DB} ({size[0]} restaurants, {size[1]} days)")
            return url, None
    url = recreate_database(REPLICA_DB)
    log(f"seeding {restaurants} x {days} into {REPLICA_DB}")
    started = time.perf_counter()
    code = (
        "import datetime as dt, sys\n"
        "from synthetic import ChainConfig, seed_database\n"
        f"seed_database({url!r}, ChainConfig(restaurants={restaurants}, days={days}, seed={SEED}, "
        f"end=dt.date({END.year}, {END.month}, {END.day})))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    return url, round(time.perf_counter() - started, 1)


def point_at(replica_url: str, ml_url: str, store: str) -> None:
    """Settings and engines of this process point at the scratch databases."""
    from worker import db
    from worker.db import sqlalchemy_url
    from worker.settings import get_settings

    os.environ["RMSML_REPLICA__URL"] = sqlalchemy_url(replica_url)
    os.environ["RMSML_PREDICTIONS__URL"] = sqlalchemy_url(ml_url)
    os.environ["RMSML_MODEL_STORE__PATH"] = store
    os.environ["RMSML_WEBHOOKS__URLS"] = "[]"
    os.environ.setdefault("RMSML_LOG_LEVEL", "WARNING")
    get_settings.cache_clear()
    db.reset_engines()


# ------------------------------------------------------------------ runs
def run_schedule(schedule: str, as_of: datetime, label: str) -> dict:
    from sqlalchemy import text

    from worker import db
    from worker.runs import execute_run

    log(f"{schedule} {label} ...")
    run_id = str(uuid.uuid4())
    started = time.perf_counter()
    record = execute_run(schedule, as_of, trigger="bench", run_id=run_id)
    wall = time.perf_counter() - started
    with db.predictions_engine().connect() as conn:
        shards = conn.execute(
            text("SELECT shard_no, step_seconds, rows_written, EXTRACT(EPOCH FROM finished_at - started_at) "
                 "FROM ml_run_shard WHERE run_id = :id ORDER BY shard_no"),
            {"id": run_id},
        ).all()
    rows_by_type: dict[str, int] = {}
    units: dict[str, dict] = {}
    for _, steps, rows, _ in shards:
        for ptype, n in (rows or {}).items():
            rows_by_type[ptype] = rows_by_type.get(ptype, 0) + int(n)
        for unit, s in (steps or {}).items():
            u = units.setdefault(unit, {"s": 0.0, "max_shard_s": 0.0})
            u["s"] += float(s)
            u["max_shard_s"] = max(u["max_shard_s"], float(s))
    for unit, u in units.items():
        u["s"], u["max_shard_s"] = round(u["s"], 2), round(u["max_shard_s"], 2)
        u["rows"] = rows_by_type.get(unit.split("/")[0], 0)  # of its prediction type (two units of a type: both)
    shard_wall = sum(float(w or 0) for *_, w in shards)
    out = {
        "status": record.get("status"),
        "wall_s": round(wall, 1),
        "shards": len(shards),
        "shard_wall_s": round(shard_wall, 1),
        "serial_s": round(max(wall - shard_wall, 0.0), 1),
        "rows": sum(rows_by_type.values()),
        "units": dict(sorted(units.items(), key=lambda kv: -kv[1]["s"])),
        "run_id": run_id,
        "peak_rss_mb": rss_mb(),
    }
    log(f"{schedule} {label}: {out['wall_s']} s, {out['rows']} rows, status {out['status']}, "
        f"top units {list(out['units'].items())[:4]}")
    return out


# ------------------------------------------------------------------ writer vs raw COPY
def writer_rows(n_rows: int, schedule: str | None = None) -> tuple[pd.DataFrame, str, str]:
    """The largest type's rows (of the runs of ``schedule``, else of any), as a unit hands them to
    the writer, replicated to ``n_rows``."""
    from sqlalchemy import text

    from worker import db

    with db.predictions_engine().connect() as conn:
        ptype, etype = conn.execute(text(
            "SELECT p.prediction_type, p.entity_type FROM m_l_predictions p JOIN ml_run r ON r.id = p.run_id "
            "WHERE CAST(:schedule AS text) IS NULL OR r.schedule = :schedule "
            "GROUP BY 1, 2 ORDER BY count(*) DESC LIMIT 1"
        ), {"schedule": schedule}).one()
        base = pd.read_sql(text(
            "SELECT entity_id, restaurant_id, target_start, granularity, value, lower, upper, details, "
            "model_name, model_version, method FROM m_l_predictions "
            "WHERE prediction_type = :p AND entity_type = :e"), conn, params={"p": ptype, "e": etype})
    copies = max(1, -(-n_rows // len(base)))
    span = int(base["entity_id"].max()) + 1
    frame = pd.concat([base.assign(entity_id=base["entity_id"] + i * span) for i in range(copies)],
                      ignore_index=True).head(n_rows)
    frame["target_start"] = pd.to_datetime(frame["target_start"], utc=True)
    return frame, ptype, etype


def writer_vs_copy(rows: tuple[pd.DataFrame, str, str], repeat: int) -> dict:
    from sqlalchemy import text

    from worker import db
    from worker.writer import PREDICTION_COLUMNS, PredictionWriter

    frame, ptype, etype = rows
    engine = db.predictions_engine()
    writer = PredictionWriter(engine)
    now = datetime.now(timezone.utc)
    # two runs: "fresh" writes the first into an empty table, "replace" the second over it (the
    # nightly case: a new run replacing the last one's rows, not a re-run of the same run)
    run_id, next_run_id = uuid.uuid4(), uuid.uuid4()
    with engine.begin() as conn:
        for rid in (run_id, next_run_id):
            conn.execute(text("INSERT INTO ml_run (id, schedule, as_of, status, trigger) "
                              "VALUES (:id, 'bench', :as_of, 'succeeded', 'bench')"), {"id": rid, "as_of": now})
    # the raw COPY's input: the same rows, encoded once beforehand (what COPY alone costs)
    staged = PredictionWriter._validated(frame, run_id, ptype, etype, now, now + timedelta(hours=36))
    csv = io.StringIO()
    staged.to_csv(csv, index=False, header=False, na_rep="", date_format="%Y-%m-%dT%H:%M:%S%z")
    payload = csv.getvalue()
    cols = ", ".join(PREDICTION_COLUMNS)

    def raw_copy() -> float:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS bench_raw_copy")
            conn.exec_driver_sql("CREATE TABLE bench_raw_copy (LIKE m_l_predictions INCLUDING DEFAULTS INCLUDING IDENTITY)")
        started = time.perf_counter()
        with engine.begin() as conn:
            cur = conn.connection.driver_connection.cursor()
            cur.copy_expert(f"COPY bench_raw_copy ({cols}) FROM STDIN WITH (FORMAT csv)", io.StringIO(payload))
        took = time.perf_counter() - started
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE bench_raw_copy")
        return took

    def write(fresh: bool) -> float:
        if fresh:
            with engine.begin() as conn:
                conn.exec_driver_sql("DELETE FROM ml_prediction_history WHERE run_id IN "
                                     f"(SELECT id FROM ml_run WHERE schedule = 'bench')")
                conn.exec_driver_sql("TRUNCATE m_l_predictions")
        started = time.perf_counter()
        n = writer.replace_predictions(run_id if fresh else next_run_id, ptype, etype, frame, generated_at=now,
                                       expires_at=now + timedelta(hours=36), keep_history=True)
        took = time.perf_counter() - started
        assert n == len(frame), (n, len(frame))
        return took

    copy_s, fresh_s, replace_s = [], [], []
    for _ in range(repeat):
        copy_s.append(raw_copy())
        fresh_s.append(write(fresh=True))
        replace_s.append(write(fresh=False))
    best_copy, best_fresh, best_replace = min(copy_s), min(fresh_s), min(replace_s)
    out = {
        "rows": len(frame),
        "prediction_type": ptype,
        "copy_s": round(best_copy, 2),
        "writer_fresh_s": round(best_fresh, 2),
        "writer_replace_s": round(best_replace, 2),
        "fresh_ratio": round(best_copy / best_fresh, 3),
        "replace_ratio": round(best_copy / best_replace, 3),
        "writer_rows_per_s": round(len(frame) / best_fresh),
        "repeat": repeat,
    }
    log(f"writer vs copy: {out}")
    return out


# ------------------------------------------------------------------ two workers (real Celery)
def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(proc: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM to the process group this bench started (the worker and its pool), SIGKILL after a grace."""
    import signal

    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    except ProcessLookupError:
        pass


def _wait_log(path: str, needle: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{path}: exited {proc.returncode}")
        with open(path, errors="replace") as fh:
            if needle in fh.read():
                return
        time.sleep(0.3)
    raise TimeoutError(f"{path}: no {needle!r} within {timeout} s")


def celery_runs(as_of: datetime, shard_size: int, workers: tuple[int, ...] = (1, 2)) -> dict:
    # shard_size must be the in-process runs': the registry keeps selections per shard, so other
    # shards would make the first Celery run a cold one.
    """The daily run (warm: the in-process runs left their selections) on 1, then 2 real Celery
    workers of the project's app (``-A worker.celery_app``, queues runs and scoring, one process
    each, prefork), triggered as an admin does (``python -m worker trigger --wait``), on a
    redis-server of the bench's own (spare port, no persistence): wall time from the trigger to the
    finish task's record. Shard size ``shard_size`` for these runs (enough shards for two workers)."""
    import shutil

    redis_bin = shutil.which("redis-server")
    if not redis_bin:
        return {"speedup": None, "reason": "no redis-server on PATH"}
    tmp = tempfile.mkdtemp(prefix="bench-scale-celery-")
    port = _free_port()
    redis_proc = subprocess.Popen(
        [redis_bin, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp],
        stdout=open(os.path.join(tmp, "redis.log"), "w"), stderr=subprocess.STDOUT, start_new_session=True)
    env = {**os.environ, "RMSML_BROKER__URL": f"redis://127.0.0.1:{port}/0",
           "RMSML_BROKER__RESULT_BACKEND": f"redis://127.0.0.1:{port}/1",
           "RMSML_SCHEDULES__SHARD_SIZE": str(shard_size), "RMSML_LOG_LEVEL": "WARNING"}
    out: dict = {"shard_size": shard_size, "walls_s": {}}
    try:
        import redis

        client = redis.Redis(port=port, socket_connect_timeout=1)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.1)
        for n in workers:
            procs = []
            try:
                for i in range(n):
                    logf = os.path.join(tmp, f"w{n}-{i}.log")
                    procs.append((subprocess.Popen(
                        [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-Q", "runs,scoring",
                         "-c", "1", "-P", "prefork", "-n", f"scale{n}-{i}@%h", "--without-gossip", "--without-mingle",
                         "-l", "INFO"],
                        env=env, stdout=open(logf, "w"), stderr=subprocess.STDOUT, start_new_session=True), logf))
                for proc, logf in procs:
                    _wait_log(logf, "ready.", proc, 180)
                log(f"daily on {n} Celery worker(s) ...")
                started = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-m", "worker", "trigger", "--schedule", "daily", "--as-of", as_of.isoformat(),
                     "--wait", "--timeout", "1800"], env=env, capture_output=True, text=True)
                wall = time.perf_counter() - started
                if done.returncode != 0:
                    raise RuntimeError(f"trigger exit {done.returncode}: {done.stderr[-500:]}")
                record = json.loads(done.stdout)
                out["walls_s"][str(n)] = round(wall, 1)
                out.setdefault("shards_overlap", {})[str(n)] = _shard_overlap(record.get("run_id") or record.get("id"))
                log(f"daily on {n} Celery worker(s): {wall:.1f} s, status {record.get('status')}")
            finally:
                for proc, _ in procs:
                    _stop(proc)
        walls = out["walls_s"]
        out["speedup"] = round(walls["1"] / walls["2"], 2) if "1" in walls and "2" in walls else None
    except Exception as exc:  # the figure is then missing, with why; the rest of the bench stands
        out.update(speedup=None, reason=f"{type(exc).__name__}: {exc}"[:300])
    finally:
        _stop(redis_proc, grace=5)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _shard_overlap(run_id: str | None) -> dict:
    """How the run's shards overlapped: summed shard seconds over the span from the first shard's
    start to the last one's end (1.0 = one at a time, 2.0 = two all along), and per worker process."""
    from sqlalchemy import text

    from worker import db

    if not run_id:
        return {}
    with db.predictions_engine().connect() as conn:
        rows = conn.execute(text("SELECT started_at, finished_at FROM ml_run_shard WHERE run_id = :id"),
                            {"id": run_id}).all()
    rows = [(a, b) for a, b in rows if a and b]
    if not rows:
        return {}
    span = (max(b for _, b in rows) - min(a for a, _ in rows)).total_seconds()
    busy = sum((b - a).total_seconds() for a, b in rows)
    return {"shards": len(rows), "span_s": round(span, 1), "busy_s": round(busy, 1),
            "parallelism": round(busy / span, 2) if span else None}


# ------------------------------------------------------------------ table sizes
def table_sizes(warm_run_id: str) -> dict:
    """Rows and MB of m_l_predictions (replaced each run: its steady size) and of
    ml_prediction_history (appended by every scored run: what it grows by per daily run)."""
    from sqlalchemy import text

    from worker import db

    with db.predictions_engine().connect() as conn:
        q = lambda sql, **p: conn.execute(text(sql), p).scalar()  # noqa: E731
        pred_rows = q("SELECT count(*) FROM m_l_predictions")
        pred_mb = q("SELECT pg_total_relation_size('m_l_predictions')") / 2**20
        hist_rows = q("SELECT count(*) FROM ml_prediction_history")
        hist_mb = q("SELECT pg_total_relation_size('ml_prediction_history')") / 2**20
        hist_run = q("SELECT count(*) FROM ml_prediction_history WHERE run_id = :r", r=warm_run_id)
    return {
        "m_l_predictions_rows": pred_rows, "m_l_predictions_mb": round(pred_mb, 1),
        "m_l_predictions_bytes_per_row": round(pred_mb * 2**20 / max(pred_rows, 1)),
        "history_rows": hist_rows, "history_mb": round(hist_mb, 1),
        "history_rows_per_daily_run": hist_run,
        "history_mb_per_daily_run": round(hist_mb * hist_run / max(hist_rows, 1), 2),
    }


# ------------------------------------------------------------------ extrapolation
def extrapolate(warm: dict, restaurants: int) -> dict:
    per_restaurant = sum(u["s"] for u in warm["units"].values()) / restaurants
    serial_per_restaurant = warm["serial_s"] / restaurants
    return {f"{n}x{w}": round((serial_per_restaurant * n + per_restaurant * n / w) / 60, 1) for n, w in PLAN}


def count(url: str, sql: str) -> int:
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.scale")
    parser.add_argument("--quick", action="store_true", help="20 restaurants x 365 days")
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases; reuse a seeded replica")
    parser.add_argument("--writer-rows", type=int, default=None, help="rows for writer_vs_copy (default 350k; quick 100k)")
    parser.add_argument("--repeat", type=int, default=2, help="writer_vs_copy: best of this many")
    parser.add_argument("--only-writer", action="store_true",
                        help="with --keep: skip the runs, measure the writer on the kept predictions database")
    parser.add_argument("--no-celery", action="store_true", help="skip the 1- vs 2-worker Celery runs")
    parser.add_argument("--restaurants", type=int, default=None, help="chain size (default 100; --quick 20)")
    parser.add_argument("--days", type=int, default=None, help="days of history (default 730; --quick 365)")
    parser.add_argument("--shard-size", type=int, default=None,
                        help="restaurants per shard for every run (default 10, the production default; --quick 5, "
                             "so two workers have four shards to share)")
    args = parser.parse_args(argv)
    restaurants, days = (20, 365) if args.quick else (100, 730)
    restaurants, days = args.restaurants or restaurants, args.days or days
    shard_size = args.shard_size or (5 if args.quick else 10)
    os.environ["RMSML_SCHEDULES__SHARD_SIZE"] = str(shard_size)
    n_writer = args.writer_rows or (100_000 if args.quick else 350_000)
    began = time.perf_counter()
    from synthetic.scratch import drop_database, recreate_database
    from worker.migrations import upgrade

    result: dict = {"bench": "scale", "quick": args.quick, "restaurants": restaurants, "days": days,
                    "shard_size": shard_size}
    replica_url, seed_s = prepare_replica(restaurants, days, args.keep)
    result["seed_s"] = seed_s
    store = tempfile.mkdtemp(prefix="bench-scale-models-")
    two: dict = {"speedup": None, "reason": "not run (--no-celery or --only-writer)"}
    try:
        if args.only_writer:
            from synthetic.scratch import database_url

            point_at(replica_url, database_url(ML_DB), store)
        else:
            ml_url = recreate_database(ML_DB)
            upgrade(ml_url)
            point_at(replica_url, ml_url, store)
            as_of = datetime(END.year, END.month, END.day, 4, 15, tzinfo=timezone.utc)
            runs = {
                "daily_cold": run_schedule("daily", as_of, "cold"),
                "daily_warm": run_schedule("daily", as_of, "warm"),
            }
            sizes = table_sizes(runs["daily_warm"]["run_id"])
            if not args.no_celery:
                two = celery_runs(as_of, shard_size)
            runs["weekly_cold"] = run_schedule("weekly", as_of, "cold")
            runs["weekly_warm"] = run_schedule("weekly", as_of, "warm")
            customers = count(replica_url, "SELECT count(*) FROM customers_customerprofile")
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
            })
        # the nightly case: the warm daily run's largest type (item rows), replacing the last run's rows
        daily_rows = writer_rows(n_writer, "daily")
        # and the weekly's (customer rows: narrow, so a raw COPY of them is cheaper still); both
        # read before the measurement empties m_l_predictions
        weekly_rows = None if args.only_writer else writer_rows(n_writer, "weekly")
        writer = writer_vs_copy(daily_rows, args.repeat)
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
