"""Anomalies: days that depart from an entity's own weekday pattern, by a robust z-score.

For each entity and local day t (docs/anomalies.md):

    expected_t = median of y on the same weekday in the previous ``weeks`` weeks (open days only)
    r_t        = log(1 + y_t) - log(1 + expected_t)
    scale_t    = 1.4826 x median(|r|) over the previous ``scale_days`` open days  (a robust sd)
    z_t        = r_t / max(scale_t, min_scale, 1 / sqrt(1 + expected_t))

A day with |z| > threshold is an anomaly, ``kind`` = ``spike`` (z > 0) or ``drop`` (z < 0). Closed
days (no orders in the restaurant) and public holidays are never flagged: the first is a closure
the demand models handle, the second a departure the calendar explains. Medians and the MAD keep
one earlier anomaly from hiding the next. Logs make a 3x spike equally surprising for a busy and a
quiet item; ``min_scale`` stops near-constant series from flagging tiny moves. Entities with fewer
than ``min_history`` open days in the window are not scored. The ``1 / sqrt(1 + expected)`` floor
is the counting noise of a Poisson count on the log scale: a quiet item selling 0 instead of 2 is
not an anomaly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MODEL_VERSION = "1"


def empty_rows() -> pd.DataFrame:
    """No rows, but with the columns the writer requires (it rejects a frame without them)."""
    return pd.DataFrame({c: [] for c in ("entity_id", "value", "model_name", "model_version", "method")})


class RobustWeekdayZ:
    name = "robust_weekday_z"

    def __init__(self, threshold: float = 4.0, weeks: int = 8, scale_days: int = 56, min_scale: float = 0.1, min_history: int = 21):
        self.threshold = threshold
        self.weeks = weeks
        self.scale_days = scale_days
        self.min_scale = min_scale
        self.min_history = min_history

    def score(self, series: pd.DataFrame) -> pd.DataFrame:
        """z-scores of every day with enough history.

        Args:
            series: entity_id, restaurant_id, ds, y, open, holiday (``features.anomalies``).
        Returns:
            entity_id, restaurant_id, ds, actual, expected, z, anomaly (bool), kind.
        """
        if series.empty:
            return pd.DataFrame(columns=["entity_id", "restaurant_id", "ds", "actual", "expected", "z", "anomaly", "kind"])
        y = series.pivot_table(index="ds", columns="entity_id", values="y", aggfunc="sum").sort_index()
        y = y.asfreq("D")
        open_ = series.pivot_table(index="ds", columns="entity_id", values="open", aggfunc="max").reindex(y.index).fillna(False).astype(bool)
        usable = open_ & y.notna()
        yo = y.where(usable)
        lags = np.stack([yo.shift(7 * k).to_numpy() for k in range(1, self.weeks + 1)])
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                expected = pd.DataFrame(np.nanmedian(lags, axis=0), index=y.index, columns=y.columns)
        r = np.log1p(yo) - np.log1p(expected)
        scale = 1.4826 * r.abs().shift(1).rolling(self.scale_days, min_periods=self.min_history).median()
        # counting noise: log(1 + Poisson(mu)) has sd about 1 / sqrt(1 + mu); never trust less than that
        poisson = 1.0 / np.sqrt(1.0 + expected.clip(lower=0))
        z = r / np.maximum(scale.clip(lower=self.min_scale), poisson)
        out = pd.DataFrame(
            {
                "actual": y.stack(future_stack=True),
                "expected": expected.stack(future_stack=True),
                "z": z.stack(future_stack=True),
            }
        ).reset_index()
        out = out.merge(series[["entity_id", "restaurant_id", "ds", "holiday", "open"]], on=["entity_id", "ds"], how="inner")
        out = out[out["z"].notna() & out["open"] & ~out["holiday"]]
        out["anomaly"] = out["z"].abs() > self.threshold
        out["kind"] = np.where(out["z"] > 0, "spike", "drop")
        return out[["entity_id", "restaurant_id", "ds", "actual", "expected", "z", "anomaly", "kind"]].reset_index(drop=True)


def anomaly_rows(scored: pd.DataFrame, last_day: dict[int, pd.Timestamp], target_start: dict[int, pd.Timestamp], entity_kind: str) -> pd.DataFrame:
    """Rows for the entities whose last complete local day is an anomaly (value = z-score).

    Args:
        scored: ``RobustWeekdayZ.score`` output.
        last_day: restaurant_id -> the last complete local day before as_of (naive date).
        target_start: restaurant_id -> the UTC instant that day starts.
        entity_kind: "restaurant", "menu_item" or "inventory_item" (goes into details).
    """
    if scored.empty:
        return empty_rows()
    want = scored["restaurant_id"].map(last_day)
    hit = scored[(scored["ds"] == want) & scored["anomaly"]]
    return pd.DataFrame(
        {
            "entity_id": hit["entity_id"].astype("int64").to_numpy(),
            "restaurant_id": hit["restaurant_id"].astype("int64").to_numpy(),
            "target_start": hit["restaurant_id"].map(target_start).to_numpy(),
            "granularity": "day",
            "value": hit["z"].round(3).to_numpy(),
            "details": [
                {"kind": k, "expected": round(float(e), 3), "actual": round(float(a), 3), "entity": entity_kind, "score": "robust_z"}
                for k, e, a in zip(hit["kind"], hit["expected"], hit["actual"])
            ],
            "model_name": RobustWeekdayZ.name,
            "model_version": MODEL_VERSION,
            "method": "model",
        }
    )
