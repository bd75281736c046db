"""Coherence of the demand types (docs/demand.md): a restaurant-day's hourly forecasts are scaled
to its daily forecast; a partial day of the window to the share of the day its hours carry."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.demand import hourly_day_shares, reconcile_hourly


def _history(weeks: int = 4) -> pd.DataFrame:
    """One restaurant open 08:00-20:00, 2 orders an hour, 4 from 12:00 to 14:00."""
    ds = pd.date_range("2026-05-04", periods=weeks * 7 * 24, freq="h")
    y = np.where((ds.hour >= 8) & (ds.hour < 20), 2.0, 0.0) + np.where((ds.hour >= 12) & (ds.hour < 14), 2.0, 0.0)
    return pd.DataFrame({"series_id": 1, "ds": ds, "y": y, "closed": False})


def test_whole_days_sum_to_the_daily_forecast_and_partial_days_to_their_share():
    hist = _history()
    start = hist["ds"].max() + pd.Timedelta(hours=12)  # the window starts at 11:00 local
    ds = pd.date_range(start, periods=48, freq="h")
    hourly = pd.DataFrame({"series_id": 1, "ds": ds, "yhat": np.where((ds.hour >= 8) & (ds.hour < 20), 3.0, 0.0)})
    hourly["lower"], hourly["upper"] = hourly["yhat"] * 0.5, hourly["yhat"] * 2.0
    days = pd.date_range(start.normalize(), periods=3, freq="D")
    daily = pd.DataFrame({"series_id": 1, "ds": days, "yhat": [50.0, 60.0, 70.0]})
    out = reconcile_hourly(hourly, daily, hist)
    per_day = out.groupby(out["ds"].dt.normalize())["yhat"].sum()
    # day 1 from 11:00: the usual day is 28 orders, 22 of them from 11:00 on
    assert np.isclose(per_day[days[0]], 50.0 * 22 / 28)
    assert np.isclose(per_day[days[1]], 60.0)  # a whole day
    assert np.isclose(per_day[days[2]], 70.0 * 6 / 28)  # until 11:00: 08:00-11:00 only
    # intervals scale with their value: lower <= value <= upper, same relative width
    assert (out["lower"] <= out["yhat"]).all() and (out["yhat"] <= out["upper"]).all()
    assert np.allclose(out.loc[out["yhat"] > 0, "upper"] / out.loc[out["yhat"] > 0, "yhat"], 2.0)
    assert np.allclose(hourly_day_shares(hist, hourly).groupby(hourly["ds"].dt.normalize()).first(),
                       [22 / 28, 1.0, 6 / 28])


def test_a_day_the_hourly_chain_forecast_zero_takes_the_daily_value_by_profile():
    hist = _history()
    start = (hist["ds"].max() + pd.Timedelta(hours=1))
    ds = pd.date_range(start, periods=24, freq="h")
    hourly = pd.DataFrame({"series_id": 1, "ds": ds, "yhat": 0.0, "lower": 0.0, "upper": 0.0,
                           "closed_pattern": True})
    daily = pd.DataFrame({"series_id": 1, "ds": [start.normalize()], "yhat": [56.0]})
    out = reconcile_hourly(hourly, daily, hist)
    assert np.isclose(out["yhat"].sum(), 56.0)
    assert np.isclose(out.loc[out["ds"].dt.hour == 12, "yhat"].iloc[0], 56.0 * 4 / 28)
    assert not out["closed_pattern"].any()
    # and a day closed by the daily forecast closes its hours
    daily["yhat"] = 0.0
    hourly["yhat"], hourly["upper"] = 2.0, 4.0
    assert (reconcile_hourly(hourly, daily, hist)[["yhat", "upper"]] == 0).all().all()


def test_items_of_a_day_sum_to_orders_times_units_per_order():
    from models.demand import reconcile_items

    days = pd.date_range("2026-06-01", periods=56, freq="D")
    orders = pd.DataFrame({"series_id": 9, "ds": days, "y": 100.0, "closed": False})
    # two live items sell 60 + 90 units a day: 1.5 units per order; a dormant one sold 50 a day long ago
    history = pd.concat([pd.DataFrame({"series_id": s, "ds": days, "y": y, "closed": False})
                         for s, y in ((1, 60.0), (2, 90.0), (3, 0.0))], ignore_index=True)
    history.loc[(history["series_id"] == 3) & (history["ds"] < days[20]), "y"] = 50.0
    fut = pd.date_range(days[-1] + pd.Timedelta(days=1), periods=3, freq="D")
    items = pd.concat([pd.DataFrame({"series_id": s, "ds": fut, "yhat": v, "lower": v / 2, "upper": v * 2,
                                     "dormant_days": d})
                       for s, v, d in ((1, 50.0, np.nan), (2, 50.0, np.nan), (3, 0.0, 36.0))], ignore_index=True)
    daily = pd.DataFrame({"series_id": 9, "ds": fut, "yhat": [80.0, 100.0, 120.0]})
    out = reconcile_items(items, daily, history, orders, pd.Series({1: 9, 2: 9, 3: 9}))
    per_day = out.groupby("ds")["yhat"].sum()
    # units per order over the last 8 weeks counts the live items only: (60 + 90) / 100
    assert np.allclose(per_day.to_numpy(), [120.0, 150.0, 180.0])
    assert (out.loc[out["series_id"] == 3, "yhat"] == 0).all()
    assert np.allclose(out.loc[out["series_id"] == 1, "yhat"], out.loc[out["series_id"] == 2, "yhat"])
    assert (out["lower"] <= out["yhat"]).all() and (out["yhat"] <= out["upper"]).all()
