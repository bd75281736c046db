"""A one-off day of a whole restaurant (a festival's crowd, a half-closed day) does not move the
usage level of the next four weeks (``models.usage.unusual_days``; docs/inventory.md, issue 26)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.usage import UsageForecaster


def _grid(spike_factor: float, items: int = 6, days: int = 56, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2026-06-01", periods=days, freq="D")
    weekday = np.array([0.8, 0.8, 0.9, 1.0, 1.2, 1.4, 0.9])
    rows = []
    for i in range(items):
        base = 5.0 + 3 * i
        for k, d in enumerate(ds):
            x = base * weekday[d.day_of_week] * rng.gamma(25, 1 / 25)
            if k == days - 10:  # ten days before the end: the whole restaurant at spike_factor
                x *= spike_factor
            rows.append((i, 1, d, x, 0.0, True))
    return pd.DataFrame(rows, columns=["inventory_item_id", "restaurant_id", "ds", "consumption", "waste", "open"])


def test_a_restaurant_wide_spike_is_left_out_of_the_level():
    usual = UsageForecaster().fit(_grid(1.0)).items_["level"]
    spiked = UsageForecaster().fit(_grid(3.5)).items_["level"]
    kept = UsageForecaster(unusual_ratio=0.0).fit(_grid(3.5)).items_["level"]
    # left in, one day at 3.5x raises a 28-day level by ~9 %; left out, the level stays within 2 %
    assert ((kept / usual) > 1.05).all()
    assert (abs(spiked / usual - 1) < 0.02).all()


def test_one_items_lumpy_day_is_not_unusual():
    g = _grid(1.0)
    last = g["ds"].max() - pd.Timedelta(days=3)
    g.loc[(g["inventory_item_id"] == 0) & (g["ds"] == last), "consumption"] *= 6  # one item, not the restaurant
    with_day = UsageForecaster().fit(g).items_["level"]
    kept = UsageForecaster(unusual_ratio=0.0).fit(g).items_["level"]
    assert np.allclose(with_day.to_numpy(), kept.to_numpy())
