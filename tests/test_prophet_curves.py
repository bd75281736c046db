"""Prophet's stored curves (``ProphetPerSeries.forecast_days``): the nights that keep the weekly
reselection's fits forecast from the curves stored with the artifact, and must get exactly what
Prophet itself predicts from those fits, holidays included."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.prophet_model import ProphetPerSeries

pytestmark = pytest.mark.pure

FLAGS = ("is_holiday", "is_holiday_eve", "is_holiday_after")


def _frame(days: pd.DatetimeIndex, series: tuple[int, ...], seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for sid in series:
        holiday = (days.day == 11).astype(int)  # a holiday every 11th of the month
        y = 40 + 8 * sid + 9 * (days.day_of_week >= 5) + 25 * holiday + rng.normal(0, 2, len(days))
        parts.append(pd.DataFrame({"series_id": sid, "ds": days, "y": np.maximum(y, 0), "closed": False,
                                   "is_holiday": holiday, "is_holiday_eve": np.roll(holiday, -1),
                                   "is_holiday_after": np.roll(holiday, 1)}))
    return pd.concat(parts, ignore_index=True)


def test_stored_curves_equal_prophets_own_forecast(tmp_path):
    history = _frame(pd.date_range("2024-01-01", periods=120, freq="D"), (1, 2))
    future = _frame(pd.date_range("2024-04-30", periods=30, freq="D"), (1, 2)).drop(columns=["y", "closed"])
    model = ProphetPerSeries(holiday_days=True, forecast_days=20).fit(history)
    model.save(tmp_path)
    assert (tmp_path / "curves.json").exists()
    loaded = ProphetPerSeries.load(tmp_path)
    assert sorted(loaded.curves_) == [1, 2]

    within = future[future["ds"] < pd.Timestamp("2024-05-20")]  # the 20 stored days, a holiday among them
    assert within["is_holiday"].sum() > 0
    fast = loaded.predict(within)["yhat"].to_numpy()
    slow = ProphetPerSeries.load(tmp_path)
    slow.curves_ = {}  # Prophet's own predict from the same fits
    exact = slow.predict(within)["yhat"].to_numpy()
    np.testing.assert_allclose(fast, exact, rtol=1e-9, atol=1e-9)
    # the holiday moves the stored forecast as it moves Prophet's
    hol = within["is_holiday"].to_numpy() == 1
    assert fast[hol].mean() > fast[~hol & (within["ds"].dt.day_of_week < 5).to_numpy()].mean() + 10

    # days past the stored ones fall back to Prophet itself, with the same numbers
    np.testing.assert_allclose(loaded.predict(future)["yhat"].to_numpy(), slow.predict(future)["yhat"].to_numpy(),
                               rtol=1e-9, atol=1e-9)


def test_no_curves_without_forecast_days_or_for_hourly(tmp_path):
    history = _frame(pd.date_range("2024-01-01", periods=60, freq="D"), (1,))
    ProphetPerSeries(forecast_days=0).fit(history).save(tmp_path / "daily")
    assert not (tmp_path / "daily" / "curves.json").exists()
    hourly = ProphetPerSeries(hourly=True, forecast_days=10)
    assert not hourly._cacheable
