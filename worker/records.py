"""Reads of the pipeline's own records (runs, shards, registry) from the predictions database.

Reads only; writes go through ``worker.writer``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Engine, text


def get_run(engine: Engine, run_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM ml_run WHERE id = :id"), {"id": str(run_id)}).mappings().first()
    return dict(row) if row else None


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


def registry_frame(engine: Engine, prediction_types: list[str]) -> pd.DataFrame:
    """Registered models of these types, newest first (for the fallback chain)."""
    with engine.connect() as conn:
        result = conn.execute(
            text(
                "SELECT name, version, prediction_type, artifact_path, sha256, training_end, metrics, status, "
                "created_at FROM ml_model_registry WHERE prediction_type = ANY(:types) ORDER BY created_at DESC"
            ),
            {"types": prediction_types},
        )
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def stale_runs(engine: Engine, schedule: str, silent_for_s: int) -> list[str]:
    """Runs of ``schedule`` still marked running whose heartbeat stopped ``silent_for_s`` ago."""
    with engine.connect() as conn:
        return [
            str(r[0])
            for r in conn.execute(
                text(
                    "SELECT id FROM ml_run WHERE schedule = :schedule AND status = 'running' "
                    "AND heartbeat_at < now() - make_interval(secs => :silent) ORDER BY started_at"
                ),
                {"schedule": schedule, "silent": int(silent_for_s)},
            )
        ]
