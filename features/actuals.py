"""What actually happened to the targets earlier runs predicted, read from the replica.

Each scored type is measured the way its predictions are defined (shared/contracts/README.md),
with the same SQL and the same malformed-row rules as its features, so an error is a forecast
error and not a definition mismatch:

- ``demand_hourly`` / ``demand_daily``: orders (not cancelled) per restaurant and local hour/day
  (``features.demand.hourly_orders`` / ``daily_orders``).
- ``item_demand_daily``: units per menu item and local day (``features.items.item_daily_units``).
- ``stock_daily``: stock on hand at the end of the local day, i.e. at the next local midnight:
  batch stock now minus every movement since then (as ``features.inventory.stock_on_hand``).
- ``churn``: 1 when the customer placed no purchase (not cancelled, not refunded) in the 60 days
  from the prediction's as_of, else 0.

Only what happened before the scoring run's ``as_of`` is read, so a replayed run scores what it
could have known then. ``match`` then explains every prediction it cannot score instead of
scoring it as zero: ``awaiting_actuals`` (the replica shows no activity after the target ended:
late data, or a restaurant closed since), ``closed`` (a whole local day without a single order at
the restaurant: not demand, as in the backtest), ``no_actual`` (the entity is gone from the replica).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from features.demand import daily_orders, hourly_orders
from features.items import item_daily_units, menu_items
from features.quality import valid
from core.replica import ReplicaReader

CHURN_WINDOW = pd.Timedelta(days=60)
STATUSES = ("scored", "awaiting_actuals", "closed", "no_actual")
DEMAND_TYPES = ("demand_hourly", "demand_daily", "item_demand_daily")


def target_ends(history: pd.DataFrame, zones: dict[int, str]) -> pd.Series:
    """When each predicted period ended (UTC): the next hour, the next local midnight (23/25-hour
    days included), or as_of + 60 days for churn.

    Args:
        history: prediction_type, restaurant_id, target_start (UTC), as_of (UTC).
        zones: restaurant id -> IANA zone (restaurants not in it are taken as UTC).
    """
    start = pd.to_datetime(history["target_start"], utc=True)
    ends = pd.Series(pd.NaT, index=history.index, dtype="datetime64[ns, UTC]")
    ptype = history["prediction_type"]
    hourly = ptype == "demand_hourly"
    ends[hourly] = start[hourly] + pd.Timedelta(hours=1)
    churn = ptype == "churn"
    ends[churn] = pd.to_datetime(history.loc[churn, "as_of"], utc=True) + CHURN_WINDOW
    daily = ~hourly & ~churn
    if daily.any():
        rid = history.loc[daily, "restaurant_id"]
        for r, idx in rid.groupby(rid.fillna(-1).astype("int64")).groups.items():
            tz = zones.get(int(r), "UTC")
            local = start[idx].dt.tz_convert(tz).dt.tz_localize(None).dt.normalize() + pd.Timedelta(days=1)
            ends[idx] = local.dt.tz_localize(tz, ambiguous=True, nonexistent="shift_forward").dt.tz_convert("UTC")
    return ends


def local_dates(instants: pd.Series, restaurant_ids: pd.Series, zones: dict[int, str]) -> pd.Series:
    """The local calendar date (naive midnight) of each instant at its restaurant."""
    out = pd.Series(pd.NaT, index=instants.index, dtype="datetime64[ns]")
    inst = pd.to_datetime(instants, utc=True)
    for r, idx in restaurant_ids.groupby(restaurant_ids.fillna(-1).astype("int64")).groups.items():
        tz = zones.get(int(r), "UTC")
        out[idx] = inst[idx].dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()
    return out


@dataclass
class Actuals:
    """Actuals for one scoring window; empty frames for types not asked for."""

    daily: pd.DataFrame  # restaurant_id, local_date, orders
    hourly: pd.DataFrame  # restaurant_id, hour_start, orders
    items: pd.DataFrame  # menu_item_id, restaurant_id, local_date, units
    stock: pd.DataFrame  # inventory_item_id, at, on_hand, known
    churn: pd.DataFrame  # customer_id, start, purchased, known
    last_order: dict[int, pd.Timestamp] = field(default_factory=dict)  # per restaurant, before as_of
    last_movement: dict[int, pd.Timestamp] = field(default_factory=dict)  # stock movements, per restaurant
    last_order_any: pd.Timestamp | None = None
    messages: list[str] = field(default_factory=list)


def _utc_instants(values: pd.Series) -> list[datetime]:
    """Python datetimes in UTC for the driver; naive values are taken as UTC."""
    return [pd.Timestamp(t).tz_localize("UTC").to_pydatetime() if pd.Timestamp(t).tzinfo is None
            else pd.Timestamp(t).to_pydatetime() for t in values]


def _empty(**cols: str) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in cols.items()})


def read_actuals(
    reader: ReplicaReader,
    history: pd.DataFrame,
    zones: dict[int, str],
    as_of: pd.Timestamp,
    valid_until: datetime,
) -> Actuals:
    """Read, for the predictions in ``history`` (with a ``target_end`` column), what happened.

    Args:
        reader: the replica reader.
        history: prediction_type, entity_id, restaurant_id, target_start, target_end, as_of.
        zones: restaurant id -> checked IANA zone.
        as_of: the scoring run's instant; nothing at or after it is read.
        valid_until: latest plausible timestamp (malformed-row rule).
    """
    present = reader.present_columns
    types = set(history["prediction_type"]) if len(history) else set()
    out = Actuals(
        daily=_empty(restaurant_id="int64", local_date="datetime64[ns]", orders="float64"),
        hourly=_empty(restaurant_id="int64", hour_start="datetime64[ns, UTC]", orders="float64"),
        items=_empty(menu_item_id="int64", restaurant_id="int64", local_date="datetime64[ns]", units="float64"),
        stock=_empty(inventory_item_id="int64", at="datetime64[ns, UTC]", on_hand="float64", known="bool"),
        churn=_empty(customer_id="int64", start="datetime64[ns, UTC]", purchased="bool", known="bool"),
    )
    if history.empty or not zones:
        return out
    end = pd.Timestamp(as_of).to_pydatetime()
    dated = history[history["prediction_type"] != "churn"]
    if len(dated):
        start = (pd.to_datetime(dated["target_start"], utc=True).min() - pd.Timedelta(days=1)).to_pydatetime()
        if types & set(DEMAND_TYPES):
            out.daily = daily_orders(reader, zones, start, end, valid_until)
        if "demand_hourly" in types:
            out.hourly = hourly_orders(reader, zones, start, end, valid_until)
        if "item_demand_daily" in types and "orders_orderitem" in present:
            out.items = item_daily_units(reader, zones, start, end, valid_until)
    out.last_order = last_order(reader, list(zones), end, valid_until)
    out.last_order_any = max(out.last_order.values()) if out.last_order else None
    if "stock_daily" in types:
        if {"inventory_batch", "inventory_stockmovement", "inventory_inventoryitem"} <= set(present):
            stock = history[history["prediction_type"] == "stock_daily"]
            out.stock = stock_at(reader, stock["entity_id"], stock["target_end"], valid_until)
            out.last_movement = last_movement(reader, list(zones), end, valid_until)
        else:
            out.messages.append("stock_daily: the RMS inventory module is gone; its predictions cannot be scored")
    if "churn" in types:
        churn = history[history["prediction_type"] == "churn"]
        out.churn = churn_outcomes(reader, churn["entity_id"], churn["as_of"], valid_until)
    return out


def last_order(reader: ReplicaReader, restaurant_ids: list[int], end: datetime, valid_until: datetime) -> dict[int, pd.Timestamp]:
    """The latest valid order before ``end`` per restaurant: how far the replica's data reaches."""
    frame = reader.frame(
        f"""
        SELECT o.restaurant_id, max(o.created_at) AS last_at
        FROM orders_order o
        WHERE o.restaurant_id = ANY(:rids) AND o.created_at < :end AND {valid('orders_order', 'o')}
        GROUP BY 1
        """,
        {"rids": restaurant_ids, "end": end, "valid_until": valid_until},
    )
    return {int(r): pd.Timestamp(t).tz_convert("UTC") for r, t in frame.itertuples(index=False)}


