"""A chain's daily totals written into a replica-schema database, in one transaction.

Reading and checking are ``sales_import.totals``; this module brings the replica to the file's
totals: new restaurant-days get their orders, a day the file now counts differently (a late
correction) gets orders added or removed until it holds the file's total, a day the file does not
mention is left alone. What changed is returned, day by day, for the command to print.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd
import psycopg2

from core.pg import libpq_dsn
from sales_import.loader import (
    ID_RANGE,
    ORDER_TYPE,
    as_of_after,
    check_timezone,
    check_zones,
    copy_insert,
    ensure_schema,
    resolve_country,
    stable_id,
)
from sales_import.reader import SalesImportError
from sales_import.totals import TotalsChange, explode_orders, read_sites, read_totals


@dataclass
class TotalsReport:
    file: str
    rows_read: int
    columns: dict[str, str]
    organization_id: int
    restaurants: dict[str, int]
    orders_in_file: int
    first_local_day: str
    last_local_day: str
    next_as_of: str
    timezone: str
    country: str
    change: TotalsChange
    new_restaurants: int = 0
    future_days: int = 0
    zero_days: int = 0
    sites_matched: int | None = None
    sites_missing: int | None = None
    site_columns_not_stored: list[str] = field(default_factory=list)


def import_daily_totals(
    path: str | Path,
    dsn: str,
    *,
    timezone: str,
    organization_name: str | None = None,
    country: str | None = None,
    columns: dict[str, str | None] | None = None,
    date_format: str | None = None,
    sites: str | Path | None = None,
    today: datetime | None = None,
) -> TotalsReport:
    """Import daily totals (one row per site and local date) into the replica at ``dsn``; see
    docs/import.md. Raises ``SalesImportError`` for any bad row or option; nothing is written then.

    Args:
        organization_name: the chain (default the file name); each site is a restaurant of it.
        sites: optional file of site attributes (``read_sites``); what the replica has no column for
            is named in the report, not stored.
        today: the import's clock (UTC; default now): later dates are counted and skipped.
    """
    check_timezone(timezone)
    country = resolve_country(country, timezone)
    path = Path(path)
    data = read_totals(path, timezone, columns or {}, date_format=date_format, today=today)
    if data.totals.empty:
        raise SalesImportError(f"{path}: no daily total to import among {data.read} rows")
    org_name = (organization_name or path.stem).strip()
    org_id = stable_id("organization", org_name)
    totals = data.totals.copy()
    if "site" not in data.columns:
        totals["site"] = org_name
    rest_ids = {s: stable_id("restaurant", org_id, s) for s in sorted(totals["site"].unique())}
    totals["restaurant_id"] = totals["site"].map(rest_ids)
    firsts = totals.groupby("site")["local_date"].min()
    first_days = [firsts[s].date() for s in rest_ids]  # opened_on unless the sites file says otherwise
    restaurants = pd.DataFrame({"id": list(rest_ids.values()), "organization_id": org_id, "name": list(rest_ids),
                                "timezone": timezone, "country_code": country, "seats": None,
                                "opened_on": first_days, "is_active": True})
    report_sites: dict = {}
    if sites is not None:
        attrs, not_stored = read_sites(Path(sites), data.columns.get("site"))
        attrs = attrs.set_index("site")
        matched = restaurants["name"].isin(attrs.index)
        for col in ("seats", "opened_on"):
            if col in attrs:
                restaurants[col] = restaurants["name"].map(attrs[col]).where(matched, restaurants[col])
        restaurants["opened_on"] = restaurants["opened_on"].where(restaurants["opened_on"].notna(), first_days)
        report_sites = {"sites_matched": int(matched.sum()), "sites_missing": int((~matched).sum()),
                        "site_columns_not_stored": not_stored}
    orders = explode_orders(totals, stable_id, timezone, ID_RANGE)
    frames = {
        "restaurants_organization": pd.DataFrame({"id": [org_id], "name": [org_name]}),
        "restaurants_restaurant": restaurants,
        "orders_order": pd.DataFrame({
            "id": orders["id"], "restaurant_id": orders["restaurant_id"], "customer_id": None,
            "order_type": ORDER_TYPE, "status": "completed", "guest_count": None, "subtotal": 0.0,
            "discount_total": 0.0, "tax_total": 0.0, "total": 0.0, "created_at": orders["created_at"],
            "completed_at": orders["created_at"],
        }),
    }
    change, new_restaurants = _write(dsn, frames, totals, timezone)
    last = totals["local_date"].max()
    return TotalsReport(
        file=str(path), rows_read=data.read, columns=data.columns, organization_id=org_id,
        restaurants={str(k): v for k, v in rest_ids.items()}, orders_in_file=int(totals["orders"].sum()),
        first_local_day=str(totals["local_date"].min().date()), last_local_day=str(last.date()),
        next_as_of=as_of_after(last, timezone), timezone=timezone, country=country, change=change,
        new_restaurants=new_restaurants, future_days=data.future_days, zero_days=data.zero_days, **report_sites,
    )


def _existing_counts(cur, restaurant_ids: list[int], tz: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Orders already in the replica per restaurant and local date, in [start, end) local dates."""
    cur.execute(
        """
        SELECT restaurant_id, (created_at AT TIME ZONE %(tz)s)::date AS local_date, count(*) AS orders
        FROM orders_order
        WHERE restaurant_id = ANY(%(ids)s) AND status <> 'cancelled'
          AND created_at >= (%(start)s::timestamp AT TIME ZONE %(tz)s)
          AND created_at < (%(end)s::timestamp AT TIME ZONE %(tz)s)
        GROUP BY 1, 2
        """,
        {"ids": restaurant_ids, "tz": tz, "start": start.to_pydatetime(), "end": end.to_pydatetime()},
    )
    frame = pd.DataFrame(cur.fetchall(), columns=["restaurant_id", "local_date", "before"])
    frame["local_date"] = pd.to_datetime(frame["local_date"])
    frame["restaurant_id"] = frame["restaurant_id"].astype("int64")
    return frame


