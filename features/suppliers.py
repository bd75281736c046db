"""Supplier facts from the replica, aggregated in PostgreSQL: which suppliers a shard uses and owns,
their order-to-receipt days and how late they are running now.

A supplier serves a whole organisation, so these read every restaurant's purchase orders of the
suppliers named (``features.inventory`` reads the shard's own items, stock and open orders). As of
an instant like the rest: an order counts as received only if it was received before ``as_of``.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from core.replica import ReplicaReader
from core.settings import InventorySettings
from features.quality import valid

# Lead-time quantiles read per supplier (``supplier_lead_times``): 40 levels, 1.25 % .. 98.75 %, enough
# to see a missed round or a bad spell in the tail of a daily supplier's year of deliveries
LEAD_QUANTILES = 40

# Purchase orders that were really placed with the supplier ('draft' never left the building).
PLACED = "po.status IN ('sent', 'received')"


def shard_suppliers(reader: ReplicaReader, restaurant_ids: list[int]) -> pd.DataFrame:
    """Suppliers used by these restaurants, and which restaurant owns each supplier's row.

    A supplier serves a whole organisation, but runs are sharded by restaurant. Its ``lead_time``
    row is written by the shard holding its owner: the lowest-id active restaurant that uses it
    (through an inventory item or a purchase order). Every shard computes the same org-wide
    figures, and exactly one writes them.

    Returns supplier_id, organization_id, promised_lead_days (NaN when unset),
    owner_restaurant_id, owned (owner is in ``restaurant_ids``).
    """
    frame = reader.frame(
        """
        WITH uses AS (
            SELECT supplier_id, restaurant_id FROM inventory_inventoryitem WHERE supplier_id IS NOT NULL
            UNION
            SELECT supplier_id, restaurant_id FROM inventory_purchaseorder WHERE supplier_id IS NOT NULL
        ),
        owners AS (
            SELECT u.supplier_id, min(u.restaurant_id) FILTER (WHERE r.is_active) AS owner_restaurant_id,
                   bool_or(u.restaurant_id = ANY(:rids)) AS used_here
            FROM uses u JOIN restaurants_restaurant r ON r.id = u.restaurant_id
            GROUP BY 1
        )
        SELECT s.id AS supplier_id, s.organization_id, s.default_lead_time_days::float8 AS promised_lead_days,
               o.owner_restaurant_id
        FROM inventory_supplier s JOIN owners o ON o.supplier_id = s.id
        WHERE o.used_here
        ORDER BY 1
        """,
        {"rids": restaurant_ids},
    )
    frame["supplier_id"] = frame["supplier_id"].astype("int64")
    frame["owner_restaurant_id"] = frame["owner_restaurant_id"].astype("Int64")
    frame["promised_lead_days"] = frame["promised_lead_days"].astype("float64")
    frame["owned"] = frame["owner_restaurant_id"].isin(restaurant_ids).astype(bool)
    return frame


def supplier_lead_times(
    reader: ReplicaReader, supplier_ids: list[int], start: datetime, as_of: datetime,
    quantiles: int = 0,
) -> pd.DataFrame:
    """Observed order-to-receipt days of received purchase orders, per supplier (all restaurants).

    Orders placed in [start, as_of) and received before ``as_of``; a receipt before the order is
    malformed and ignored. Returns supplier_id, n, mean, sd, p10, p50, p90 (days), last_ordered_at,
    and with ``quantiles`` K > 0 a column ``quantiles``: per supplier the lead times at the levels
    (k + 1/2) / K, k = 0 .. K-1 (the shape of ``models.lead_time``'s distribution, tail included),
    and the weekday medians (``_weekday_medians``).
    Orders still open are censored (not counted): a supplier late on everything looks better than it
    is until the orders arrive, which is why the spread matters as much as the mean.
    """
    levels = [(k + 0.5) / quantiles for k in range(quantiles)]
    extra = (",\n               percentile_cont(CAST(:levels AS float8[])) WITHIN GROUP (ORDER BY days) AS quantiles"
             if levels else "")
    frame = reader.frame(
        f"""
        WITH lt AS (
            SELECT po.supplier_id, po.ordered_at,
                   extract(epoch FROM po.received_at - po.ordered_at) / 86400.0 AS days
            FROM inventory_purchaseorder po
            WHERE po.supplier_id = ANY(:sids) AND {PLACED} AND po.ordered_at >= :start
              AND po.received_at IS NOT NULL AND po.received_at < :as_of AND {valid('inventory_purchaseorder', 'po')}
        )
        SELECT supplier_id, count(*) AS n, avg(days)::float8 AS mean, coalesce(stddev_samp(days), 0)::float8 AS sd,
               percentile_cont(0.1) WITHIN GROUP (ORDER BY days)::float8 AS p10,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY days)::float8 AS p50,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY days)::float8 AS p90,
               max(ordered_at) AS last_ordered_at{extra}
        FROM lt GROUP BY 1 ORDER BY 1
        """,
        {"sids": supplier_ids, "start": start, "as_of": as_of, "valid_until": as_of,
         **({"levels": [float(x) for x in levels]} if levels else {})},
    )
    frame["supplier_id"] = frame["supplier_id"].astype("int64")
    frame["n"] = frame["n"].astype("int64")
    if quantiles:
        frame = frame.merge(_weekday_medians(reader, supplier_ids, start, as_of), on="supplier_id", how="left")
    return frame


def _weekday_medians(reader: ReplicaReader, supplier_ids: list[int], start: datetime, as_of: datetime) -> pd.DataFrame:
    """Per supplier, the received orders and their median lead (days) by the local weekday they were
    placed on (the ordering restaurant's zone): ``wd_n_{w}``, ``wd_p50_{w}``, w = 0 (Monday) .. 6.
    Vans that do not come on Sundays and weekend backlogs make a Saturday order slower than a
    Tuesday one, every week, and a lead time blind to it carries the difference as spread."""
    long = reader.frame(
        f"""
        SELECT po.supplier_id, (extract(isodow FROM po.ordered_at AT TIME ZONE r.timezone))::int - 1 AS weekday,
               count(*) AS n,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM po.received_at - po.ordered_at) / 86400.0)::float8 AS p50
        FROM inventory_purchaseorder po JOIN restaurants_restaurant r ON r.id = po.restaurant_id
        WHERE po.supplier_id = ANY(:sids) AND {PLACED} AND po.ordered_at >= :start
          AND po.received_at IS NOT NULL AND po.received_at < :as_of AND po.received_at >= po.ordered_at
          AND {valid('inventory_purchaseorder', 'po')}
        GROUP BY 1, 2
        """,
        {"sids": supplier_ids, "start": start, "as_of": as_of, "valid_until": as_of},
    )
    return weekday_columns(long)


def weekday_columns(long: pd.DataFrame) -> pd.DataFrame:
    """supplier_id, weekday, n, p50 rows as one row per supplier (``wd_n_{w}``, ``wd_p50_{w}``)."""
    wide = pd.DataFrame({"supplier_id": pd.Series(sorted({int(s) for s in long["supplier_id"]}), dtype="int64")})
    for w in range(7):
        day = long[long["weekday"] == w].set_index("supplier_id")
        wide[f"wd_n_{w}"] = wide["supplier_id"].map(day["n"]).fillna(0).astype("int64")
        wide[f"wd_p50_{w}"] = wide["supplier_id"].map(day["p50"]).astype(float)
    return wide


def supplier_recent_orders(reader: ReplicaReader, supplier_ids: list[int], as_of: datetime, days: int) -> pd.DataFrame:
    """Each supplier's orders (all restaurants) placed in the last ``days`` before ``as_of``.

    What says how late a supplier is running now. Received orders (before ``as_of``) with their
    lead time; orders not received by ``as_of`` with the days elapsed so far, a lower bound of
    theirs (``open``; a receipt at or after ``as_of`` is not known yet). A receipt before the order
    is malformed and ignored. Returns supplier_id, ordered_at, lead_days, open.
    """
    frame = reader.frame(
        f"""
        SELECT po.supplier_id, po.ordered_at,
               extract(epoch FROM CASE WHEN po.received_at < :as_of THEN po.received_at
                                       ELSE CAST(:as_of AS timestamptz) END - po.ordered_at) / 86400.0 AS lead_days,
               po.received_at IS NULL OR po.received_at >= :as_of AS open
        FROM inventory_purchaseorder po
        WHERE po.supplier_id = ANY(:sids) AND {PLACED} AND po.ordered_at >= :start AND po.ordered_at < :as_of
          AND (po.received_at IS NULL OR po.received_at >= po.ordered_at)
          AND {valid('inventory_purchaseorder', 'po')}
        ORDER BY po.supplier_id, po.ordered_at
        """,
        {"sids": supplier_ids, "as_of": as_of, "start": as_of - pd.Timedelta(days=days), "valid_until": as_of},
    )
    frame["supplier_id"] = frame["supplier_id"].astype("int64")
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"], utc=True)
    frame["lead_days"] = frame["lead_days"].astype("float64")
    frame["open"] = frame["open"].astype(bool)
    return frame


# (suppliers, lead-time history, recent orders): see ``supplier_history``.
SupplierHistory = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]


def supplier_history(reader: ReplicaReader, restaurant_ids: list[int], as_of: datetime,
                     settings: InventorySettings) -> SupplierHistory:
    """The shard's suppliers, their lead-time history and their recent orders, as of ``as_of``:
    what ``models.lead_time.SupplierLeadTime`` fits on, for the weekly lead_time unit and the
    daily stock plan alike.

    Args:
        settings: ``core.settings.InventorySettings`` (lead_time_history_days, lead_time_recent_days).
    Returns (``shard_suppliers``, ``supplier_lead_times``, ``supplier_recent_orders``).
    """
    suppliers = shard_suppliers(reader, restaurant_ids)
    sids = [int(s) for s in suppliers["supplier_id"]]
    history = supplier_lead_times(reader, sids, as_of - pd.Timedelta(days=settings.lead_time_history_days), as_of,
                                  LEAD_QUANTILES)
    recent = supplier_recent_orders(reader, sids, as_of, settings.lead_time_recent_days)
    return suppliers, history, recent


def received_orders(
    reader: ReplicaReader, supplier_ids: list[int], start: datetime, end: datetime
) -> pd.DataFrame:
    """Received purchase orders placed in [start, end) with their lead time in days (for evaluation).

    Returns purchase_order_id, supplier_id, restaurant_id, ordered_at, lead_days.
    """
    frame = reader.frame(
        f"""
        SELECT po.id AS purchase_order_id, po.supplier_id, po.restaurant_id, po.ordered_at,
               (extract(epoch FROM po.received_at - po.ordered_at) / 86400.0)::float8 AS lead_days
        FROM inventory_purchaseorder po
        WHERE po.supplier_id = ANY(:sids) AND {PLACED} AND po.ordered_at >= :start AND po.ordered_at < :end
          AND po.received_at IS NOT NULL AND po.received_at >= po.ordered_at
        ORDER BY po.ordered_at
        """,
        {"sids": supplier_ids, "start": start, "end": end},
    )
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"], utc=True)
    return frame