def last_movement(reader: ReplicaReader, restaurant_ids: list[int], end: datetime, valid_until: datetime) -> dict[int, pd.Timestamp]:
    """The latest valid stock movement before ``end`` per restaurant."""
    frame = reader.frame(
        f"""
        SELECT i.restaurant_id, max(m.occurred_at) AS last_at
        FROM inventory_stockmovement m JOIN inventory_inventoryitem i ON i.id = m.inventory_item_id
        WHERE i.restaurant_id = ANY(:rids) AND m.occurred_at < :end AND {valid('inventory_stockmovement', 'm')}
        GROUP BY 1
        """,
        {"rids": restaurant_ids, "end": end, "valid_until": valid_until},
    )
    return {int(r): pd.Timestamp(t).tz_convert("UTC") for r, t in frame.itertuples(index=False)}


def stock_at(reader: ReplicaReader, item_ids: pd.Series, instants: pd.Series, valid_until: datetime) -> pd.DataFrame:
    """Stock on hand of each (item, instant): batch stock now minus the movements since the instant.

    Args:
        item_ids, instants: aligned; instants are UTC.
    Returns inventory_item_id, at (UTC), on_hand (item units, floored at 0), known (the item still
    exists in the replica).
    """
    pairs = pd.DataFrame({"item": item_ids.astype("int64").to_numpy(),
                          "at": pd.to_datetime(instants, utc=True).to_numpy()}).drop_duplicates()
    if pairs.empty:
        return _empty(inventory_item_id="int64", at="datetime64[ns, UTC]", on_hand="float64", known="bool")
    frame = reader.frame(
        f"""
        WITH p AS (SELECT * FROM unnest(CAST(:items AS bigint[]), CAST(:ats AS timestamptz[])) AS p(item, at)),
        cur AS (
            SELECT b.inventory_item_id, sum(b.quantity_remaining)::float8 AS q
            FROM inventory_batch b
            WHERE b.inventory_item_id = ANY(:items) AND {valid('inventory_batch', 'b')}
            GROUP BY 1
        )
        SELECT p.item AS inventory_item_id, p.at,
               greatest(coalesce(cur.q, 0) - coalesce((
                   SELECT sum(m.quantity) FROM inventory_stockmovement m
                   WHERE m.inventory_item_id = p.item AND m.occurred_at >= p.at
                     AND {valid('inventory_stockmovement', 'm')}), 0), 0)::float8 AS on_hand,
               EXISTS (SELECT 1 FROM inventory_inventoryitem i WHERE i.id = p.item) AS known
        FROM p LEFT JOIN cur ON cur.inventory_item_id = p.item
        """,
        {"items": [int(i) for i in pairs["item"]],
         "ats": _utc_instants(pairs["at"]),
         "valid_until": valid_until},
    )
    frame["inventory_item_id"] = frame["inventory_item_id"].astype("int64")
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    frame["on_hand"] = frame["on_hand"].astype("float64")
    frame["known"] = frame["known"].astype(bool)
    return frame


