"""Sale lines written into a replica-schema database as an RMS would hold them, in one transaction.

Ids are derived from the data (a hash of the restaurant and the ticket, the item, the line), not
drawn from a sequence: importing the same export again finds every row already there (``ON
CONFLICT DO NOTHING``), and a newer export adds only the lines that are new. Nothing is written
unless everything is: a failure rolls the whole import back.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, available_timezones

import numpy as np
import pandas as pd
import psycopg2

from sales_import.reader import SKIP_REASONS, SalesImportError, read_sales
from core.pg import libpq_dsn
from core.contract import contract

# The tables an import writes; customers_customerprofile only when the export names customers.
CORE_TABLES = ("restaurants_organization", "restaurants_restaurant", "menu_menuitem",
               "customers_customerprofile", "orders_order", "orders_orderitem")
# A local day's sales before this hour belong to the previous business day (a 01:30 bar tab is
# last night's): it keys orders, so a POS that restarts ticket numbers daily stays right.
BUSINESS_DAY_STARTS = timedelta(hours=5)
# Derived ids live in [2**32, 2**53): above the sequential ids an RMS hands out, and exact as a float64.
_ID_LOW, _ID_HIGH = 1 << 32, 1 << 53
ORDER_TYPE = "dine_in"  # exports do not say; demand does not read it


def stable_id(*parts: object) -> int:
    digest = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return _ID_LOW + int.from_bytes(digest, "big") % (_ID_HIGH - _ID_LOW)


ID_RANGE = (_ID_LOW, _ID_HIGH)  # for ids derived in bulk from one stable_id (sales_import.totals)


@dataclass
class ImportReport:
    file: str
    lines_read: int
    lines_imported: int
    skipped: dict[str, int]
    notes: dict[str, int]
    columns: dict[str, str]
    tickets_in_file: int
    items_in_file: int
    organization_id: int
    restaurants: dict[str, int]
    inserted: dict[str, int]
    first_local_day: str | None
    last_local_day: str | None
    next_as_of: str | None
    timezone: str
    country: str
    currency: str | None = None
    orders_updated: int = 0
    extra: dict = field(default_factory=dict)

    def skip_table(self) -> list[tuple[str, int]]:
        return [(SKIP_REASONS[k], n) for k, n in self.skipped.items()]


def check_timezone(tz: str) -> str:
    if tz not in available_timezones():
        raise SalesImportError(f"unknown timezone {tz!r}: give an IANA name such as Europe/London or America/New_York")
    return tz


def country_of_zone(tz: str) -> str | None:
    """The ISO country of an IANA zone from tzdata's zone.tab (Europe/London -> GB), if it has one."""
    try:
        import tzdata

        tab = Path(tzdata.__file__).parent / "zoneinfo" / "zone.tab"
        for line in tab.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and not line.startswith("#") and parts[2] == tz:
                return parts[0]
    except (ImportError, OSError):
        pass
    return None


def as_of_after(last_day, tz: str) -> str:
    """The ``--as-of`` that forecasts from the day after ``last_day`` (a local date): that day's
    business start (05:00 local) as a UTC instant, so ``last_day`` counts as complete."""
    start = pd.Timestamp(last_day) + pd.Timedelta(days=1)
    return (start.tz_localize(ZoneInfo(tz)) + BUSINESS_DAY_STARTS).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def resolve_country(country: str | None, tz: str) -> str:
    """The ISO 3166 code given, else the zone's country; refused when neither is a two-letter code."""
    code = (country or country_of_zone(tz) or "").strip().upper()
    if not re.fullmatch(r"[A-Z]{2}", code):
        raise SalesImportError(f"no ISO 3166 country code for {tz}: give --country (e.g. GB, US)")
    return code


