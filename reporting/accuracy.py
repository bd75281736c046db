"""The run's scoring step: score what earlier runs predicted, raise drift alerts, write the report.

``worker.runs.finish_run`` calls ``after_run`` once the run's own rows are committed, so the CLI
path and the Celery finishing step both pass through it, and the completion webhook carries what
it found. It never fails a run: the run's predictions are already written, and a scoring problem
is logged and put in the run's messages.

Steps (docs/accuracy.md): read the history rows whose targets ended in the last
``accuracy.window_days`` before the run's as_of (``ml_prediction_history``); read their actuals
from the replica (``features.actuals``); score them per type, restaurant and horizon bucket
(``models.accuracy``); compare with the backtest figures the registry holds for the models that
made them and look at the inputs (``reporting.drift``); store accuracy and alerts
(``reporting.records``); have the run record, the registry (retire the models of the types to
retrain) and the history (retention) updated by their owner; then write the HTML report
(``reporting.report``).

The caller hands in the predictions engine, a reader on the replica, the accuracy settings and the
writer of the worker's tables (``reporting.records.RunRecordWriter``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from core.replica import ReplicaReader
from core.settings import AccuracySettings
from features.actuals import input_signals, match, read_actuals, target_ends
from features.restaurants import load_restaurants
from models import accuracy as acc
from reporting import records
from reporting.records import RunRecordWriter
from reporting.drift import DriftPolicy, degradation_alerts, menu_alerts, retrain_types, volume_alerts
from reporting.report import write_report

log = logging.getLogger(__name__)

FUTURE_TOLERANCE = pd.Timedelta(hours=1)
MODEL_METHODS = ("model", "previous_model")


def backtest_figures(registry: pd.DataFrame) -> dict[tuple[str, str], tuple[float | None, float | None]]:
    """(name, version) -> the backtest WAPE and 80 % coverage the model was chosen with."""
    out: dict[tuple[str, str], tuple[float | None, float | None]] = {}
    for r in registry.itertuples(index=False):
        metrics = r.metrics if isinstance(r.metrics, dict) else {}
        own = (metrics.get("backtest") or {}).get(r.name) or {}
        out[(str(r.name), str(r.version))] = (own.get("wape"), own.get("coverage80"))
    return out


# ------------------------------------------------------------------------------------ scoring
def assess_run(run_id: str, *, engine: Engine, reader: ReplicaReader, settings: AccuracySettings,
               run_records: RunRecordWriter) -> dict[str, Any] | None:
    """Score the predictions whose targets ended in the window before the run's as_of and raise
    alerts; store both. Returns what the run record carries, or None for schedules that do not
    score (``settings.score_schedules``).

    Args:
        engine: the predictions database (history, registry, run record; results written here).
        reader: the replica, read-only (actuals and input signals).
        settings: window, thresholds and retention.
        run_records: writes the run record's alerts, retrain, accuracy, messages and seconds,
            retires registry models (those of the ``retrain`` types whose training data ended
            before the evidence began) and prunes history older than the retention.
    """
    started = time.monotonic()
    run = records.get_run(engine, run_id)
    if run is None:
        raise LookupError(f"no run {run_id}")
    if run["schedule"] not in settings.score_schedules:
        return None
    as_of = pd.Timestamp(run["as_of"]).tz_convert("UTC")
    window_start = as_of - pd.Timedelta(days=settings.window_days)
    valid_until = datetime.now(timezone.utc) + FUTURE_TOLERANCE.to_pytimedelta()
    found = load_restaurants(reader, [int(i) for i in run["restaurant_ids"]]) if run["restaurant_ids"] else None
    restaurants = found.restaurants if found is not None else pd.DataFrame(columns=["id", "timezone"])
    zones = {int(r.id): str(r.timezone) for r in restaurants.itertuples(index=False)}
    messages: list[str] = []

    history = records.history_for_window(engine, list(zones), window_start, as_of) if zones else pd.DataFrame()
    if len(history):
        history["target_end"] = target_ends(history, zones)
        history = history[(history["target_end"] > window_start) & (history["target_end"] <= as_of)].reset_index(drop=True)
    if len(history):
        actuals = read_actuals(reader, history, zones, as_of, valid_until)
        messages += actuals.messages
        matched = match(history, actuals, zones)
    else:
        matched = pd.DataFrame(columns=["prediction_type", "restaurant_id", "status"])

    # The history holds the types whose units are ``scored`` (the writer keeps it for those only):
    # the registry figures of exactly those.
    registry = records.registry_frame(engine, sorted(set(matched["prediction_type"])))
    figures = backtest_figures(registry)
    scored = matched[matched["status"] == "scored"].copy() if len(matched) else matched
    if len(matched):
        keys = list(zip(matched["model_name"].astype(str), matched["model_version"].astype(str)))
        matched["unregistered"] = matched["method"].isin(MODEL_METHODS).to_numpy() & [k not in figures for k in keys]
        scored = matched[matched["status"] == "scored"].copy()
        skeys = list(zip(scored["model_name"].astype(str), scored["model_version"].astype(str)))
        scored["backtest_wape"] = [figures.get(k, (None, None))[0] if m in MODEL_METHODS else None
                                   for k, m in zip(skeys, scored["method"])]
        scored["backtest_coverage80"] = [figures.get(k, (None, None))[1] if m in MODEL_METHODS else None
                                         for k, m in zip(skeys, scored["method"])]
        scored["horizon"] = acc.horizon_bucket(acc.horizon_days(scored["as_of"], scored["target_end"]),
                                               scored["prediction_type"])
        scored = scored.rename(columns={"value": "yhat"})
        excluded, notes = _explain(matched)
        messages += notes
    else:
        excluded = {}
    accuracy = acc.score(scored) if len(scored) else acc.score(pd.DataFrame())

    policy = DriftPolicy.from_settings(settings)
    alerts = degradation_alerts(accuracy, policy)
    if zones:
        daily, items, last_day = input_signals(reader, zones, as_of, valid_until,
                                               settings.volume_recent_days + settings.volume_baseline_days)
        alerts += volume_alerts(daily, last_day, policy)
        alerts += menu_alerts(items, as_of, policy)
    retrain = retrain_types(alerts)
    # The evidence starts with the scoring window (degradation) or the recent days (input drift):
    # a model whose training data ended before that never saw the change.
    retire_before = max(window_start, as_of - pd.Timedelta(days=settings.volume_recent_days))
    if retrain:
        messages.append(f"accuracy: retraining {', '.join(retrain)} (drift alerts); models trained on data "
                        f"ending before {retire_before:%Y-%m-%d %H:%M} UTC are retired")
    summary = {
        "window_start": window_start.isoformat(),
        "window_end": as_of.isoformat(),
        "types": acc.summary(accuracy),
        "excluded": {t: dict(c) for (t, r), c in sorted(excluded.items(), key=lambda kv: kv[0][0]) if r is None},
    }
    alert_dicts = [a.as_dict() for a in alerts]
    records.record_assessment(engine, run_id, as_of=as_of.to_pydatetime(), window_start=window_start.to_pydatetime(),
                              accuracy=accuracy, excluded=excluded, alerts=alert_dicts)
    run_records.record_assessment(run_id, alerts=alert_dicts, summary=summary, retrain=retrain,
                                  retire_before=retire_before.to_pydatetime(), messages=messages,
                                  step_seconds={"accuracy": time.monotonic() - started})
    run_records.prune_history((as_of - pd.Timedelta(days=settings.history_retention_days)).to_pydatetime())
    return {"alerts": alert_dicts, "retrain": retrain, "accuracy": summary}


def _explain(matched: pd.DataFrame) -> tuple[dict[tuple[str, int | None], Counter], list[str]]:
    """Counts of unscored (and unregistered-model) predictions per type and restaurant, and one
    message per type and reason saying why."""
    counts: dict[tuple[str, int | None], Counter] = {}
    notes: list[str] = []
    reasons = {
        "awaiting_actuals": "awaiting actuals (the replica shows no activity after their target ended yet); "
                            "a later run scores them",
        "closed": "fall on local days without a single order at the restaurant (closed); not scored",
        "no_actual": "are about entities no longer in the replica; not scored",
    }
    for ptype, g in matched.groupby("prediction_type", sort=True):
        for status, text_ in reasons.items():
            part = g[g["status"] == status]
            if part.empty:
                continue
            for rid, n in part.groupby(part["restaurant_id"].fillna(-1).astype("int64")).size().items():
                counts.setdefault((ptype, None if rid < 0 else int(rid)), Counter())[status] += int(n)
            counts.setdefault((ptype, None), Counter())[status] += len(part)
            ids = sorted({int(r) for r in part["restaurant_id"].dropna()})
            notes.append(f"accuracy: {ptype}: {len(part)} prediction(s) {text_} (restaurants {ids})")
        lost = g[g["unregistered"].astype(bool)]
        if len(lost):
            versions = sorted(set(lost["model_version"].astype(str)))
            for rid, n in lost.groupby(lost["restaurant_id"].fillna(-1).astype("int64")).size().items():
                counts.setdefault((ptype, None if rid < 0 else int(rid)), Counter())["unregistered_model"] += int(n)
            counts.setdefault((ptype, None), Counter())["unregistered_model"] += len(lost)
            notes.append(
                f"accuracy: {ptype}: {len(lost)} prediction(s) came from model version(s) no longer in the registry "
                f"({', '.join(versions[:3])}{', ...' if len(versions) > 3 else ''}); scored, without a backtest "
                "figure to compare with"
            )
    return counts, notes


# ------------------------------------------------------------------------------------ the step
def after_run(run_id: str, *, engine: Engine, reader: ReplicaReader, settings: AccuracySettings,
              model_store: Path, run_records: RunRecordWriter) -> dict[str, Any]:
    """Scoring, alerts and the report for a finished run; what to add to its run record.

    Never raises: each part that fails is logged and explained in the run's messages.

    Args:
        engine: the predictions database. reader: the replica, read-only.
        settings: the accuracy settings (``settings.report``: write the HTML report or not).
        model_store: the artifact store; the report goes to ``<model_store>/reports/``.
        run_records: the writer of the run record, the registry and the history (the worker's).
    """
    problems: list[str] = []
    try:
        assess_run(run_id, engine=engine, reader=reader, settings=settings, run_records=run_records)
    except Exception as exc:
        log.exception("run %s: the accuracy step failed", run_id)
        problems.append(f"accuracy: scoring failed ({type(exc).__name__}: {exc}); predictions are unaffected")
    if settings.report:
        try:
            write_report(run_id, engine=engine, reader=reader, model_store=model_store, run_records=run_records)
        except Exception as exc:
            log.exception("run %s: the run report failed", run_id)
            problems.append(f"report: not written ({type(exc).__name__}: {exc})")
    if problems:
        run_records.append_run_messages(run_id, problems)
    run = records.get_run(engine, run_id) or {}
    return {k: run.get(k) for k in ("alerts", "retrain", "accuracy", "report_path", "step_seconds", "messages")}


__all__ = ["assess_run", "after_run", "backtest_figures"]