def churn_outcomes(reader: ReplicaReader, customer_ids: pd.Series, starts: pd.Series, valid_until: datetime) -> pd.DataFrame:
    """Whether each customer purchased in the 60 days from ``start`` (the prediction's as_of).

    Returns customer_id, start (UTC), purchased, known (the profile still exists). Only ids and
    booleans are read: no customer attribute leaves the replica.
    """
    pairs = pd.DataFrame({"cid": customer_ids.astype("int64").to_numpy(),
                          "start": pd.to_datetime(starts, utc=True).to_numpy()}).drop_duplicates()
    if pairs.empty:
        return _empty(customer_id="int64", start="datetime64[ns, UTC]", purchased="bool", known="bool")
    frame = reader.frame(
        f"""
        WITH p AS (SELECT * FROM unnest(CAST(:cids AS bigint[]), CAST(:starts AS timestamptz[])) AS p(cid, start))
        SELECT p.cid AS customer_id, p.start,
               EXISTS (SELECT 1 FROM orders_order o
                       WHERE o.customer_id = p.cid AND o.created_at >= p.start
                         AND o.created_at < p.start + interval '60 days'
                         AND o.status NOT IN ('cancelled', 'refunded') AND {valid('orders_order', 'o')}) AS purchased,
               EXISTS (SELECT 1 FROM customers_customerprofile c WHERE c.id = p.cid) AS known
        FROM p
        """,
        {"cids": [int(c) for c in pairs["cid"]],
         "starts": _utc_instants(pairs["start"]),
         "valid_until": valid_until},
    )
    frame["customer_id"] = frame["customer_id"].astype("int64")
    frame["start"] = pd.to_datetime(frame["start"], utc=True)
    frame["purchased"] = frame["purchased"].astype(bool)
    frame["known"] = frame["known"].astype(bool)
    return frame


