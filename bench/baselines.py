"""The anchors every bench block compares with, from the field's libraries, never our own copies.

- ``four_week_mean``, ``autoets`` (daily data), ``lgbm_plain``: statsforecast and mlforecast, in
  their own venv (``bench/field_baselines.py`` says why and how each is called);
- ``prophet``: the Prophet library per series as its documentation shows it, the series' country
  holidays by ``add_country_holidays``, closed and outlier periods left out of the fit
  (``features.demand.mark_outliers`` flags the outliers; for hourly series, the hours of those days).

Each takes a history (series_id, ds naive local, y, closed[, outlier]) and the periods to forecast,
and returns series_id, ds and one column per method, with the seconds each method took.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def _holiday_flags(frame: pd.DataFrame, countries: dict[int, str]) -> pd.Series:
    """1 where a period's local date is a public holiday of its series' country."""
    from features.calendar import holiday_table

    years = range(frame["ds"].min().year, frame["ds"].max().year + 1)
    days = {c: set(holiday_table(c, years)["date"]) for c in set(countries.values())}
    day = frame["ds"].dt.normalize()
    country = frame["series_id"].map(countries)
    return pd.Series([int(d in days.get(c, ())) for d, c in zip(day, country)], index=frame.index)


def field_forecasts(history: pd.DataFrame, until: pd.Timestamp, countries: dict[int, str], horizon: int,
                    freq: str = "D") -> tuple[pd.DataFrame, float]:
    """statsforecast's and mlforecast's forecasts for every period after the history up to ``until``.

    Args:
        history: series_id, ds, y, closed; closed periods are left out (the script fills them).
        until: the last period forecast (naive local).
        countries: series_id -> ISO country (the holiday flag).
        horizon: periods ahead the lags must reach past (28 days, 14 days, 168 hours).
        freq: "D" or "h".
    Returns (series_id, ds, four_week_mean, lgbm_plain[, autoets]), seconds of the subprocess.
    """
    from bench.field_baselines import ensure_env

    python = ensure_env()
    open_ = history[~history["closed"].astype(bool)][["series_id", "ds", "y"]]
    # naive local hours repeat when clocks go back: one period each, as the libraries need
    open_ = open_.groupby(["series_id", "ds"], as_index=False)["y"].sum()
    step = pd.Timedelta(1, unit=freq)
    periods = pd.date_range(history["ds"].max() + step, until, freq=freq)
    sids = open_["series_id"].unique()
    future = pd.DataFrame({"series_id": np.repeat(sids, len(periods)), "ds": np.tile(periods, len(sids))})
    train = open_.assign(is_holiday=_holiday_flags(open_, countries))
    future["is_holiday"] = _holiday_flags(future, countries)
    work = Path(tempfile.mkdtemp(prefix="bench-field-"))
    train.rename(columns={"series_id": "unique_id"}).to_parquet(work / "in.parquet")
    future.rename(columns={"series_id": "unique_id"}).to_parquet(work / "future.parquet")
    start = time.perf_counter()
    subprocess.run([str(python), str(ROOT / "bench" / "field_baselines.py"), str(work / "in.parquet"),
                    str(work / "out.parquet"), "--horizon", str(horizon), "--future", str(work / "future.parquet"),
                    "--freq", freq, "--season", str(168 if freq == "h" else 7)], check=True, capture_output=True)
    seconds = time.perf_counter() - start
    out = pd.read_parquet(work / "out.parquet")
    wide = out.pivot_table(index=["unique_id", "ds"], columns="method", values="yhat").reset_index()
    return wide.rename(columns={"unique_id": "series_id"}).rename_axis(columns=None), round(seconds, 2)


def prophet_forecasts(history: pd.DataFrame, future: pd.DataFrame, countries: dict[int, str],
                      hourly: bool = False) -> tuple[pd.DataFrame, float]:
    """Prophet per series with its country's holidays (``add_country_holidays``), fitted on the
    open, non-outlier periods; series with fewer than 2 such periods get none.

    Args:
        history: series_id, ds, y, closed[, outlier].
        future: series_id, ds (the periods forecast).
        countries: series_id -> ISO country.
        hourly: add Prophet's daily seasonality (hours of the day).
    Returns (series_id, ds, prophet), seconds (fit and forecast, one process).
    """
    from prophet import Prophet

    for name in ("cmdstanpy", "prophet"):
        logging.getLogger(name).setLevel(logging.ERROR)
    keep = ~history["closed"].astype(bool)
    if "outlier" in history:
        keep &= ~history["outlier"].fillna(False).astype(bool)
    data, outs = history[keep], []
    start = time.perf_counter()
    wanted = future.groupby("series_id")
    for sid, g in data.groupby("series_id"):
        if sid not in wanted.groups or len(g) < 2 or g["y"].sum() <= 0:
            continue
        m = Prophet(uncertainty_samples=0, daily_seasonality=hourly,
                    seasonality_mode="multiplicative" if hourly else "additive",
                    yearly_seasonality=(g["ds"].max() - g["ds"].min()).days >= 365)
        code = (countries.get(sid) or "").strip().upper()
        if code:
            m.add_country_holidays(country_name=code)
        m.fit(g[["ds", "y"]])
        fut = wanted.get_group(sid)[["ds"]].drop_duplicates().reset_index(drop=True)
        outs.append(fut.assign(series_id=sid, prophet=np.maximum(m.predict(fut)["yhat"].to_numpy(), 0.0)))
    seconds = round(time.perf_counter() - start, 2)
    if not outs:
        return pd.DataFrame(columns=["series_id", "ds", "prophet"]), seconds
    return pd.concat(outs, ignore_index=True), seconds
