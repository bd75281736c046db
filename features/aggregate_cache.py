"""The demand aggregates a night takes from the kept ones and the ones it reads (issue 28).

Why: the daily, hourly and item aggregates of up to two years of orders were read from the
replica every night although one day was new. Now the aggregates of complete local days are kept
in the predictions database (``core.aggregates.AggregateStore``, handed in as ``Scope.aggregates``)
and a night reads from the replica only what it cannot trust. The frame returned is the one a full
read returns (same rows, order and dtypes; ``tests/test_aggregate_cache.py`` compares them).

A kept day of a restaurant is used when all of these hold, else the day is read again:
- it is a whole local day of the window, older than the re-read window: strictly before the
  as-of's local date minus ``ForecastSettings.aggregates_reread_days`` (late edits, refunds and
  back-dated orders land in the last days; those are read every night, also in an ``--as-of``
  replay, whose window is anchored on its own as-of);
- it was read at least that many days after it (a day read the morning after, with no run for
  a week since, is read again);
- it was bucketed in the zone the restaurant has now;
- its ``orders_order`` rows (any status) still number what they did when it was read: an
  index-only count (``order_rows_per_day``) finds orders added to or removed from old days (an
  import of older history, a purge) and those days are read again. The count over all kept days
  would cost what the history holds (a third of a full daily read), so each night recounts one
  slice, every kept day once in ``ForecastSettings.aggregates_check_cycle_days`` nights (7): a
  change further back than the re-read window reaches the frames within that many nights.
  Edits that keep the count (a status or total changed, an item added to an old order) are not
  seen after the re-read window: ``python -m worker rebuild-aggregates`` reads everything again.

The partial as-of day and the window's first partial day are always read, never kept. Days read
whole are kept with the time they were read (taken before reading); a day kept from a later read
is never replaced by an earlier one (``AggregateStore.save``), so a replay cannot put older state
over newer. Malformed rows are skipped by the same predicates as before and counted for the run
record by ``features.quality.count_malformed``, which this does not change.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import pandas as pd

from core.aggregates import AggregateStore
from core.replica import ReplicaReader
from core.units import Scope
from features.order_ranges import (
    complete_days,
    day_runs,
    first_whole_day,
    order_rows_per_day,
    run_ranges,
    time_clusters,
    whole_ranges,
    without_runs,
)
from features.timegrid import local_date

# How each kind's rows are ordered by the replica's query, and the column that gives their local day.
ORDER = {"daily": ["restaurant_id", "local_date"], "hourly": ["restaurant_id", "hour_start"],
         "items": ["menu_item_id", "local_date"]}
# The dtypes of a replica read, for a night whose fresh days hold no row to take them from.
_UTC = pd.DatetimeTZDtype("ns", "UTC")
DTYPES = {
    "daily": {"restaurant_id": "int64", "local_date": "datetime64[ns]", "orders": "float64", "revenue": "float64"},
    "hourly": {"restaurant_id": "int64", "hour_start": _UTC, "local_hour_start": "datetime64[ns]", "orders": "float64",
               "one_time": "bool", "first_time": "object"},
    "items": {"menu_item_id": "int64", "restaurant_id": "int64", "local_date": "datetime64[ns]", "units": "float64"},
}
RangeRead = Callable[[ReplicaReader, dict, pd.DataFrame, datetime], pd.DataFrame]


def row_days(kind: str, frame: pd.DataFrame) -> pd.Series:
    """The local date (naive midnight) each aggregate row belongs to."""
    if kind == "hourly":
        return pd.to_datetime(frame["local_hour_start"]).dt.normalize().astype("datetime64[ns]")
    return pd.to_datetime(frame["local_date"]).astype("datetime64[ns]")


def read_through(kind: str, read_in: RangeRead, reader: ReplicaReader, scope: Scope, zones: dict[int, str],
                 start: pd.Timestamp) -> pd.DataFrame:
    """What ``read_in`` returns for orders in [start, scope.as_of) per restaurant, taking the days
    it can from ``scope.aggregates`` and keeping what it reads (without a store: a full read).

    Args:
        kind: one of ``core.aggregates.KINDS``.
        read_in: the kind's replica query over per-restaurant ranges (e.g. ``features.demand.daily_orders_in``).
        zones: restaurant id -> checked IANA zone (the zone days are bucketed in).
        start: UTC instant the window starts (``features.demand.local_window``).
    """
    store = scope.aggregates
    whole = whole_ranges(zones, start, scope.as_of)
    if store is None or not zones:
        return read_in(reader, zones, whole, scope.valid_until)
    read_at = datetime.now(timezone.utc)  # before reading: what the read sees is at least this new
    kept = trusted_days(kind, reader, store, zones, pd.Timestamp(start), scope.as_of,
                        scope.forecast.aggregates_reread_days, scope.forecast.aggregates_check_cycle_days)
    runs = day_runs(kept)
    fresh_ranges = without_runs(zones, whole, runs)
    whole_days = complete_days(zones, fresh_ranges)
    counts = order_rows_per_day(reader, zones, run_ranges(zones, day_runs(whole_days)))  # before the read: see save
    parts = [read_in(reader, zones, group, scope.valid_until) for group in time_clusters(fresh_ranges)]
    filled = [p for p in parts if len(p)]  # an empty part's columns may lack the read's dtypes
    fresh = pd.concat(filled, ignore_index=True) if len(filled) > 1 else (filled or parts)[0]
    frame = fresh
    if len(runs):
        old = store.rows(kind, runs)[list(fresh.columns)]
        old = _like(old, dict(fresh.dtypes) if len(fresh) else DTYPES[kind])
        frame = pd.concat([fresh, old], ignore_index=True) if len(fresh) else old
    if len(runs) or len(filled) > 1:
        frame = frame.sort_values(ORDER[kind], kind="mergesort").reset_index(drop=True)
    _save(kind, store, zones, fresh, whole_days, counts, read_at)
    return frame


def trusted_days(kind: str, reader: ReplicaReader, store: AggregateStore, zones: dict[int, str],
                 start: pd.Timestamp, as_of: pd.Timestamp, reread_days: int, check_cycle: int = 1) -> pd.DataFrame:
    """The kept days usable for a read of [start, as_of): restaurant_id, local_date (module docstring).

    Args:
        start, as_of: UTC instants bounding the read.
        reread_days: ``ForecastSettings.aggregates_reread_days``.
        check_cycle: ``ForecastSettings.aggregates_check_cycle_days``: the kept days' weeks are
            recounted when their number matches the night's modulo this (1: every night).
    """
    firsts = {rid: first_whole_day(start, tz) for rid, tz in zones.items()}
    lasts = {rid: local_date(as_of, tz) - pd.Timedelta(days=reread_days + 1)
             for rid, tz in zones.items()}
    empty = pd.DataFrame({"restaurant_id": pd.Series(dtype="int64"), "local_date": pd.Series(dtype="datetime64[ns]")})
    if all(lasts[r] < firsts[r] for r in zones):
        return empty
    cover = store.covered(kind, list(zones), min(firsts.values()), max(lasts.values()))
    if cover.empty:
        return empty
    cover = cover.assign(local_date=pd.to_datetime(cover["local_date"]).astype("datetime64[ns]"),
                         restaurant_id=cover["restaurant_id"].astype("int64"))
    rid = cover["restaurant_id"]
    cover = cover[(cover["zone"] == rid.map(zones)) & (cover["local_date"] >= rid.map(firsts))
                  & (cover["local_date"] <= rid.map(lasts))]
    read_at = pd.to_datetime(cover["read_at"], utc=True)
    read_day = pd.Series(pd.NaT, index=cover.index, dtype="datetime64[ns]")
    for tz, rows in cover.groupby("zone").groups.items():  # the local day each was read on
        read_day[rows] = read_at[rows].dt.tz_convert(tz).dt.tz_localize(None).dt.normalize().astype("datetime64[ns]")
    usable = cover[(read_day - cover["local_date"]) >= pd.Timedelta(days=reread_days)].reset_index(drop=True)
    if usable.empty:
        return empty
    due = usable[_due(usable, zones, as_of, check_cycle)]
    now = order_rows_per_day(reader, zones, run_ranges(zones, day_runs(due)))
    same = due.merge(now, on=["restaurant_id", "local_date"], how="left", suffixes=("", "_now"))
    changed = same[same["order_rows"].astype("int64") != same["order_rows_now"].fillna(0).astype("int64")]
    gone = pd.MultiIndex.from_frame(changed[["restaurant_id", "local_date"]])
    usable = usable[~pd.MultiIndex.from_frame(usable[["restaurant_id", "local_date"]]).isin(gone)]
    return usable[["restaurant_id", "local_date"]].reset_index(drop=True)


def _due(days: pd.DataFrame, zones: dict[int, str], as_of: pd.Timestamp, cycle: int) -> pd.Series:
    """Whether each kept day is recounted tonight: its week (local days since 1970 // 7) matches the
    night's local day modulo ``cycle``, so ``cycle`` nights in a row recount every kept day once."""
    if cycle <= 1:
        return pd.Series(True, index=days.index)
    epoch = pd.Timestamp("1970-01-01")
    night = days["restaurant_id"].map(
        {rid: (local_date(as_of, tz) - epoch).days for rid, tz in zones.items()})
    week = (days["local_date"] - epoch).dt.days // 7
    return (week - night) % cycle == 0


def _save(kind: str, store: AggregateStore, zones: dict[int, str], fresh: pd.DataFrame, days: pd.DataFrame,
          counts: pd.DataFrame, read_at: datetime) -> None:
    """Keep the whole local days just read, with their order rows counted before the read: an order
    added between the count and the read leaves the kept count short, so the day is read again
    next night, never trusted with a count that matches data it does not hold."""
    if days.empty:
        return
    days = days.merge(counts, on=["restaurant_id", "local_date"], how="left")
    days["order_rows"] = days["order_rows"].fillna(0).astype("int64")
    days["zone"] = days["restaurant_id"].map(zones)
    key = pd.MultiIndex.from_arrays([fresh["restaurant_id"].astype("int64"), row_days(kind, fresh)])
    wanted = pd.MultiIndex.from_arrays([days["restaurant_id"], days["local_date"]])
    rows = fresh[key.isin(wanted)].assign(local_date=row_days(kind, fresh)[key.isin(wanted)].to_numpy())
    store.save(kind, days, rows, read_at)


def _like(frame: pd.DataFrame, dtypes: dict) -> pd.DataFrame:
    """``frame`` with the dtypes of the replica read (rows kept in the predictions database come
    back as Python dates and offsets; the models must get exactly what a replica read gives)."""
    out = frame.copy()
    for col, dtype in dtypes.items():
        if isinstance(dtype, pd.DatetimeTZDtype):
            out[col] = pd.to_datetime(out[col], utc=True).dt.tz_convert(dtype.tz).astype(dtype)
        elif str(dtype).startswith("datetime64"):
            out[col] = pd.to_datetime(out[col]).astype(dtype)
        else:
            out[col] = out[col].astype(dtype)
    return out
