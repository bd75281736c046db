"""Seasonal average and seasonal naive: the spreadsheet baselines every other model has to beat.

For each series and seasonal slot (weekday, or weekday x hour) the forecast is the mean of the
slot's last ``window`` observations; the interval is their empirical quantiles. It needs no
training beyond remembering those values, and it is what operators already do by hand. Seasonal
naive is the same with a window of one: "same as last Tuesday". Closed days (see
``features.demand.mark_closed_days``) are not observations of demand and are skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd

from models.base import load_table_model, save_table_model

SEASONS = {
    "weekday": lambda ds: ds.dt.day_of_week,
    "weekday_hour": lambda ds: ds.dt.day_of_week * 24 + ds.dt.hour,
}


class SeasonalAverage:
    name = "seasonal_average"

    def __init__(self, season: str = "weekday", window: int = 4, level: float = 0.8):
        """
        Args:
            season: "weekday" for daily series, "weekday_hour" for hourly ones.
            window: how many past occurrences of the slot to average (weeks).
            level: central interval level, e.g. 0.8 for the 10th-90th percentile.
        """
        if season not in SEASONS:
            raise ValueError(f"season must be one of {sorted(SEASONS)}")
        self.season = season
        self.window = window
        self.level = level

    def fit(self, history: pd.DataFrame) -> Self:
        """Args: history with series_id, ds (naive local), y (count), optional boolean closed."""
        if "closed" in history.columns:
            history = history[~history["closed"].astype(bool)]
        frame = history.loc[:, ["series_id", "ds", "y"]].copy()
        frame["slot"] = SEASONS[self.season](frame["ds"])
        frame = frame.sort_values("ds").groupby(["series_id", "slot"]).tail(self.window)
        alpha = (1 - self.level) / 2
        grouped = frame.groupby(["series_id", "slot"])["y"]
        self.profile_ = pd.DataFrame(
            {
                "yhat": grouped.mean(),
                "lower": grouped.quantile(alpha),
                "upper": grouped.quantile(1 - alpha),
            }
        ).reset_index()
        return self

    def predict(self, future: pd.DataFrame, history: pd.DataFrame | None = None) -> pd.DataFrame:
        """Slot values for future series_id, ds; ``history`` is accepted for the shared interface
        and ignored (the profile was fixed at fit). Unknown series or slots come back NaN."""
        out = future.loc[:, ["series_id", "ds"]].copy()
        out["slot"] = SEASONS[self.season](out["ds"])
        out = out.merge(self.profile_, on=["series_id", "slot"], how="left").drop(columns="slot")
        for col in ("yhat", "lower", "upper"):
            out[col] = np.maximum(out[col].astype(float), 0.0)
        return out

    def save(self, directory: Path) -> None:
        save_table_model(self, directory, {"season": self.season, "window": self.window, "level": self.level},
                         "profile_")

    @classmethod
    def load(cls, directory: Path) -> Self:
        return load_table_model(cls, directory, "profile_")


class SeasonalNaive(SeasonalAverage):
    """The last open value of the same slot: the reference the issue's 10 % margin is against."""

    name = "seasonal_naive"

    def __init__(self, season: str = "weekday", window: int = 1, level: float = 0.8):
        super().__init__(season=season, window=window, level=level)
