"""Demand's registry glue: what the fallback chain (``models.forecasting``) reads from and records
in the model registry, and its artifacts on disk.

Pure like the rest of ``models/``: it takes the registry as the DataFrame the run loop loaded into
``Scope.registry`` and the model store's path (``Scope.model_store``), never a connection; the
records it makes go back to the run loop, whose records writer registers them. Customers and
kitchen keep the same glue in their ``prediction_types/`` files; demand's sits here because
``models.forecasting.forecast`` (the models layer) calls it: an earlier run's selection, the
previous model, the record of tonight's model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from core.units import ModelRecord, Scope
from models.artifacts import load_artifact, saved_record, shard_key
from models.backtest import BacktestResult
from models.chain_decision import ChainDecision
from models.intervals import ConformalIntervals
from models.topdown import RestaurantContext, with_context

log = logging.getLogger(__name__)

# Demand versions (``models.artifacts.shard_version``) keep the as-of's minute.
AS_OF_FORMAT = "%Y%m%dT%H%M"


class DemandSpec(Protocol):
    """What the glue reads of a ``models.forecasting.TypeSpec``."""

    prediction_type: str
    candidates: tuple[str, ...]
    backtest_folds: int
    horizon_days: float


@dataclass
class Selection:
    """An earlier run's backtest verdict for this shard: which candidate, and its intervals."""

    name: str
    version: str
    selected_at: pd.Timestamp
    scores: dict
    intervals: ConformalIntervals | None
    model: object | None = None  # the artifact (the refit of a blend keeps its Prophet part)


def recent_selection(spec: DemandSpec, scope: Scope, history_end: pd.Timestamp,
                     messages: list[str] | None = None) -> Selection | None:
    """The newest active model of this type and shard whose backtest is under
    ``scope.forecast.reselect_days`` old, or None (then tonight's run backtests).

    Why: the backtest (every candidate on several rolling origins) costs several times the one
    refit a daily forecast needs, and which candidate wins rarely changes from one day to the
    next. The chosen model is still refit on today's history every run; only the choice and the
    calibrated intervals are reused. A model retired by a drift alert (``reporting.accuracy``) is not
    active, so a degraded model triggers a fresh backtest the next night.
    """
    days = scope.forecast.reselect_days
    reg = scope.registry
    if days <= 0 or reg is None or reg.empty or pd.isna(history_end):
        return None
    shard = shard_key(scope)
    rows = reg[(reg["prediction_type"] == spec.prediction_type) & (reg["status"] == "active")
               & reg["version"].astype(str).str.endswith("." + shard)
               & ~reg["version"].astype(str).str.contains(str(scope.run_id)[:8])
               & reg["name"].isin(spec.candidates)]
    for rec in rows.itertuples(index=False):
        metrics = getattr(rec, "metrics", None)
        metrics = metrics if isinstance(metrics, dict) else {}
        if "selected_at" not in metrics or not metrics.get("backtest"):
            continue
        selected_at = pd.Timestamp(metrics["selected_at"])
        if selected_at.tzinfo is not None:
            selected_at = selected_at.tz_localize(None)
        age = pd.Timestamp(history_end) - selected_at
        if not pd.Timedelta(0) <= age < pd.Timedelta(days=days):
            return None  # the newest is too old (or from the future: a replayed as_of): backtest again
        try:
            model, intervals = load_artifact(Path(rec.artifact_path), rec.sha256)
        except Exception as exc:
            log.warning("%s: selection of %s unusable (%s); backtesting", spec.prediction_type, rec.version, exc)
            if messages is not None:  # a tampered or lost artifact belongs in the run record, not the log only
                messages.append(f"{spec.prediction_type}: model {rec.version} unusable ({type(exc).__name__}: {exc}); "
                                "backtested and refitted")
            return None
        return Selection(rec.name, str(metrics.get("selected_in", rec.version)), selected_at, metrics["backtest"],
                         intervals, model)
    return None


