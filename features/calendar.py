"""Calendar and public-holiday features, computed on local dates.

Demand moves with the local calendar, not UTC: a Saturday in Sydney starts on a Friday in UTC.
Every frame here therefore carries ``ds`` as naive LOCAL wall time (see ``features.timegrid``),
and holidays come from the ``holidays`` package for each restaurant's own country, because the
same date is a holiday in one country of a chain and an ordinary day in another.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import numpy as np
import pandas as pd
import holidays as holidays_lib

@lru_cache(maxsize=256)
def _country_holidays(country_code: str, years: tuple[int, ...]) -> dict:
    try:
        return dict(holidays_lib.country_holidays(country_code, years=list(years)))
    except (NotImplementedError, KeyError):
        return {}


def holiday_table(country_code: str, years: Iterable[int]) -> pd.DataFrame:
    """Public holidays of one country as columns date (naive datetime64) and name.

    Args:
        country_code: ISO 3166-1 alpha-2 (e.g. "GB"); an unknown or blank code yields no holidays,
            so a restaurant with a bad country still gets a forecast, just without holiday effects.
        years: calendar years to cover.
    """
    code = (country_code or "").strip().upper()
    table = _country_holidays(code, tuple(sorted(set(int(y) for y in years)))) if code else {}
    frame = pd.DataFrame({"date": pd.to_datetime(list(table.keys())), "name": list(table.values())})
    return frame.sort_values("date").reset_index(drop=True)


def add_calendar(frame: pd.DataFrame) -> pd.DataFrame:
    """Add day-of-week, month, day-of-year on the unit circle and weekend flag from ``ds``.

    The day of year goes in as sine/cosine so that 31 December and 1 January are neighbours.
    Hourly frames also get ``hour`` (local wall-clock hour, so a DST day keeps the lunch peak at
    noon).
    """
    out = frame.copy()
    ds = out["ds"]
    out["dow"] = ds.dt.day_of_week.astype("int16")
    out["month"] = ds.dt.month.astype("int16")
    angle = 2 * np.pi * (ds.dt.day_of_year.to_numpy() - 1) / 365.25
    out["doy_sin"] = np.sin(angle)
    out["doy_cos"] = np.cos(angle)
    out["is_weekend"] = (out["dow"] >= 5).astype("int8")
    if (ds.dt.hour != 0).any() or "hour" in out:
        out["hour"] = ds.dt.hour.astype("int16")
    return out


def add_holidays(frame: pd.DataFrame, country_of_series: pd.Series) -> pd.DataFrame:
    """Flag public holidays of each series' country, and the days either side of one.

    Args:
        frame: long frame with series_id and ds (naive local time, any granularity).
        country_of_series: country code indexed by series_id.
    Returns the frame with is_holiday, is_holiday_eve (the day before), is_holiday_after (the day
    after) as 0/1, and holiday_name ("" on ordinary days) for closure rules.
    """
    out = frame.copy()
    day = out["ds"].dt.normalize()
    country = out["series_id"].map(country_of_series).fillna("").astype(str)
    out["is_holiday"] = np.int8(0)
    out["is_holiday_eve"] = np.int8(0)
    out["is_holiday_after"] = np.int8(0)
    out["holiday_name"] = ""
    if out.empty:
        return out
    years = range(int(day.dt.year.min()) - 1, int(day.dt.year.max()) + 2)
    for code in country.unique():
        table = holiday_table(code, years)
        if table.empty:
            continue
        mask = (country == code).to_numpy()
        names = table.drop_duplicates("date").set_index("date")["name"]
        these = day[mask]
        out.loc[mask, "holiday_name"] = these.map(names).fillna("").to_numpy()
        dates = set(names.index)
        out.loc[mask, "is_holiday"] = these.isin(dates).astype("int8").to_numpy()
        out.loc[mask, "is_holiday_eve"] = (these + pd.Timedelta(days=1)).isin(dates).astype("int8").to_numpy()
        out.loc[mask, "is_holiday_after"] = (these - pd.Timedelta(days=1)).isin(dates).astype("int8").to_numpy()
    return out
