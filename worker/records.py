"""The pipeline's own records in the predictions database: runs, their shards, the model registry.

``RunRecords`` is the one writer of ``ml_run``, ``ml_run_shard`` and ``ml_model_registry``
(docs/architecture.md); the scoring and report steps add what they found through it, handed in
as ``reporting.records.RunRecordWriter``. The functions below read them. Predictions and their
history are written by ``worker.writer`` only.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from core.jsonb import dumps
from reporting.records import get_run, registry_frame  # the reads scoring shares: one copy, in the layer below
from worker.writer import PredictionWriter


def _merge_counts(into: dict[str, int], more: Mapping[str, int]) -> dict[str, int]:
    for key, n in more.items():
        into[key] = int(into.get(key, 0)) + int(n)
    return into


class RunRecords:
    """Writes the run, shard and registry records; every method is one transaction."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def create_run(
        self,
        run_id: uuid.UUID,
        schedule: str,
        as_of: datetime,
        *,
        trigger: str,
        restaurant_ids: list[int],
        prediction_types: list[str],
        rows_skipped: Mapping[str, int] | None = None,
        modules_skipped: Mapping[str, str] | None = None,
        messages: list[str] | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    """
                    INSERT INTO ml_run (id, schedule, as_of, status, trigger, restaurant_ids,
                                        prediction_types, rows_skipped, modules_skipped, messages)
                    VALUES (:id, :schedule, :as_of, 'running', :trigger, CAST(:rids AS jsonb),
                            CAST(:types AS jsonb), CAST(:skipped AS jsonb),
                            CAST(:modules AS jsonb), CAST(:messages AS jsonb))
                    ON CONFLICT (id) DO UPDATE SET status = 'running', heartbeat_at = now(),
                        finished_at = NULL, error = NULL, rows_skipped = EXCLUDED.rows_skipped,
                        modules_skipped = EXCLUDED.modules_skipped, messages = EXCLUDED.messages
                    """
                ),
                {
                    "id": str(run_id),
                    "schedule": schedule,
                    "as_of": as_of,
                    "trigger": trigger,
                    "rids": dumps(restaurant_ids),
                    "types": dumps(prediction_types),
                    "skipped": dumps(dict(rows_skipped or {})),
                    "modules": dumps(dict(modules_skipped or {})),
                    "messages": dumps(list(messages or [])),
                },
            )

    def plan_shards(self, run_id: uuid.UUID | str, shards: list[list[int]]) -> None:
        """Record the run's shards as pending, so a finishing step knows what to wait for."""
        with self.engine.begin() as conn:
            for shard_no, ids in enumerate(shards):
                conn.execute(
                    text(
                        "INSERT INTO ml_run_shard (run_id, shard_no, restaurant_ids, status) "
                        "VALUES (:run_id, :shard_no, CAST(:rids AS jsonb), 'pending') "
                        "ON CONFLICT (run_id, shard_no) DO NOTHING"
                    ),
                    {"run_id": str(run_id), "shard_no": shard_no, "rids": dumps(ids)},
                )

    def abandon_unfinished_shards(self, run_id: uuid.UUID | str, reason: str) -> int:
        """Mark a dead run's pending or running shards failed, so the run can be closed."""
        with self.engine.begin() as conn:
            return conn.execute(
                text(
                    "UPDATE ml_run_shard SET status = 'failed', error = :reason, finished_at = now() "
                    "WHERE run_id = :id AND status IN ('pending', 'running')"
                ),
                {"id": str(run_id), "reason": reason[:4000]},
            ).rowcount

    def fail_run(self, run_id: uuid.UUID | str, error: str) -> None:
        """Record a run that could not start or finish; its predictions stay as they were."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE ml_run SET status = 'failed', error = :error, finished_at = now() "
                    "WHERE id = :id"
                ),
                {"id": str(run_id), "error": error[:4000]},
            )

    def start_shard(self, run_id: uuid.UUID | str, shard_no: int, restaurant_ids: list[int]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    """
                    INSERT INTO ml_run_shard (run_id, shard_no, restaurant_ids, status, attempts, started_at)
                    VALUES (:run_id, :shard_no, CAST(:rids AS jsonb), 'running', 1, now())
                    ON CONFLICT (run_id, shard_no) DO UPDATE SET status = 'running',
                        attempts = ml_run_shard.attempts + 1, started_at = now(), error = NULL
                    """
                ),
                {"run_id": str(run_id), "shard_no": shard_no, "rids": dumps(restaurant_ids)},
            )
            conn.execute(text("UPDATE ml_run SET heartbeat_at = now() WHERE id = :id"), {"id": str(run_id)})

    def finish_shard(
        self,
        run_id: uuid.UUID | str,
        shard_no: int,
        *,
        status: str,
        rows_written: Mapping[str, int],
        rows_skipped: Mapping[str, int],
        messages: list[str],
        error: str | None = None,
    ) -> None:
        """Close a shard's record. Modules are skipped for the whole run when it begins
        (``create_run``), never per shard, so a shard records none."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    """
                    UPDATE ml_run_shard SET status = :status, finished_at = now(),
                        rows_written = CAST(:written AS jsonb), rows_skipped = CAST(:skipped AS jsonb),
                        messages = CAST(:messages AS jsonb), error = :error
                    WHERE run_id = :run_id AND shard_no = :shard_no
                    """
                ),
                {
                    "run_id": str(run_id),
                    "shard_no": shard_no,
                    "status": status,
                    "written": dumps(dict(rows_written)),
                    "skipped": dumps(dict(rows_skipped)),
                    "messages": dumps(messages),
                    "error": error[:4000] if error else None,
                },
            )

    def closed_record(self, run_id: uuid.UUID | str) -> dict[str, Any] | None:
        """The record of a run that is no longer running (as ``finish_run`` returned it, with what
        the finishing step added), or None while it runs.

        Why: finishing is redelivered (a finish message after a worker loss, the chord's error
        callback); a closed run must not merge its shards' counts into its totals a second time.
        A re-run under the same id reopens it first (``create_run`` resets its begin figures).
        """
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT id, schedule, as_of, status, started_at, finished_at, restaurant_ids, rows_written, "
                    "rows_skipped, modules_skipped, messages, failed, error, alerts, retrain, accuracy, report_path, "
                    "step_seconds FROM ml_run WHERE id = :id AND status <> 'running'"
                ),
                {"id": str(run_id)},
            ).mappings().first()
        return dict(row) if row else None

    def finish_run(self, run_id: uuid.UUID | str) -> dict[str, Any]:
        """Close the run from what was committed: row counts come from the table, not from memory.

        Status: ``succeeded`` when every shard and prediction type succeeded, ``partial`` when some
        failed but rows were written, ``failed`` otherwise.
        """
        rid = str(run_id)
        with self.engine.begin() as conn:
            run = conn.execute(
                text("SELECT rows_skipped, messages FROM ml_run WHERE id = :id FOR UPDATE"),
                {"id": rid},
            ).mappings().one()
            written = {
                t: int(n)
                for t, n in conn.execute(
                    text(
                        "SELECT prediction_type, count(*) FROM m_l_predictions WHERE run_id = :id "
                        "GROUP BY prediction_type ORDER BY prediction_type"
                    ),
                    {"id": rid},
                )
            }
            shards = conn.execute(
                text(
                    "SELECT shard_no, restaurant_ids, status, rows_skipped, messages, error "
                    "FROM ml_run_shard WHERE run_id = :id ORDER BY shard_no"
                ),
                {"id": rid},
            ).mappings().all()
            skipped: dict[str, int] = dict(run["rows_skipped"])
            messages: list[str] = list(run["messages"])
            failed: list[dict[str, Any]] = []
            for shard in shards:
                _merge_counts(skipped, shard["rows_skipped"])
                messages.extend(m for m in shard["messages"] if m not in messages)
                if shard["status"] != "succeeded":
                    failed.append(
                        {
                            "shard": shard["shard_no"],
                            "restaurant_ids": shard["restaurant_ids"],
                            "error": shard["error"] or f"shard {shard['status']}",
                        }
                    )
            any_written = sum(written.values()) > 0
            if not failed:
                status = "succeeded"
            elif any_written:
                status = "partial"
            else:
                status = "failed"
            error = "; ".join(f["error"] for f in failed)[:4000] or None
            row = conn.execute(
                text(
                    """
                    UPDATE ml_run SET status = :status, finished_at = now(), heartbeat_at = now(),
                        rows_written = CAST(:written AS jsonb), rows_skipped = CAST(:skipped AS jsonb),
                        messages = CAST(:messages AS jsonb), failed = CAST(:failed AS jsonb), error = :error
                    WHERE id = :id
                    RETURNING id, schedule, as_of, status, started_at, finished_at, restaurant_ids,
                              rows_written, rows_skipped, modules_skipped, messages, failed, error
                    """
                ),
                {
                    "id": rid,
                    "status": status,
                    "written": dumps(written),
                    "skipped": dumps(skipped),
                    "messages": dumps(messages),
                    "failed": dumps(failed),
                    "error": error,
                },
            ).mappings().one()
        return dict(row)

    def register_model(
        self,
        *,
        name: str,
        version: str,
        prediction_type: str,
        artifact_path: str,
        sha256: str,
        training_start: datetime | None,
        training_end: datetime | None,
        metrics: Mapping[str, Any],
        params: Mapping[str, Any] | None = None,
        run_id: uuid.UUID | str | None = None,
        status: str = "active",
    ) -> None:
        """Record a saved artifact; re-registering the same name and version updates it."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    """
                    INSERT INTO ml_model_registry (name, version, prediction_type, artifact_path, sha256,
                        training_start, training_end, metrics, params, status, run_id)
                    VALUES (:name, :version, :ptype, :path, :sha, :tstart, :tend,
                            CAST(:metrics AS jsonb), CAST(:params AS jsonb), :status, :run_id)
                    ON CONFLICT ON CONSTRAINT ml_model_registry_name_version DO UPDATE SET
                        artifact_path = EXCLUDED.artifact_path, sha256 = EXCLUDED.sha256,
                        training_start = EXCLUDED.training_start, training_end = EXCLUDED.training_end,
                        metrics = EXCLUDED.metrics, params = EXCLUDED.params, status = EXCLUDED.status,
                        run_id = EXCLUDED.run_id
                    """
                ),
                {
                    "name": name,
                    "version": version,
                    "ptype": prediction_type,
                    "path": artifact_path,
                    "sha": sha256,
                    "tstart": training_start,
                    "tend": training_end,
                    "metrics": dumps(dict(metrics)),
                    "params": dumps(dict(params or {})),
                    "status": status,
                    "run_id": str(run_id) if run_id else None,
                },
            )

    def record_step_seconds(self, run_id: uuid.UUID | str, shard_no: int, seconds: Mapping[str, float]) -> None:
        """Time each unit took in a shard, for the run report."""
        with self.engine.begin() as conn:
            conn.execute(
                text("UPDATE ml_run_shard SET step_seconds = CAST(:s AS jsonb) WHERE run_id = :id AND shard_no = :n"),
                {"id": str(run_id), "n": int(shard_no), "s": dumps({k: round(float(v), 3) for k, v in seconds.items()})},
            )

    def append_run_messages(self, run_id: uuid.UUID | str, messages: list[str]) -> None:
        """Add messages (each once) to a finished run's record: a failed scoring step says so there."""
        with self.engine.begin() as conn:
            conn.execute(
                text("UPDATE ml_run SET messages = CAST(:m AS jsonb) WHERE id = :id"),
                {"id": str(run_id), "m": dumps(_merged_messages(conn, run_id, messages))},
            )

    def record_assessment(self, run_id: uuid.UUID | str, *, alerts: list[Mapping[str, Any]], retrain: list[str],
                          summary: Mapping[str, Any], messages: list[str], step_seconds: Mapping[str, float],
                          retire_before: datetime | None) -> int:
        """What the scoring step found (``reporting.accuracy.assess_run``), in one transaction:
        the run record's alerts, retrain, accuracy summary, messages (added, each once) and step
        seconds; and the models of the ``retrain`` types whose training data ended before
        ``retire_before`` (the start of the evidence) retired. ``training_end`` is the exclusive
        end, the as-of instant: a model with ``training_end <= retire_before`` saw nothing of the
        evidence, so no later run's fallback chain reuses a model fitted before the change; models
        trained through it stay usable. Idempotent for a run id. Returns the number retired."""
        rid = str(run_id)
        with self.engine.begin() as conn:
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
                 "summary": dumps(dict(summary)), "messages": dumps(_merged_messages(conn, rid, messages)),
                 "steps": dumps({k: round(float(v), 3) for k, v in step_seconds.items()})},
            )
            if not retrain or retire_before is None:
                return 0
            return int(conn.execute(
                text(
                    "UPDATE ml_model_registry SET status = 'retired' "
                    "WHERE prediction_type = ANY(:types) AND status IN ('active', 'candidate') "
                    "AND (training_end IS NULL OR training_end <= :before)"
                ),
                {"types": list(retrain), "before": retire_before},
            ).rowcount or 0)

    def record_report(self, run_id: uuid.UUID | str, path: str, seconds: float) -> None:
        """Where the run's HTML report was written, and how long it took."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE ml_run SET report_path = :path, "
                    "step_seconds = step_seconds || CAST(:steps AS jsonb) WHERE id = :id"
                ),
                {"id": str(run_id), "path": path, "steps": dumps({"report": round(float(seconds), 3)})},
            )

    def prune_history(self, cutoff: datetime) -> int:
        """History older than the retention goes; the writer of the history deletes it."""
        return PredictionWriter(self.engine).prune_history(cutoff)


def _merged_messages(conn: Connection, run_id: uuid.UUID | str, messages: list[str]) -> list[str]:
    """The run record's messages with these added, each once (the row locked for the update)."""
    current = conn.execute(text("SELECT messages FROM ml_run WHERE id = :id FOR UPDATE"), {"id": str(run_id)}).scalar()
    merged = list(current or [])
    merged.extend(m for m in messages if m not in merged)
    return merged