def import_sales(
    path: str | Path,
    dsn: str,
    *,
    timezone: str,
    restaurant_name: str | None = None,
    country: str | None = None,
    currency: str | None = None,
    columns: dict[str, str | None] | None = None,
    date_format: str | None = None,
    now: datetime | None = None,
) -> ImportReport:
    """Import a POS line export into the replica-schema database at ``dsn``; see docs/import.md.

    Raises SalesImportError for input that cannot be imported (nothing is written then).
    """
    check_timezone(timezone)
    country = resolve_country(country, timezone)
    if currency is not None and not re.fullmatch(r"[A-Za-z]{3}", currency.strip()):
        raise SalesImportError(f"currency {currency!r} is not an ISO 4217 code such as GBP or EUR")
    path = Path(path)
    sales = read_sales(path, timezone, columns, date_format=date_format, now=now)
    lines = sales.lines
    if lines.empty:
        raise SalesImportError(f"{path}: no usable line among {sales.read} (skipped: {sales.skipped})")
    name = (restaurant_name or path.stem).strip()
    frames, restaurants, org_id = _frames(lines, name, timezone, country)
    local = lines["local"]
    last_day = (local.max() - BUSINESS_DAY_STARTS).date() if len(local) else None
    next_as_of = as_of_after(last_day, timezone) if last_day is not None else None
    inserted, updated = _write(dsn, frames, timezone)
    return ImportReport(
        file=str(path),
        lines_read=sales.read,
        lines_imported=len(lines),
        skipped=sales.skipped,
        notes=sales.notes,
        columns=sales.columns,
        tickets_in_file=sales.tickets_in_file,
        items_in_file=sales.items_in_file,
        organization_id=org_id,
        restaurants=restaurants,
        inserted=inserted,
        first_local_day=str((local.min() - BUSINESS_DAY_STARTS).date()),
        last_local_day=str(last_day),
        next_as_of=next_as_of,
        timezone=timezone,
        country=country,
        currency=currency.strip().upper() if currency else None,
        orders_updated=updated,
    )


def _first(series: pd.Series):
    return series.iloc[0]


def _frames(lines: pd.DataFrame, name: str, tz: str, country: str) -> tuple[dict[str, pd.DataFrame], dict[str, int], int]:
    """Rows per table (contract column names), ids derived from the data."""
    lines, org_id, rest_ids, item_price = _with_ids(lines, name)
    org = pd.DataFrame({"id": [org_id], "name": [name]})
    firsts = lines.groupby("restaurant_id")["local"].min()
    restaurants = pd.DataFrame({
        "id": list(rest_ids.values()),
        "organization_id": org_id,
        "name": list(rest_ids.keys()),
        "timezone": tz,
        "country_code": country,
        "seats": None,
        "opened_on": [(firsts[i] - BUSINESS_DAY_STARTS).date() for i in rest_ids.values()],
        "is_active": True,
    })
    by_item = lines.groupby("menu_item_id")
    items = pd.DataFrame({
        "id": by_item.size().index,
        "restaurant_id": by_item["restaurant_id"].first().to_numpy(),
        "name": by_item["item"].agg(lambda s: s.value_counts().index[0]).to_numpy(),
        "category": by_item["category"].agg(lambda s: s.value_counts().index[0]).to_numpy(),
        "price": item_price.reindex(by_item.size().index).to_numpy(),
        "cost": None,
        "station_id": None,
        "is_active": True,
        "created_at": by_item["at"].min().to_numpy(),
    })
    customers = _customers(lines, org_id)
    orders, order_items = _orders(lines)
    frames = {"restaurants_organization": org, "restaurants_restaurant": restaurants, "menu_menuitem": items,
              "customers_customerprofile": customers, "orders_order": orders, "orders_orderitem": order_items}
    return frames, {str(k): v for k, v in rest_ids.items()}, org_id


