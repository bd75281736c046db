"""Per-restaurant ranges of order time, the local days they hold, and the orders per local day.

The demand readers (``features.demand``, ``features.items``) take their orders from ranges of
``created_at`` per restaurant instead of one window for the shard: a full read is one range per
restaurant, a night that keeps its aggregates (``features.aggregate_cache``) reads only the ranges
around the days it keeps. Joined on (restaurant_id, created_at), each range is an index range of
the contract's ``orders_order (restaurant_id, created_at)``.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from core.replica import ReplicaReader
from features.timegrid import local_date

# Each restaurant's zone and the UTC ranges [lo, hi) of ``created_at`` to read (one row per range).
RANGES_CTE = """z AS (SELECT * FROM unnest(CAST(:rids AS bigint[]), CAST(:tzs AS text[]),
                                CAST(:los AS timestamptz[]), CAST(:his AS timestamptz[])) AS z(rid, tz, lo, hi))"""
# The ranges, and their hull as plain bounds: without them the planner, which cannot see inside
# the unnest, guesses a few thousand rows a range and scans the whole table for a night's few days.
IN_RANGE = ("z.rid = o.restaurant_id AND o.created_at >= z.lo AND o.created_at < z.hi "
            "AND o.restaurant_id = ANY(:rids) AND o.created_at >= :lo_all AND o.created_at < :hi_all")
_DAY = pd.Timedelta(days=1)


def whole_ranges(zones: dict[int, str], start: datetime, end: datetime) -> pd.DataFrame:
    """One range per restaurant, [start, end) (UTC instants): what a full read reads."""
    return pd.DataFrame({"restaurant_id": pd.Series(list(zones), dtype="int64"),
                         "lo": pd.Series([pd.Timestamp(start)] * len(zones), dtype=object),
                         "hi": pd.Series([pd.Timestamp(end)] * len(zones), dtype=object)})


def range_params(zones: dict[int, str], ranges: pd.DataFrame) -> dict:
    """Bind parameters of ``RANGES_CTE``: ``ranges`` holds restaurant_id, lo, hi (UTC instants)."""
    ids = [int(i) for i in ranges["restaurant_id"]]
    los = [pd.Timestamp(t).to_pydatetime() for t in ranges["lo"]]
    his = [pd.Timestamp(t).to_pydatetime() for t in ranges["hi"]]
    return {"rids": ids, "tzs": [zones[i] for i in ids], "los": los, "his": his,
            "lo_all": min(los) if los else None, "hi_all": max(his) if his else None}


def time_clusters(ranges: pd.DataFrame, gap: pd.Timedelta = pd.Timedelta(days=2)) -> list[pd.DataFrame]:
    """``ranges`` in groups close in time (the window's first partial day of every restaurant, the
    last days, a changed day long ago), one read each: a group's hull bounds its query."""
    if ranges.empty:
        return []
    ordered = ranges.sort_values("lo").reset_index(drop=True)
    reach = ordered["hi"].cummax().shift(1)
    group = (ordered["lo"] > reach + gap).cumsum()
    return [g.reset_index(drop=True) for _, g in ordered.groupby(group, sort=True)]


def midnights(days: pd.DatetimeIndex | pd.Series, tz: str) -> pd.DatetimeIndex:
    """The UTC instants the local dates ``days`` start (``features.timegrid.local_midnight``, vectorised)."""
    index = pd.DatetimeIndex(days)
    return index.tz_localize(tz, ambiguous=np.ones(len(index), dtype=bool),
                             nonexistent="shift_forward").tz_convert("UTC")


def first_whole_day(instant: pd.Timestamp, tz: str) -> pd.Timestamp:
    """The first local date whose whole day lies at or after ``instant``."""
    day = local_date(pd.Timestamp(instant), tz)
    return day if midnights([day], tz)[0] >= instant else day + _DAY


def complete_days(zones: dict[int, str], ranges: pd.DataFrame) -> pd.DataFrame:
    """The local days lying wholly inside a range: restaurant_id, local_date (naive midnight)."""
    rids, dates = [], []
    for r in ranges.itertuples(index=False):
        tz = zones[int(r.restaurant_id)]
        hi = pd.Timestamp(r.hi)
        last = local_date(hi, tz) - _DAY  # its next midnight is at or before hi
        days = pd.date_range(first_whole_day(pd.Timestamp(r.lo), tz), last, freq="D")
        rids += [int(r.restaurant_id)] * len(days)
        dates.append(days)
    local = pd.DatetimeIndex(np.concatenate([d.to_numpy() for d in dates])) if dates else pd.DatetimeIndex([])
    return pd.DataFrame({"restaurant_id": pd.Series(rids, dtype="int64"), "local_date": local.astype("datetime64[ns]")})