def get_shard(engine: Engine, run_id: str, shard_no: int) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT * FROM ml_run_shard WHERE run_id = :id AND shard_no = :n"),
            {"id": str(run_id), "n": shard_no},
        ).mappings().first()
    return dict(row) if row else None


def shard_numbers(engine: Engine, run_id: str) -> list[int]:
    with engine.connect() as conn:
        return [
            int(n)
            for (n,) in conn.execute(
                text("SELECT shard_no FROM ml_run_shard WHERE run_id = :id ORDER BY shard_no"), {"id": str(run_id)}
            )
        ]


def stale_runs(engine: Engine, schedule: str, silent_for_s: int, shard_limit_s: int) -> list[str]:
    """Runs of ``schedule`` still marked running that nothing is working on any more.

    Silent: no shard started for ``silent_for_s`` (every shard start refreshes the heartbeat),
    and no shard is running that started within ``shard_limit_s`` (the hard limit: a shard
    running longer is dead). A run whose queued shards vanished with the broker's memory is
    caught within minutes, not after the run lock's TTL.
    """
    with engine.connect() as conn:
        return [
            str(r[0])
            for r in conn.execute(
                text(
                    "SELECT r.id FROM ml_run r WHERE r.schedule = :schedule AND r.status = 'running' "
                    "AND r.heartbeat_at < now() - make_interval(secs => :silent) "
                    "AND NOT EXISTS (SELECT 1 FROM ml_run_shard s WHERE s.run_id = r.id AND s.status = 'running' "
                    "AND s.started_at > now() - make_interval(secs => :limit)) ORDER BY r.started_at"
                ),
                {"schedule": schedule, "silent": int(silent_for_s), "limit": int(shard_limit_s)},
            )
        ]


def running_runs(engine: Engine, schedule: str) -> list[str]:
    """Runs of ``schedule`` recorded as running, oldest first."""
    with engine.connect() as conn:
        return [
            str(r[0])
            for r in conn.execute(
                text("SELECT id FROM ml_run WHERE schedule = :schedule AND status = 'running' ORDER BY started_at"),
                {"schedule": schedule},
            )
        ]


__all__ = ["RunRecords", "get_run", "get_shard", "shard_numbers", "registry_frame", "stale_runs", "running_runs"]
