"""The demand types' model specs: which candidates compete, over which horizon, with which
LightGBM settings (``models.forecasting.TypeSpec``). The units and their rows are in
``prediction_types.demand``; why each value, in docs/demand.md.
"""

from __future__ import annotations

from dataclasses import replace

from core.units import Scope
from models.forecasting import TypeSpec

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
# Six weekly backtest origins (not three): hourly scores are noisy, and the LightGBM has to beat
# the four-week mean on most of them (models.backtest.select).
HOURLY = TypeSpec("demand_hourly", "weekday_hour", 7, min_history_days=21, backtest_folds=6,
                  lgbm=(("origins", 10), ("origin_step_days", 7)))
# Items: thousands of short, zero-heavy series; a lean model (80 rounds of 15-leaf trees) over
# many origins, with a Tweedie power nearer Gamma for their spiky counts. Top-down candidates
# (models/topdown.py): the restaurant's orders forecast (the daily LightGBM above, on the
# restaurants' long history) x the item's units per order over 8 weeks, alone and blended
# equally with the item LightGBM; they bring the restaurant's season, trend and holidays.
# Items silent for more than 2x their own longest gap between sales (and at least 28 days) are
# forecast 0 (``features.model_frames.dormant_days``): taken off the till, still active on the menu.
# A new item borrows the median of its category's forecasts: a menu's mean is its bestsellers'.
ITEMS = TypeSpec("item_demand_daily", "weekday", 14, min_history_days=14, short_series="average",
                 dormant=(28, 2.0), peer_statistic="median",
                 candidates=("seasonal_naive", "seasonal_average", "lightgbm", "topdown", "lightgbm+topdown"),
                 lgbm=(("origins", 20), ("num_boost_round", 80), ("learning_rate", 0.12), ("num_leaves", 15),
                       ("min_data_in_leaf", 100), ("tweedie_variance_power", 1.5)),
                 restaurant_lgbm=DAILY.lgbm)


def daily_spec(scope: Scope) -> TypeSpec:
    """demand_daily's spec with the configured horizon (28 days by default, up to 90)."""
    return replace(DAILY, horizon_days=scope.forecast.demand_daily_horizon_days)


