"""What counts as a malformed replica row, in one place.

The same predicate both filters rows out of every feature query and counts them for the run
record, so "skipped" in the run record means exactly "not used". The predicates reject what a
real replica has been seen to hold although the contract forbids it or it makes no sense: nulls
in required columns (a replica loaded without constraints), negative quantities or amounts,
timestamps in the future.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone

import pandas as pd

from core.aggregates import MalformedCounts
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

# The large tables whose counts are kept between nights (``count_malformed``): the restaurant and
# the time stamp of a row in ``_SCOPE``'s source, both reachable through the contract's indexes
# (orders by restaurant and creation, order lines through their order, tickets by station and
# queue time, stock movements by item and time). The small tables are counted whole every night.
_STAMPED: dict[str, tuple[str, str]] = {
    "orders_order": ("t.restaurant_id", "t.created_at"),
    "orders_orderitem": ("o.restaurant_id", "o.created_at"),
    "kitchen_orderitemstation": ("s.restaurant_id", "t.queued_at"),
    "inventory_stockmovement": ("i.restaurant_id", "t.occurred_at"),
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
    kept: MalformedCounts | None = None,
    reread_days: int = 7,
    cycle: int = 7,
) -> dict[str, int]:
    """Malformed rows per table for these restaurants; tables without a rule are not counted.

    Why kept counts (issue 28): the count covers every row of the restaurants' history, and the
    four scans of the largest tables cost a warm night more than some units. With ``kept``, a
    large table's rows stamped before a restaurant's cutoff (``reread_days`` before its last full
    count) are taken from that count, and only the newer and unstamped rows are counted; each
    restaurant is counted in full one night in ``cycle`` (spread over restaurants), or when its
    count is missing, from another replica, or older than ``cycle`` days. So a row stamped long
    ago that is edited, added or removed changes the figure within ``cycle`` nights, not at once;
    the rows the features read are filtered by the same predicates either way.

    Args:
        tables: replica tables the run reads (those absent from the replica are ignored).
        restaurant_ids: the shard's restaurants.
        valid_until: the latest plausible timestamp (wall clock now plus tolerance), UTC.
        kept: the counts kept between nights (``core.aggregates.MalformedCounts``); None counts all.
        reread_days: days before a full count whose rows are counted again every night
            (``ForecastSettings.aggregates_reread_days``).
        cycle: nights over which every restaurant is counted in full once
            (``ForecastSettings.aggregates_check_cycle_days``; 1: every night).
    """
    counts: dict[str, int] = {}
    for table in tables:
        if table not in _VALID or table not in reader.present_columns:
            continue
        if kept is not None and table in _STAMPED:
            n = _count_with_kept(reader, table, [int(r) for r in restaurant_ids], valid_until, kept,
                                 reread_days, cycle)
        else:
            source, scope = _SCOPE[table]
            n = reader.scalar(
                f"SELECT count(*) FROM {source} WHERE {scope} AND NOT {valid(table, 't')}",
                {"rids": restaurant_ids, "valid_until": valid_until},
            )
        if n:
            counts[table] = int(n)
    return counts


def _due(restaurant_ids: list[int], have: pd.DataFrame, now: pd.Timestamp, cycle: int) -> list[int]:
    """The restaurants counted in full tonight: those without a usable kept count, and the whole
    shard on its night of the cycle (keyed by its first restaurant, so shards take turns).

    Why a shard at a time, not a restaurant at a time: a full count of a few restaurants scans as
    much as one of the whole shard wherever the planner takes a table scan (a shard is a tenth of
    a 100-restaurant chain: 1.5 s for two restaurants' order lines, measured), so spreading
    restaurants over the nights paid that scan every night instead of one night in ``cycle``."""
    if cycle <= 1 or not restaurant_ids:
        return list(restaurant_ids)
    night = (now.normalize() - pd.Timestamp("1970-01-01", tz="UTC")).days
    if (night + min(restaurant_ids)) % cycle == 0:
        return list(restaurant_ids)
    fresh = {int(r) for r, at in zip(have["restaurant_id"], have["counted_at"])
             if now - pd.Timestamp(at) < pd.Timedelta(days=cycle)}
    return [r for r in restaurant_ids if r not in fresh]


def _count_with_kept(reader: ReplicaReader, table: str, restaurant_ids: list[int], valid_until: datetime,
                     kept: MalformedCounts, reread_days: int, cycle: int) -> int:
    """``count_malformed`` of one large table through the kept counts (see there)."""
    source, _ = _SCOPE[table]
    rid, stamp = _STAMPED[table]
    now = pd.Timestamp(datetime.now(timezone.utc))
    have = kept.kept_counts(table, restaurant_ids)
    due = _due(restaurant_ids, have, now, cycle)
    total = 0
    if due:
        cutoff = (pd.Timestamp(valid_until) - pd.Timedelta(days=reread_days)).to_pydatetime()
        full = reader.frame(
            f"SELECT {rid} AS restaurant_id, count(*) FILTER (WHERE {stamp} < :cutoff) AS before, count(*) AS n "
            f"FROM {source} WHERE {rid} = ANY(:rids) AND NOT {valid(table, 't')} GROUP BY 1",
            {"rids": due, "valid_until": valid_until, "cutoff": cutoff},
        )
        total += int(full["n"].sum()) if len(full) else 0
        before = dict(zip(full["restaurant_id"].astype("int64"), full["before"].astype("int64")))
        kept.keep_counts(table, pd.DataFrame({"restaurant_id": due, "cutoff": cutoff,
                                              "malformed_before": [int(before.get(r, 0)) for r in due],
                                              "counted_at": now.to_pydatetime()}))
    rest = have[~have["restaurant_id"].astype("int64").isin(due)] if len(have) else have
    if len(rest):
        total += int(rest["malformed_before"].astype("int64").sum())
        # the rows stamped since each restaurant's cutoff, and the unstamped ones; the constant
        # bounds (restaurants, earliest cutoff) are what lets the planner take the indexes
        cutoffs = [pd.Timestamp(c).to_pydatetime() for c in rest["cutoff"]]
        total += int(reader.scalar(
            f"SELECT (SELECT count(*) FROM {source} "
            "JOIN unnest(CAST(:krids AS bigint[]), CAST(:cutoffs AS timestamptz[])) AS c(rid, cutoff) "
            f"ON c.rid = {rid} WHERE {rid} = ANY(:krids) AND {stamp} >= :lo AND {stamp} >= c.cutoff "
            f"AND NOT {valid(table, 't')}) + (SELECT count(*) FROM {source} WHERE {rid} = ANY(:krids) "
            f"AND {stamp} IS NULL AND NOT {valid(table, 't')})",
            {"krids": [int(r) for r in rest["restaurant_id"]], "cutoffs": cutoffs, "lo": min(cutoffs),
             "valid_until": valid_until},
        ) or 0)
    return total
