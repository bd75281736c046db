"""What counts as a malformed replica row, in one place.

The same predicate both filters rows out of every feature query and counts them for the run
record, so "skipped" in the run record means exactly "not used". The predicates reject what a
real replica has been seen to hold although the contract forbids it or it makes no sense: nulls
in required columns (a replica loaded without constraints), negative quantities or amounts,
timestamps in the future.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from core.replica import ReplicaReader

# Predicates over a table alias ``{a}``. ``:valid_until`` is the wall-clock now plus a small
# tolerance: a row stamped after it cannot have happened yet.
_VALID: dict[str, str] = {
    "orders_order": (
        "{a}.created_at IS NOT NULL AND {a}.created_at <= :valid_until "
        "AND {a}.restaurant_id IS NOT NULL AND {a}.status IS NOT NULL "
        "AND {a}.total IS NOT NULL AND {a}.total >= 0 AND {a}.subtotal IS NOT NULL AND {a}.subtotal >= 0"
    ),
    "orders_orderitem": (
        "{a}.quantity IS NOT NULL AND {a}.quantity > 0 AND {a}.menu_item_id IS NOT NULL "
        "AND {a}.unit_price IS NOT NULL AND {a}.unit_price >= 0 AND {a}.created_at <= :valid_until"
    ),
    "kitchen_orderitemstation": (
        "{a}.queued_at IS NOT NULL AND {a}.queued_at <= :valid_until "
        "AND ({a}.prep_time_minutes IS NULL OR {a}.prep_time_minutes >= 0) "
        "AND ({a}.queue_size_at_start IS NULL OR {a}.queue_size_at_start >= 0)"
    ),
    "inventory_stockmovement": (
        "{a}.occurred_at IS NOT NULL AND {a}.occurred_at <= :valid_until "
        "AND {a}.quantity IS NOT NULL AND abs({a}.quantity) < 1000000"
    ),
    "inventory_batch": (
        "{a}.received_at IS NOT NULL AND {a}.received_at <= :valid_until "
        "AND {a}.quantity_received >= 0 AND {a}.quantity_remaining >= 0"
    ),
    "inventory_purchaseorder": (
        "{a}.ordered_at IS NOT NULL AND {a}.ordered_at <= :valid_until "
        "AND ({a}.received_at IS NULL OR {a}.received_at >= {a}.ordered_at)"
    ),
    "inventory_purchaseorderline": "{a}.quantity_ordered IS NOT NULL AND {a}.quantity_ordered > 0",
    # A profile "joined" in the future or without an organisation cannot be placed in time or shard.
    "customers_customerprofile": (
        "{a}.organization_id IS NOT NULL AND {a}.date_joined IS NOT NULL AND {a}.date_joined <= :valid_until"
    ),
}

# How each table reaches a restaurant, for counting per shard.
_SCOPE: dict[str, tuple[str, str]] = {
    "orders_order": ("orders_order t", "t.restaurant_id = ANY(:rids)"),
    "orders_orderitem": (
        "orders_orderitem t JOIN orders_order o ON o.id = t.order_id",
        "o.restaurant_id = ANY(:rids)",
    ),
    "kitchen_orderitemstation": (
        "kitchen_orderitemstation t JOIN kitchen_station s ON s.id = t.station_id",
        "s.restaurant_id = ANY(:rids)",
    ),
    "inventory_stockmovement": (
        "inventory_stockmovement t JOIN inventory_inventoryitem i ON i.id = t.inventory_item_id",
        "i.restaurant_id = ANY(:rids)",
    ),
    "inventory_batch": (
        "inventory_batch t JOIN inventory_inventoryitem i ON i.id = t.inventory_item_id",
        "i.restaurant_id = ANY(:rids)",
    ),
    "inventory_purchaseorder": ("inventory_purchaseorder t", "t.restaurant_id = ANY(:rids)"),
    "inventory_purchaseorderline": (
        "inventory_purchaseorderline t JOIN inventory_purchaseorder p ON p.id = t.purchase_order_id",
        "p.restaurant_id = ANY(:rids)",
    ),
    # Counted at the home restaurant; profiles without one are checked by the unit that reads them.
    "customers_customerprofile": ("customers_customerprofile t", "t.home_restaurant_id = ANY(:rids)"),
}

# Rows that existed at ``:as_of`` by the date the replica gives them (``column``: a menu item's
# ``created_at``, a customer's ``date_joined``): an as-of replay sees the replica as it was then.
# A null as-of keeps every row.
AS_OF_FILTER = "(CAST(:as_of AS timestamptz) IS NULL OR {column} < CAST(:as_of AS timestamptz))"


def valid(table: str, alias: str) -> str:
    """SQL predicate that keeps only well-formed rows of ``table`` (aliased ``alias``)."""
    return "(" + _VALID[table].format(a=alias) + ")"


def count_malformed(
    reader: ReplicaReader,
    tables: Iterable[str],
    restaurant_ids: list[int],
    valid_until: datetime,
) -> dict[str, int]:
    """Malformed rows per table for these restaurants; tables without a rule are not counted.

    Args:
        tables: replica tables the run reads (those absent from the replica are ignored).
        restaurant_ids: the shard's restaurants.
        valid_until: the latest plausible timestamp (wall clock now plus tolerance), UTC.
    """
    counts: dict[str, int] = {}
    for table in tables:
        if table not in _VALID or table not in reader.present_columns:
            continue
        source, scope = _SCOPE[table]
        n = reader.scalar(
            f"SELECT count(*) FROM {source} WHERE {scope} AND NOT {valid(table, 't')}",
            {"rids": restaurant_ids, "valid_until": valid_until},
        )
        if n:
            counts[table] = int(n)
    return counts
