"""The model-feature transforms of the demand types: DataFrame in, DataFrame out, no SQL.

Kept apart from the readers (``features.demand``, ``features.items``), as mlforecast keeps its
feature engineering apart from fitting: the statistics a model learns from each origin (lags,
windowed means, year-over-year ratios, named from their parameters), which slots were closed or
idle, all computed from the history frames the readers built.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


# --------------------------------------------------------------------------- the readers' bundle
@dataclass
class DemandHistory:
    """Complete per-series history (zeros where nothing was sold) and the periods to forecast.

    history: series_id, ds (naive local period start), y, closed, outlier, calendar and holiday
        columns (+ revenue for daily restaurant series, target_start for hourly ones)
    future: series_id, ds, target_start (UTC instant), calendar and holiday columns
    series: series_id, restaurant_id, country_code, timezone, peer_group (+ item attributes)
    """

    history: pd.DataFrame
    future: pd.DataFrame
    series: pd.DataFrame
    granularity: str
    messages: list[str] = field(default_factory=list)
    retired_ids: list[int] = field(default_factory=list)  # entities whose old rows must go
    # item types: the restaurants' daily orders (daily_demand_features' history), for top-down
    # candidates (models.topdown); None for restaurant types
    context: pd.DataFrame | None = None
    # hourly and item types: demand_daily's own features of the shard, so their forecasts can be
    # made to agree with the daily one (models.demand.reconcile_hourly); None otherwise
    daily: "DemandHistory | None" = None


# --------------------------------------------------------------------------- origin statistics
SLOTS = {
    "weekday": lambda ds: ds.dt.day_of_week,
    "weekday_hour": lambda ds: ds.dt.day_of_week * 24 + ds.dt.hour,
}


class _Windows:
    """Means of usable history over [start, end) windows per target row, by binary search.

    Why: the features of every (series, origin, target) row are window means; one sort of the
    history plus prefix sums answers all of them at once, where grouping the history per origin
    cost more than the boosting on item shards with thousands of series.
    """

    _SPAN = np.int64(1) << np.int64(40)  # seconds: keys are (group code, seconds since the first ds)

    def __init__(self, usable: pd.DataFrame, history: pd.DataFrame, targets: pd.DataFrame):
        self.usable, self.targets = usable, targets
        self.t0 = history["ds"].min() if len(history) else pd.Timestamp(0)
        codes = pd.Index(pd.unique(pd.concat([history["series_id"], targets["series_id"]])))
        self.codes = codes
        self.u_code = codes.get_indexer(usable["series_id"]).astype(np.int64)
        self.t_code = codes.get_indexer(targets["series_id"]).astype(np.int64)
        self.cache: dict = {}

    def _seconds(self, ts: pd.Series) -> np.ndarray:
        """Seconds since the first history period, clipped into one key span (nothing lies before)."""
        seconds = (pd.to_datetime(ts) - self.t0).dt.total_seconds().to_numpy()
        return np.clip(np.nan_to_num(seconds, nan=0.0), 0, float(self._SPAN - 1)).astype(np.int64)

    def _table(self, slot):
        if slot in self.cache:
            return self.cache[slot]
        u = self.usable
        g = self.u_code if slot is None else self.u_code * 200 + slot(u["ds"]).to_numpy(np.int64)
        keys = g * self._SPAN + self._seconds(u["ds"])
        order = np.argsort(keys, kind="stable")
        y = u["y"].to_numpy(float)[order]
        table = (keys[order], np.concatenate([[0.0], np.cumsum(y)]),
                 np.concatenate([[0.0], np.cumsum(y <= 0)]))
        self.cache[slot] = table
        return table

    def mean(self, slot, start: pd.Series, end: pd.Series, zeros: bool = False) -> pd.Series:
        """Per target row: mean y (or share of zero y) of its series' usable rows in [start, end),
        restricted to the target's own slot when ``slot`` is given; NaN without rows."""
        keys, csum, czero = self._table(slot)
        g = self.t_code if slot is None else self.t_code * 200 + slot(self.targets["ds"]).to_numpy(np.int64)
        lo = np.searchsorted(keys, g * self._SPAN + self._seconds(start), side="left")
        hi = np.searchsorted(keys, g * self._SPAN + self._seconds(end), side="left")
        n = (hi - lo).astype(float)
        total = (czero if zeros else csum)[hi] - (czero if zeros else csum)[lo]
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(n > 0, total / n, np.nan)
        value[self.t_code < 0] = np.nan
        return pd.Series(value, index=self.targets.index)


