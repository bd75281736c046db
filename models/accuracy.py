"""Realised accuracy: how far earlier predictions were from what then happened.

Pure functions on frames (no connection): the run's scoring step (``reporting.accuracy``) hands them
predictions already matched with their actuals (``features.actuals``), the history of the types
whose units are ``PredictionUnit.scored`` (the one place that says which). The metrics are the ones
the backtest reports (``models.backtest``: WAPE, MAE, 80 % coverage), so a realised figure can be
set against the backtest figure of the model that made the prediction, plus the bias, which a
backtest over a stable past rarely shows and a shifted present does.

Horizon: a prediction made at ``as_of`` about a period ending at ``target_end`` is ``h`` days
ahead, ``h = ceil((target_end - as_of) / 1 day)`` (at least 1): today's local day and the next
24 hours are day 1. Buckets: d1, d2-7, d8-14, d15-28, d29+; churn (one 60-day window per
prediction) is its own bucket, "60d"; "all" pools every bucket.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

CHURN_WINDOW = pd.Timedelta(days=60)
HORIZON_BUCKETS: tuple[tuple[int, int | None, str], ...] = (
    (1, 1, "d1"),
    (2, 7, "d2-7"),
    (8, 14, "d8-14"),
    (15, 28, "d15-28"),
    (29, None, "d29+"),
)
ALL = "all"
CHURN_BUCKET = "60d"
BUCKET_ORDER = [b[2] for b in HORIZON_BUCKETS] + [CHURN_BUCKET, ALL]
METRIC_COLUMNS = ("n", "actual_total", "predicted_total", "wape", "mae", "bias", "coverage80", "n_interval",
                  "backtest_wape", "backtest_coverage80")


def horizon_days(as_of: pd.Series, target_end: pd.Series) -> pd.Series:
    """Days ahead of each prediction (int, >= 1).

    Args:
        as_of: instant each prediction was made (the run's as_of, UTC).
        target_end: instant the predicted period ended (UTC).
    """
    days = (pd.to_datetime(target_end, utc=True) - pd.to_datetime(as_of, utc=True)).dt.total_seconds() / 86400.0
    return np.ceil(days.round(6)).clip(lower=1).astype("int64")


def horizon_bucket(days: pd.Series, prediction_type: pd.Series | None = None) -> pd.Series:
    """Bucket label of each horizon in days; churn rows get "60d" whatever their days."""
    labels = pd.Series(HORIZON_BUCKETS[-1][2], index=days.index, dtype=object)
    for lo, hi, label in reversed(HORIZON_BUCKETS):
        inside = (days >= lo) & (days <= hi if hi is not None else True)
        labels[inside] = label
    if prediction_type is not None:
        labels[prediction_type == "churn"] = CHURN_BUCKET
    return labels


def finite_or_none(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing, not a number, or infinite."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def metrics(y: ArrayLike, yhat: ArrayLike, lower: ArrayLike | None = None,
            upper: ArrayLike | None = None) -> dict[str, Any]:
    """WAPE, MAE, bias and 80 % interval coverage of one group.

    Args:
        y: actuals; yhat: predictions (same unit: orders, units, item stock units, or 0/1 and a
            probability for churn).
        lower, upper: the 80 % interval (rows without one are left out of coverage only).
    Returns n, actual_total, predicted_total, wape (sum |y - yhat| / sum y; None when nothing
    happened), mae (mean |y - yhat|), bias (mean yhat - y: > 0 over-forecasts), coverage80 (share
    of rows with an interval whose actual lies in [lower, upper]; None without intervals) and
    n_interval (rows with an interval).
    """
    y = np.asarray(y, float)
    yhat = np.asarray(yhat, float)
    n = int(len(y))
    total = float(np.abs(y).sum())
    err = np.abs(y - yhat)
    out = {
        "n": n,
        "actual_total": float(y.sum()) if n else None,
        "predicted_total": float(yhat.sum()) if n else None,
        "wape": float(err.sum() / total) if total > 0 else None,
        "mae": float(err.mean()) if n else None,
        "bias": float((yhat - y).mean()) if n else None,
        "coverage80": None,
        "n_interval": 0,
    }
    if lower is not None and upper is not None and n:
        lo, up = np.asarray(lower, float), np.asarray(upper, float)
        has = np.isfinite(lo) & np.isfinite(up)
        out["n_interval"] = int(has.sum())
        if has.any():
            out["coverage80"] = float(np.mean((y[has] >= lo[has]) & (y[has] <= up[has])))
    return out


def _reference(group: pd.DataFrame, column: str) -> float | None:
    if column not in group:
        return None
    vals = pd.to_numeric(group[column], errors="coerce").dropna()
    return finite_or_none(vals.mean()) if len(vals) else None


def score(scored: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per type, per restaurant and chain-wide, per horizon bucket and overall.

    Args:
        scored: one row per prediction with an actual: prediction_type, restaurant_id, horizon
            (bucket label), y, yhat, lower, upper; optionally backtest_wape and
            backtest_coverage80, the backtest figures of the model that made each row (the
            reference is their row-weighted mean over rows that have one).
    Returns prediction_type, restaurant_id (None = chain-wide), horizon, and ``METRIC_COLUMNS``.
    """
    columns = ["prediction_type", "restaurant_id", "horizon", *METRIC_COLUMNS]
    if scored is None or scored.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    frame = scored.copy()
    frame["restaurant_id"] = frame["restaurant_id"].astype("Int64")
    for ptype, by_type in frame.groupby("prediction_type", sort=True):
        scopes = [(None, by_type)] + [(int(r), g) for r, g in by_type.groupby("restaurant_id", sort=True)]
        for rid, g in scopes:
            buckets = [(h, gh) for h, gh in g.groupby("horizon", sort=False)] + [(ALL, g)]
            for horizon, gh in buckets:
                m = metrics(gh["y"], gh["yhat"], gh.get("lower"), gh.get("upper"))
                m["backtest_wape"] = _reference(gh, "backtest_wape")
                m["backtest_coverage80"] = _reference(gh, "backtest_coverage80")
                rows.append({"prediction_type": ptype, "restaurant_id": rid, "horizon": horizon, **m})
    out = pd.DataFrame(rows, columns=columns)
    order = {b: i for i, b in enumerate(BUCKET_ORDER)}
    out["_o"] = out["horizon"].map(order)
    out["_r"] = out["restaurant_id"].fillna(-1)
    out = out.sort_values(["prediction_type", "_r", "_o"]).drop(columns=["_o", "_r"]).reset_index(drop=True)
    return out


def summary(accuracy: pd.DataFrame) -> dict:
    """Chain-wide figures per type for the run record and the webhook: overall and by horizon.

    Returns {type: {n, wape, mae, bias, coverage80, backtest_wape, by_horizon: {bucket: wape}}},
    numbers rounded to 4 places and never NaN (None instead), so the dict is JSON as it is.
    """
    out: dict[str, dict] = {}
    if accuracy is None or accuracy.empty:
        return out
    chain = accuracy[accuracy["restaurant_id"].isna()]
    for ptype, g in chain.groupby("prediction_type", sort=True):
        overall = g[g["horizon"] == ALL]
        if overall.empty:
            continue
        o = overall.iloc[0]
        entry = {k: _round(o[k]) for k in ("wape", "mae", "bias", "coverage80", "backtest_wape")}
        entry["n"] = int(o["n"])
        entry["by_horizon"] = {str(r.horizon): _round(r.wape) for r in g.itertuples() if r.horizon != ALL}
        out[str(ptype)] = entry
    return out


def _round(x) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return round(x, 4) if math.isfinite(x) else None


__all__ = ["CHURN_WINDOW", "finite_or_none", "HORIZON_BUCKETS", "BUCKET_ORDER", "ALL", "CHURN_BUCKET",
           "horizon_days", "horizon_bucket", "metrics", "score", "summary"]