def _with_ids(lines: pd.DataFrame, name: str) -> tuple[pd.DataFrame, int, dict, pd.Series]:
    """The lines with their restaurant, menu item, order and line ids (stable, from the data), and
    prices filled; the organisation's id, the restaurants' ids by name and the items' median price."""
    lines = lines.copy()
    has_sites = lines["site"].notna().any()
    org_id = stable_id("organization", name)
    lines["restaurant"] = lines["site"] if has_sites else name
    rest_ids = {r: stable_id("restaurant", org_id, r) for r in lines["restaurant"].unique()}
    lines["restaurant_id"] = lines["restaurant"].map(rest_ids)
    lines["business_day"] = (lines["local"] - BUSINESS_DAY_STARTS).dt.date.astype(str)

    item_keys = lines[["restaurant_id", "item_key"]].drop_duplicates()
    item_ids = {(r, k): stable_id("item", r, k) for r, k in item_keys.itertuples(index=False)}
    lines["menu_item_id"] = [item_ids[(r, k)] for r, k in zip(lines["restaurant_id"], lines["item_key"])]
    order_keys = lines[["restaurant_id", "ticket", "business_day"]].drop_duplicates()
    order_ids = {tuple(k): stable_id("order", *k) for k in order_keys.itertuples(index=False)}
    lines["order_id"] = [order_ids[k] for k in zip(lines["restaurant_id"], lines["ticket"], lines["business_day"])]

    # A line without a price (or an export without prices) is charged the item's median price.
    item_price = lines.groupby("menu_item_id")["unit_price"].median().fillna(0.0).round(2)
    lines["unit_price"] = lines["unit_price"].fillna(lines["menu_item_id"].map(item_price)).round(2)

    if lines["line_id"].notna().any():
        line_ids = [stable_id("line", r, l) if isinstance(l, str) else None
                    for r, l in zip(lines["restaurant_id"], lines["line_id"])]
    else:
        line_ids = [None] * len(lines)
    # Identical lines of a ticket (a quantity of 2 written as two lines) are told apart by their
    # rank in a data-only sort, so the ids do not depend on the file's row order.
    lines = lines.assign(_lid=line_ids).sort_values(["order_id", "menu_item_id", "at", "quantity", "unit_price"],
                                                    kind="stable")
    rank = lines.groupby(["order_id", "menu_item_id"]).cumcount()
    lines["id"] = [lid if lid is not None else stable_id("line", o, m, k)
                   for lid, o, m, k in zip(lines["_lid"], lines["order_id"], lines["menu_item_id"], rank)]

    return lines, org_id, rest_ids, item_price


def _customers(lines: pd.DataFrame, org_id: int) -> pd.DataFrame:
    """The customers the lines name (joined at their first line, at home where it was); sets the
    lines' ``customer_id`` (NA without one)."""
    customers = pd.DataFrame()
    if lines["customer"].notna().any():
        with_customer = lines[lines["customer"].notna()].sort_values("at")
        first = with_customer.groupby("customer").agg(date_joined=("at", "min"), home=("restaurant_id", _first))
        customers = pd.DataFrame({
            "id": [stable_id("customer", org_id, c) for c in first.index],
            "organization_id": org_id,
            "home_restaurant_id": first["home"].to_numpy(),
            "date_joined": first["date_joined"].to_numpy(),
        })
        lines["customer_id"] = lines["customer"].map(dict(zip(first.index, customers["id"]))).astype("Int64")
    else:
        lines["customer_id"] = pd.array([pd.NA] * len(lines), dtype="Int64")
    return customers


