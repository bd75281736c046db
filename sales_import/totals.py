"""A chain's daily totals (one row per restaurant and local date: that many orders) imported as orders.

Many chains cannot hand over till lines: their back office exports a day's total per restaurant
(orders, covers, visitors), one file for the whole chain. Each row becomes that many orders of the
restaurant on that local date, placed at local noon: the replica has no column that says "this
order has no time of day", so the instant is a convention the pipeline recognises (every order of a
restaurant at one local time of day: ``features.demand``) and never forecasts hours from.

Unlike a line export, where one bad line is one lost sale, a daily total is the whole day: a bad
row is an error that writes nothing, never a silently skipped day. Ids derive from (restaurant,
date, rank), so a re-import finds every order there, and a later export of the same chain brings
each day it holds to that file's total (orders added or removed) without touching other days: a
day missing from the file is no day of zero sales.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from sales_import.reader import SalesImportError, _as_text, _norm, _parse_naive, read_table

# Local wall time given to a day's orders: inside every local date in every zone (no DST change
# happens at noon), and away from the 05:00 business-day boundary of line imports.
ORDER_LOCAL_TIME = timedelta(hours=12)
# Roles of a daily-totals file; "line" roles below would mean the file is a line export instead.
TOTAL_GUESSES: dict[str, tuple[str, ...]] = {
    "site": ("site", "siteid", "store", "storeid", "airstoreid", "restaurant", "restaurantid", "location",
             "locationid", "branch", "outlet", "shop"),
    "date": ("date", "visitdate", "businessdate", "day", "salesdate", "saledate", "orderdate"),
    "count": ("orders", "ordercount", "visitors", "covers", "guests", "transactions", "tickets", "count"),
}
LINE_ROLES = ("timestamp", "time", "ticket", "item", "quantity", "price", "customer", "line", "category")
# Site attributes the replica schema has a column for (restaurants_restaurant), by common spelling.
SITE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "seats": ("seats", "seatcount", "capacity", "covers"),
    "opened_on": ("openedon", "opened", "opendate", "openingdate"),
}


@dataclass
class DailyTotals:
    """Orders per site and local date, and what the file held besides."""

    totals: pd.DataFrame  # site (str), local_date (datetime64 midnight), orders (int64)
    read: int
    columns: dict[str, str]
    future_days: int = 0  # rows dated after today in the zone: not yet happened, skipped
    zero_days: int = 0  # rows with a count of 0 (no orders to write; the day looks closed)


@dataclass
class TotalsChange:
    """What an import changed, per restaurant-day."""

    days_new: int = 0
    days_corrected: int = 0
    days_unchanged: int = 0
    orders_inserted: int = 0
    orders_removed: int = 0
    examples: list[str] = field(default_factory=list)  # "site 2017-02-20: 31 -> 35"


def _find(found: list[str], explicit: str | None, guesses: tuple[str, ...], flag: str) -> str | None:
    by_norm: dict[str, str] = {}
    for col in found:
        by_norm.setdefault(_norm(col), col)
    if explicit:
        col = explicit if explicit in found else by_norm.get(_norm(explicit))
        if col is None:
            raise SalesImportError(f"column {explicit!r} ({flag}) not in the file; columns found: {', '.join(found)}")
        return col
    return next((by_norm[g] for g in guesses if g in by_norm), None)


def _row_numbers(mask: pd.Series, limit: int = 3) -> str:
    """File line numbers (header = line 1) of the first rows where ``mask`` holds."""
    rows = [str(int(i) + 2) for i in np.flatnonzero(mask.to_numpy())[:limit]]
    return ", ".join(rows) + (", ..." if int(mask.sum()) > limit else "")


def read_totals(
    path: Path,
    tz: str,
    columns: dict[str, str | None],
    *,
    date_format: str | None = None,
    today: datetime | None = None,
) -> DailyTotals:
    """Read a daily-totals file; any bad row raises ``SalesImportError`` (nothing is imported).

    Args:
        columns: role -> column name given by flags (site, date, count; line roles must be None).
        today: the import's clock (UTC instant; default now): days after its local date are skipped.
    """
    mixed = [r for r in LINE_ROLES if columns.get(r)]
    if mixed:
        raise SalesImportError(
            "a count column and line columns mixed (--count-col with --"
            + "-col, --".join(mixed) + "-col): a file is either daily totals or till lines"
        )
    raw = read_table(Path(path))
    found = list(raw.columns)
    mapping = {}
    for role in ("site", "date", "count"):
        col = _find(found, columns.get(role), TOTAL_GUESSES[role], f"--{role}-col")
        if col is not None:
            mapping[role] = col
    for role in ("date", "count"):
        if role not in mapping:
            raise SalesImportError(f"no {role} column (give --{role}-col); columns found: {', '.join(found)}")
    site = _as_text(raw[mapping["site"]]) if "site" in mapping else pd.Series("", index=raw.index, dtype=object)
    if "site" in mapping and (site == "").any():
        bad = site == ""
        raise SalesImportError(f"{int(bad.sum())} rows have an empty site ({mapping['site']!r}; file lines "
                               f"{_row_numbers(bad)}): every total must name its restaurant")
    day_col = raw[mapping["date"]]
    if pd.api.types.is_datetime64_any_dtype(day_col):
        day = pd.to_datetime(day_col)
    else:
        day_text = _as_text(day_col)
        uniq = pd.Series(day_text.unique())
        parsed = dict(zip(uniq, _parse_naive(uniq, date_format)))
        day = pd.to_datetime(day_text.map(parsed))
    bad = day.isna()
    if bad.any():
        example = _as_text(day_col)[bad].iloc[0]
        raise SalesImportError(f"{int(bad.sum())} rows have a date that does not parse ({mapping['date']!r}, e.g. "
                               f"{example!r} on file line {_row_numbers(bad, 1)}); give --date-format if it is valid")
    if (day != day.dt.normalize()).any():
        raise SalesImportError(f"{mapping['date']!r} holds times of day: this file is not daily totals")
    count_text = _as_text(raw[mapping["count"]])
    count = pd.to_numeric(count_text.str.replace(",", "", regex=False), errors="coerce")
    for mask, what in ((count.isna(), "not a number"), (count < 0, "negative"),
                       (count.notna() & (count != np.floor(count.fillna(0))), "not a whole number")):
        if mask.any():
            example = count_text[mask].iloc[0]
            raise SalesImportError(f"{int(mask.sum())} rows have a count that is {what} ({mapping['count']!r}, e.g. "
                                   f"{example!r} on file line {_row_numbers(mask, 1)})")
    totals = pd.DataFrame({"site": site.to_numpy(), "local_date": day.to_numpy(), "orders": count.astype("int64")})
    dup = totals.duplicated(["site", "local_date"], keep=False)
    if dup.any():
        first = totals[dup].iloc[0]
        raise SalesImportError(f"{int(dup.sum())} rows repeat a site and date (e.g. {first['site'] or 'the file'} on "
                               f"{first['local_date'].date()}, file lines {_row_numbers(dup)}): one total per day, "
                               "add them up before importing")
    local_today = pd.Timestamp(today or datetime.now(timezone.utc)).tz_convert(ZoneInfo(tz)).tz_localize(None)
    future = totals["local_date"] > local_today.normalize()
    zero = totals["orders"] == 0
    return DailyTotals(totals=totals[~future].reset_index(drop=True), read=len(raw), columns=mapping,
                       future_days=int(future.sum()), zero_days=int((zero & ~future).sum()))


def read_sites(path: Path, site_col: str | None) -> tuple[pd.DataFrame, list[str]]:
    """Site attributes from ``--sites FILE``: (site, seats, opened_on) where the file has them, and
    the columns the replica schema has no place for (genre, area, coordinates: named, not stored)."""
    raw = read_table(Path(path))
    found = list(raw.columns)
    key = _find(found, site_col if site_col and site_col in found else None, TOTAL_GUESSES["site"], "--site-col")
    if key is None:
        raise SalesImportError(f"{path}: no site column to match the totals' sites; columns found: {', '.join(found)}")
    out = pd.DataFrame({"site": _as_text(raw[key])})
    used = {key}
    for attr, guesses in SITE_ATTRIBUTES.items():
        col = _find(found, None, guesses, attr)
        if col is None or col in used:
            continue
        used.add(col)
        if attr == "seats":
            out[attr] = pd.to_numeric(_as_text(raw[col]), errors="coerce").round().astype("Int64")
        else:
            out[attr] = pd.to_datetime(_parse_naive(pd.Series(_as_text(raw[col]).unique()), None)).date
    if out["site"].duplicated().any():
        raise SalesImportError(f"{path}: a site appears twice in {key!r}")
    return out, [c for c in found if c not in used]


def order_instants(local_date: pd.Series, tz: str) -> pd.Series:
    """UTC instant of a day's orders: local noon of that date."""
    return (pd.to_datetime(local_date) + ORDER_LOCAL_TIME).dt.tz_localize(ZoneInfo(tz)).dt.tz_convert("UTC")


