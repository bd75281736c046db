"""Planted demand series for model tests: known weekday, hour and holiday effects, no database.

Kept apart from the synthetic chain so model tests are fast and their truth is explicit here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.calendar import add_calendar, add_holidays
from features.demand import mark_closed_days, mark_outliers
from features.model_frames import DemandHistory

WEEKLY = np.array([0.8, 0.85, 0.9, 1.0, 1.25, 1.45, 0.75])
HOURLY = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.02, 0.06, 0.14, 0.12, 0.05, 0.03, 0.04, 0.08, 0.16, 0.15,
                   0.09, 0.04, 0.02, 0.0])
HOURLY = HOURLY / HOURLY.sum()
HOLIDAY_MULT = 1.8


def planted_daily(n_series=6, days=200, end="2026-10-01", seed=0, country="GB", closed_ranges=(), dispersion=30.0):
    """History and truth for n restaurants: level x weekday x holiday, negative-binomial noise."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range(end=pd.Timestamp(end) - pd.Timedelta(days=1), periods=days, freq="D")
    frames = []
    for sid in range(1, n_series + 1):
        level = rng.uniform(60, 220)
        frames.append(pd.DataFrame({"series_id": sid, "ds": ds, "level": level}))
    frame = pd.concat(frames, ignore_index=True)
    return _draw(frame, rng, country, closed_ranges, dispersion)


def _draw(frame, rng, country, closed_ranges, dispersion):
    series = pd.DataFrame({"series_id": frame["series_id"].unique(), "country_code": country})
    series["restaurant_id"] = series["series_id"]
    series["peer_group"] = "chain"
    series["timezone"] = "Europe/London"
    frame = add_holidays(add_calendar(frame[["series_id", "ds", "level"]]), series.set_index("series_id")["country_code"])
    mu = frame["level"] * WEEKLY[frame["dow"]] * np.where(frame["is_holiday"] == 1, HOLIDAY_MULT, 1.0)
    frame["mu"] = mu
    p = dispersion / (dispersion + mu)
    frame["y"] = rng.negative_binomial(dispersion, p).astype(float)
    for sid, start, stop in closed_ranges:
        m = (frame["series_id"] == sid) & (frame["ds"] >= pd.Timestamp(start)) & (frame["ds"] < pd.Timestamp(stop))
        frame.loc[m, "y"] = 0.0
    return frame, series


def as_history(frame: pd.DataFrame, series: pd.DataFrame, cut: str, horizon_days: int) -> tuple[DemandHistory, pd.DataFrame]:
    """Split at ``cut``: features before it, held-out truth (with mu) for the next horizon days."""
    cut = pd.Timestamp(cut)
    hist = frame[frame["ds"] < cut].drop(columns=["level", "mu"])
    hist = mark_outliers(mark_closed_days(hist))
    held = frame[(frame["ds"] >= cut) & (frame["ds"] < cut + pd.Timedelta(days=horizon_days))]
    fut = held.drop(columns=["y", "level", "mu"]).copy()
    fut["target_start"] = fut["ds"].dt.tz_localize("UTC")
    return DemandHistory(hist.reset_index(drop=True), fut.reset_index(drop=True), series, "day"), held.reset_index(drop=True)


def planted_items(n_restaurants=4, items=3, days=300, item_days=120, end="2026-10-01", seed=0, dispersion=30.0):
    """Restaurants' daily orders (as ``planted_daily``) and their items' units: each item sells
    Poisson(its share x the restaurant's orders that day), over the last ``item_days`` days only.

    Returns (restaurant frame with mu, item frame with mu, item series) where the item frames'
    series_id are 100 x restaurant + item number.
    """
    rng = np.random.default_rng(seed)
    rest, _ = planted_daily(n_series=n_restaurants, days=days, end=end, seed=seed, dispersion=dispersion)
    recent = rest[rest["ds"] >= rest["ds"].max() - pd.Timedelta(days=item_days - 1)]
    frames, rows = [], []
    for rid, part in recent.groupby("series_id"):
        for j in range(1, items + 1):
            share = rng.uniform(0.05, 0.4)
            sid = 100 * int(rid) + j
            frames.append(part.assign(series_id=sid, mu=share * part["y"],
                                      y=rng.poisson(share * part["y"].to_numpy()).astype(float)))
            rows.append({"series_id": sid, "restaurant_id": int(rid), "country_code": "GB",
                         "timezone": "Europe/London", "peer_group": f"{rid}:mains", "category": "mains"})
    return rest, pd.concat(frames, ignore_index=True), pd.DataFrame(rows)
