"""Order counts per restaurant and local hour/day, aggregated in PostgreSQL.

Local time comes from each restaurant's IANA zone, inside SQL. An hour bucket is identified by
the instant its local hour starts (``created_at`` minus its offset into the local hour), which is
unambiguous across DST: the repeated autumn hour gives two buckets, the skipped spring hour none,
and half-hour zones (Asia/Kolkata) bucket on their own local hours.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from features.quality import valid
from worker.replica import ReplicaReader

# Orders the kitchen saw: cancelled orders never reached it; refunded ones did.
_COUNTED = "o.status <> 'cancelled'"


def daily_orders(
    reader: ReplicaReader,
    restaurant_ids: list[int],
    start: datetime,
    end: datetime,
    valid_until: datetime,
) -> pd.DataFrame:
    """Orders and revenue per restaurant and local date, for orders in [start, end) (UTC instants).

    Returns columns restaurant_id, local_date (datetime64, local midnight, naive), orders (count),
    revenue (sum of order totals, in the restaurant's currency). Days without orders are absent.
    """
    frame = reader.frame(
        f"""
        SELECT o.restaurant_id,
               (o.created_at AT TIME ZONE r.timezone)::date AS local_date,
               count(*) AS orders,
               coalesce(sum(o.total), 0)::float8 AS revenue
        FROM orders_order o
        JOIN restaurants_restaurant r ON r.id = o.restaurant_id
        WHERE o.restaurant_id = ANY(:rids) AND o.created_at >= :start AND o.created_at < :end
          AND {_COUNTED} AND {valid('orders_order', 'o')}
        GROUP BY 1, 2
        ORDER BY 1, 2
        """,
        {"rids": restaurant_ids, "start": start, "end": end, "valid_until": valid_until},
    )
    return _typed(frame, {"local_date": "date"})


def hourly_orders(
    reader: ReplicaReader,
    restaurant_ids: list[int],
    start: datetime,
    end: datetime,
    valid_until: datetime,
) -> pd.DataFrame:
    """Orders per restaurant and local hour, for orders in [start, end) (UTC instants).

    Returns columns restaurant_id, hour_start (UTC instant the local hour starts), local_hour_start
    (naive local wall time), orders. Hours without orders are absent.
    """
    frame = reader.frame(
        f"""
        WITH o AS (
            SELECT o.restaurant_id, o.created_at, o.created_at AT TIME ZONE r.timezone AS local_ts
            FROM orders_order o
            JOIN restaurants_restaurant r ON r.id = o.restaurant_id
            WHERE o.restaurant_id = ANY(:rids) AND o.created_at >= :start AND o.created_at < :end
              AND {_COUNTED} AND {valid('orders_order', 'o')}
        )
        SELECT restaurant_id,
               created_at - (local_ts - date_trunc('hour', local_ts)) AS hour_start,
               date_trunc('hour', local_ts) AS local_hour_start,
               count(*) AS orders
        FROM o
        GROUP BY 1, 2, 3
        ORDER BY 1, 2
        """,
        {"rids": restaurant_ids, "start": start, "end": end, "valid_until": valid_until},
    )
    return _typed(frame, {"hour_start": "utc", "local_hour_start": "naive"})


def _typed(frame: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    frame = frame.copy()
    if "restaurant_id" in frame:
        frame["restaurant_id"] = frame["restaurant_id"].astype("int64")
    if "orders" in frame:
        frame["orders"] = frame["orders"].astype("float64")
    for col, kind in kinds.items():
        if kind == "utc":
            frame[col] = pd.to_datetime(frame[col], utc=True)
        else:
            frame[col] = pd.to_datetime(frame[col])
    return frame


# --------------------------------------------------------------------------- unit features
from dataclasses import dataclass  # noqa: E402

from features.timegrid import future_days, future_hours, hour_grid, local_date  # noqa: E402

HOURLY_HISTORY_DAYS = 182


@dataclass
class DemandHistory:
    """Complete per-restaurant history (zeros where nothing was ordered) and the periods to forecast.

    history: series_id (restaurant id), ds (naive local period start), y (orders), revenue (daily only)
    future: series_id, ds, target_start (UTC instant)
    """

    history: pd.DataFrame
    future: pd.DataFrame


def daily_demand_features(reader: ReplicaReader, scope) -> DemandHistory:
    """Complete local days strictly before the as-of day; the first, partial day is dropped."""
    raw = daily_orders(reader, scope.restaurant_ids, scope.history_start, scope.as_of, scope.valid_until)
    histories, futures = [], []
    for r in scope.restaurants.itertuples(index=False):
        rows = raw[raw["restaurant_id"] == r.id]
        last = local_date(scope.as_of, r.timezone) - pd.Timedelta(days=1)
        first = local_date(scope.history_start, r.timezone) + pd.Timedelta(days=1)
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
        full.insert(0, "series_id", int(r.id))
        histories.append(full)
        fut = future_days(r.timezone, scope.as_of, scope.forecast.demand_daily_horizon_days)
        fut.insert(0, "series_id", int(r.id))
        futures.append(fut)
    return DemandHistory(_concat(histories), _concat(futures))


def hourly_demand_features(reader: ReplicaReader, scope) -> DemandHistory:
    """Every local hour (zeros included) of the last ``HOURLY_HISTORY_DAYS`` complete local days."""
    start = scope.as_of - pd.Timedelta(days=min(HOURLY_HISTORY_DAYS, scope.forecast.history_days))
    raw = hourly_orders(reader, scope.restaurant_ids, start, scope.as_of, scope.valid_until)
    histories, futures = [], []
    for r in scope.restaurants.itertuples(index=False):
        rows = raw[raw["restaurant_id"] == r.id]
        first = local_date(start, r.timezone) + pd.Timedelta(days=1)
        if len(rows):
            first = max(first, rows["local_hour_start"].min().normalize())
        grid = hour_grid(r.timezone, first, scope.as_of)
        grid = grid[grid["target_start"] + pd.Timedelta(hours=1) <= scope.as_of]
        full = grid.merge(
            rows[["hour_start", "orders"]].rename(columns={"hour_start": "target_start", "orders": "y"}),
            on="target_start",
            how="left",
        ).fillna({"y": 0.0})
        full.insert(0, "series_id", int(r.id))
        histories.append(full[["series_id", "ds", "y", "target_start"]])
        fut = future_hours(r.timezone, scope.as_of, scope.forecast.demand_hourly_horizon_hours)
        fut.insert(0, "series_id", int(r.id))
        futures.append(fut)
    return DemandHistory(_concat(histories), _concat(futures))


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
