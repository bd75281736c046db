"""Local-time grids: which hours and days exist for a restaurant, in its own zone.

Grids are built from tz-aware instants stepping one absolute hour, so a spring-forward day has
23 hours and an autumn one 25, and each hour keeps the UTC instant it starts at (what
``m_l_predictions.target_start`` stores) next to its naive local wall time (what models see).
"""

from __future__ import annotations

import pandas as pd


def local_midnight(date: pd.Timestamp, tz: str) -> pd.Timestamp:
    """The instant a local date starts (zones whose DST jump is at midnight: the first real hour)."""
    return pd.Timestamp(date.date()).tz_localize(tz, ambiguous=True, nonexistent="shift_forward")


def local_date(instant: pd.Timestamp, tz: str) -> pd.Timestamp:
    """The local calendar date (naive midnight) that contains ``instant``."""
    return instant.tz_convert(tz).tz_localize(None).normalize()


def hour_grid(tz: str, first_day: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Every local hour from ``first_day``'s local midnight up to the instant ``end`` (exclusive).

    Returns target_start (UTC instant) and ds (naive local wall time of the hour's start).
    """
    start = local_midnight(first_day, tz)
    if end <= start:
        return pd.DataFrame({"target_start": pd.DatetimeIndex([], tz="UTC"), "ds": pd.DatetimeIndex([])})
    hours = pd.date_range(start, pd.Timestamp(end).tz_convert(tz), freq="h", inclusive="left")
    return pd.DataFrame({"target_start": hours.tz_convert("UTC"), "ds": hours.tz_localize(None)})


def future_hours(tz: str, as_of: pd.Timestamp, hours: int) -> pd.DataFrame:
    """The next ``hours`` local hour starts at or after ``as_of``."""
    today = local_date(as_of, tz)
    grid = hour_grid(tz, today, as_of + pd.Timedelta(hours=hours + 2))
    return grid[grid["target_start"] >= as_of].head(hours).reset_index(drop=True)


def future_days(tz: str, as_of: pd.Timestamp, days: int) -> pd.DataFrame:
    """Local days from the one containing ``as_of``, ``days`` of them: ds (naive date), target_start."""
    first = local_date(as_of, tz)
    ds = pd.date_range(first, periods=days, freq="D")
    starts = [local_midnight(d, tz).tz_convert("UTC") for d in ds]
    return pd.DataFrame({"target_start": pd.DatetimeIndex(starts), "ds": ds})


def hours_in_local_day(tz: str, date: pd.Timestamp) -> int:
    """23, 24 or 25: how long a local day really is."""
    start = local_midnight(date, tz)
    end = local_midnight(date + pd.Timedelta(days=1), tz)
    return int((end - start) / pd.Timedelta(hours=1))
