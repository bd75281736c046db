"""SQL of the reporting step on the predictions database: the reads scoring and the report need,
and the writes of their results (``ml_accuracy``, ``ml_drift_alert``, and the run record's alerts,
retrain, accuracy, messages, report path and step seconds).

Plain functions on an ``Engine`` the caller hands in. The prediction history itself is appended by
the worker's writer, in the transaction that replaces a type's rows in ``m_l_predictions``.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, text

from core.jsonb import dumps
from models.accuracy import CHURN_WINDOW


def _finite_or_none(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _frame(engine: Engine, sql: str, params: Mapping[str, Any]) -> pd.DataFrame:
    with engine.connect() as conn:
        result = conn.execute(text(sql), dict(params))
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


# ------------------------------------------------------------------------------------ reads
def get_run(engine: Engine, run_id: uuid.UUID | str) -> dict[str, Any] | None:
    """One run record (``ml_run``), or None."""
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM ml_run WHERE id = :id"), {"id": str(run_id)}).mappings().first()
    return dict(row) if row else None


def registry_frame(engine: Engine, prediction_types: list[str]) -> pd.DataFrame:
    """Registered models of these types, newest first, with the metrics they were chosen with."""
    return _frame(
        engine,
        "SELECT name, version, prediction_type, artifact_path, sha256, training_end, metrics, status, "
        "created_at FROM ml_model_registry WHERE prediction_type = ANY(:types) ORDER BY created_at DESC",
        {"types": prediction_types},
    )


def history_for_window(engine: Engine, restaurant_ids: list[int], window_start: pd.Timestamp,
                       as_of: pd.Timestamp) -> pd.DataFrame:
    """History rows that may have ended in [window_start, as_of), made before ``as_of``.

    Daily targets start up to a day before they end, churn windows 60 days before: the bounds
    are widened by that much and the exact ends are checked afterwards (``target_ends``).
    """
    frame = _frame(
        engine,
        """
        SELECT run_id::text AS run_id, as_of, prediction_type, entity_id, restaurant_id, target_start,
               value::float8 AS value, lower::float8 AS lower, upper::float8 AS upper,
               model_name, model_version, method
        FROM ml_prediction_history
        WHERE restaurant_id = ANY(:rids) AND as_of < :as_of AND (
            (prediction_type <> 'churn' AND target_start >= :lo AND target_start < :as_of)
            OR (prediction_type = 'churn' AND as_of >= :churn_lo AND as_of <= :churn_hi))
        """,
        {
            "rids": restaurant_ids,
            "as_of": as_of.to_pydatetime(),
            "lo": (window_start - pd.Timedelta(days=2)).to_pydatetime(),
            "churn_lo": (window_start - CHURN_WINDOW - pd.Timedelta(days=1)).to_pydatetime(),
            "churn_hi": (as_of - CHURN_WINDOW).to_pydatetime(),
        },
    )
    if len(frame):
        frame["as_of"] = pd.to_datetime(frame["as_of"], utc=True)
        frame["target_start"] = pd.to_datetime(frame["target_start"], utc=True)
        frame["entity_id"] = frame["entity_id"].astype("int64")
    return frame


def accuracy_frame(engine: Engine, run_id: uuid.UUID | str) -> pd.DataFrame:
    """One run's rows of ``ml_accuracy``."""
    return _frame(engine, "SELECT * FROM ml_accuracy WHERE run_id = :id ORDER BY id", {"id": str(run_id)})


def accuracy_over_time(engine: Engine, before: datetime, days: int = 120) -> pd.DataFrame:
    """Chain-wide overall accuracy of every scoring run in the ``days`` up to ``before``."""
    return _frame(
        engine,
        "SELECT as_of, prediction_type, wape, coverage80, backtest_wape, n FROM ml_accuracy "
        "WHERE restaurant_id IS NULL AND horizon = 'all' AND as_of <= :before "
        "AND as_of > CAST(:before AS timestamptz) - make_interval(days => :days) ORDER BY as_of",
        {"before": before, "days": int(days)},
    )


