"""The demand types' model specs: which candidates compete, over which horizon, with which
LightGBM settings (``models.forecasting.TypeSpec``). The units and their rows are in
``prediction_types.demand``; why each value, in docs/demand.md. ``reconcile_hourly`` makes a
restaurant-day's hourly forecasts add up to its daily one.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from core.units import Scope
from models.forecasting import TypeSpec

INTERVAL_LEVEL = 0.8

# Daily: few series per shard (its restaurants), so many overlapping origins (every 3 days) and
# small trees; they learn how the level drifts (trend, season) from the series' own past.
# The chain uses one method, by default the equal-weight combination ("ensemble") of two members
# that err differently: the plain lagged LightGBM (one model over the shard's restaurants, lags of
# 28 days and more, calendar, holidays with their eves and days after) and Prophet per restaurant
# (its own weekly shape and trend, the holidays and the days around them as regressors, outlier
# days left out; fitted at the weekly reselection only). The origin LightGBM ("lightgbm") is left
# out of the default: its offset is the last 28 days' level, which over-forecast January after a
# strong December by 8 % on the public chain's third tuning window (WAPE 0.457 alone, 0.393 in a
# three-way mean, against 0.373 for the two), and with the seasonal naive it is no longer backtested
# (it cost most of a first night). The pooled backtest of every shard may replace the
# default (models.chain_decision); a shard's own few origins never do. Chosen on the public
# chain's tuning windows (docs/demand.md), never on its final window.
# Prophet's forecasts stored with its fits at the reselection (``ProphetPerSeries.forecast_days``):
# the longest daily horizon (90 days) plus two weeks of nights that keep those fits.
PROPHET_STORED_DAYS = 104
DAILY = TypeSpec("demand_daily", "weekday", 28,
                 candidates=("seasonal_average", "lightgbm_plain", "prophet", "ensemble"),
                 ensemble=("lightgbm_plain", "prophet"),
                 default="ensemble",
                 prophet=(("holiday_days", True), ("drop_outliers", True), ("forecast_days", PROPHET_STORED_DAYS)),
                 lgbm=(("origins", 70), ("origin_step_days", 3), ("num_leaves", 7), ("min_data_in_leaf", 20),
                       ("num_boost_round", 150)))
# Prophet per restaurant on hourly data costs seconds a series; it is compared in bench/demand.py.
# Six weekly backtest origins (not three): hourly scores are noisy, and the LightGBM has to beat
# the four-week mean on most of them (models.backtest.select).
HOURLY = TypeSpec("demand_hourly", "weekday_hour", 7, min_history_days=21, backtest_folds=6,
                  candidates=("seasonal_naive", "seasonal_average", "lightgbm", "ensemble"),
                  ensemble=("seasonal_average", "lightgbm"), default="ensemble",
                  lgbm=(("origins", 10), ("origin_step_days", 7)))
# Items: thousands of short, zero-heavy series; a lean model (80 rounds of 15-leaf trees) over
# many origins, with a Tweedie power nearer Gamma for their spiky counts. Top-down candidates
# (models/topdown.py): the restaurant's orders forecast (the daily LightGBM above, on the
# restaurants' long history) x the item's units per order over 8 weeks, alone and blended
# equally with the item LightGBM; they bring the restaurant's season, trend and holidays.
# Items silent for more than 2x their own longest gap between sales (and at least 28 days) are
# forecast 0 (``features.model_frames.dormant_days``): taken off the till, still active on the menu.
# A new item borrows the median of its category's forecasts: a menu's mean is its bestsellers';
# scaled towards its own rate so far, the category counting as 7 days of evidence (a week: one
# of each weekday), so an item a week on the menu is judged half by its own sales.
ITEMS = TypeSpec("item_demand_daily", "weekday", 14, min_history_days=14, short_series="average",
                 dormant=(28, 2.0), peer_statistic="median", peer_shrink_days=7,
                 candidates=("seasonal_naive", "seasonal_average", "lightgbm", "topdown", "lightgbm+topdown",
                             "lightgbm_plain", "ensemble"),
                 ensemble=("seasonal_average", "lightgbm", "topdown", "lightgbm_plain"),
                 lgbm=(("origins", 20), ("num_boost_round", 80), ("learning_rate", 0.12), ("num_leaves", 15),
                       ("min_data_in_leaf", 100), ("tweedie_variance_power", 1.5)),
                 restaurant_lgbm=DAILY.lgbm)


def daily_spec(scope: Scope) -> TypeSpec:
    """demand_daily's spec with the configured horizon (28 days by default, up to 90)."""
    return replace(DAILY, horizon_days=scope.forecast.demand_daily_horizon_days)




