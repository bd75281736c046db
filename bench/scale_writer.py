"""The scale bench's writer figure (``bench.scale``): ``PredictionWriter.replace_predictions``
against a raw COPY of the same rows into an unindexed table, fresh and replacing."""

from __future__ import annotations

import io
import time
import uuid
from datetime import datetime, timedelta, timezone

import pandas as pd

from bench.scale_common import log


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
                                     "(SELECT id FROM ml_run WHERE schedule = 'bench')")
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
