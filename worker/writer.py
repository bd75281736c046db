"""The one writer: every write to the predictions database goes through this module.

Why one module: the RMS reads ``m_l_predictions`` live, so the rules that keep it trustworthy
(an entity's rows of one type change all at once, a re-run never duplicates, a failed run leaves
the previous rows in place) are easiest to keep when there is exactly one place that writes.
The replica is never written: its engine is read-only (``worker.db``).
"""

from __future__ import annotations

import io
import json
import math
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, text

PREDICTION_COLUMNS: tuple[str, ...] = (
    "prediction_type",
    "entity_type",
    "entity_id",
    "restaurant_id",
    "target_start",
    "granularity",
    "value",
    "lower",
    "upper",
    "details",
    "model_name",
    "model_version",
    "method",
    "run_id",
    "generated_at",
    "expires_at",
)
REQUIRED_COLUMNS = ("entity_id", "value", "model_name", "model_version", "method")
METHODS = ("model", "previous_model", "rule", "average")
ENTITY_TYPES = ("restaurant", "menu_item", "customer", "inventory_item", "supplier", "station")


class InvalidPredictionRows(ValueError):
    """Rows that would break the m_l_predictions contract; nothing was written."""


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (datetime, pd.Timestamp)):
        return obj.isoformat()
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, allow_nan=False, separators=(",", ":"))


# Entities of this type whose rows come from a run with a later as-of than this run's (a run not
# in ml_run, as in some tests, has no as-of and is taken as the newest).
_HELD_BY_NEWER_RUN = text(
    "SELECT DISTINCT p.entity_id FROM m_l_predictions p JOIN ml_run r ON r.id = p.run_id "
    "WHERE p.prediction_type = :ptype AND p.entity_type = :etype AND p.entity_id = ANY(:ids) "
    "AND p.run_id <> :run_id AND r.as_of > (SELECT as_of FROM ml_run WHERE id = :run_id)"
)