def hourly_day_shares(history: pd.DataFrame, future: pd.DataFrame, weeks: int = 4) -> pd.Series:
    """Per future hour row: the share of its local day's orders that the day's hours in ``future``
    normally carry, from the series' last ``weeks`` weeks of open days (1.0 for a day the window
    covers whole; the run's first and last day are partial when it does not start at midnight).

    Args:
        history: hourly series_id, ds (naive local hour start), y, closed.
        future: hourly series_id, ds (the hours forecast).
    The profile is the mean of each weekday-hour over those weeks; without any order in it the
    share is the covered fraction of 24 hours.
    """
    if future.empty:
        return pd.Series(dtype=float, index=future.index)
    h = history[~history["closed"].astype(bool)] if len(history) else history
    if len(h):
        cut = h.groupby("series_id")["ds"].transform("max") - pd.Timedelta(days=7 * weeks)
        h = h[h["ds"] > cut]
    slot = lambda ds: ds.dt.day_of_week * 24 + ds.dt.hour  # noqa: E731
    profile = (h.groupby([h["series_id"], slot(h["ds"]).rename("slot")])["y"].mean() if len(h)
               else pd.Series(dtype=float))
    day = future["ds"].dt.normalize()
    # every hour (0..23) of each future day, against the hours the window holds
    days = pd.DataFrame({"series_id": future["series_id"], "day": day}).drop_duplicates()
    full = days.loc[days.index.repeat(24)].assign(hour=np.tile(np.arange(24), len(days)))
    full_slot = full["day"].dt.day_of_week * 24 + full["hour"]
    full["p"] = profile.reindex(pd.MultiIndex.from_arrays([full["series_id"], full_slot])).fillna(0.0).to_numpy()
    whole = full.groupby(["series_id", "day"])["p"].sum()
    rows = pd.DataFrame({"series_id": future["series_id"], "day": day, "hour": future["ds"].dt.hour})
    rows = rows.drop_duplicates(["series_id", "day", "hour"])
    rows["p"] = profile.reindex(pd.MultiIndex.from_arrays(
        [rows["series_id"], rows["day"].dt.day_of_week * 24 + rows["hour"]])).fillna(0.0).to_numpy()
    covered = rows.groupby(["series_id", "day"]).agg(p=("p", "sum"), n=("hour", "size"))
    share = np.where(whole.reindex(covered.index).to_numpy() > 0,
                     covered["p"] / whole.reindex(covered.index).replace(0, np.nan), covered["n"] / 24.0)
    share = pd.Series(np.clip(np.nan_to_num(share, nan=1.0), 0.0, 1.0), index=covered.index)
    return pd.Series(share.reindex(pd.MultiIndex.from_arrays([future["series_id"], day])).to_numpy(),
                     index=future.index)


