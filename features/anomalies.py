"""Daily series the anomaly detector scores: restaurants, menu items, inventory items.

Each is a complete local-day grid (zeros filled) per entity, with ``open`` = the restaurant had
any order that day (a closed day is not a collapse in demand) and ``holiday`` = a public holiday
of the restaurant's country (an expected departure the calendar explains). Reuses the price and
inventory aggregates, so "an order" means the same thing everywhere.

Why the restaurant and menu-item series come through the kept aggregates when the run keeps them
(issue 28): they are the demand types' daily orders and item units over a shorter window, and
reading them from the replica again cost each anomaly unit a scan of every order of its window
every night. Through ``features.aggregate_cache.read_through`` a night reads only the days it
cannot trust, and the series are those of a full read (``tests/test_anomaly_kept.py``).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from core.replica import ReplicaReader
from core.units import Scope
from features.aggregate_cache import read_through
from features.calendar import holiday_table
from features.demand import checked_zones, daily_orders_in
from features.inventory import daily_item_usage
from features.items import item_daily_units_in
from features.prices import daily_item_sales
from features.quality import valid
from features.timegrid import local_date


def daily_restaurant_orders(reader: ReplicaReader, restaurant_ids: list[int], start: pd.Timestamp, end: pd.Timestamp,
                            valid_until: datetime) -> pd.DataFrame:
    """Orders (not cancelled) per restaurant and local date in [start, end): restaurant_id, local_date, orders."""
    frame = reader.frame(
        f"""
        SELECT o.restaurant_id, (o.created_at AT TIME ZONE r.timezone)::date AS local_date, count(*)::float8 AS orders
        FROM orders_order o JOIN restaurants_restaurant r ON r.id = o.restaurant_id
        WHERE o.restaurant_id = ANY(:rids) AND o.created_at >= :start AND o.created_at < :end
          AND o.status <> 'cancelled' AND {valid('orders_order', 'o')}
        GROUP BY 1, 2
        """,
        {"rids": restaurant_ids, "start": start, "end": end, "valid_until": valid_until},
    )
    frame["local_date"] = pd.to_datetime(frame["local_date"])
    frame["restaurant_id"] = frame["restaurant_id"].astype("int64")
    return frame


def _kept_zones(restaurants: pd.DataFrame, end: pd.Timestamp, kept: Scope | None) -> dict[int, str] | None:
    """The zones to read restaurant orders and item units in through the kept aggregates, or None
    where the direct reads stay: no store, a window not ending at the scope's as-of, or a
    restaurant whose zone the demand types would bucket differently (unknown zones go to UTC there)."""
    if kept is None or kept.aggregates is None or pd.Timestamp(end) != pd.Timestamp(kept.as_of):
        return None
    zones, unknown = checked_zones(restaurants)
    return None if unknown or not zones else zones


def _grid(raw: pd.DataFrame, key: str, value: str, days_of: dict[int, pd.DatetimeIndex], owners: pd.DataFrame) -> pd.DataFrame:
    """Complete (entity, day) grid; ``owners`` maps entity_id -> restaurant_id."""
    frames = []
    for rid, ents in owners.groupby("restaurant_id"):
        days = days_of.get(int(rid))
        if days is None or not len(days):
            continue
        idx = pd.MultiIndex.from_product([ents["entity_id"].astype("int64"), days], names=["entity_id", "ds"])
        sub = raw[raw["restaurant_id"] == rid].rename(columns={key: "entity_id", "local_date": "ds", value: "y"})
        full = sub.groupby(["entity_id", "ds"])["y"].sum().reindex(idx, fill_value=0.0).reset_index()
        full["restaurant_id"] = int(rid)
        frames.append(full)
    if not frames:
        return pd.DataFrame(columns=["entity_id", "ds", "y", "restaurant_id"])
    return pd.concat(frames, ignore_index=True)


def anomaly_series(
    reader: ReplicaReader,
    restaurants: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    valid_until: datetime,
    kinds: tuple[str, ...] = ("restaurant", "menu_item", "inventory_item"),
    kept: Scope | None = None,
) -> dict[str, pd.DataFrame]:
    """Daily series per entity kind, local days fully inside [start, end) (UTC instants).

    Args:
        restaurants: id, timezone, country_code.
        kinds: which entity kinds to read ("inventory_item" needs the inventory module).
        kept: the run's scope, when ``end`` is its as-of: restaurant orders and menu-item units
            then come through its kept aggregates (``scope.aggregates``; none: a full read).
    Returns:
        kind -> frame of entity_id, restaurant_id, ds (naive local date), y (orders, units sold or
        consumption in the item's unit), open, holiday. Units, not order lines, for menu items: one
        order of 10,000 portions is one line but exactly the departure an operator must see.
    """
    rids = [int(i) for i in restaurants["id"]]
    days_of = {}
    holidays = []
    for r in restaurants.itertuples(index=False):
        first = local_date(start, r.timezone) + pd.Timedelta(days=1)
        last = local_date(end, r.timezone) - pd.Timedelta(days=1)
        days_of[int(r.id)] = pd.date_range(first, last, freq="D")
        h = holiday_table(r.country_code, range(first.year, last.year + 1))
        holidays.append(pd.DataFrame({"restaurant_id": int(r.id), "ds": h["date"]}))
    hol = pd.concat(holidays, ignore_index=True) if holidays else pd.DataFrame(columns=["restaurant_id", "ds"])
    zones = _kept_zones(restaurants, end, kept)
    orders = (read_through("daily", daily_orders_in, reader, kept, zones, pd.Timestamp(start)) if zones
              else daily_restaurant_orders(reader, rids, start, end, valid_until))
    rest = _grid(orders.assign(entity_id=orders["restaurant_id"]), "entity_id", "orders", days_of,
                 pd.DataFrame({"entity_id": rids, "restaurant_id": rids}))
    open_days = rest.loc[rest["y"] > 0, ["restaurant_id", "ds"]].assign(open=True)
    out = {}
    if "restaurant" in kinds:
        out["restaurant"] = rest
    if "menu_item" in kinds:
        sales = (read_through("items", item_daily_units_in, reader, kept, zones, pd.Timestamp(start)) if zones
                 else daily_item_sales(reader, rids, start, end, valid_until))
        owners = sales.groupby("menu_item_id")["restaurant_id"].first().reset_index().rename(columns={"menu_item_id": "entity_id"})
        out["menu_item"] = _grid(sales, "menu_item_id", "units", days_of, owners)
    if "inventory_item" in kinds:
        usage = daily_item_usage(reader, rids, start, end, valid_until)
        owners = usage.groupby("inventory_item_id")["restaurant_id"].first().reset_index().rename(columns={"inventory_item_id": "entity_id"})
        out["inventory_item"] = _grid(usage, "inventory_item_id", "consumption", days_of, owners)
    hol_set = set(zip(hol["restaurant_id"].astype(int), pd.to_datetime(hol["ds"])))
    for kind, frame in out.items():
        frame = frame.merge(open_days, on=["restaurant_id", "ds"], how="left")
        frame["open"] = frame["open"].fillna(False).astype(bool)
        frame["holiday"] = [(int(r), d) in hol_set for r, d in zip(frame["restaurant_id"], frame["ds"])]
        out[kind] = frame
    return out