def explode_orders(totals: pd.DataFrame, stable_id, tz: str, id_range: tuple[int, int]) -> pd.DataFrame:
    """One row per order: id (stable over imports: restaurant, date, rank), restaurant_id, created_at.

    ``totals``: restaurant_id, local_date, orders. ``stable_id``: the importer's id hash, and
    ``id_range`` the [low, high) its ids live in.
    """
    totals = totals[totals["orders"] > 0]
    reps = totals["orders"].to_numpy()
    rid = np.repeat(totals["restaurant_id"].to_numpy(), reps)
    starts = np.cumsum(reps) - reps
    rank = np.arange(int(reps.sum())) - np.repeat(starts, reps)
    # one hash per restaurant-day (67 k for the public chain, not 1.4 M), spread over its ranks by
    # splitmix64, so an order's id depends only on (restaurant, date, rank) and stays in the range
    day = [stable_id("day_order", r, d.strftime("%Y-%m-%d"))
           for r, d in zip(totals["restaurant_id"].tolist(), totals["local_date"].tolist())]
    ids = _spread(np.repeat(np.asarray(day, dtype=np.uint64), reps), rank.astype(np.uint64), *id_range)
    if pd.Index(ids).has_duplicates:
        raise SalesImportError("two orders hash to one id; please report this file")
    at = np.repeat(order_instants(totals["local_date"], tz).to_numpy(), reps)
    return pd.DataFrame({"id": ids, "restaurant_id": rid, "created_at": at})


def _spread(base: np.ndarray, rank: np.ndarray, low: int, high: int) -> np.ndarray:
    """splitmix64(base + rank) mapped into [low, high): a well-mixed id per rank of a day."""
    with np.errstate(over="ignore"):
        x = base + rank * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (np.uint64(low) + x % np.uint64(high - low)).astype("int64")

