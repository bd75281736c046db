"""Run metrics in the Prometheus format: what a dashboard or an alert rule needs about each run.

Why a textfile and a Pushgateway, not an HTTP endpoint: a run is a batch job; between runs there
is no process to scrape. Prometheus' own advice for batch jobs is the node exporter's textfile
collector (a file per job, replaced atomically) or a Pushgateway; both are supported, each when
configured (``RMSML_METRICS__TEXTFILE_DIR``, ``RMSML_METRICS__PUSHGATEWAY_URL``).

Written after each run is closed; never raises (metrics must not fail a run).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    push_to_gateway,
    write_to_textfile,
)
from sqlalchemy import Engine, text

log = logging.getLogger(__name__)


def run_registry(record: Mapping[str, Any], step_seconds: Mapping[str, float], failed_deliveries: int) -> CollectorRegistry:
    """The metrics of one closed run (its record as ``worker.run_finish.finish_run`` returns it).

    Args:
        step_seconds: seconds per unit summed over the run's shards, plus the report step.
        failed_deliveries: completion webhooks failed or exhausted, all runs.
    """
    registry = CollectorRegistry()
    schedule = str(record.get("schedule"))
    status = str(record.get("status"))
    Gauge("rmsml_run_finished_timestamp_seconds", "When the last run of the schedule closed (Unix time).",
          ["schedule"], registry=registry).labels(schedule).set(record["finished_at"].timestamp()
                                                                 if record.get("finished_at") else 0)
    if record.get("started_at") and record.get("finished_at"):
        Gauge("rmsml_run_duration_seconds", "Wall time of the last run, from its start to its close.",
              ["schedule"], registry=registry).labels(schedule).set(
            (record["finished_at"] - record["started_at"]).total_seconds())
    outcome = Gauge("rmsml_run_status", "1 for the status the last run ended with.", ["schedule", "status"],
                    registry=registry)
    for s in ("succeeded", "partial", "failed"):
        outcome.labels(schedule, s).set(1 if s == status else 0)
    rows = Gauge("rmsml_rows_written", "Rows the last run committed, per prediction type.",
                 ["schedule", "prediction_type"], registry=registry)
    for ptype, n in sorted((record.get("rows_written") or {}).items()):
        rows.labels(schedule, ptype).set(int(n))
    steps = Gauge("rmsml_step_seconds", "Seconds per step of the last run, summed over its shards.",
                  ["schedule", "step"], registry=registry)
    for step, seconds in sorted(step_seconds.items()):
        steps.labels(schedule, step).set(float(seconds))
    wape = Gauge("rmsml_realised_wape", "Realised WAPE of earlier predictions scored by the last run.",
                 ["prediction_type"], registry=registry)
    coverage = Gauge("rmsml_realised_coverage80", "Share of actuals inside the 80 % interval, same scoring.",
                     ["prediction_type"], registry=registry)
    for ptype, figures in sorted(((record.get("accuracy") or {}).get("types") or {}).items()):
        if figures.get("wape") is not None:
            wape.labels(ptype).set(float(figures["wape"]))
        if figures.get("coverage80") is not None:
            coverage.labels(ptype).set(float(figures["coverage80"]))
    Gauge("rmsml_webhook_deliveries_failed", "Completion webhooks failed or exhausted (all runs).",
          registry=registry).set(int(failed_deliveries))
    return registry


def _run_figures(engine: Engine, run_id: str) -> tuple[dict[str, float], int]:
    with engine.connect() as conn:
        steps: dict[str, float] = {}
        for (shard_steps,) in conn.execute(text("SELECT step_seconds FROM ml_run_shard WHERE run_id = :id"),
                                           {"id": run_id}):
            for step, s in (shard_steps or {}).items():
                steps[step] = steps.get(step, 0.0) + float(s)
        run_steps = conn.execute(text("SELECT step_seconds FROM ml_run WHERE id = :id"), {"id": run_id}).scalar()
        for step, s in (run_steps or {}).items():
            steps[step] = steps.get(step, 0.0) + float(s)
        failed = conn.execute(
            text("SELECT count(*) FROM ml_webhook_delivery WHERE status IN ('failed', 'exhausted')")
        ).scalar()
    return steps, int(failed or 0)


def publish_run_metrics(record: Mapping[str, Any], *, engine: Engine, textfile_dir: Path | None,
                        pushgateway_url: str | None) -> Path | None:
    """Write the run's metrics where configured; returns the textfile written, if any. Never raises.

    The textfile is ``rmsml_<schedule>.prom`` (one per schedule, so a weekly run does not erase
    the daily figures); the Pushgateway groups by job ``rmsml`` and the schedule.
    """
    if textfile_dir is None and not pushgateway_url:
        return None
    try:
        steps, failed = _run_figures(engine, str(record["id"]))
        registry = run_registry(record, steps, failed)
        path = None
        if textfile_dir is not None:
            Path(textfile_dir).mkdir(parents=True, exist_ok=True)
            path = Path(textfile_dir) / f"rmsml_{record.get('schedule')}.prom"
            write_to_textfile(str(path), registry)  # writes a temporary file and renames it
        if pushgateway_url:
            push_to_gateway(pushgateway_url, job="rmsml", registry=registry,
                            grouping_key={"schedule": str(record.get("schedule"))}, timeout=5)
        return path
    except Exception:
        log.exception("metrics of run %s not published", record.get("id"))
        return None
