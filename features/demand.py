"""Order counts per restaurant and local hour/day, aggregated in PostgreSQL, and the transforms
that turn them into model inputs.

Local time comes from each restaurant's IANA zone, inside SQL. An hour bucket is identified by
the instant its local hour starts (``created_at`` minus its offset into the local hour), which is
unambiguous across DST: the repeated autumn hour gives two buckets, the skipped spring hour none,
and half-hour zones (Asia/Kolkata) bucket on their own local hours.

The zone each restaurant is bucketed in is handed to SQL as a parameter after being checked in
Python: one restaurant with a zone PostgreSQL does not know would otherwise fail the query for
the whole shard. Such a restaurant is bucketed in UTC and the run record says so.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import available_timezones

import numpy as np
import pandas as pd

from core.replica import ReplicaReader
from core.units import Scope
from features.aggregate_cache import read_through
from features.calendar import add_calendar, add_holidays
from features.model_frames import DemandHistory
from features.order_ranges import IN_RANGE, RANGES_CTE, range_params, whole_ranges
from features.quality import valid
from features.timegrid import future_days, future_hours, hour_grid, local_date, local_midnight

# Orders the kitchen saw: cancelled orders never reached it; refunded ones did.
_COUNTED = "o.status <> 'cancelled'"
_ZONES = frozenset(available_timezones())

HOURLY_HISTORY_DAYS = 182
# A whole day without a single order is a closure, not a slow day, once a restaurant normally
# sells at least this many orders a day (P(0) of a Poisson(3) day is 5 %; real slow days are rarer).
CLOSED_MIN_DAILY_LEVEL = 3.0
# A day further than this factor from its weekday's local median is an outlier (event, outage).
OUTLIER_FACTOR = 3.0


def checked_zones(restaurants: pd.DataFrame) -> tuple[dict[int, str], list[str]]:
    """The zone to bucket each restaurant in, and a message per restaurant whose zone is unknown."""
    zones, messages = {}, []
    for r in restaurants.itertuples(index=False):
        tz = r.timezone if isinstance(r.timezone, str) and r.timezone in _ZONES else None
        if tz is None:
            messages.append(f"restaurant {r.id}: unknown timezone {r.timezone!r}; bucketed in UTC")
        zones[int(r.id)] = tz or "UTC"
    return zones, messages


def local_window(zones: dict[int, str], as_of: pd.Timestamp, days: int) -> tuple[dict[int, pd.Timestamp], pd.Timestamp]:
    """A history window anchored on local dates: per restaurant the first local day of the
    ``days - 1`` complete local days before the as-of day, and the UTC instant to read orders from
    (the earliest of those days' local midnights).

    Why local dates: ``as_of - N days`` in UTC lands on a different local day depending on the hour
    the run starts and on a DST change inside the window, so two runs of one local day would read
    windows a day apart and forecast differently from the same data.
    """
    as_of = pd.Timestamp(as_of)
    firsts = {rid: local_date(as_of, tz) - pd.Timedelta(days=days - 1) for rid, tz in zones.items()}
    if not firsts:
        return firsts, as_of - pd.Timedelta(days=days)
    start = min(local_midnight(firsts[rid], tz).tz_convert("UTC") for rid, tz in zones.items())
    return firsts, start


def daily_orders(
    reader: ReplicaReader,
    zones: dict[int, str],
    start: datetime,
    end: datetime,
    valid_until: datetime,
) -> pd.DataFrame:
    """Orders and revenue per restaurant and local date, for orders in [start, end) (UTC instants).

    Args:
        zones: restaurant id -> IANA zone (already checked, see ``checked_zones``).
        start, end: UTC instants bounding ``created_at``.
        valid_until: latest plausible timestamp; later rows are malformed and skipped.
    Returns columns restaurant_id, local_date (datetime64, local midnight, naive), orders (count),
    revenue (sum of order totals, in the restaurant's currency). Days without orders are absent.
    """
    return daily_orders_in(reader, zones, whole_ranges(zones, start, end), valid_until)


def daily_orders_in(reader: ReplicaReader, zones: dict[int, str], ranges: pd.DataFrame,
                    valid_until: datetime) -> pd.DataFrame:
    """``daily_orders`` over per-restaurant ranges (restaurant_id, lo, hi: UTC instants, disjoint)."""
    frame = reader.frame(
        f"""
        WITH {RANGES_CTE}
        SELECT o.restaurant_id,
               (o.created_at AT TIME ZONE z.tz)::date AS local_date,
               count(*) AS orders,
               coalesce(sum(o.total), 0)::float8 AS revenue
        FROM orders_order o
        JOIN z ON {IN_RANGE}
        WHERE {_COUNTED} AND {valid('orders_order', 'o')}
        GROUP BY 1, 2
        ORDER BY 1, 2
        """,
        {**range_params(zones, ranges), "valid_until": valid_until},
    )
    return _typed(frame, {"local_date": "date"})


def hourly_orders(
    reader: ReplicaReader,
    zones: dict[int, str],
    start: datetime,
    end: datetime,
    valid_until: datetime,
) -> pd.DataFrame:
    """Orders per restaurant and local hour, for orders in [start, end) (UTC instants).

    Args: as ``daily_orders``.
    Returns columns restaurant_id, hour_start (UTC instant the local hour starts), local_hour_start
    (naive local wall time), orders, one_time (every order of the hour at one local time of day)
    and first_time (the earliest, 'HH:MM:SS'): see ``untimed_restaurants``. Hours without orders
    are absent.
    """
    return hourly_orders_in(reader, zones, whole_ranges(zones, start, end), valid_until)


def hourly_orders_in(reader: ReplicaReader, zones: dict[int, str], ranges: pd.DataFrame,
                     valid_until: datetime) -> pd.DataFrame:
    """``hourly_orders`` over per-restaurant ranges (restaurant_id, lo, hi: UTC instants, disjoint)."""
    frame = reader.frame(
        f"""
        WITH {RANGES_CTE},
        o AS (
            SELECT o.restaurant_id, o.created_at, o.created_at AT TIME ZONE z.tz AS local_ts
            FROM orders_order o
            JOIN z ON {IN_RANGE}
            WHERE {_COUNTED} AND {valid('orders_order', 'o')}
        )
        SELECT restaurant_id,
               created_at - (local_ts - date_trunc('hour', local_ts)) AS hour_start,
               date_trunc('hour', local_ts) AS local_hour_start,
               count(*) AS orders,
               min(local_ts::time) = max(local_ts::time) AS one_time,
               min(local_ts::time)::text AS first_time
        FROM o
        GROUP BY 1, 2, 3
        ORDER BY 1, 2
        """,
        {**range_params(zones, ranges), "valid_until": valid_until},
    )
    return _typed(frame, {"hour_start": "utc", "local_hour_start": "naive"})


def untimed_restaurants(hourly: pd.DataFrame) -> set[int]:
    """Restaurants whose every order in ``hourly_orders``' window sits at one local time of day.

    Why: a chain that hands over daily totals (``sales_import.totals``), or an RMS that back-fills
    a day as one booking, records when a day's orders happened but not at what hour. Such a
    history has orders in a single hour of every day; an hourly forecast from it would be made-up
    hours, so the restaurant gets none and the run says why. A real restaurant's orders spread
    over several minutes even in a one-hour service.
    """
    if hourly.empty or "one_time" not in hourly:
        return set()
    per = hourly.groupby("restaurant_id").agg(one=("one_time", "all"), times=("first_time", "nunique"),
                                              orders=("orders", "sum"))
    return {int(r) for r in per.index[per["one"] & (per["times"] == 1) & (per["orders"] >= 2)]}


def _typed(frame: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    frame = frame.copy()
    if "restaurant_id" in frame:
        frame["restaurant_id"] = frame["restaurant_id"].astype("int64")
    for col in ("orders", "units"):
        if col in frame:
            frame[col] = frame[col].astype("float64")
    for col, kind in kinds.items():
        if kind == "utc":
            frame[col] = pd.to_datetime(frame[col], utc=True)
        else:
            frame[col] = pd.to_datetime(frame[col])
    return frame


# --------------------------------------------------------------------------- pure transforms
def mark_closed_days(daily: pd.DataFrame, min_level: float = CLOSED_MIN_DAILY_LEVEL) -> pd.DataFrame:
    """Flag whole local days with no orders at a restaurant that normally has orders.

    Why: a restaurant closed for refurbishment (or every Christmas) did not have zero demand;
    training on those zeros teaches a model that demand vanished. An all-zero series is never
    "closed": it is a restaurant without history and is handled by the fallback chain.

    Args:
        daily: series_id, ds (local date), y (orders that day).
        min_level: median orders on days with orders below which a zero day may be a slow day.
    Returns the frame with a boolean ``closed`` column.
    """
    out = daily.copy()
    positive_median = out[out["y"] > 0].groupby("series_id")["y"].median()
    level = out["series_id"].map(positive_median).fillna(0.0)
    out["closed"] = (out["y"] <= 0) & (level >= min_level)
    return out


def mark_outliers(daily: pd.DataFrame, factor: float = OUTLIER_FACTOR, weeks: int = 4) -> pd.DataFrame:
    """Flag open days far from the median of the same weekday in the surrounding weeks.

    Why: a one-off festival or an outage day would drag a level estimate for weeks; flagged days
    are left out of training targets and level statistics, never out of evaluation.

    Args:
        daily: series_id, ds (local date), y, closed.
        factor: a day above median x factor or below median / factor is an outlier.
        weeks: weeks either side of a day that form its reference (centred window).
    Returns the frame with a boolean ``outlier`` column.
    """
    out = daily.sort_values(["series_id", "ds"]).copy()
    y = out["y"].where(~out["closed"])
    key = [out["series_id"], out["ds"].dt.day_of_week]
    # one grouped rolling pass (not a Python rolling per series and weekday: 0.7 s on 120 items)
    median = (y.groupby(key).rolling(2 * weeks + 1, center=True, min_periods=weeks).median()
              .reset_index(level=[0, 1], drop=True).reindex(out.index))
    ratio = (out["y"] + 1.0) / (median + 1.0)
    out["outlier"] = (~out["closed"]) & median.notna() & (median >= CLOSED_MIN_DAILY_LEVEL) & (
        (ratio > factor) | (ratio < 1.0 / factor)
    )
    return out.sort_index()


def gap_messages(daily: pd.DataFrame, label: str, min_days: int = 7) -> list[str]:
    """One message per run of ``min_days`` or more closed days, for the run record."""
    messages = []
    for sid, g in daily.groupby("series_id"):
        closed = g.sort_values("ds")["closed"].to_numpy()
        ds = g.sort_values("ds")["ds"].to_numpy()
        run_start = None
        for i, c in enumerate(np.append(closed, False)):
            if c and run_start is None:
                run_start = i
            elif not c and run_start is not None:
                if i - run_start >= min_days:
                    messages.append(
                        f"{label} {sid}: no orders for {i - run_start} days from "
                        f"{pd.Timestamp(ds[run_start]).date()} (closure); excluded from training"
                    )
                run_start = None
    return messages


def _restaurant_series(scope, zones: dict[int, str]) -> pd.DataFrame:
    frame = scope.restaurants.loc[scope.restaurants["id"].isin(list(zones)), ["id", "country_code"]]
    frame = frame.rename(columns={"id": "series_id"})
    frame["series_id"] = frame["series_id"].astype("int64")
    frame["restaurant_id"] = frame["series_id"]
    frame["timezone"] = frame["series_id"].map(zones)
    frame["peer_group"] = "chain"
    return frame.reset_index(drop=True)


def decorate(frame: pd.DataFrame, series: pd.DataFrame) -> pd.DataFrame:
    """Calendar and holiday columns for a long frame, holidays from each series' country."""
    if frame.empty:
        return frame
    countries = series.set_index("series_id")["country_code"]
    return add_holidays(add_calendar(frame), countries)


def daily_demand_features(reader: ReplicaReader, scope: Scope, raw: pd.DataFrame | None = None) -> DemandHistory:
    """Complete local days strictly before the as-of day, from the local day ``history_days - 1``
    days before it (``local_window``) or the first day with orders.

    ``raw``: ``daily_orders`` from ``local_window``'s start to ``scope.as_of`` when the caller has
    read them already (the item features do).
    """
    zones, messages = checked_zones(scope.restaurants)
    firsts, start = local_window(zones, scope.as_of, scope.forecast.history_days)
    if raw is None:
        raw = read_through("daily", daily_orders_in, reader, scope, zones, start)
    series = _restaurant_series(scope, zones)
    histories, futures = [], []
    for sid, tz in zones.items():
        rows = raw[raw["restaurant_id"] == sid]
        last = local_date(scope.as_of, tz) - pd.Timedelta(days=1)
        first = firsts[sid]
        if len(rows):
            first = max(first, rows["local_date"].min())
        days = pd.date_range(first, last, freq="D")
        full = (
            rows.set_index("local_date")[["orders", "revenue"]]
            .reindex(days, fill_value=0.0)
            .rename_axis("ds")
            .reset_index()
            .rename(columns={"orders": "y"})
        )
        full.insert(0, "series_id", sid)
        histories.append(full)
        fut = future_days(tz, scope.as_of, scope.forecast.demand_daily_horizon_days)
        fut.insert(0, "series_id", sid)
        futures.append(fut)
    history = _concat(histories, ["series_id", "ds", "y", "revenue"])
    history = mark_outliers(mark_closed_days(history))
    messages += _empty_messages(history, series, "restaurant")
    messages += gap_messages(history, "restaurant")
    future = _concat(futures, ["series_id", "target_start", "ds"])
    return DemandHistory(decorate(history, series), decorate(future, series), series, "day", messages)


def hourly_demand_features(reader: ReplicaReader, scope: Scope, daily: DemandHistory | None = None) -> DemandHistory:
    """Every local hour (zeros included) of the last ``HOURLY_HISTORY_DAYS`` complete local days.

    Closed and outlier flags come from the day each hour belongs to: an hour at 3 am with no
    orders is a closed hour of an open day (real zero demand), a day without any order is not.
    ``daily``: the shard's ``daily_demand_features`` when the caller has them (the run's
    ``DemandInputs``), else read here.
    """
    zones, messages = checked_zones(scope.restaurants)
    firsts, start = local_window(zones, scope.as_of, min(HOURLY_HISTORY_DAYS, scope.forecast.history_days))
    raw = read_through("hourly", hourly_orders_in, reader, scope, zones, start)
    untimed = untimed_restaurants(raw)
    if untimed:
        messages.append(f"demand_hourly: no times of day in the history of {len(untimed)} restaurant"
                        f"{'' if len(untimed) == 1 else 's'} (every order at one local time of day, as daily "
                        f"totals are imported); no hourly forecast for them: {', '.join(map(str, sorted(untimed)))}")
        zones = {rid: tz for rid, tz in zones.items() if rid not in untimed}
    series = _restaurant_series(scope, zones)
    histories, futures = [], []
    for sid, tz in zones.items():
        rows = raw[raw["restaurant_id"] == sid]
        first = firsts[sid]
        if len(rows):
            first = max(first, rows["local_hour_start"].min().normalize())
        grid = hour_grid(tz, first, scope.as_of)
        grid = grid[grid["target_start"] + pd.Timedelta(hours=1) <= scope.as_of]
        full = grid.merge(
            rows[["hour_start", "orders"]].rename(columns={"hour_start": "target_start", "orders": "y"}),
            on="target_start",
            how="left",
        ).fillna({"y": 0.0})
        full.insert(0, "series_id", sid)
        histories.append(full[["series_id", "ds", "y", "target_start"]])
        fut = future_hours(tz, scope.as_of, scope.forecast.demand_hourly_horizon_hours)
        fut.insert(0, "series_id", sid)
        futures.append(fut)
    history = _concat(histories, ["series_id", "ds", "y", "target_start"])
    history = flag_hours_from_days(history)
    future = _concat(futures, ["series_id", "target_start", "ds"])
    messages += _empty_messages(history, series, "restaurant")
    # demand_daily's features: the hours of a day are scaled to its daily forecast
    if daily is None:
        daily = daily_demand_features(reader, scope)
    return DemandHistory(decorate(history, series), decorate(future, series), series, "hour", messages,
                         daily=daily)


def flag_hours_from_days(hourly: pd.DataFrame) -> pd.DataFrame:
    """Give each hour the closed/outlier flag of its local day (a partial last day is never closed)."""
    if hourly.empty:
        return hourly.assign(closed=pd.Series(dtype=bool), outlier=pd.Series(dtype=bool))
    day = hourly["ds"].dt.normalize()
    daily = hourly.assign(ds=day).groupby(["series_id", "ds"], as_index=False)["y"].sum()
    daily = mark_outliers(mark_closed_days(daily))
    last_day = hourly.assign(d=day).groupby("series_id")["d"].transform("max")
    flags = daily.set_index(["series_id", "ds"])[["closed", "outlier"]]
    idx = pd.MultiIndex.from_arrays([hourly["series_id"], day])
    out = hourly.copy()
    out["closed"] = flags["closed"].reindex(idx).to_numpy() & (day != last_day).to_numpy()
    out["outlier"] = flags["outlier"].reindex(idx).to_numpy() & (day != last_day).to_numpy()
    return out


def _empty_messages(history: pd.DataFrame, series: pd.DataFrame, label: str) -> list[str]:
    totals = history.groupby("series_id")["y"].sum() if len(history) else pd.Series(dtype=float)
    out = []
    for sid in series["series_id"]:
        if float(totals.get(sid, 0.0)) <= 0:
            out.append(f"{label} {sid}: no orders in its history; forecast from the chain average")
    return out


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
    return pd.concat(frames, ignore_index=True)


