"""A POS line export (CSV or Parquet) read into clean sale lines, with every unusable line counted.

The reader knows nothing of the database: it maps the export's columns, parses times into UTC
instants in the restaurant's zone and drops what cannot be a sale, counting each dropped line
under the first reason that applies (``SKIP_REASONS`` order), so the import can print where every
line of the file went.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd


class SalesImportError(ValueError):
    """The export cannot be imported at all (not a table, a required column missing, bad option)."""


# Common spellings per role, compared after lower-casing and dropping everything but letters and
# digits ("Unit price" == "unit_price" == "UnitPrice"). Earlier spellings win.
GUESSES: dict[str, tuple[str, ...]] = {
    "timestamp": ("timestamp", "datetime", "createdat", "orderedat", "soldat", "saletimestamp", "ordertimestamp",
                  "transactiontimestamp", "transactiondatetime", "orderdatetime", "saledatetime"),
    "date": ("date", "orderdate", "saledate", "salesdate", "transactiondate", "businessdate", "ticketdate", "day"),
    "time": ("time", "ordertime", "saletime", "salestime", "transactiontime", "tickettime"),
    "ticket": ("transaction", "transactionid", "transactionno", "transactionnumber", "ticket", "ticketid",
               "ticketno", "ticketnumber", "order", "orderid", "orderno", "ordernumber", "receipt", "receiptid",
               "receiptno", "receiptnumber", "check", "checkid", "checkno", "checknumber", "invoice", "invoiceid",
               "invoiceno", "invoicenumber", "bill", "billid", "billno", "billnumber"),
    "item": ("item", "itemname", "product", "productname", "article", "articlename", "menuitem", "menuitemname",
             "description", "itemdescription", "productdescription", "itemcode", "productcode", "articlecode",
             "sku", "plu"),
    "quantity": ("quantity", "qty", "quantitysold", "qtysold", "units", "unitssold", "count"),
    "price": ("unitprice", "priceperunit", "price", "itemprice", "sellingprice", "saleprice"),
    "customer": ("customer", "customerid", "customerno", "customernumber", "customercode", "client", "clientid",
                 "memberid", "loyaltyid", "guestid"),
    "site": ("site", "siteid", "sitename", "store", "storeid", "storename", "restaurant", "restaurantid",
             "restaurantname", "location", "locationid", "locationname", "branch", "outlet", "shop"),
    "line": ("lineid", "lineno", "linenumber", "lineitemid", "line", "orderlineid", "ticketlineid"),
    "category": ("category", "itemcategory", "productcategory", "department", "itemgroup", "productgroup", "family"),
}
ROLES = tuple(GUESSES)

# Why a line is not imported, in the order the checks run: a line is counted under the first that applies.
SKIP_REASONS = {
    "no_ticket": "no ticket/order id",
    "no_item": "no item (empty or NONE)",
    "unparseable_time": "date/time missing or unparseable",
    "future_time": "date/time after the import's clock (not yet happened)",
    "unparseable_quantity": "quantity not a number",
    "negative_quantity": "negative quantity (a return or void)",
    "zero_quantity": "zero quantity",
    "fractional_quantity": "quantity not a whole number",
    "negative_price": "negative unit price (a refund or discount line)",
    "no_site": "no site (the export has a site column)",
    "duplicate_line_id": "line id seen before in the file",
}
NO_ITEM = frozenset({"", "none", "null", "nan", "n/a"})


@dataclass
class SaleLines:
    """Usable lines (one row per sold line) and where the others went.

    ``lines`` columns: site (str or None), ticket, item, item_key, category, quantity (int64),
    unit_price (float, NaN when the export has none for the line), customer (str or None),
    line_id (str or None), at (UTC instant), local (naive local wall time).
    """

    lines: pd.DataFrame
    read: int
    skipped: dict[str, int]
    columns: dict[str, str]
    notes: dict[str, int] = field(default_factory=dict)
    tickets_in_file: int = 0
    items_in_file: int = 0


def read_table(path: Path) -> pd.DataFrame:
    """The export as a frame of strings (CSV) or typed columns (Parquet)."""
    path = Path(path)
    if not path.is_file():
        raise SalesImportError(f"{path}: no such file")
    with path.open("rb") as fh:
        head = fh.read(1 << 16)
    if not head:
        raise SalesImportError(f"{path}: the file is empty")
    if head[:4] == b"PAR1":
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise SalesImportError(f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})") from None
    elif path.suffix.lower() in {".parquet", ".pq"}:
        raise SalesImportError(f"{path}: not a Parquet file (no PAR1 magic bytes)")
    else:
        frame = _read_csv(path, head)
    if frame.empty:
        raise SalesImportError(f"{path}: no lines (only a header, or nothing)")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _read_csv(path: Path, head: bytes) -> pd.DataFrame:
    if b"\x00" in head or path.suffix.lower() in {".xlsx", ".xls", ".zip", ".gz", ".json"}:
        raise SalesImportError(f"{path}: not a CSV or Parquet file (export the sales as CSV or Parquet)")
    # Excel's "CSV UTF-8" starts with a BOM; older tills write Windows-1252.
    encoding = "utf-8-sig"
    try:
        sample = head.decode(encoding)
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the sample's end
            encoding = "cp1252"
        sample = head.decode(encoding, errors="ignore")
    try:
        dialect = csv.Sniffer().sniff("\n".join(sample.splitlines()[:20]), delimiters=",;\t|")
        sep = dialect.delimiter
    except csv.Error:
        sep = ","
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding=encoding,
                           skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise SalesImportError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SalesImportError(f"{path}: not a readable CSV file ({str(exc).splitlines()[0]})") from None


def _norm(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def map_columns(found: list[str], explicit: dict[str, str | None]) -> dict[str, str]:
    """Role -> column of the export: the explicit flag when given, else the first common spelling found.

    Raises SalesImportError naming the missing role and the columns found.
    """
    by_norm: dict[str, str] = {}
    for col in found:
        by_norm.setdefault(_norm(col), col)
    listed = ", ".join(found)
    mapping: dict[str, str] = {}
    for role in ROLES:
        want = explicit.get(role)
        if want:
            col = want if want in found else by_norm.get(_norm(want))
            if col is None:
                raise SalesImportError(f"column {want!r} (--{role}-col) not in the file; columns found: {listed}")
            mapping[role] = col
            continue
        for guess in GUESSES[role]:
            if guess in by_norm and by_norm[guess] not in mapping.values():
                mapping[role] = by_norm[guess]
                break
    if "timestamp" not in mapping:
        missing = [r for r in ("date", "time") if r not in mapping]
        if missing:
            raise SalesImportError(
                f"no timestamp column, and no {' or '.join(missing)} column (give --timestamp-col, or --date-col "
                f"and --time-col); columns found: {listed}"
            )
    for role in ("ticket", "item"):
        if role not in mapping:
            raise SalesImportError(f"no {role} column (give --{role}-col); columns found: {listed}")
    return mapping


def read_sales(
    path: Path,
    tz: str,
    columns: dict[str, str | None] | None = None,
    *,
    date_format: str | None = None,
    now: datetime | None = None,
) -> SaleLines:
    """Read an export and return its usable lines with UTC instants; see ``SaleLines``.

    Naive local times are wall-clock times in ``tz``. A time that does not exist there (the hour
    skipped when clocks go forward) is read with the offset in force just before the change (the
    till's clock had not been moved yet); a time that happens twice (clocks go back) is read as
    its first occurrence. Both are PEP 495's ``fold=0`` and are counted in ``notes``.
    Times with an explicit offset ("...Z", "+01:00") are instants and keep it.
    """
    zone = ZoneInfo(tz)
    raw = read_table(Path(path))
    mapping = map_columns(list(raw.columns), columns or {})
    n = len(raw)

    def text(role: str) -> pd.Series:
        if role not in mapping:
            return pd.Series([""] * n, index=raw.index, dtype=object)
        return _as_text(raw[mapping[role]])

    ticket = text("ticket")
    item = text("item")
    reason = pd.Series(pd.NA, index=raw.index, dtype=object)

    def mark(mask: pd.Series | np.ndarray, key: str) -> None:
        reason[pd.isna(reason) & np.asarray(mask)] = key

    mark(ticket == "", "no_ticket")
    mark(item.str.lower().isin(NO_ITEM), "no_item")

    notes: dict[str, int] = {}
    if "timestamp" in mapping:
        at, local = _instants(raw[mapping["timestamp"]], None, zone, date_format, notes)
    else:
        at, local = _instants(raw[mapping["date"]], raw[mapping["time"]], zone, date_format, notes)
    mark(at.isna(), "unparseable_time")
    # A line after the import's clock (a till with a wrong year) would pull the next run's as-of
    # into the future; a few minutes of clock skew between tills and this machine are allowed.
    clock = pd.Timestamp(now or datetime.now(timezone.utc)) + pd.Timedelta(minutes=10)
    mark(at > clock, "future_time")

    qty = _quantity(text("quantity")) if "quantity" in mapping else pd.Series(1.0, index=raw.index)
    mark(qty.isna() | ~np.isfinite(qty.fillna(0)), "unparseable_quantity")
    mark(qty < 0, "negative_quantity")
    mark(qty == 0, "zero_quantity")
    mark(qty.notna() & (qty != np.floor(qty.fillna(0))), "fractional_quantity")

    price = _money(text("price")) if "price" in mapping else pd.Series(np.nan, index=raw.index)
    mark(price < 0, "negative_price")

    site = text("site") if "site" in mapping else None
    if site is not None:
        mark(site == "", "no_site")
    line_id = text("line") if "line" in mapping else None
    if line_id is not None:
        # Only lines still usable compete for a line id: the first good copy is kept.
        good = pd.isna(reason)
        keyed = pd.DataFrame({"site": site if site is not None else "", "line": line_id})[good]
        dup = keyed.duplicated(keep="first") & (keyed["line"] != "")
        mark(dup.reindex(raw.index, fill_value=False), "duplicate_line_id")

    ok = pd.isna(reason).to_numpy()
    lines = _usable_lines(ok, site=site, ticket=ticket, item=item, category=text("category"), qty=qty, price=price,
                          customer=text("customer"), line_id=line_id, at=at, local=local)
    counts = reason.value_counts()
    skipped = {k: int(counts.get(k, 0)) for k in SKIP_REASONS if counts.get(k, 0)}
    tickets = ticket[ticket != ""]
    n_tickets = int(pd.DataFrame({"s": site if site is not None else "", "t": ticket})[ticket != ""]
                    .drop_duplicates().shape[0]) if len(tickets) else 0
    return SaleLines(lines=lines, read=n, skipped=skipped, columns=mapping, notes=notes, tickets_in_file=n_tickets,
                     items_in_file=int(item[item != ""].nunique()))


def _quantity(qty_text: pd.Series) -> pd.Series:
    """Quantities from their text (a decimal comma read as a point); an empty cell is 1, an
    unreadable one NaN."""
    qty = pd.to_numeric(qty_text.str.replace(",", ".", regex=False), errors="coerce")
    qty[qty_text == ""] = 1.0
    return qty


def _usable_lines(ok: np.ndarray, *, site: pd.Series | None, ticket: pd.Series, item: pd.Series,
                  category: pd.Series, qty: pd.Series, price: pd.Series, customer: pd.Series,
                  line_id: pd.Series | None, at: pd.Series, local: pd.Series) -> pd.DataFrame:
    """The usable lines (``ok``) as ``SaleLines.lines``."""
    lines = pd.DataFrame(
        {
            "site": site[ok].to_numpy() if site is not None else None,
            "ticket": ticket[ok].to_numpy(),
            "item": item[ok].to_numpy(),
            "item_key": item[ok].str.casefold().to_numpy(),
            "category": category[ok].replace("", "uncategorised").to_numpy(),
            "quantity": qty[ok].astype("int64").to_numpy(),
            "unit_price": price[ok].astype(float).to_numpy(),
            "customer": customer[ok].replace("", None).to_numpy(),
            "line_id": line_id[ok].replace("", None).to_numpy() if line_id is not None else None,
            "at": at[ok].to_numpy(),
            "local": local[ok].to_numpy(),
        }
    )
    lines["at"] = pd.to_datetime(lines["at"], utc=True)
    return lines


def _as_text(col: pd.Series) -> pd.Series:
    """Strings, stripped; whole floats from a typed file lose their '.0' (ticket 12.0 is ticket 12)."""
    if pd.api.types.is_float_dtype(col):
        out = col.map(lambda v: "" if pd.isna(v) else (str(int(v)) if float(v).is_integer() else str(v)))
    else:
        out = col.map(lambda v: "" if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v))
    return out.astype(object).str.strip()


_MONEY_JUNK = re.compile(r"[^\d,.\-]")


def _money(values: pd.Series) -> pd.Series:
    """Prices with currency signs, spaces and thousands separators removed; the last of '.' or ','
    followed by 1-2 digits at the end is the decimal point ("1.234,50" and "1,234.50" are both 1234.5)."""

    def one(v: str) -> float:
        s = _MONEY_JUNK.sub("", v)
        if not s:
            return np.nan
        m = re.search(r"[.,](\d{1,2})$", s)
        if m:
            s = re.sub(r"[.,]", "", s[: m.start()]) + "." + m.group(1)
        else:
            s = re.sub(r"[.,]", "", s)
        try:
            return float(s)
        except ValueError:
            return np.nan

    uniq = {v: one(v) for v in values.unique()}
    return values.map(uniq).astype(float)


_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$", re.I)
_SLASHED = re.compile(r"^\s*(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{2,4})")


def _instants(
    first: pd.Series, second: pd.Series | None, zone: ZoneInfo, date_format: str | None, notes: dict[str, int]
) -> tuple[pd.Series, pd.Series]:
    """(UTC instant, naive local wall time) per line; NaT where unparseable."""
    if second is None and pd.api.types.is_datetime64_any_dtype(first):
        ts = pd.to_datetime(first)
        if ts.dt.tz is not None:
            at = ts.dt.tz_convert("UTC")
            return at, at.dt.tz_convert(zone).dt.tz_localize(None)
        return _localize(ts, zone, notes)
    if second is None:
        combined = _as_text(first)
    else:
        day = first.dt.strftime("%Y-%m-%d") if pd.api.types.is_datetime64_any_dtype(first) else _as_text(first)
        clock = _as_text(second)
        combined = (day + " " + clock).str.strip()
    uniq = pd.Series(combined.unique())
    aware = uniq.str.contains(_OFFSET) & uniq.str.contains(r"\d[T ]\d", regex=True)
    parsed_local = _parse_naive(uniq[~aware], date_format)
    parsed_aware = pd.to_datetime(uniq[aware], utc=True, errors="coerce", format="mixed") if aware.any() else None
    naive = combined.map(dict(zip(uniq[~aware], parsed_local)))
    at, local = _localize(pd.to_datetime(naive), zone, notes)
    if parsed_aware is not None:
        hit = combined.map(dict(zip(uniq[aware], parsed_aware)))
        is_aware = hit.notna()
        at = at.where(~is_aware, pd.to_datetime(hit, utc=True))
        local = local.where(~is_aware, at.dt.tz_convert(zone).dt.tz_localize(None))
    return at, local


def _parse_naive(values: pd.Series, date_format: str | None) -> np.ndarray:
    if values.empty:
        return np.array([], dtype="datetime64[ns]")
    if date_format:
        return pd.to_datetime(values, format=date_format, errors="coerce").to_numpy()
    iso = pd.to_datetime(values, format="ISO8601", errors="coerce")
    todo = iso.isna() & (values != "")
    if todo.any():
        # d/m/y or m/d/y: a first field above 12 settles day-first, a second above 12 month-first;
        # undecided exports are read day-first (most of the world; pass --date-format otherwise).
        parts = values[todo].str.extract(_SLASHED).dropna().astype(int)
        dayfirst = not (len(parts) and (parts[1] > 12).any() and not (parts[0] > 12).any())
        rest = pd.to_datetime(values[todo], dayfirst=dayfirst, errors="coerce", format="mixed")
        iso = iso.copy()
        iso[todo] = rest
    return iso.to_numpy()


def _localize(naive: pd.Series, zone: ZoneInfo, notes: dict[str, int]) -> tuple[pd.Series, pd.Series]:
    """Wall times in ``zone`` to UTC; DST gaps and overlaps resolved as PEP 495 fold=0 (see read_sales)."""
    naive = pd.to_datetime(naive)
    at = naive.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
    odd = at.isna() & naive.notna()
    if odd.any():
        resolved = {}
        gaps = overlaps = 0
        for v in naive[odd].unique():
            wall = pd.Timestamp(v).to_pydatetime()
            first = wall.replace(tzinfo=zone, fold=0)
            second = wall.replace(tzinfo=zone, fold=1)
            resolved[v] = first.astimezone(timezone.utc)
            if first.utcoffset() != second.utcoffset():
                # fold=0 offset > fold=1 offset in an overlap (summer time first); smaller in a gap
                is_gap = first.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None) != wall
                counted = int((naive[odd] == v).sum())
                if is_gap:
                    gaps += counted
                else:
                    overlaps += counted
        fixed = naive[odd].map(resolved)
        at = at.astype(object)
        at[odd] = fixed
        at = pd.to_datetime(at, utc=True)
        if gaps:
            notes["nonexistent_local_time"] = gaps
        if overlaps:
            notes["ambiguous_local_time"] = overlaps
    else:
        at = at.dt.tz_convert("UTC")
    return at, naive