@dataclass
class PreviousForecast:
    """The previous model's forecast of the rows handed to ``previous_model``."""

    yhat: np.ndarray
    intervals: ConformalIntervals | None
    name: str
    version: str


def previous_model(spec: DemandSpec, scope: Scope, rows: pd.DataFrame, history: pd.DataFrame,
                   messages: list[str], context: RestaurantContext | None = None) -> PreviousForecast | None:
    """The forecast of ``rows`` by the newest registered model of this type from an earlier run
    whose artifact still loads (checksum first), or None; the messages say which, or why none."""
    reg = scope.registry
    if reg is None or reg.empty or rows.empty:
        messages.append(f"{spec.prediction_type}: no previous model registered")
        return None
    current = str(scope.run_id)[:8]
    found = reg[(reg["prediction_type"] == spec.prediction_type) & ~reg["version"].astype(str).str.contains(current)]
    if "status" in found:
        found = found[found["status"].isin(["active", "candidate"])]
    for rec in found.itertuples(index=False):
        try:
            model, intervals = load_artifact(Path(rec.artifact_path), rec.sha256)
            pred = with_context(model, context).predict(rows, history=history)
        except Exception as exc:
            messages.append(f"{spec.prediction_type}: previous model {rec.name} {rec.version} unusable: {exc}")
            continue
        messages.append(f"{spec.prediction_type}: forecast with previous model {rec.name} {rec.version}")
        return PreviousForecast(pred["yhat"].to_numpy(), intervals, rec.name, rec.version)
    messages.append(f"{spec.prediction_type}: no usable previous model")
    return None


def first_instant(start: Any, scope: Scope):
    """The UTC instant the history begins. Daily and item histories are keyed by local dates (a
    local date written as UTC midnight would be off by the restaurant's offset), so a naive start
    is the earliest local midnight among the shard's time zones; ``training_end`` is the as-of
    instant for every type (history is strictly before it), so the registry holds instants only."""
    if pd.isna(start):
        return None
    start = pd.Timestamp(start)
    if start.tzinfo is not None:
        return start.tz_convert("UTC").to_pydatetime()
    zones = scope.restaurants["timezone"].dropna().unique() if "timezone" in scope.restaurants else []
    instants = [start.tz_localize(str(z), ambiguous="NaT", nonexistent="shift_forward") for z in zones]
    instants = [t.tz_convert("UTC") for t in instants if pd.notna(t)]
    return (min(instants) if instants else start.tz_localize("UTC")).to_pydatetime()


def register(model: Any, intervals: ConformalIntervals | None, chosen: str, version: str, spec: DemandSpec,
             scope: Scope, history: pd.DataFrame, backtest: BacktestResult | None,
             selection: Selection | None = None, decision: ChainDecision | None = None) -> ModelRecord:
    """Save tonight's model under the model store and describe it for the registry: the scores of
    every candidate (or, refit under an earlier run's selection, that selection's), when and in
    which version it was selected, and the chain's decision when there was one."""
    start, end = history["ds"].min(), history["ds"].max()
    if selection is not None:  # refit under an earlier run's selection: its scores still stand
        scores, selected_at, selected_in = selection.scores, selection.selected_at, selection.version
    else:
        scores = {n: {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in s.items()}
                  for n, s in backtest.scores.items()}
        selected_at, selected_in = end, version
    return saved_record(
        model, Path(scope.model_store) / spec.prediction_type / version,
        intervals=intervals,
        name=chosen,
        version=version,
        training_start=first_instant(start, scope),
        training_end=scope.as_of.to_pydatetime(),
        metrics={
            "chosen": chosen,
            "backtest": scores,
            "selected_at": pd.Timestamp(selected_at).isoformat(),
            "selected_in": selected_in,
            "folds": spec.backtest_folds,
            "horizon_days": spec.horizon_days,
            "series": int(history["series_id"].nunique()),
            **({"chain_decision": decision.as_metrics()} if decision is not None else {}),
        },
        params=model.params() if hasattr(model, "params") else {},
    )
