"""Units sold per menu item and local day, aggregated in PostgreSQL.

Item series are short and intermittent: most items sell a handful of units a day and many days
none. Their history starts when the item was put on the menu (``created_at``, its first partial
local day dropped), not at the start of the window, so an item introduced last month is not read
as eleven months of zero demand. Days the restaurant was closed are flagged closed for all of its
items. Discontinued items (``is_active`` false) are not forecast; their ids are returned so their
old rows are removed.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from core.replica import ReplicaReader
from core.units import Scope
from features.demand import (
    DemandHistory,
    _concat,
    _typed,
    checked_zones,
    daily_demand_features,
    daily_orders_in,
    decorate,
    local_window,
    mark_closed_days,
    mark_outliers,
)
from features.aggregate_cache import read_through
from features.order_ranges import IN_RANGE, RANGES_CTE, range_params, whole_ranges
from features.quality import AS_OF_FILTER, valid
from features.timegrid import future_days, local_date

ITEM_HISTORY_DAYS = 182


def menu_items(reader: ReplicaReader, restaurant_ids: list[int], as_of: datetime | None = None) -> pd.DataFrame:
    """Menu items of these restaurants: id, restaurant_id, category, is_active, created_at (UTC).

    ``as_of``: only the items on the menu by then (``created_at`` before it), so a replay sees the
    menu as it was, not items added since (issue 25: six later items moved every forecast of a
    bakery replay, items being reconciled to the orders forecast). Names are not read: they are
    not needed to forecast and stay out of features.
    """
    frame = reader.frame(
        f"""
        SELECT id, restaurant_id, category, is_active, created_at
        FROM menu_menuitem
        WHERE restaurant_id = ANY(:rids) AND {AS_OF_FILTER.format(column='created_at')}
        ORDER BY id
        """,
        {"rids": restaurant_ids, "as_of": as_of},
    )
    if frame.empty:  # a chain imported as daily totals has no menu
        frame = pd.DataFrame({"id": [], "restaurant_id": [], "category": pd.Series(dtype=object),
                              "is_active": pd.Series(dtype=bool), "created_at": []})
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    for col in ("id", "restaurant_id"):
        frame[col] = frame[col].astype("int64")
    return frame


def item_daily_units(
    reader: ReplicaReader,
    zones: dict[int, str],
    start: datetime,
    end: datetime,
    valid_until: datetime,
) -> pd.DataFrame:
    """Units per menu item and local date of its restaurant, for orders created in [start, end).

    Args:
        zones: restaurant id -> checked IANA zone.
        start, end: UTC instants bounding the order's ``created_at``.
        valid_until: latest plausible timestamp; later rows are malformed and skipped.
    Returns menu_item_id, restaurant_id, local_date (naive), units. Cancelled orders are not
    counted (as for orders); zero days are absent.
    """
    return item_daily_units_in(reader, zones, whole_ranges(zones, start, end), valid_until)


def item_daily_units_in(reader: ReplicaReader, zones: dict[int, str], ranges: pd.DataFrame,
                        valid_until: datetime) -> pd.DataFrame:
    """``item_daily_units`` over per-restaurant ranges of the order's ``created_at``
    (restaurant_id, lo, hi: UTC instants, disjoint)."""
    frame = reader.frame(
        f"""
        WITH {RANGES_CTE}
        SELECT i.menu_item_id, o.restaurant_id,
               (o.created_at AT TIME ZONE z.tz)::date AS local_date,
               sum(i.quantity)::float8 AS units
        FROM orders_orderitem i
        JOIN orders_order o ON o.id = i.order_id
        JOIN z ON {IN_RANGE}
        WHERE o.status <> 'cancelled' AND {valid('orders_order', 'o')} AND {valid('orders_orderitem', 'i')}
        GROUP BY 1, 2, 3
        ORDER BY 1, 3
        """,
        {**range_params(zones, ranges), "valid_until": valid_until},
    )
    frame = _typed(frame, {"local_date": "date"})
    frame["menu_item_id"] = frame["menu_item_id"].astype("int64")
    return frame


def item_demand_features(reader: ReplicaReader, scope: Scope, daily: DemandHistory | None = None) -> DemandHistory:
    """Complete item-day histories (zeros filled from each item's first full day) and futures.

    ``daily``: the shard's ``daily_demand_features`` when the caller has them (the run's
    ``DemandInputs``), else read here; their orders give the restaurants' closed days."""
    zones, messages = checked_zones(scope.restaurants)
    # windows start at local dates (features.demand.local_window): the hour of the run does not matter
    firsts, start = local_window(zones, scope.as_of, min(ITEM_HISTORY_DAYS, scope.forecast.history_days))
    items = menu_items(reader, scope.restaurant_ids, scope.as_of)
    units = read_through("items", item_daily_units_in, reader, scope, zones, start)
    # the restaurants' orders over the full history window: the closed days of the item window, and
    # the top-down candidates' restaurant history (below)
    if daily is None:
        orders = read_through("daily", daily_orders_in, reader, scope, zones,
                              local_window(zones, scope.as_of, scope.forecast.history_days)[1])
        daily = daily_demand_features(reader, scope, raw=orders)
    # orders per restaurant and local day (zero-filled over the full window; days before it are 0)
    restaurant_orders = daily.history.set_index(["series_id", "ds"])["y"]
    retired = [int(i) for i in items.loc[~items["is_active"], "id"]]
    active = items[items["is_active"]]
    countries = scope.restaurants.set_index("id")["country_code"]
    histories, futures = [], []
    for rid, tz in zones.items():
        first = firsts[rid]
        last = local_date(scope.as_of, tz) - pd.Timedelta(days=1)
        days = pd.date_range(first, last, freq="D")
        rest = restaurant_orders.reindex(pd.MultiIndex.from_arrays([np.full(len(days), rid), days])).fillna(0.0)
        rest_daily = mark_closed_days(pd.DataFrame({"series_id": rid, "ds": days, "y": rest.to_numpy()}))
        closed_days = set(rest_daily.loc[rest_daily["closed"], "ds"])
        fut_days = future_days(tz, scope.as_of, scope.forecast.item_demand_horizon_days)
        mine = active[active["restaurant_id"] == rid]
        sold = units[units["restaurant_id"] == rid]
        # every item x every day of the window at once (item by item cost 2 ms an item), in the
        # same order: items as listed, days ascending, each from its first full day on the menu
        ids = mine["id"].astype("int64").to_numpy()
        created = (pd.to_datetime(mine["created_at"], utc=True).dt.tz_convert(tz).dt.tz_localize(None)
                   .dt.normalize() + pd.Timedelta(days=1)).to_numpy()
        grid_ds = np.tile(days.to_numpy(), len(ids))
        keep = grid_ds >= np.repeat(created, len(days))
        grid = pd.DataFrame({"series_id": np.repeat(ids, len(days))[keep], "ds": grid_ds[keep]})
        got = pd.Series(sold["units"].to_numpy(float), index=pd.MultiIndex.from_arrays(
            [sold["menu_item_id"].astype("int64").to_numpy(), pd.to_datetime(sold["local_date"]).to_numpy()]))
        grid["y"] = got.reindex(pd.MultiIndex.from_arrays([grid["series_id"], grid["ds"]])).fillna(0.0).to_numpy()
        grid["closed"] = grid["ds"].isin(list(closed_days)).to_numpy()
        histories.append(grid)
        fut = fut_days.iloc[np.tile(np.arange(len(fut_days)), len(ids))].reset_index(drop=True)
        fut.insert(0, "series_id", np.repeat(ids, len(fut_days)))
        futures.append(fut)
    series = pd.DataFrame({
        "series_id": active["id"].astype("int64").to_numpy(),
        "restaurant_id": active["restaurant_id"].astype("int64").to_numpy(),
        "category": active["category"].astype(str).to_numpy(),
        "country_code": active["restaurant_id"].map(countries).fillna("").to_numpy(),
        "timezone": active["restaurant_id"].map(zones).to_numpy(),
    })
    series["peer_group"] = series["restaurant_id"].astype(str) + ":" + series["category"]
    without = sorted(set(zones) - set(series["restaurant_id"]))
    if without:
        messages.append(f"item_demand_daily: no items in the history of {len(without)} restaurant"
                        f"{'' if len(without) == 1 else 's'} (no menu items on the replica, as with daily totals); "
                        f"no item forecast for them: {', '.join(map(str, without))}")
    history = _concat(histories, ["series_id", "ds", "y", "closed"])
    if len(history):
        history = mark_outliers(history, factor=10.0)  # item days are noisy: flag only extreme ones
    future = _concat(futures, ["series_id", "target_start", "ds"])
    # the restaurants' daily orders over the full history window (demand_daily's features): the
    # top-down candidates forecast them and split them by each item's share (models.topdown)
    return DemandHistory(decorate(history, series), decorate(future, series), series, "day", messages, retired,
                         daily.history, daily)