class PredictionWriter:
    def __init__(self, engine: Engine):
        self.engine = engine
        # Entities per type left with a newer run's rows (see replace_predictions).
        self.kept_newer: dict[str, int] = {}

    # ------------------------------------------------------------------ predictions
    def replace_predictions(
        self,
        run_id: uuid.UUID | str,
        prediction_type: str,
        entity_type: str,
        rows: pd.DataFrame,
        *,
        generated_at: datetime,
        expires_at: datetime,
        scope_entity_ids: Iterable[int] = (),
        keep_history: bool = False,
    ) -> int:
        """Make ``rows`` the complete set of this type's rows for every entity they cover.

        All rows go in one transaction: a reader sees an entity's old rows or its new rows, never
        a mix. Rows are staged with COPY and upserted on the contract's unique key, so re-running
        the same run (a retried shard, a redelivered message) leaves exactly one row per key.
        Entities listed in ``scope_entity_ids`` that have no new rows lose their old ones (an
        item discontinued since the last run stops showing a forecast).

        ``keep_history``: also append the rows to ``ml_prediction_history`` (types scored for
        realised accuracy: ``PredictionUnit.scored``), in the same transaction.

        Rows never go back in time: an entity whose current rows come from a run with a later
        as-of (a newer run, while an old run is re-run or replayed) keeps them; such entities are
        counted per type in ``kept_newer`` for the run record.

        Returns the number of rows written.
        """
        if entity_type not in ENTITY_TYPES:
            raise InvalidPredictionRows(f"unknown entity_type {entity_type!r}")
        if rows is None or rows.empty:
            # Nothing new: only the scope's entities lose their old rows.
            rows = pd.DataFrame(columns=list(REQUIRED_COLUMNS))
        frame = self._validated(rows, run_id, prediction_type, entity_type, generated_at, expires_at)
        entity_ids = sorted(set(int(e) for e in frame["entity_id"]) | {int(e) for e in scope_entity_ids})
        if not entity_ids:
            return 0
        key = {"ptype": prediction_type, "etype": entity_type, "run_id": str(run_id)}
        cols = ", ".join(PREDICTION_COLUMNS)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in PREDICTION_COLUMNS[3:])
        with self.engine.begin() as conn:
            newer = {int(e) for (e,) in conn.execute(_HELD_BY_NEWER_RUN, {**key, "ids": entity_ids})}
            if newer:
                self.kept_newer[prediction_type] = self.kept_newer.get(prediction_type, 0) + len(newer)
                frame = frame[~frame["entity_id"].isin(newer)]
                entity_ids = [e for e in entity_ids if e not in newer]
            if len(frame):
                buffer = io.StringIO()
                frame.to_csv(buffer, index=False, header=False, na_rep="", date_format="%Y-%m-%dT%H:%M:%S%z")
                buffer.seek(0)
                conn.exec_driver_sql(
                    f"CREATE TEMP TABLE ml_stage ON COMMIT DROP AS "
                    f"SELECT {cols} FROM m_l_predictions WITH NO DATA"
                )
                cursor = conn.connection.driver_connection.cursor()
                cursor.copy_expert(f"COPY ml_stage ({cols}) FROM STDIN WITH (FORMAT csv)", buffer)
                conn.exec_driver_sql(
                    f"INSERT INTO m_l_predictions ({cols}) SELECT {cols} FROM ml_stage "
                    f"ON CONFLICT ON CONSTRAINT m_l_predictions_key DO UPDATE SET {updates}"
                )
                if keep_history:
                    self._append_history(conn)
            if entity_ids:
                conn.execute(
                    text(
                        "DELETE FROM m_l_predictions WHERE prediction_type = :ptype "
                        "AND entity_type = :etype AND entity_id = ANY(:ids) AND run_id <> :run_id"
                    ),
                    {**key, "ids": entity_ids},
                )
        return len(frame)

    @staticmethod
    def _validated(
        rows: pd.DataFrame,
        run_id: uuid.UUID | str,
        prediction_type: str,
        entity_type: str,
        generated_at: datetime,
        expires_at: datetime,
    ) -> pd.DataFrame:
        missing = [c for c in REQUIRED_COLUMNS if c not in rows.columns]
        if missing:
            raise InvalidPredictionRows(f"{prediction_type}: rows lack column(s) {missing}")
        frame = rows.copy()
        frame["prediction_type"] = prediction_type
        frame["entity_type"] = entity_type
        frame["run_id"] = str(run_id)
        frame["generated_at"] = pd.Timestamp(generated_at)
        frame["expires_at"] = pd.Timestamp(expires_at)
        for optional in ("restaurant_id", "target_start", "granularity", "lower", "upper"):
            if optional not in frame.columns:
                frame[optional] = None
        if "details" not in frame.columns:
            frame["details"] = [{} for _ in range(len(frame))]
        values = pd.to_numeric(frame["value"], errors="coerce")
        if not values.map(lambda v: v is not None and math.isfinite(v)).all():
            raise InvalidPredictionRows(f"{prediction_type}: value must be a finite number on every row")
        bad_methods = set(frame["method"]) - set(METHODS)
        if bad_methods:
            raise InvalidPredictionRows(f"{prediction_type}: unknown method(s) {sorted(bad_methods)}")
        key = frame[["entity_id", "target_start"]].astype(str)
        if key.duplicated().any():
            raise InvalidPredictionRows(f"{prediction_type}: duplicate (entity_id, target_start) rows")
        frame["entity_id"] = frame["entity_id"].astype("int64")
        frame["restaurant_id"] = frame["restaurant_id"].astype("Int64")
        frame["target_start"] = pd.to_datetime(frame["target_start"], utc=True)
        frame["details"] = frame["details"].map(_dumps)
        return frame.loc[:, list(PREDICTION_COLUMNS)]

    def retire_restaurants(self, restaurant_ids: list[int], prediction_types: list[str]) -> int:
        """Delete these restaurants' rows of these types (restaurants the RMS deactivated)."""
        if not restaurant_ids or not prediction_types:
            return 0
        with self.engine.begin() as conn:
            return conn.execute(
                text(
                    "DELETE FROM m_l_predictions WHERE restaurant_id = ANY(:rids) "
                    "AND prediction_type = ANY(:types)"
                ),
                {"rids": [int(r) for r in restaurant_ids], "types": list(prediction_types)},
            ).rowcount

    # ------------------------------------------------------------------ webhook deliveries
    # (issue 6; owned by the webhooks work: reads and the sender live in worker/webhooks.py)
    def create_delivery(
        self,
        delivery_id: str,
        *,
        event_type: str,
        run_id: uuid.UUID | str | None,
        receiver: str,
        url: str,
        payload: str,
        attempt_limit: int,
    ) -> bool:
        """Record an event for one receiver before anything is sent, so no send goes unrecorded.

        The id is the event's ``webhook-id``; an event emitted twice (a redelivered finishing
        step) finds its row already there and is not recorded again. Returns True if created.
        """
        with self.engine.begin() as conn:
            created = conn.execute(
                text(
                    """
                    INSERT INTO ml_webhook_delivery (id, event_type, run_id, receiver, url, payload,
                                                     status, attempt_limit, next_attempt_at)
                    VALUES (:id, :event_type, :run_id, :receiver, :url, :payload,
                            'pending', :limit, now())
                    ON CONFLICT (id) DO NOTHING
                    RETURNING id
                    """
                ),
                {
                    "id": delivery_id,
                    "event_type": event_type,
                    "run_id": str(run_id) if run_id else None,
                    "receiver": receiver,
                    "url": url,
                    "payload": payload,
                    "limit": int(attempt_limit),
                },
            ).first()
        return created is not None

    def claim_delivery_attempt(self, delivery_id: str, *, lease_s: float) -> dict[str, Any] | None:
        """Take the next attempt of a due, pending delivery and record it as started.

        One conditional UPDATE is the claim: of two workers holding the same (redelivered)
        message only one gets the row, and a message arriving before ``next_attempt_at`` gets
        nothing. The lease pushes ``next_attempt_at`` past the attempt's own timeouts, so an
        attempt whose worker died is picked up again by the sweep. Returns None when not claimed.
        """
        with self.engine.begin() as conn:
            row = conn.execute(
                text(
                    """
                    UPDATE ml_webhook_delivery
                    SET attempt_count = attempt_count + 1, updated_at = now(),
                        next_attempt_at = now() + make_interval(secs => :lease)
                    WHERE id = :id AND status = 'pending' AND attempt_count < attempt_limit
                      AND (next_attempt_at IS NULL OR next_attempt_at <= now())
                    RETURNING id, event_type, run_id, receiver, url, payload, attempt_count, attempt_limit
                    """
                ),
                {"id": delivery_id, "lease": float(lease_s)},
            ).mappings().first()
            if row is None:
                return None
            conn.execute(
                text(
                    "INSERT INTO ml_webhook_attempt (delivery_id, attempt_no, status) "
                    "VALUES (:id, :n, 'sending')"
                ),
                {"id": delivery_id, "n": row["attempt_count"]},
            )
        return dict(row)

    def record_delivery_attempt(
        self,
        delivery_id: str,
        attempt_no: int,
        *,
        attempt_status: str,
        response_status: int | None,
        response_body: str | None,
        error: str | None,
        duration_ms: int | None,
        delivery_status: str,
        retry_in_s: float | None = None,
    ) -> None:
        """Close one attempt and move its delivery on, in one transaction.

        ``delivery_status`` is where the delivery goes next: ``pending`` (with ``retry_in_s``),
        ``delivered``, ``failed`` (not retryable) or ``exhausted`` (no attempts left).
        """
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    """
                    UPDATE ml_webhook_attempt SET status = :status, finished_at = now(),
                        response_status = :code, response_body = :body, error = :error,
                        duration_ms = :ms
                    WHERE delivery_id = :id AND attempt_no = :n
                    """
                ),
                {
                    "id": delivery_id,
                    "n": int(attempt_no),
                    "status": attempt_status,
                    "code": response_status,
                    "body": response_body,
                    "error": error[:4000] if error else None,
                    "ms": duration_ms,
                },
            )
            conn.execute(
                text(
                    """
                    UPDATE ml_webhook_delivery SET status = :status, updated_at = now(),
                        next_attempt_at = CASE WHEN :status = 'pending'
                            THEN now() + make_interval(secs => :retry_in) END,
                        last_error = CASE WHEN :status = 'delivered' THEN NULL ELSE :error END,
                        delivered_at = CASE WHEN :status = 'delivered' THEN now() ELSE delivered_at END
                    WHERE id = :id
                    """
                ),
                {
                    "id": delivery_id,
                    "status": delivery_status,
                    "retry_in": float(retry_in_s or 0.0),
                    "error": error[:4000] if error else None,
                },
            )

    def reopen_deliveries(self, delivery_ids: Iterable[str], *, extra_attempts: int) -> list[str]:
        """An admin's redelivery: failed or exhausted deliveries become due now, with a fresh
        budget of ``extra_attempts``; pending ones become due now with their budget unchanged
        (unless it is spent: a worker died during the last attempt).
        Same row, same ``webhook-id``: a receiver that did get the event after all drops the
        copy. Returns the ids reopened (delivered ones are left alone).
        """
        ids = [str(i) for i in delivery_ids]
        if not ids:
            return []
        with self.engine.begin() as conn:
            rows = conn.execute(
                text(
                    """
                    UPDATE ml_webhook_delivery
                    SET status = 'pending', next_attempt_at = now(), updated_at = now(),
                        attempt_limit = CASE WHEN status = 'pending' AND attempt_count < attempt_limit
                                             THEN attempt_limit ELSE attempt_count + :extra END
                    WHERE id = ANY(:ids) AND status IN ('pending', 'failed', 'exhausted')
                    RETURNING id
                    """
                ),
                {"ids": ids, "extra": int(extra_attempts)},
            )
            return sorted(r[0] for r in rows)

    # ------------------------------------------------------------------ accuracy (issue 9)
    # Prediction history, realised accuracy, drift alerts, the run report and time per step.
    # Reads and the scoring step live in worker/accuracy.py; docs/accuracy.md.
    _HISTORY_COLUMNS = ("run_id", "prediction_type", "entity_id", "restaurant_id", "target_start", "value",
                        "lower", "upper", "model_name", "model_version", "method")

    def _append_history(self, conn: Connection) -> None:
        """Append the staged rows of a scored type to ``ml_prediction_history``, in the caller's
        transaction, so history and m_l_predictions never disagree about what a run predicted.

        INSERT ... SELECT from the staged table: no second trip of the rows. A re-run of the same
        run overwrites its own rows (same key) and never touches another run's.
        """
        cols = ", ".join(self._HISTORY_COLUMNS)
        staged = ", ".join(f"s.{c}" for c in self._HISTORY_COLUMNS)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in ("as_of", *self._HISTORY_COLUMNS[3:]))
        conn.exec_driver_sql(
            f"INSERT INTO ml_prediction_history (as_of, {cols}) "
            f"SELECT r.as_of, {staged} FROM ml_stage s JOIN ml_run r ON r.id = s.run_id "
            f"ON CONFLICT ON CONSTRAINT ml_prediction_history_key DO UPDATE SET {updates}"
        )

    def record_assessment(
        self,
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
        evidence) are retired, so no later run's fallback chain reuses a model fitted before the
        change; models trained through it stay usable. History older than ``history_cutoff`` is pruned.
        ``excluded`` maps (type, restaurant id or None) to counts of predictions not scored, by
        reason. Returns the number of models retired.
        """
        rid = str(run_id)
        rows = []
        for r in accuracy.itertuples(index=False):
            restaurant = None if pd.isna(r.restaurant_id) else int(r.restaurant_id)
            row = {k: self._finite_or_none(getattr(r, k)) for k in (
                "actual_total", "predicted_total", "wape", "mae", "bias", "coverage80",
                "backtest_wape", "backtest_coverage80")}
            row.update(
                run_id=rid, as_of=as_of, ptype=r.prediction_type, restaurant_id=restaurant, horizon=r.horizon,
                window_start=window_start, n=int(r.n), n_interval=int(r.n_interval),
                excluded=_dumps(dict(excluded.get((r.prediction_type, restaurant), {})) if r.horizon == "all" else {}),
            )
            rows.append(row)
        with self.engine.begin() as conn:
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
                    [{**a, "run_id": rid, "retrain": _dumps(list(a.get("retrain") or []))} for a in alerts],
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
                {"id": rid, "alerts": _dumps(list(alerts)), "retrain": _dumps(list(retrain)),
                 "summary": _dumps(dict(summary)), "messages": _dumps(merged),
                 "steps": _dumps({k: round(float(v), 3) for k, v in step_seconds.items()})},
            )
            retired = 0
            if retrain and retire_before is not None:
                retired = conn.execute(
                    text(
                        "UPDATE ml_model_registry SET status = 'retired' "
                        "WHERE prediction_type = ANY(:types) AND status IN ('active', 'candidate') "
                        "AND (training_end IS NULL OR training_end < :before)"
                    ),
                    {"types": list(retrain), "before": retire_before},
                ).rowcount
            conn.execute(text("DELETE FROM ml_prediction_history WHERE as_of < :cutoff"), {"cutoff": history_cutoff})
        return int(retired or 0)

    def record_report(self, run_id: uuid.UUID | str, path: str, seconds: float) -> None:
        """Where the run's HTML report was written, and how long it took."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE ml_run SET report_path = :path, "
                    "step_seconds = step_seconds || CAST(:steps AS jsonb) WHERE id = :id"
                ),
                {"id": str(run_id), "path": path, "steps": _dumps({"report": round(float(seconds), 3)})},
            )

    @staticmethod
    def _finite_or_none(value: Any) -> float | None:
        try:
            value = float(value)
        except (TypeError, ValueError):
            return None
        return value if math.isfinite(value) else None