def day_runs(days: pd.DataFrame) -> pd.DataFrame:
    """Consecutive local days as runs: restaurant_id, first, last (inclusive)."""
    if days.empty:
        return pd.DataFrame({"restaurant_id": pd.Series(dtype="int64"), "first": pd.Series(dtype="datetime64[ns]"),
                             "last": pd.Series(dtype="datetime64[ns]")})
    d = days.sort_values(["restaurant_id", "local_date"])
    rid = d["restaurant_id"].to_numpy(dtype="int64")
    day = d["local_date"].to_numpy(dtype="datetime64[ns]")
    starts = np.ones(len(d), dtype=bool)
    starts[1:] = (rid[1:] != rid[:-1]) | (day[1:] - day[:-1] != np.timedelta64(1, "D"))
    ends = np.append(starts[1:], True)
    return pd.DataFrame({"restaurant_id": rid[starts], "first": day[starts], "last": day[ends]})


def run_ranges(zones: dict[int, str], runs: pd.DataFrame) -> pd.DataFrame:
    """The UTC ranges [midnight of first, midnight after last) of day runs."""
    los, his = [], []
    for r in runs.itertuples(index=False):
        tz = zones[int(r.restaurant_id)]
        lo, hi = midnights([r.first, r.last + _DAY], tz)
        los.append(lo)
        his.append(hi)
    return pd.DataFrame({"restaurant_id": runs["restaurant_id"].astype("int64").to_numpy(),
                         "lo": pd.Series(los, dtype="datetime64[ns, UTC]"),
                         "hi": pd.Series(his, dtype="datetime64[ns, UTC]")})


def without_runs(zones: dict[int, str], ranges: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """``ranges`` (one per restaurant) minus the day runs inside them: what is left to read."""
    cut = run_ranges(zones, runs)
    out = []
    for r in ranges.itertuples(index=False):
        lo = pd.Timestamp(r.lo)
        mine = cut[cut["restaurant_id"] == r.restaurant_id].sort_values("lo")
        for c in mine.itertuples(index=False):
            if c.lo > lo:
                out.append((int(r.restaurant_id), lo, c.lo))
            lo = max(lo, c.hi)
        if pd.Timestamp(r.hi) > lo:
            out.append((int(r.restaurant_id), lo, pd.Timestamp(r.hi)))
    return pd.DataFrame({"restaurant_id": pd.Series([o[0] for o in out], dtype="int64"),
                         "lo": pd.Series([o[1] for o in out], dtype="datetime64[ns, UTC]"),
                         "hi": pd.Series([o[2] for o in out], dtype="datetime64[ns, UTC]")})


def order_rows_per_day(reader: ReplicaReader, zones: dict[int, str], ranges: pd.DataFrame) -> pd.DataFrame:
    """Every ``orders_order`` row (any status, malformed included) per restaurant and local day of
    the ranges: restaurant_id, local_date (naive midnight), order_rows.

    Why every row: it is the cheap fingerprint of a kept day (one index-only count on the
    contract's (restaurant_id, created_at) index, no table rows read); an order added to, or
    deleted from, a day after it was kept changes it, and the day is read again. ``OFFSET 0``
    keeps each range its own index scan: the planner cannot see the ranges' sizes inside the
    unnest and, guessing, scanned the whole table for a seventh of it.
    """
    if ranges.empty:
        return pd.DataFrame({"restaurant_id": pd.Series(dtype="int64"), "local_date": pd.Series(dtype="datetime64[ns]"),
                             "order_rows": pd.Series(dtype="int64")})
    frame = reader.frame(
        f"""
        WITH {RANGES_CTE}
        SELECT z.rid AS restaurant_id, (o.created_at AT TIME ZONE z.tz)::date AS local_date, count(*) AS order_rows
        FROM z
        CROSS JOIN LATERAL (SELECT o.created_at FROM orders_order o
                            WHERE o.restaurant_id = z.rid AND o.created_at >= z.lo AND o.created_at < z.hi
                            OFFSET 0) o
        GROUP BY 1, 2
        """,
        range_params(zones, ranges),
    )
    return pd.DataFrame({"restaurant_id": frame["restaurant_id"].astype("int64") if len(frame) else pd.Series(dtype="int64"),
                         "local_date": pd.to_datetime(frame["local_date"]).astype("datetime64[ns]")
                         if len(frame) else pd.Series(dtype="datetime64[ns]"),
                         "order_rows": frame["order_rows"].astype("int64") if len(frame) else pd.Series(dtype="int64")})