def alerts_frame(engine: Engine, run_id: uuid.UUID | str) -> pd.DataFrame:
    """One run's drift and degradation alerts (``ml_drift_alert``)."""
    return _frame(
        engine,
        "SELECT kind, signal, prediction_type, restaurant_id, observed, reference, threshold, retrain, message "
        "FROM ml_drift_alert WHERE run_id = :id ORDER BY id",
        {"id": str(run_id)},
    )


def shards_frame(engine: Engine, run_id: uuid.UUID | str) -> pd.DataFrame:
    """One run's shards with their status, attempts, times and seconds per unit."""
    return _frame(
        engine,
        "SELECT shard_no, restaurant_ids, status, attempts, started_at, finished_at, step_seconds, "
        "error FROM ml_run_shard WHERE run_id = :id ORDER BY shard_no",
        {"id": str(run_id)},
    )


def demand_daily_history(engine: Engine, restaurant_id: int, start: datetime, as_of: datetime) -> pd.DataFrame:
    """Every run's ``demand_daily`` predictions for one restaurant with targets from ``start``,
    made up to ``as_of`` (run_id, as_of, target_start, value, lower, upper)."""
    return _frame(
        engine,
        "SELECT run_id::text AS run_id, as_of, target_start, value, lower, upper FROM ml_prediction_history "
        "WHERE prediction_type = 'demand_daily' AND restaurant_id = :rid AND target_start >= :start "
        "AND as_of <= :as_of ORDER BY target_start, as_of",
        {"rid": restaurant_id, "start": start, "as_of": as_of},
    )


# ------------------------------------------------------------------------------------ writes
def record_assessment(
    engine: Engine,
    run_id: uuid.UUID | str,
    *,
    as_of: datetime,
    window_start: datetime,
    accuracy: pd.DataFrame,
    excluded: Mapping[tuple[str, int | None], Mapping[str, int]],
    alerts: list[Mapping[str, Any]],
    summary: Mapping[str, Any],
    retrain: list[str],
    retire_before: datetime | None,
    messages: list[str],
    step_seconds: Mapping[str, float],
    history_cutoff: datetime,
) -> int:
    """Store one run's accuracy and alerts, all in one transaction, and act on them.

    Idempotent for a run id (a redelivered finishing step rewrites the same rows). Models of
    the ``retrain`` types whose training data ended before ``retire_before`` (the start of the
    evidence) are retired (``training_end`` is the exclusive end, the as-of instant: a model with
    ``training_end <= retire_before`` saw nothing of the evidence), so no later run's fallback chain reuses a model fitted before the
    change; models trained through it stay usable. History older than ``history_cutoff`` is pruned.
    ``excluded`` maps (type, restaurant id or None) to counts of predictions not scored, by
    reason. Returns the number of models retired.
    """
    rid = str(run_id)
    rows = []
    for r in accuracy.itertuples(index=False):
        restaurant = None if pd.isna(r.restaurant_id) else int(r.restaurant_id)
        row = {k: _finite_or_none(getattr(r, k)) for k in (
            "actual_total", "predicted_total", "wape", "mae", "bias", "coverage80",
            "backtest_wape", "backtest_coverage80")}
        row.update(
            run_id=rid, as_of=as_of, ptype=r.prediction_type, restaurant_id=restaurant, horizon=r.horizon,
            window_start=window_start, n=int(r.n), n_interval=int(r.n_interval),
            excluded=dumps(dict(excluded.get((r.prediction_type, restaurant), {})) if r.horizon == "all" else {}),
        )
        rows.append(row)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM ml_accuracy WHERE run_id = :id"), {"id": rid})
        conn.execute(text("DELETE FROM ml_drift_alert WHERE run_id = :id"), {"id": rid})
        if rows:
            conn.execute(
                text(
                    """
                    INSERT INTO ml_accuracy (run_id, as_of, prediction_type, restaurant_id, horizon,
                        window_start, window_end, n, actual_total, predicted_total, wape, mae, bias,
                        coverage80, n_interval, backtest_wape, backtest_coverage80, excluded)
                    VALUES (:run_id, :as_of, :ptype, :restaurant_id, :horizon, :window_start, :as_of, :n,
                        :actual_total, :predicted_total, :wape, :mae, :bias, :coverage80, :n_interval,
                        :backtest_wape, :backtest_coverage80, CAST(:excluded AS jsonb))
                    """
                ),
                rows,
            )
        if alerts:
            conn.execute(
                text(
                    """
                    INSERT INTO ml_drift_alert (run_id, kind, signal, prediction_type, restaurant_id,
                        observed, reference, threshold, retrain, message)
                    VALUES (:run_id, :kind, :signal, :prediction_type, :restaurant_id, :observed,
                        :reference, :threshold, CAST(:retrain AS jsonb), :message)
                    ON CONFLICT ON CONSTRAINT ml_drift_alert_key DO NOTHING
                    """
                ),
                [{**a, "run_id": rid, "retrain": dumps(list(a.get("retrain") or []))} for a in alerts],
            )
        current = conn.execute(
            text("SELECT messages FROM ml_run WHERE id = :id FOR UPDATE"), {"id": rid}
        ).scalar()
        merged = list(current or [])
        merged.extend(m for m in messages if m not in merged)
        conn.execute(
            text(
                """
                UPDATE ml_run SET alerts = CAST(:alerts AS jsonb), retrain = CAST(:retrain AS jsonb),
                    accuracy = CAST(:summary AS jsonb), messages = CAST(:messages AS jsonb),
                    step_seconds = step_seconds || CAST(:steps AS jsonb)
                WHERE id = :id
                """
            ),
            {"id": rid, "alerts": dumps(list(alerts)), "retrain": dumps(list(retrain)),
             "summary": dumps(dict(summary)), "messages": dumps(merged),
             "steps": dumps({k: round(float(v), 3) for k, v in step_seconds.items()})},
        )
        retired = 0
        if retrain and retire_before is not None:
            retired = conn.execute(
                text(
                    "UPDATE ml_model_registry SET status = 'retired' "
                    "WHERE prediction_type = ANY(:types) AND status IN ('active', 'candidate') "
                    "AND (training_end IS NULL OR training_end <= :before)"
                ),
                {"types": list(retrain), "before": retire_before},
            ).rowcount
        conn.execute(text("DELETE FROM ml_prediction_history WHERE as_of < :cutoff"), {"cutoff": history_cutoff})
    return int(retired or 0)


