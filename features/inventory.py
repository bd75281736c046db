"""Inventory facts from the replica, aggregated in PostgreSQL: usage per day, stock, batches, orders.

Everything is "as of" an instant so that a run replayed in the past sees the past: stock on hand at
``as_of`` is the batches' current ``quantity_remaining`` minus every stock movement stamped at or
after ``as_of`` (movements are signed, so undoing them rebuilds the earlier level); a purchase order
is open at ``as_of`` if it was sent before it and not yet received. Days are the restaurant's local
days. Item names are never read: they are not needed and keep logs free of business text.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from core.replica import ReplicaReader
from core.settings import InventorySettings
from core.units import Scope
from features.aggregate_cache import read_through
from features.demand import checked_zones
from features.inventory_frames import (
    InventoryFeatures,
    allocate_batches,
    menu_unit_grid,
    open_where_only_counted,
    usage_grid,
    usage_midpoint_hour,
)
from features.items import item_daily_units_in, menu_items
from features.quality import valid
from features.suppliers import PLACED, supplier_history
from features.timegrid import future_days, local_date



def inventory_items(reader: ReplicaReader, restaurant_ids: list[int]) -> pd.DataFrame:
    """Inventory items of these restaurants with their stocking policy.

    Returns inventory_item_id, restaurant_id, unit ('kg', 'l', 'each'), unit_cost (currency per
    unit), supplier_id (nullable), par_level, manual_reorder_point, min_order_quantity (item units,
    NaN when unset), is_perishable, shelf_life_days (NaN when unset).
    """
    frame = reader.frame(
        """
        SELECT i.id AS inventory_item_id, i.restaurant_id, i.unit, i.unit_cost::float8 AS unit_cost,
               i.supplier_id, i.par_level::float8 AS par_level,
               i.reorder_point::float8 AS manual_reorder_point,
               i.min_order_quantity::float8 AS min_order_quantity,
               coalesce(i.is_perishable, false) AS is_perishable, i.shelf_life_days::float8 AS shelf_life_days
        FROM inventory_inventoryitem i
        WHERE i.restaurant_id = ANY(:rids) AND i.unit IS NOT NULL
        ORDER BY i.id
        """,
        {"rids": restaurant_ids},
    )
    for col in ("inventory_item_id", "restaurant_id"):
        frame[col] = frame[col].astype("int64")
    frame["supplier_id"] = frame["supplier_id"].astype("Int64")
    for col in ("unit_cost", "par_level", "manual_reorder_point", "min_order_quantity", "shelf_life_days"):
        frame[col] = frame[col].astype("float64")
    frame["is_perishable"] = frame["is_perishable"].astype(bool)
    return frame


def daily_item_usage(
    reader: ReplicaReader,
    restaurant_ids: list[int],
    start: datetime,
    end: datetime,
    valid_until: datetime,
) -> pd.DataFrame:
    """Consumption and waste per inventory item and local date, movements in [start, end) (UTC).

    Returns inventory_item_id, restaurant_id, local_date (naive midnight), consumption, waste,
    expired (positive, in the item's unit), adjusted (stock lost to count corrections: minus the
    day's net ``adjustment`` quantity, negative when a count found stock). ``expired`` is the
    write-off of a batch at or after its expiry (a waste movement naming a batch that expired by
    the next day): the projection models expiry from the batches themselves, so counting it as
    usage too would take it twice. ``waste`` is the rest (spoilage, drops, trimming). ``adjusted``
    is use nobody recorded: a kitchen that books stock only by counting shows its use here.
    Days without a movement are absent.
    """
    frame = reader.frame(
        f"""
        SELECT i.id AS inventory_item_id, i.restaurant_id,
               (m.occurred_at AT TIME ZONE r.timezone)::date AS local_date,
               coalesce(sum(-m.quantity) FILTER (WHERE m.movement_type = 'consumption'), 0)::float8 AS consumption,
               coalesce(sum(-m.quantity) FILTER (WHERE m.movement_type = 'waste' AND NOT coalesce(
                   b.expires_at <= m.occurred_at + interval '1 day', false)), 0)::float8 AS waste,
               coalesce(sum(-m.quantity) FILTER (WHERE m.movement_type = 'waste' AND
                   b.expires_at <= m.occurred_at + interval '1 day'), 0)::float8 AS expired,
               coalesce(sum(-m.quantity) FILTER (WHERE m.movement_type = 'adjustment'), 0)::float8 AS adjusted
        FROM inventory_stockmovement m
        JOIN inventory_inventoryitem i ON i.id = m.inventory_item_id
        JOIN restaurants_restaurant r ON r.id = i.restaurant_id
        LEFT JOIN inventory_batch b ON b.id = m.batch_id
        WHERE i.restaurant_id = ANY(:rids) AND m.occurred_at >= :start AND m.occurred_at < :end
          AND m.movement_type IN ('consumption', 'waste', 'adjustment') AND {valid('inventory_stockmovement', 'm')}
        GROUP BY 1, 2, 3
        ORDER BY 1, 3
        """,
        {"rids": restaurant_ids, "start": start, "end": end, "valid_until": valid_until},
    )
    frame["local_date"] = pd.to_datetime(frame["local_date"])
    for col in ("inventory_item_id", "restaurant_id"):
        frame[col] = frame[col].astype("int64")
    return frame


def consumption_hour_share(
    reader: ReplicaReader, restaurant_ids: list[int], start: datetime, end: datetime, valid_until: datetime
) -> pd.DataFrame:
    """Share of a restaurant's consumption recorded in each local hour (0-23), movements in [start, end).

    Used to know how much of today's usage is still to come at ``as_of``. Returns restaurant_id,
    local_hour, share (sums to 1 per restaurant).
    """
    frame = reader.frame(
        f"""
        SELECT i.restaurant_id, extract(hour FROM m.occurred_at AT TIME ZONE r.timezone)::int AS local_hour,
               sum(-m.quantity * i.unit_cost)::float8 AS value
        FROM inventory_stockmovement m
        JOIN inventory_inventoryitem i ON i.id = m.inventory_item_id
        JOIN restaurants_restaurant r ON r.id = i.restaurant_id
        WHERE i.restaurant_id = ANY(:rids) AND m.occurred_at >= :start AND m.occurred_at < :end
          AND m.movement_type = 'consumption' AND {valid('inventory_stockmovement', 'm')}
        GROUP BY 1, 2
        """,
        {"rids": restaurant_ids, "start": start, "end": end, "valid_until": valid_until},
    )
    if frame.empty:
        return pd.DataFrame({"restaurant_id": pd.Series(dtype="int64"), "local_hour": [], "share": []})
    frame["value"] = frame["value"].clip(lower=0)
    frame["share"] = frame["value"] / frame.groupby("restaurant_id")["value"].transform("sum")
    frame["restaurant_id"] = frame["restaurant_id"].astype("int64")
    return frame[["restaurant_id", "local_hour", "share"]].fillna({"share": 0.0})


def stock_on_hand(
    reader: ReplicaReader, restaurant_ids: list[int], as_of: datetime, valid_until: datetime
) -> pd.DataFrame:
    """Stock per item at ``as_of``: current batch stock minus the (signed) movements since then.

    Returns inventory_item_id, on_hand (item units, floored at 0; batches with a negative
    ``quantity_remaining`` are malformed and left out), recorded (the books as kept, those batches
    included, before the floor: below zero when more use was booked than receipts, i.e.
    deliveries never booked),
    moved_since (movements at or after ``as_of``: 0 when ``as_of`` is now, so batch-level stock
    can be trusted as recorded).
    """
    frame = reader.frame(
        f"""
        WITH items AS (SELECT id FROM inventory_inventoryitem WHERE restaurant_id = ANY(:rids)),
        cur AS (
            SELECT b.inventory_item_id,
                   coalesce(sum(b.quantity_remaining) FILTER (WHERE {valid('inventory_batch', 'b')}), 0)::float8 AS q,
                   -- the books as the RMS keeps them: a batch driven below zero is malformed for the
                   -- stock, but it says use was booked against receipts that never were
                   sum(b.quantity_remaining)::float8 AS books
            FROM inventory_batch b JOIN items ON items.id = b.inventory_item_id
            WHERE b.received_at IS NOT NULL AND b.received_at <= :valid_until AND b.quantity_received >= 0
            GROUP BY 1
        ),
        since AS (
            SELECT m.inventory_item_id, sum(m.quantity)::float8 AS q, count(*) AS n
            FROM inventory_stockmovement m JOIN items ON items.id = m.inventory_item_id
            WHERE m.occurred_at >= :as_of AND {valid('inventory_stockmovement', 'm')}
            GROUP BY 1
        )
        SELECT items.id AS inventory_item_id,
               greatest(coalesce(cur.q, 0) - coalesce(since.q, 0), 0) AS on_hand,
               coalesce(cur.books, 0) - coalesce(since.q, 0) AS recorded,
               coalesce(since.n, 0) AS moved_since
        FROM items LEFT JOIN cur ON cur.inventory_item_id = items.id
        LEFT JOIN since ON since.inventory_item_id = items.id
        ORDER BY 1
        """,
        {"rids": restaurant_ids, "as_of": as_of, "valid_until": valid_until},
    )
    frame["inventory_item_id"] = frame["inventory_item_id"].astype("int64")
    frame["on_hand"] = frame["on_hand"].astype("float64")
    frame["recorded"] = frame["recorded"].astype("float64")
    frame["moved_since"] = frame["moved_since"].astype("int64")
    return frame


def expiring_batches(
    reader: ReplicaReader, restaurant_ids: list[int], as_of: datetime, valid_until: datetime, lookback_days: int = 120
) -> pd.DataFrame:
    """Batches with an expiry received before ``as_of`` (recent ones, or still holding stock).

    Returns batch_id, inventory_item_id, quantity_received, quantity_remaining, received_at,
    expires_at (UTC). The caller decides how much of each was left at ``as_of`` (see
    ``allocate_batches``).
    """
    frame = reader.frame(
        f"""
        SELECT b.id AS batch_id, b.inventory_item_id, b.quantity_received::float8 AS quantity_received,
               b.quantity_remaining::float8 AS quantity_remaining, b.received_at, b.expires_at
        FROM inventory_batch b JOIN inventory_inventoryitem i ON i.id = b.inventory_item_id
        WHERE i.restaurant_id = ANY(:rids) AND b.expires_at IS NOT NULL AND b.received_at < :as_of
          AND (b.quantity_remaining > 0 OR b.received_at >= :since) AND {valid('inventory_batch', 'b')}
        ORDER BY b.inventory_item_id, b.received_at DESC
        """,
        {"rids": restaurant_ids, "as_of": as_of, "since": pd.Timestamp(as_of) - pd.Timedelta(days=lookback_days),
         "valid_until": valid_until},
    )
    frame["received_at"] = pd.to_datetime(frame["received_at"], utc=True)
    frame["expires_at"] = pd.to_datetime(frame["expires_at"], utc=True)
    frame["inventory_item_id"] = frame["inventory_item_id"].astype("int64")
    return frame


def open_purchase_orders(
    reader: ReplicaReader, restaurant_ids: list[int], as_of: datetime, valid_until: datetime
) -> pd.DataFrame:
    """Purchase-order lines placed before ``as_of`` and not received by then.

    Returns purchase_order_id, supplier_id, inventory_item_id, quantity (ordered, item units),
    ordered_at, expected_at (UTC, may be NaT).
    """
    frame = reader.frame(
        f"""
        SELECT po.id AS purchase_order_id, po.supplier_id, l.inventory_item_id,
               l.quantity_ordered::float8 AS quantity, po.ordered_at, po.expected_at
        FROM inventory_purchaseorder po
        JOIN inventory_purchaseorderline l ON l.purchase_order_id = po.id
        WHERE po.restaurant_id = ANY(:rids) AND {PLACED} AND po.ordered_at < :as_of
          AND (po.received_at IS NULL OR po.received_at >= :as_of)
          AND {valid('inventory_purchaseorder', 'po')} AND {valid('inventory_purchaseorderline', 'l')}
        ORDER BY po.ordered_at
        """,
        {"rids": restaurant_ids, "as_of": as_of, "valid_until": valid_until},
    )
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"], utc=True)
    frame["expected_at"] = pd.to_datetime(frame["expected_at"], utc=True)
    for col in ("purchase_order_id", "supplier_id", "inventory_item_id"):
        frame[col] = frame[col].astype("int64")
    return frame


def recipe_lines(reader: ReplicaReader, restaurant_ids: list[int]) -> pd.DataFrame:
    """How much of each inventory item one unit of a menu item uses (the RMS's recipes).

    Only lines linking a menu item and an inventory item of the same restaurant, with a positive
    quantity and an inventory item that has a unit: a recipe pointing at another restaurant's stock
    or at 0 would make up usage. Lines of discontinued menu items are kept (their sales history
    is real usage); they simply get no forecast. Returns menu_item_id, inventory_item_id,
    quantity_per_unit (in the inventory item's unit, per unit sold).
    """
    frame = reader.frame(
        """
        SELECT ri.menu_item_id, ri.inventory_item_id, sum(ri.quantity_per_unit)::float8 AS quantity_per_unit
        FROM menu_recipeingredient ri
        JOIN menu_menuitem m ON m.id = ri.menu_item_id
        JOIN inventory_inventoryitem i ON i.id = ri.inventory_item_id
        WHERE i.restaurant_id = ANY(:rids) AND m.restaurant_id = i.restaurant_id
          AND ri.quantity_per_unit > 0 AND i.unit IS NOT NULL
        GROUP BY 1, 2
        ORDER BY 1, 2
        """,
        {"rids": restaurant_ids},
    )
    for col in ("menu_item_id", "inventory_item_id"):
        frame[col] = frame[col].astype("int64")
    frame["quantity_per_unit"] = frame["quantity_per_unit"].astype("float64")
    return frame


# --------------------------------------------------------------------------- unit features


def inventory_features(reader: ReplicaReader, scope: Scope, settings: InventorySettings) -> InventoryFeatures:
    """Read one shard's inventory state at ``scope.as_of``.

    Args:
        scope: the shard's ``core.units.Scope``.
        settings: ``core.settings.InventorySettings`` (history lengths, horizons).
    """
    rids = scope.restaurant_ids
    as_of = scope.as_of
    items = inventory_items(reader, rids)
    start = as_of - pd.Timedelta(days=settings.usage_history_days + 2)
    raw = daily_item_usage(reader, rids, start, as_of, scope.valid_until)
    first, last, futures = {}, {}, []
    share = consumption_hour_share(reader, rids, as_of - pd.Timedelta(days=28), as_of, scope.valid_until)
    for r in scope.restaurants.itertuples(index=False):
        rid, tz = int(r.id), r.timezone
        today = local_date(as_of, tz)
        first[rid] = local_date(start, tz) + pd.Timedelta(days=1)
        last[rid] = today - pd.Timedelta(days=1)
        fut = future_days(tz, as_of, settings.stockout_horizon_days)
        fut.insert(0, "restaurant_id", rid)
        local_now = as_of.tz_convert(tz).tz_localize(None)
        hour = local_now.hour + local_now.minute / 60.0
        prof = share[share["restaurant_id"] == rid].set_index("local_hour")["share"].reindex(range(24), fill_value=0.0)
        if prof.sum() <= 0:
            done = hour / 24.0
        else:
            done = float(prof.iloc[: int(hour)].sum() + prof.iloc[int(hour)] * (hour - int(hour)))
        fut["remaining_share"] = 1.0
        fut.loc[fut.index[0], "remaining_share"] = max(0.0, 1.0 - done)
        futures.append(fut)
    usage = usage_grid(raw, items, first, last)
    recipes = recipe_lines(reader, rids)
    zones = {rid: tz for rid, tz in checked_zones(scope.restaurants)[0].items() if rid in first}
    menu = menu_items(reader, rids, as_of)
    # units sold per menu item and day: the demand types' kept aggregates where the night has them
    # (``features.aggregate_cache``: the frame a full read gives), not the replica's every night
    sold = read_through("items", item_daily_units_in, reader, scope, zones, pd.Timestamp(start)) if zones else \
        pd.DataFrame(columns=["menu_item_id", "restaurant_id", "local_date", "units"])
    menu_units = menu_unit_grid(sold, menu[menu["id"].isin(recipes["menu_item_id"])], first, last, zones)
    usage = open_where_only_counted(usage, menu_units)
    on_hand = stock_on_hand(reader, rids, as_of, scope.valid_until)
    lots = allocate_batches(expiring_batches(reader, rids, as_of, scope.valid_until), on_hand)
    orders = open_purchase_orders(reader, rids, as_of, scope.valid_until)
    suppliers, lead, recent = supplier_history(reader, rids, as_of, settings)
    future = pd.concat(futures, ignore_index=True) if futures else pd.DataFrame()
    return InventoryFeatures(items, usage, on_hand, lots, orders, suppliers, lead, future, as_of,
                             recipes, menu_units, usage_midpoint_hour(share), recent_orders=recent)
