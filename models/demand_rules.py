"""The demand chain's steps without a model (``models.forecasting``): the peer average for series
with too little history (shrunk towards their own rate where the type says so) and the zeros
before a restaurant opens. They fill the chain's frame in place (yhat, lower, upper, method,
model_name, model_version).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd

from core.units import Scope


class RuleSpec(Protocol):
    """What these steps read of a ``models.forecasting.TypeSpec``."""

    prediction_type: str
    peer_statistic: str


def not_open_yet(out: pd.DataFrame, hist: pd.DataFrame, series: pd.DataFrame, scope: Scope, spec: RuleSpec,
                 messages: list[str]) -> None:
    """Periods before a restaurant's ``opened_on`` (its local date) are forecast as zero.

    A restaurant announced in the RMS before it opens has no orders; without this rule it would get
    its peers' average for days it cannot trade, and the dashboard would plan staff for them. From
    the opening day on, the peer average stands (a new restaurant's best guess). Orders are
    stronger evidence than a date someone typed: a restaurant that already has orders (a soft
    opening, a wrong ``opened_on``) is forecast as trading, and the run says so.
    """
    if "opened_on" not in scope.restaurants.columns or out.empty or "restaurant_id" not in series.columns:
        return
    opened = pd.to_datetime(scope.restaurants.set_index("id")["opened_on"], errors="coerce").dropna()
    opened = opened[opened > out["ds"].min().normalize()]
    if opened.empty:
        return
    restaurant_of = series.set_index("series_id")["restaurant_id"]
    if len(hist):
        sold = hist.loc[hist["y"] > 0, "series_id"].map(restaurant_of)
        trading = sorted({int(r) for r in sold.dropna()} & {int(r) for r in opened.index})
        if trading:
            messages.append(f"{spec.prediction_type}: restaurants with orders before their opened_on are forecast as "
                            f"trading: {', '.join(f'{r} (opened_on {opened[r].date()})' for r in trading[:20])}")
            opened = opened.drop(trading)
    if opened.empty:
        return
    opening = pd.to_datetime(out["series_id"].map(restaurant_of).map(opened.to_dict()))
    before = opening.notna() & (out["ds"].dt.normalize() < opening)
    if not before.any():
        return
    out.loc[before, ["yhat", "lower", "upper"]] = 0.0
    out.loc[before, ["method", "model_name", "model_version"]] = ["rule", "not_open_rule", "rule"]
    rids = sorted({int(r) for r in out.loc[before, "series_id"].map(restaurant_of)})
    shown = ", ".join(f"{r} (opens {opened[r].date()})" for r in rids[:20]) + (", ..." if len(rids) > 20 else "")
    messages.append(f"{spec.prediction_type}: restaurants not open yet are forecast 0 before their opening day: {shown}")


def shrink_to_own(out: pd.DataFrame, missing: pd.Series, days: pd.Series, totals: pd.Series, k: int) -> None:
    """Scale each ``average`` series' borrowed forecast towards its own rate so far.

    Why: a new menu item borrows its category's median, the rate of the category's established
    items; its own first days are evidence too (on the public bakery an item on the menu for 21
    days without a sale borrowed 0.9 units a day and sold 4 in 14 days). Empirical Bayes with the
    peers as prior worth ``k`` days: rate = (own units + k x peer daily mean) / (own open days + k);
    the peers' day-to-day shape and the interval's width relative to the value are kept. A series
    without a day of history keeps the peers' forecast."""
    rows = out.loc[missing]
    if rows.empty:
        return
    peer_mean = rows.groupby("series_id")["yhat"].mean()
    n = peer_mean.index.map(lambda s: float(days.get(s, 0))).to_numpy(float)
    own = peer_mean.index.map(lambda s: float(totals.get(s, 0.0))).to_numpy(float)
    pm = peer_mean.to_numpy(float)
    factor = np.where((n > 0) & (pm > 0), (own + k * pm) / ((n + k) * np.where(pm > 0, pm, 1.0)), 1.0)
    scale = rows["series_id"].map(pd.Series(factor, index=peer_mean.index)).to_numpy(float)
    for col in ("yhat", "lower", "upper"):
        out.loc[missing, col] = out.loc[missing, col].to_numpy(float) * scale


def peer_average(out: pd.DataFrame, missing: pd.Series, series: pd.DataFrame, spec: RuleSpec, messages: list[str],
                 exclude: pd.Series | None = None) -> None:
    """Mean forecast of the series' peers on the same local period; else of every series.
    ``exclude``: rows that are no peers' evidence (dormant series' zeros)."""
    groups = series.set_index("series_id")["peer_group"]
    out_group = out["series_id"].map(groups)
    peers = ~missing if exclude is None else ~missing & ~exclude
    done = out[peers].assign(peer_group=out_group[peers])
    if done.empty:
        out.loc[missing, ["yhat", "lower", "upper"]] = 0.0
        out.loc[missing, ["method", "model_name", "model_version"]] = ["average", "peer_average", "average"]
        messages.append(f"{spec.prediction_type}: no series with a forecast to average; zero forecast")
        return
    stat = spec.peer_statistic
    by_group = done.groupby(["peer_group", "ds"])[["yhat", "lower", "upper"]].agg(stat)
    overall = done.groupby("ds")[["yhat", "lower", "upper"]].agg(stat)
    target = out.loc[missing]
    key = pd.MultiIndex.from_arrays([out_group[missing], target["ds"]])
    vals = by_group.reindex(key).to_numpy()
    fallback = overall.reindex(target["ds"]).to_numpy()
    vals = np.where(np.isnan(vals), fallback, vals)
    vals = np.where(np.isnan(vals), np.nanmean(done[["yhat", "lower", "upper"]].to_numpy(), axis=0), vals)
    out.loc[missing, ["yhat", "lower", "upper"]] = vals
    out.loc[missing, ["method", "model_name", "model_version"]] = ["average", "peer_average", "average"]
