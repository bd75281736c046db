"""SQL of the reporting step on the predictions database: the reads scoring and the report need,
and the writes of the two tables reporting owns (``ml_accuracy``, ``ml_drift_alert``).

Plain functions on an ``Engine`` the caller hands in. The run record, the registry and the
prediction history are the worker's tables (docs/architecture.md, one writer per table): what
reporting adds to them goes through the ``RunRecordWriter`` the worker hands in.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

import pandas as pd
from sqlalchemy import Engine, text

from core.jsonb import dumps
from models.accuracy import CHURN_WINDOW, finite_or_none


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
) -> None:
    """Store one run's accuracy and alerts (``ml_accuracy``, ``ml_drift_alert``), in one transaction.

    Idempotent for a run id (a redelivered finishing step rewrites the same rows). ``excluded``
    maps (type, restaurant id or None) to counts of predictions not scored, by reason. What the
    run record, the registry and the history gain from the assessment is written by their owner,
    handed in as ``RunRecordWriter``.
    """
    rid = str(run_id)
    rows = []
    for r in accuracy.itertuples(index=False):
        restaurant = None if pd.isna(r.restaurant_id) else int(r.restaurant_id)
        row = {k: finite_or_none(getattr(r, k)) for k in (
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


class RunRecordWriter(Protocol):
    """The writes of the reporting step into tables it does not own: the run record
    (``ml_run``), the registry's retirements (``ml_model_registry``), the history's retention
    (``ml_prediction_history``). Handed in by the worker (``worker.records.RunRecords``), which
    owns those tables; reporting cannot import it (docs/architecture.md)."""

    def record_assessment(self, run_id: uuid.UUID | str, *, alerts: list[Mapping[str, Any]], retrain: list[str],
                          summary: Mapping[str, Any], messages: list[str], step_seconds: Mapping[str, float],
                          retire_before: datetime | None) -> int: ...

    def prune_history(self, cutoff: datetime) -> int: ...

    def append_run_messages(self, run_id: uuid.UUID | str, messages: list[str]) -> None: ...

    def record_report(self, run_id: uuid.UUID | str, path: str, seconds: float) -> None: ...


__all__ = ["get_run", "registry_frame", "history_for_window", "accuracy_frame", "accuracy_over_time",
           "alerts_frame", "shards_frame", "demand_daily_history", "record_assessment", "RunRecordWriter",
           "failed_deliveries"]


def failed_deliveries(engine: Engine) -> int:
    """Completion webhooks failed or exhausted, all runs."""
    with engine.connect() as conn:
        return int(conn.execute(
            text("SELECT count(*) FROM ml_webhook_delivery WHERE status IN ('failed', 'exhausted')")).scalar() or 0)