@dataclass(frozen=True)
class OriginFeatures:
    """Recent-history statistics of each series as seen from a forecast origin.

    Why origins rather than plain lags: one model forecasts 1 to 90 days ahead, so it may only use
    what was known at the origin. Each target row (series, ds, origin) gets the series' level, its
    recent weekly (and daily) shape relative to that level, its trend and last year's momentum,
    all computed from open, non-outlier periods strictly before the origin. Column names derive
    from the parameters, so two configurations never silently share a name.

    Args:
        slot: "weekday" (daily series) or "weekday_hour" (hourly series): the seasonal slot.
        level_days: days of history averaged for the level (orders or units per period).
        short_days: days of the short level compared with the long one (momentum).
        slot_weeks: weeks of same-slot history for the slot's share of the level (one column
            each: a short window follows change, a long one is less noisy).
        yoy: add last year's momentum (needs a year of history; missing values stay NaN).
    """

    slot: str = "weekday"
    level_days: int = 28
    short_days: int = 7
    slot_weeks: tuple[int, ...] = (4, 12)
    yoy: bool = True

    @property
    def level_column(self) -> str:
        return f"level_d{self.level_days}"

    @property
    def columns(self) -> list[str]:
        L, S = self.level_days, self.short_days
        cols = [
            self.level_column,
            f"level_ratio_d{S}_d{L}",
            f"trend_d{L}",
            *(f"slot_share_w{w}" for w in self.slot_weeks),
            f"zero_share_d{L}",
            "age_days",
            "h_days",
        ]
        if self.slot == "weekday_hour":
            cols.append(f"hour_share_d{L}")
        if self.yoy:
            cols.append("yoy_momentum_364")
        return cols

    def transform(self, history: pd.DataFrame, targets: pd.DataFrame) -> pd.DataFrame:
        """Add the feature columns to ``targets``.

        Args:
            history: series_id, ds, y, closed, outlier (naive local period starts).
            targets: series_id, ds, origin (naive local instant; only history before it is used).
        Returns targets (same row order) with ``columns`` added; a series without usable history
        before its origin gets NaN level.
        """
        L, S = self.level_days, self.short_days
        day = pd.Timedelta(days=1)
        result = targets.copy()
        o = pd.to_datetime(targets["origin"])
        usable = history[~(history["closed"] | history["outlier"])]
        win = _Windows(usable, history, targets)
        level = win.mean(None, o - L * day, o)
        lvl = level.where(level > 0)
        result[self.level_column] = level
        result[f"level_ratio_d{S}_d{L}"] = win.mean(None, o - S * day, o) / lvl
        result[f"trend_d{L}"] = level / win.mean(None, o - 2 * L * day, o - L * day).where(lambda v: v > 0)
        result[f"zero_share_d{L}"] = win.mean(None, o - L * day, o, zeros=True)
        slot_of = SLOTS[self.slot]
        for w in self.slot_weeks:
            result[f"slot_share_w{w}"] = win.mean(slot_of, o - 7 * w * day, o) / lvl
        if self.slot == "weekday_hour":
            result[f"hour_share_d{L}"] = win.mean(lambda ds: ds.dt.hour, o - L * day, o) / lvl
        result["age_days"] = (o - targets["series_id"].map(history.groupby("series_id")["ds"].min())).dt.total_seconds() / 86400.0
        result["h_days"] = (targets["ds"] - o).dt.total_seconds() / 86400.0
        if self.yoy:
            result["yoy_momentum_364"] = self._yoy(history, result)
        return result

    def _yoy(self, history: pd.DataFrame, targets: pd.DataFrame) -> np.ndarray:
        """Last year's change from (origin - 28 days .. origin) to (target +/- 7 days), a ratio.

        Vectorised over series (one wide date x series table, rolled once): item shards have
        thousands of series, and a loop per series cost more than the boosting itself.
        """
        year = pd.Timedelta(days=364)
        if history.empty or history["ds"].max() - history["ds"].min() < year:
            return np.full(len(targets), np.nan)
        day = history["ds"].dt.normalize()
        y = history["y"].where(~(history["closed"] | history["outlier"]))
        daily = y.groupby([day.rename("date"), history["series_id"]]).sum(min_count=1).unstack("series_id")
        daily = daily.reindex(pd.date_range(daily.index.min(), daily.index.max(), freq="D"))
        centred = daily.rolling(15, center=True, min_periods=7).mean().stack(future_stack=True)
        trailing = daily.rolling(self.level_days, min_periods=self.level_days // 2).mean().shift(1)
        trailing = trailing.stack(future_stack=True)
        tkey = pd.MultiIndex.from_arrays([targets["ds"].dt.normalize() - year, targets["series_id"]])
        okey = pd.MultiIndex.from_arrays([pd.to_datetime(targets["origin"]).dt.normalize() - year,
                                          targets["series_id"]])
        c = centred.reindex(tkey).to_numpy(float)
        t = trailing.reindex(okey).to_numpy(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(t > 0, c / t, np.nan)


def known_closures(history: pd.DataFrame, future: pd.DataFrame, weeks: int = 4) -> pd.Series:
    """Which future rows fall on a day the restaurant is known to be closed; a boolean per row.

    Evidence, not guesses: a public holiday (by name) closed on every one of its occurrences in
    the history (e.g. closed every Christmas), or a weekday closed on each of its last ``weeks``
    occurrences while other days of those weeks were open (closed every Monday). A restaurant
    closed outright for the last weeks (refurbishment) is not a pattern: its reopening date is
    unknown, so it is forecast as open.

    Args:
        history: series_id, ds, closed, holiday_name (daily or hourly rows).
        future: series_id, ds, holiday_name.
    """
    if history.empty or future.empty:
        return pd.Series(False, index=future.index)
    day = history["ds"].dt.normalize()
    days = (
        history.assign(day=day)
        .groupby(["series_id", "day"], as_index=False)
        .agg(closed=("closed", "all"), holiday_name=("holiday_name", "first"))
    )
    # vectorised over series: item shards have thousands of them
    hol = days[days["holiday_name"] != ""]
    closed_holidays = hol.groupby(["series_id", "holiday_name"])["closed"].all()
    closed_holidays = closed_holidays[closed_holidays]
    last = days[days["day"] > days.groupby("series_id")["day"].transform("max") - pd.Timedelta(days=7 * weeks)]
    per_series = last.groupby("series_id")["closed"].agg(["size", "all"])
    pattern = per_series.index[(per_series["size"] >= 7 * weeks) & ~per_series["all"]]
    last = last[last["series_id"].isin(pattern)]
    weekday = last.groupby([last["series_id"], last["day"].dt.day_of_week.rename("wd")])["closed"].agg(["size", "all"])
    closed_weekdays = weekday[(weekday["size"] >= weeks) & weekday["all"]]
    sid = future["series_id"].astype("int64")
    on_holiday = pd.MultiIndex.from_arrays([sid, future["holiday_name"]]).isin(closed_holidays.index)
    on_weekday = pd.MultiIndex.from_arrays([sid, future["ds"].dt.normalize().dt.day_of_week]).isin(
        closed_weekdays.index)
    flags = np.asarray(on_holiday) | np.asarray(on_weekday)
    return pd.Series(flags, index=future.index, dtype=bool)


def dormant_days(history: pd.DataFrame, floor_days: int = 28, gap_factor: float = 2.0) -> pd.Series:
    """Days since the last sale of each series that has gone quiet for longer than it plausibly
    does: more than ``gap_factor`` x its own longest gap between sales, and at least ``floor_days``.

    Why: an item taken off the till but left active on the menu (or a seasonal special) has
    months of zeros; a model or its category's average still forecasts it a little every day,
    phantom units that add up over a menu. Its own rhythm says how long it may stay silent: an
    item that sells every few days is dead after four weeks, one that sold every five weeks only
    after ten. A sale resets the count, so an item that sells again comes back to the model.

    Args:
        history: series_id, ds (local days), y, closed.
        floor_days: never dormant after fewer silent days than this (a slow month is not death).
        gap_factor: how many of its longest gaps an item may stay silent.
    Returns days without a sale (to the history's last day) of the dormant series, by series_id;
    a series that never sold counts from its first day. Gaps count calendar days.
    """
    if history.empty:
        return pd.Series(dtype=float)
    day = history["ds"].dt.normalize()
    frame = history.assign(day=day)
    last_day = frame.groupby("series_id")["day"].max()
    first_day = frame.groupby("series_id")["day"].min()
    sold = frame[(frame["y"] > 0) & ~frame["closed"].astype(bool)].drop_duplicates(["series_id", "day"])
    sold = sold.sort_values(["series_id", "day"])
    gaps = sold.groupby("series_id")["day"].diff().dt.days
    lead = (sold.groupby("series_id")["day"].min() - first_day.reindex(sold["series_id"].unique())).dt.days
    longest = pd.concat([gaps.groupby(sold["series_id"]).max(), lead], axis=1).max(axis=1)
    last_sale = sold.groupby("series_id")["day"].max()
    silent = (last_day - last_sale.reindex(last_day.index)).dt.days
    silent = silent.fillna((last_day - first_day).dt.days + 1)  # never sold in its history
    limit = np.maximum(float(floor_days), gap_factor * longest.reindex(last_day.index).fillna(0.0))
    out = silent[silent > limit]
    return out.astype(float).rename("dormant_days")


def idle_slots(history: pd.DataFrame, rows: pd.DataFrame, weeks: int = 4) -> pd.Series:
    """Which ``rows`` fall on an hourly slot (weekday x local hour) without a single order in the
    series' last ``weeks`` weeks of ``history``: hours the restaurant is not serving, a boolean per row.

    Why: a 3 am hour at a restaurant closed at night is zero by construction; scoring it, or
    calibrating intervals on it, counts certain zeros as forecast skill and pulls the interval
    width of the open hours towards nothing (as closed days, they are not demand).

    Args:
        history: series_id, ds (naive local hour starts), y (orders), before the rows' periods.
        rows: series_id, ds (hours to classify).
    """
    if history.empty or rows.empty:
        return pd.Series(False, index=rows.index)
    cut = history.groupby("series_id")["ds"].transform("max") - pd.Timedelta(days=7 * weeks)
    recent = history[history["ds"] > cut]
    slot = SLOTS["weekday_hour"]
    served = recent.groupby([recent["series_id"], slot(recent["ds"]).rename("slot")])["y"].sum()
    key = pd.MultiIndex.from_arrays([rows["series_id"], slot(rows["ds"])])
    return pd.Series(served.reindex(key).fillna(0.0).to_numpy() <= 0, index=rows.index)


# --------------------------------------------------------------------------- plain lags
@dataclass(frozen=True)
class LagFeatures:
    """Direct lags a plain global model reads: the same slot ``w`` weeks back for ``weeks``
    consecutive weeks starting at the first whole week at or beyond ``min_lag_days`` (the
    horizon, so every target of the horizon has them known at its origin), their mean, and the
    series' mean daily total over ``level_days`` days ending ``min_lag_days`` days before the
    target's day. Closed periods are missing, not zero. No origins: a row's features depend on its
    own date only, which is why the lags must reach past the horizon.

    Args:
        min_lag_days: the shortest lag (days); the type's horizon.
        weeks: how many weekly lags.
        level_days: days averaged for the lagged level.
    """

    min_lag_days: float = 28
    weeks: int = 5
    level_days: int = 28

    @property
    def lag_weeks(self) -> list[int]:
        first = max(1, int(np.ceil(self.min_lag_days / 7)))
        return list(range(first, first + self.weeks))

    @property
    def lag_days(self) -> int:
        return max(1, int(np.ceil(self.min_lag_days)))

    @property
    def columns(self) -> list[str]:
        return [f"lag_w{w}" for w in self.lag_weeks] + ["lag_mean", f"level_d{self.level_days}_lag{self.lag_days}"]

    def transform(self, history: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
        """The lag columns for ``rows`` (series_id, ds), read from ``history`` (series_id, ds, y,
        closed); same row order and index as ``rows``."""
        src = history.assign(y=history["y"].where(~history["closed"].astype(bool)))[["series_id", "ds", "y"]]
        src = src.drop_duplicates(["series_id", "ds"]).set_index(["series_id", "ds"])["y"]
        out = pd.DataFrame(index=rows.index)
        for w in self.lag_weeks:
            key = pd.MultiIndex.from_arrays([rows["series_id"], rows["ds"] - pd.Timedelta(days=7 * w)])
            out[f"lag_w{w}"] = src.reindex(key).to_numpy(float)
        out["lag_mean"] = out[[f"lag_w{w}" for w in self.lag_weeks]].mean(axis=1)
        day = src.index.get_level_values(1).normalize()
        daily = src.groupby([src.index.get_level_values(0).rename("series_id"), day.rename("day")]).sum(min_count=1)
        wide = daily.unstack("series_id")
        if len(wide):
            wide = wide.reindex(pd.date_range(wide.index.min(), wide.index.max(), freq="D"))
        level = wide.rolling(self.level_days, min_periods=7).mean().stack(future_stack=True)
        level.index = level.index.set_names(["day", "series_id"])
        key = pd.MultiIndex.from_arrays([rows["ds"].dt.normalize() - pd.Timedelta(days=self.lag_days),
                                         rows["series_id"]])
        out[f"level_d{self.level_days}_lag{self.lag_days}"] = level.reindex(key).to_numpy(float)
        return out
