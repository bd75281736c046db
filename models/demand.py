"""Demand rows: turn forecasts into m_l_predictions rows for demand_daily, demand_hourly and
item_demand_daily. Which model produced a row is in ``model_name``/``model_version`` (the
registry's name and version) and ``method`` (the step of the fallback chain, see
``models.forecasting``); details are documented in docs/demand.md.
"""

from __future__ import annotations

import pandas as pd

from features.demand import DemandHistory
from models.forecasting import Outcome, TypeSpec, forecast
from core.units import Scope, UnitResult

INTERVAL_LEVEL = 0.8

# Daily: few series per shard (its restaurants), so many overlapping origins (every 3 days) and
# small trees; they learn how the level drifts (trend, season) from the series' own past.
# The LightGBM + Prophet blend is a candidate too: with a year of history Prophet's per-series
# yearly curve adds what the global model has too few year-old origins to learn (models/blend.py).
DAILY = TypeSpec("demand_daily", "weekday", 28,
                 candidates=("seasonal_naive", "seasonal_average", "lightgbm", "lightgbm+prophet"),
                 lgbm=(("origins", 70), ("origin_step_days", 3), ("num_leaves", 7), ("min_data_in_leaf", 20),
                       ("num_boost_round", 150)))
# Prophet per restaurant on hourly data costs seconds a series; it is compared in bench/demand.py.
HOURLY = TypeSpec("demand_hourly", "weekday_hour", 7, min_history_days=21,
                  lgbm=(("origins", 10), ("origin_step_days", 7)))
# Items: thousands of short, zero-heavy series; a lean model (80 rounds of 15-leaf trees) over
# many origins, with a Tweedie power nearer Gamma for their spiky counts. Top-down candidates
# (models/topdown.py): the restaurant's orders forecast (the daily LightGBM above, on the
# restaurants' long history) x the item's units per order over 8 weeks, alone and blended
# equally with the item LightGBM; they bring the restaurant's season, trend and holidays.
ITEMS = TypeSpec("item_demand_daily", "weekday", 14, min_history_days=14, short_series="average",
                 candidates=("seasonal_naive", "seasonal_average", "lightgbm", "topdown", "lightgbm+topdown"),
                 lgbm=(("origins", 20), ("num_boost_round", 80), ("learning_rate", 0.12), ("num_leaves", 15),
                       ("min_data_in_leaf", 100), ("tweedie_variance_power", 1.5)))


def daily_spec(scope: Scope) -> TypeSpec:
    """demand_daily's spec with the configured horizon (28 days by default, up to 90)."""
    from dataclasses import replace

    return replace(DAILY, horizon_days=scope.forecast.demand_daily_horizon_days)


def _rows(out: pd.DataFrame, granularity: str, entity_col: str = "series_id") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "entity_id": out[entity_col].astype("int64").to_numpy(),
            "restaurant_id": out["restaurant_id"].astype("int64").to_numpy(),
            "target_start": out["target_start"].to_numpy(),
            "granularity": granularity,
            "value": out["yhat"].astype(float).round(3).to_numpy(),
            "lower": out["lower"].astype(float).round(3).to_numpy(),
            "upper": out["upper"].astype(float).round(3).to_numpy(),
            "model_name": out["model_name"].to_numpy(),
            "model_version": out["model_version"].astype(str).to_numpy(),
            "method": out["method"].to_numpy(),
        }
    )


def _with_restaurant(out: pd.DataFrame, features: DemandHistory) -> pd.DataFrame:
    return out.merge(features.series[["series_id", "restaurant_id"]], on="series_id", how="left")


def _result(outcome: Outcome, rows: pd.DataFrame, scope_ids: list[int]) -> UnitResult:
    return UnitResult(rows=rows, scope_entity_ids=scope_ids, messages=outcome.messages, models=outcome.models)


def average_ticket(history: pd.DataFrame, days: int = 28) -> pd.Series:
    """Typical revenue per order over the last ``days`` open days of each restaurant (currency units).

    The median of the daily tickets rather than total revenue over total orders: one well-formed
    but absurd order (a 10,000-item line) would otherwise raise every forecast day's revenue.
    Restaurants without an order in the window are absent (see ``predict_demand_daily``).
    """
    if history.empty or "revenue" not in history:
        return pd.Series(dtype=float)
    recent = history[
        (history["ds"] > history["ds"].max() - pd.Timedelta(days=days)) & ~history["closed"] & (history["y"] > 0)
    ]
    return (recent["revenue"] / recent["y"]).groupby(recent["series_id"]).median()


def predict_demand_daily(features: DemandHistory, scope: Scope) -> UnitResult:
    """Orders per local day; details.revenue = forecast orders x recent average ticket."""
    outcome = forecast(features, daily_spec(scope), scope)
    out = _with_restaurant(outcome.frame, features)
    rows = _rows(out, "day")
    ticket = average_ticket(features.history)
    # A restaurant forecast from its peers has no ticket of its own: the peers' typical ticket
    # keeps its revenue from reading 0 next to a non-zero order forecast.
    peer_ticket = float(ticket.median()) if len(ticket) else 0.0
    rows["details"] = [
        {
            "revenue": round(float(v) * float(ticket.get(sid, peer_ticket)), 2),
            "interval_level": INTERVAL_LEVEL,
            "closed": bool(c),
        }
        for sid, v, c in zip(rows["entity_id"], rows["value"], out["closed_pattern"])
    ]
    return _result(outcome, rows, scope.restaurant_ids)


def predict_demand_hourly(features: DemandHistory, scope: Scope) -> UnitResult:
    """Orders per local hour for the next 168 hours (23 or 25 rows on a DST-change day)."""
    outcome = forecast(features, HOURLY, scope)
    out = _with_restaurant(outcome.frame, features)
    rows = _rows(out, "hour")
    rows["details"] = [
        {"interval_level": INTERVAL_LEVEL, "local_hour": int(h), "closed": bool(c)}
        for h, c in zip(out["ds"].dt.hour, out["closed_pattern"])
    ]
    return _result(outcome, rows, scope.restaurant_ids)


def predict_item_demand_daily(features: DemandHistory, scope: Scope) -> UnitResult:
    """Units per active menu item and local day for the next 14 days.

    Discontinued items are in ``features.retired_ids``: they get no rows and, being in the
    scope, lose the rows an earlier run wrote.
    """
    outcome = forecast(features, ITEMS, scope)
    out = outcome.frame.merge(
        features.series[["series_id", "restaurant_id", "category"]], on="series_id", how="left"
    )
    rows = _rows(out, "day")
    rows["details"] = [
        {"interval_level": INTERVAL_LEVEL, "category": str(cat), "closed": bool(c)}
        for cat, c in zip(out["category"], out["closed_pattern"])
    ]
    scope_ids = sorted({int(i) for i in features.series["series_id"]} | set(features.retired_ids))
    return _result(outcome, rows, scope_ids)


__all__ = ["DAILY", "HOURLY", "ITEMS", "predict_demand_daily", "predict_demand_hourly",
           "predict_item_demand_daily", "average_ticket"]
