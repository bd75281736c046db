"""The scale bench's runs (``bench.scale``): a schedule run in this process as the CLI runs it,
its seconds per unit from the shard records, the tables' sizes after it, and what N restaurants
on W workers would take."""

from __future__ import annotations

import time
import uuid
from datetime import datetime

from bench.scale_common import PLAN, log, rss_mb
from bench.scale_reads import ReadClock


def run_schedule(schedule: str, as_of: datetime, label: str) -> dict:
    from sqlalchemy import text

    from worker import db
    from worker.runs import execute_run

    log(f"{schedule} {label} ...")
    run_id = str(uuid.uuid4())
    started = time.perf_counter()
    with ReadClock() as reads:  # the run's seconds in replica reads, apart from its models'
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
        "read": reads.figures(),
        "run_id": run_id,
        "peak_rss_mb": rss_mb(),
    }
    log(f"{schedule} {label}: {out['wall_s']} s, {out['rows']} rows, status {out['status']}, "
        f"top units {list(out['units'].items())[:4]}")
    return out


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


def extrapolate(warm: dict, restaurants: int) -> dict:
    per_restaurant = sum(u["s"] for u in warm["units"].values()) / restaurants
    serial_per_restaurant = warm["serial_s"] / restaurants
    return {f"{n}x{w}": round((serial_per_restaurant * n + per_restaurant * n / w) / 60, 1) for n, w in PLAN}