def match(history: pd.DataFrame, actuals: Actuals, zones: dict[int, str]) -> pd.DataFrame:
    """Each prediction with its actual ``y`` and a ``status`` (``STATUSES``); pure.

    Args:
        history: prediction_type, entity_id, restaurant_id, target_start, target_end, as_of, value,
            lower, upper (+ any other columns, kept).
        actuals: ``read_actuals`` output.
        zones: restaurant id -> IANA zone.
    Returns history plus y (NaN unless scored) and status.
    """
    out = history.copy()
    out["y"] = np.nan
    out["status"] = "scored"
    if out.empty:
        return out
    rid = out["restaurant_id"].fillna(-1).astype("int64")
    ptype = out["prediction_type"]
    tend = pd.to_datetime(out["target_end"], utc=True)
    demand = ptype.isin(DEMAND_TYPES)
    day = local_dates(pd.to_datetime(out["target_start"], utc=True), out["restaurant_id"], zones)

    # demand: awaiting unless an order came in after the period ended; closed = no order all day
    last = rid.map(actuals.last_order)
    awaiting = demand & (last.isna() | (pd.to_datetime(last, utc=True) < tend))
    open_days = set(zip(actuals.daily["restaurant_id"].astype("int64"), actuals.daily["local_date"]))
    is_open = pd.Series([(r, d) in open_days for r, d in zip(rid, day)], index=out.index)
    closed = demand & ~awaiting & ~is_open

    daily_key = actuals.daily.set_index(["restaurant_id", "local_date"])["orders"]
    m = ptype == "demand_daily"
    out.loc[m, "y"] = daily_key.reindex(pd.MultiIndex.from_arrays([rid[m], day[m]])).fillna(0.0).to_numpy()
    m = ptype == "demand_hourly"
    if m.any():
        hourly_key = actuals.hourly.set_index(["restaurant_id", "hour_start"])["orders"]
        starts = pd.to_datetime(out.loc[m, "target_start"], utc=True)
        out.loc[m, "y"] = hourly_key.reindex(pd.MultiIndex.from_arrays([rid[m], starts])).fillna(0.0).to_numpy()
    m = ptype == "item_demand_daily"
    if m.any():
        item_key = actuals.items.set_index(["menu_item_id", "local_date"])["units"]
        ents = out.loc[m, "entity_id"].astype("int64")
        out.loc[m, "y"] = item_key.reindex(pd.MultiIndex.from_arrays([ents, day[m]])).fillna(0.0).to_numpy()

    # stock: awaiting unless the restaurant recorded a movement after the day ended
    m = ptype == "stock_daily"
    no_actual = pd.Series(False, index=out.index)
    if m.any():
        last_mv = rid.map(actuals.last_movement)
        stock_awaiting = m & (last_mv.isna() | (pd.to_datetime(last_mv, utc=True) < tend))
        awaiting |= stock_awaiting
        key = actuals.stock.set_index(["inventory_item_id", "at"])
        idx = pd.MultiIndex.from_arrays([out.loc[m, "entity_id"].astype("int64"), tend[m]])
        got = key.reindex(idx)
        out.loc[m, "y"] = got["on_hand"].to_numpy()
        known = got["known"].fillna(False).astype(bool).to_numpy()
        no_actual.loc[m] = ~known | got["on_hand"].isna().to_numpy()

    # churn: the 60-day window must be over in the replica's data too
    m = ptype == "churn"
    if m.any():
        latest = actuals.last_order_any
        churn_awaiting = m if latest is None else m & (tend > latest)
        awaiting |= churn_awaiting
        key = actuals.churn.set_index(["customer_id", "start"])
        idx = pd.MultiIndex.from_arrays([out.loc[m, "entity_id"].astype("int64"),
                                         pd.to_datetime(out.loc[m, "as_of"], utc=True)])
        got = key.reindex(idx)
        out.loc[m, "y"] = np.where(got["purchased"].fillna(False).astype(bool).to_numpy(), 0.0, 1.0)
        no_actual.loc[m] = ~got["known"].fillna(False).astype(bool).to_numpy()

    out.loc[closed, "status"] = "closed"
    out.loc[no_actual & ~awaiting, "status"] = "no_actual"
    out.loc[awaiting, "status"] = "awaiting_actuals"
    out.loc[out["status"] != "scored", "y"] = np.nan
    return out


def input_signals(
    reader: ReplicaReader,
    zones: dict[int, str],
    as_of: pd.Timestamp,
    valid_until: datetime,
    days: int,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[int, pd.Timestamp]]:
    """What the input-drift checks look at: orders per local day over the last ``days`` (+1)
    days, the menu items (no names), and each restaurant's last complete local date.

    Returns (daily orders: restaurant_id, local_date, orders), (items: id, restaurant_id,
    category, is_active, created_at), {restaurant id: last complete local date}.
    """
    start = (as_of - pd.Timedelta(days=days + 1)).to_pydatetime()
    daily = daily_orders(reader, zones, start, as_of.to_pydatetime(), valid_until)
    items = menu_items(reader, list(zones)) if "menu_menuitem" in reader.present_columns else pd.DataFrame()
    last_day = {
        rid: as_of.tz_convert(tz).tz_localize(None).normalize() - pd.Timedelta(days=1) for rid, tz in zones.items()
    }
    return daily, items, last_day


__all__ = ["Actuals", "STATUSES", "target_ends", "local_dates", "read_actuals", "last_order", "last_movement",
           "stock_at", "churn_outcomes", "match", "input_signals"]
