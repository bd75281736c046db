"""Demand rows: turn restaurant order histories into m_l_predictions rows.

First version: the seasonal average for restaurants with enough history, the chain's average
profile for those without (cold start, ``method='average'``).
"""

from __future__ import annotations

import pandas as pd

from models.seasonal import SeasonalAverage
from worker.units import Scope, UnitResult

MIN_HISTORY_DAYS = 14
MODEL_VERSION = "1"


def _forecast(history: pd.DataFrame, future: pd.DataFrame, season: str, periods_per_day: int) -> pd.DataFrame:
    if future.empty:
        return future.assign(yhat=[], lower=[], upper=[], method=[])
    counts = history.groupby("series_id").size() if len(history) else pd.Series(dtype=int)
    enough = counts[counts >= MIN_HISTORY_DAYS * periods_per_day].index
    seasoned = history[history["series_id"].isin(enough)]
    out = future.copy()
    out[["yhat", "lower", "upper"]] = float("nan")
    out["method"] = "model"
    if len(seasoned):
        model = SeasonalAverage(season=season).fit(seasoned)
        pred = model.predict(out[["series_id", "ds"]])
        out[["yhat", "lower", "upper"]] = pred[["yhat", "lower", "upper"]].to_numpy()
    cold = out["yhat"].isna()
    if cold.any():
        # Cold start: the average slot profile across the chain's seasoned restaurants.
        slot = SeasonalAverage(season=season)
        pooled = (seasoned if len(seasoned) else history).assign(series_id=0)
        if len(pooled):
            chain = slot.fit(pooled).predict(out.loc[cold, ["ds"]].assign(series_id=0))
            out.loc[cold, ["yhat", "lower", "upper"]] = chain[["yhat", "lower", "upper"]].to_numpy()
        out.loc[cold, ["yhat", "lower", "upper"]] = out.loc[cold, ["yhat", "lower", "upper"]].fillna(0.0)
        out.loc[cold, "method"] = "average"
    return out


def _rows(out: pd.DataFrame, granularity: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "entity_id": out["series_id"].astype("int64"),
            "restaurant_id": out["series_id"].astype("int64"),
            "target_start": out["target_start"],
            "granularity": granularity,
            "value": out["yhat"].round(3),
            "lower": out["lower"].round(3),
            "upper": out["upper"].round(3),
            "model_name": "seasonal_average",
            "model_version": MODEL_VERSION,
            "method": out["method"],
        }
    )


def predict_demand_daily(features, scope: Scope) -> UnitResult:
    """Orders per local day, with details.revenue = orders x recent average ticket."""
    out = _forecast(features.history, features.future, "weekday", 1)
    rows = _rows(out, "day")
    recent = features.history[features.history["ds"] >= features.history["ds"].max() - pd.Timedelta(days=27)] \
        if len(features.history) else features.history
    ticket = (recent.groupby("series_id")["revenue"].sum() / recent.groupby("series_id")["y"].sum()).fillna(0.0) \
        if len(recent) else pd.Series(dtype=float)
    rows["details"] = [
        {"revenue": round(float(v) * float(ticket.get(sid, 0.0)), 2), "interval_level": 0.8}
        for sid, v in zip(rows["entity_id"], rows["value"])
    ]
    return UnitResult(rows=rows, scope_entity_ids=scope.restaurant_ids)


def predict_demand_hourly(features, scope: Scope) -> UnitResult:
    """Orders per local hour for the next 168 hours."""
    out = _forecast(features.history, features.future, "weekday_hour", 24)
    rows = _rows(out, "hour")
    rows["details"] = [{"interval_level": 0.8}] * len(rows)
    return UnitResult(rows=rows, scope_entity_ids=scope.restaurant_ids)