def _orders(lines: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The orders (totals of their lines) and their order items."""
    lines["line_total"] = lines["quantity"] * lines["unit_price"]
    by_order = lines.sort_values("at", kind="stable").groupby("order_id")
    subtotal = by_order["line_total"].sum().round(2)
    orders = pd.DataFrame({
        "id": subtotal.index,
        "restaurant_id": by_order["restaurant_id"].first().to_numpy(),
        "customer_id": by_order["customer_id"].first().astype("Int64").array,
        "order_type": ORDER_TYPE,
        "status": "completed",
        "guest_count": None,
        "subtotal": subtotal.to_numpy(),
        "discount_total": 0.0,
        "tax_total": 0.0,
        "total": subtotal.to_numpy(),
        "created_at": by_order["at"].min().to_numpy(),
        "completed_at": by_order["at"].max().to_numpy(),
    })
    order_items = pd.DataFrame({
        "id": lines["id"].to_numpy(),
        "order_id": lines["order_id"].to_numpy(),
        "menu_item_id": lines["menu_item_id"].to_numpy(),
        "quantity": lines["quantity"].to_numpy(),
        "unit_price": lines["unit_price"].to_numpy(),
        "has_modifiers": False,
        "created_at": lines["at"].to_numpy(),
    })
    if order_items["id"].duplicated().any():
        raise SalesImportError("two different lines hash to one id; please report this export")
    return orders, order_items


def _present(cur) -> set[str]:
    cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
    return {r[0] for r in cur.fetchall()}


def ensure_schema(cur, need_customers: bool) -> None:
    """Create the core replica tables from the contract in a database that has none of them; in a
    database that has some, require those the import writes (an RMS without the customers module
    can take an export with no customer column)."""
    present = _present(cur)
    if not present & set(CORE_TABLES):
        defs = contract()
        for t in CORE_TABLES:
            # Keep the column, drop the key to a table of a module this database does not have.
            sql = re.sub(r"\s+REFERENCES\s+(\w+)\s*(?:\([^)]*\))?",
                         lambda m: m.group(0) if m.group(1) in CORE_TABLES else "", defs[t].create_sql)
            cur.execute(sql)
            for stmt in defs[t].index_sql:
                cur.execute(stmt)
        return
    needed = [t for t in CORE_TABLES if t != "customers_customerprofile" or need_customers]
    missing = [t for t in needed if t not in present]
    if missing:
        raise SalesImportError(f"the database has some replica tables but not {', '.join(missing)}")


def check_zones(cur, restaurant_ids, tz: str) -> None:
    """Refuse to add to a restaurant that is in the database with another timezone."""
    cur.execute("SELECT id, name, timezone FROM restaurants_restaurant WHERE id = ANY(%s)",
                (list(map(int, restaurant_ids)),))
    for rid, rname, rtz in cur.fetchall():
        if rtz != tz:
            raise SalesImportError(
                f"restaurant {rname!r} (id {rid}) is already in the database with timezone {rtz}, not {tz}"
            )


def _write(dsn: str, frames: dict[str, pd.DataFrame], tz: str) -> tuple[dict[str, int], int]:
    conn = psycopg2.connect(libpq_dsn(dsn))
    try:
        with conn.cursor() as cur:
            ensure_schema(cur, not frames["customers_customerprofile"].empty)
            check_zones(cur, frames["restaurants_restaurant"]["id"], tz)
            inserted = {}
            for table, frame in frames.items():
                if frame.empty:
                    continue
                inserted[table] = copy_insert(cur, table, frame)
            # A newer export may add lines to a ticket imported before: its totals follow its lines.
            cur.execute(
                """
                UPDATE orders_order o SET subtotal = s.sub, total = s.sub - o.discount_total + o.tax_total
                FROM (SELECT i.order_id, round(sum(i.quantity * i.unit_price), 2) AS sub
                      FROM orders_orderitem i JOIN _import_orders_order t ON t.id = i.order_id
                      GROUP BY i.order_id) s
                WHERE o.id = s.order_id AND o.subtotal <> s.sub
                """
            )
            updated = cur.rowcount
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()
    return inserted, updated


def copy_insert(cur, table: str, frame: pd.DataFrame, *, direct: bool = False) -> int:
    """COPY into a temporary twin, then INSERT ... ON CONFLICT DO NOTHING: the count is what was new.

    ``direct``: COPY straight into ``table``, for rows none of which can be there yet (a chain's
    first import): no twin and no conflict check, about half the time on 1.4 M orders."""
    cols = [c.name for c in contract()[table].columns if c.name in frame.columns]
    out = frame[cols].copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(out[c]):
            # each distinct instant formatted once (a day's orders share one)
            codes, uniques = pd.factorize(pd.to_datetime(out[c], utc=True))
            text = np.asarray(pd.DatetimeIndex(uniques).strftime("%Y-%m-%d %H:%M:%S.%f+00"), dtype=object)
            out[c] = np.where(codes >= 0, text[np.maximum(codes, 0)] if len(text) else "", "")
    buf = io.StringIO()
    out.to_csv(buf, index=False, header=False)
    buf.seek(0)
    col_list = ", ".join(cols)
    if direct:
        cur.copy_expert(f"COPY {table} ({col_list}) FROM STDIN WITH (FORMAT csv)", buf)
        return len(out)
    tmp = f"_import_{table}"
    cur.execute(f"CREATE TEMP TABLE {tmp} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP")
    cur.copy_expert(f"COPY {tmp} ({col_list}) FROM STDIN WITH (FORMAT csv)", buf)
    cur.execute(f"INSERT INTO {table} ({col_list}) SELECT {col_list} FROM {tmp} ON CONFLICT (id) DO NOTHING")
    return cur.rowcount