def reconcile_hourly(hourly: pd.DataFrame, daily: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Scale each restaurant-day's hourly forecasts to its demand_daily forecast.

    Rule (docs/demand.md, Coherence): the hours of a local day in the window sum to the day's daily
    forecast x their usual share of the day (``hourly_day_shares``; 1 for a whole day), so a
    whole day's hours add up to demand_daily exactly. Each hour keeps its part of the day as the
    hourly model forecast it; ``lower``/``upper`` are scaled by the same factor (the hourly
    interval's width relative to its value is kept). A day whose hourly forecasts are all zero
    while the daily one is not (a closure only one of the two knows) takes the daily value spread
    over the hours by the weekday-hour profile, with intervals from 0 to that value. Days outside
    the daily horizon are left as they are.

    Args:
        hourly: series_id, ds, yhat, lower, upper (the hourly chain's output).
        daily: series_id, ds (local day), yhat (the demand_daily chain's output).
        history: the hourly history (series_id, ds, y, closed).
    Returns ``hourly`` with yhat/lower/upper scaled and a ``daily_factor`` column (NaN if unscaled).
    """
    out = hourly.copy()
    out["daily_factor"] = np.nan
    if out.empty or daily.empty:
        return out
    day = out["ds"].dt.normalize()
    key = pd.MultiIndex.from_arrays([out["series_id"], day])
    target_day = daily.drop_duplicates(["series_id", "ds"]).set_index(["series_id", "ds"])["yhat"]
    target = target_day.reindex(key).to_numpy(float) * hourly_day_shares(history, out).to_numpy(float)
    sums = out.groupby([out["series_id"], day])["yhat"].transform("sum").to_numpy(float)
    ok = np.isfinite(target)
    scale = ok & (sums > 0)
    factor = np.where(scale, target / np.where(sums > 0, sums, 1.0), np.nan)
    for col in ("yhat", "lower", "upper"):
        out.loc[scale, col] = out.loc[scale, col].to_numpy(float) * factor[scale]
    out.loc[scale, "daily_factor"] = factor[scale]
    spread = ok & (sums <= 0) & (target > 0)
    if spread.any():
        h = history[~history["closed"].astype(bool)] if len(history) else history
        prof = h.groupby([h["series_id"], h["ds"].dt.day_of_week * 24 + h["ds"].dt.hour])["y"].mean()
        p = prof.reindex(pd.MultiIndex.from_arrays(
            [out["series_id"], out["ds"].dt.day_of_week * 24 + out["ds"].dt.hour])).fillna(0.0).to_numpy()
        p = np.where(spread, p, 0.0)
        psum = pd.Series(p).groupby([out["series_id"].to_numpy(), day.to_numpy()]).transform("sum").to_numpy()
        n = pd.Series(spread.astype(float)).groupby([out["series_id"].to_numpy(), day.to_numpy()]).transform("sum")
        weight = np.where(psum > 0, p / np.where(psum > 0, psum, 1.0), 1.0 / np.maximum(n.to_numpy(), 1.0))
        value = target * weight
        out.loc[spread, "yhat"] = value[spread]
        out.loc[spread, "lower"] = 0.0
        out.loc[spread, "upper"] = value[spread]
        if "closed_pattern" in out:
            out.loc[spread, "closed_pattern"] = False
    return out


def reconcile_items(items: pd.DataFrame, daily: pd.DataFrame, history: pd.DataFrame, orders: pd.DataFrame,
                    restaurant_of: pd.Series, weeks: int = 8) -> pd.DataFrame:
    """Scale each restaurant-day's item forecasts to its orders forecast x its units per order.

    Rule (docs/demand.md, Coherence): units per order = units sold of the restaurant's forecast
    items (dormant ones left out) / its orders, over the open days of the last ``weeks`` weeks;
    the items of a day are scaled together, by one factor, so they sum to the day's demand_daily
    forecast x that ratio; each keeps its part of the day, and its interval is scaled with it.
    Zero forecasts (dormant, closed, not open) stay zero; a day without a daily forecast is left.

    Args:
        items: item chain output: series_id, ds, yhat, lower, upper[, dormant_days].
        daily: demand_daily chain output: series_id (= restaurant id), ds, yhat.
        history: item history (series_id, ds, y, closed).
        orders: the restaurants' daily history (series_id = restaurant id, ds, y, closed).
        restaurant_of: item series_id -> restaurant id.
    Returns ``items`` scaled, with an ``orders_factor`` column (NaN where unscaled).
    """
    out = items.copy()
    out["orders_factor"] = np.nan
    if out.empty or daily.empty or history.empty or orders.empty:
        return out
    rid = out["series_id"].map(restaurant_of)
    live = out.loc[out.get("dormant_days", pd.Series(np.nan, index=out.index)).isna(), "series_id"].unique()
    h = history[history["series_id"].isin(live) & ~history["closed"].astype(bool)]
    o = orders[~orders["closed"].astype(bool)]
    since = o.groupby("series_id")["ds"].transform("max") - pd.Timedelta(days=7 * weeks)
    o = o[o["ds"] > since]
    days = set(zip(o["series_id"], o["ds"]))
    h = h.assign(rid=h["series_id"].map(restaurant_of))
    h = h[[k in days for k in zip(h["rid"], h["ds"])]]
    ratio = h.groupby("rid")["y"].sum() / o.groupby("series_id")["y"].sum()
    target = daily.drop_duplicates(["series_id", "ds"]).set_index(["series_id", "ds"])["yhat"]
    want = target.reindex(pd.MultiIndex.from_arrays([rid, out["ds"]])).to_numpy(float) * rid.map(ratio).to_numpy(float)
    sums = out.groupby([rid, out["ds"]])["yhat"].transform("sum").to_numpy(float)
    ok = np.isfinite(want) & (sums > 0)
    factor = np.where(ok, want / np.where(sums > 0, sums, 1.0), np.nan)
    for col in ("yhat", "lower", "upper"):
        out.loc[ok, col] = out.loc[ok, col].to_numpy(float) * factor[ok]
    out.loc[ok, "orders_factor"] = factor[ok]
    return out