def append_run_messages(engine: Engine, run_id: uuid.UUID | str, messages: list[str]) -> None:
    """Add messages (each once) to a finished run's record: a failed scoring step says so there."""
    with engine.begin() as conn:
        current = conn.execute(
            text("SELECT messages FROM ml_run WHERE id = :id FOR UPDATE"), {"id": str(run_id)}
        ).scalar()
        merged = list(current or [])
        merged.extend(m for m in messages if m not in merged)
        conn.execute(
            text("UPDATE ml_run SET messages = CAST(:m AS jsonb) WHERE id = :id"),
            {"id": str(run_id), "m": dumps(merged)},
        )


def record_report(engine: Engine, run_id: uuid.UUID | str, path: str, seconds: float) -> None:
    """Where the run's HTML report was written, and how long it took."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE ml_run SET report_path = :path, "
                "step_seconds = step_seconds || CAST(:steps AS jsonb) WHERE id = :id"
            ),
            {"id": str(run_id), "path": path, "steps": dumps({"report": round(float(seconds), 3)})},
        )


__all__ = ["get_run", "registry_frame", "history_for_window", "accuracy_frame", "accuracy_over_time",
           "alerts_frame", "shards_frame", "demand_daily_history", "record_assessment", "append_run_messages",
           "record_report"]


def failed_deliveries(engine: Engine) -> int:
    """Completion webhooks failed or exhausted, all runs."""
    with engine.connect() as conn:
        return int(conn.execute(
            text("SELECT count(*) FROM ml_webhook_delivery WHERE status IN ('failed', 'exhausted')")).scalar() or 0)