def _write(dsn: str, frames: dict[str, pd.DataFrame], totals: pd.DataFrame, tz: str) -> tuple[TotalsChange, int]:
    rids = [int(i) for i in frames["restaurants_restaurant"]["id"]]
    conn = psycopg2.connect(libpq_dsn(dsn))
    try:
        with conn.cursor() as cur:
            ensure_schema(cur, need_customers=False)
            check_zones(cur, rids, tz)
            cur.execute(
                """SELECT DISTINCT o.restaurant_id FROM orders_order o
                   WHERE o.restaurant_id = ANY(%s)
                     AND EXISTS (SELECT 1 FROM orders_orderitem i WHERE i.order_id = o.id) LIMIT 1""",
                (rids,),
            )
            if cur.fetchone():
                raise SalesImportError("a restaurant of this file holds till lines in the database: daily totals "
                                       "cannot correct line-level sales (import them under another chain name)")
            copy_insert(cur, "restaurants_organization", frames["restaurants_organization"])
            new_restaurants = copy_insert(cur, "restaurants_restaurant", frames["restaurants_restaurant"])
            before = _existing_counts(cur, rids, tz, totals["local_date"].min(),
                                      totals["local_date"].max() + pd.Timedelta(days=1))
            days = totals[["site", "restaurant_id", "local_date", "orders"]].merge(
                before, on=["restaurant_id", "local_date"], how="left").fillna({"before": 0})
            # a chain's first import: none of its restaurants has an order yet, nothing to conflict with
            inserted = copy_insert(cur, "orders_order", frames["orders_order"], direct=before.empty)
            removed = _remove_surplus(cur, days[days["before"] > days["orders"]], tz)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()
    changed = days[(days["before"] > 0) & (days["before"] != days["orders"])]
    change = TotalsChange(
        days_new=int((days["before"] == 0).sum() - ((days["before"] == 0) & (days["orders"] == 0)).sum()),
        days_corrected=len(changed),
        days_unchanged=int(((days["before"] > 0) & (days["before"] == days["orders"])).sum()),
        orders_inserted=inserted,
        orders_removed=removed,
        examples=[f"{r.site} {r.local_date.date()}: {int(r.before)} -> {int(r.orders)} orders"
                  for r in changed.head(10).itertuples(index=False)],
    )
    return change, new_restaurants


def _remove_surplus(cur, days: pd.DataFrame, tz: str) -> int:
    """Delete the orders of corrected days that the file's totals no longer hold: those whose id is
    not among this import's (``copy_insert`` left them in ``_import_orders_order``)."""
    if days.empty:
        return 0
    cur.execute(
        """
        DELETE FROM orders_order o
        USING unnest(%(rids)s::bigint[], %(dates)s::date[]) AS d(rid, local_date)
        WHERE o.restaurant_id = d.rid
          AND o.created_at >= (d.local_date::timestamp AT TIME ZONE %(tz)s)
          AND o.created_at < ((d.local_date + 1)::timestamp AT TIME ZONE %(tz)s)
          AND o.status <> 'cancelled'
          AND NOT EXISTS (SELECT 1 FROM _import_orders_order t WHERE t.id = o.id)
        """,
        {"rids": [int(r) for r in days["restaurant_id"]], "dates": [d.date() for d in days["local_date"]], "tz": tz},
    )
    return cur.rowcount
