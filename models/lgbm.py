"""One LightGBM model across all series of a type (restaurants, or menu items).

Why global: one model per item series has a few dozen mostly-zero points to learn from; one
model across every series learns the shared shape (weekday, hour, holidays, horizon, momentum)
from all of them, and a new item borrows that shape at once. Scale differences between a busy
and a quiet series are taken out by an offset: the Tweedie objective (counts, never negative,
many zeros) works on the log scale, and log(recent level) enters as the initial score, so the
trees learn multiplicative corrections to each series' own level.

Training rows come from several forecast origins in the history (every ``origin_step_days``),
each with targets 1..horizon periods ahead, so the model is trained exactly as it is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.model_frames import LagFeatures, OriginFeatures
from models.base import point_forecast, read_params, write_params
from models.lgbm_params import booster_params

CALENDAR = ["dow", "month", "doy_sin", "doy_cos", "is_weekend", "is_holiday", "is_holiday_eve", "is_holiday_after"]
MIN_LEVEL = 1e-3


class GlobalLGBM:
    name = "lightgbm"

    def __init__(
        self,
        slot: str = "weekday",
        horizon_days: float = 28,
        origins: int = 12,
        origin_step_days: int = 7,
        extra_features: tuple[str, ...] = (),
        categorical: tuple[str, ...] = (),
        num_boost_round: int = 300,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        tweedie_variance_power: float = 1.2,
        min_data_in_leaf: int = 40,
        max_bin: int = 255,
        num_threads: int = 1,
        seed: int = 7,
    ):
        """
        Args:
            slot: "weekday" (daily series) or "weekday_hour" (hourly series).
            horizon_days: how far ahead (days) each training origin's targets reach.
            origins: how many training origins, the newest one horizon_days before the history end.
            origin_step_days: days between training origins.
            extra_features: further numeric columns of history/future to use (e.g. item attributes).
            categorical: which of extra_features are integer category codes.
            num_boost_round, learning_rate, num_leaves, min_data_in_leaf: LightGBM capacity.
            tweedie_variance_power: 1 = Poisson, towards 2 = Gamma; ~1.2 suits zero-heavy counts.
            max_bin: histogram bins per feature (fewer: faster boosting on many item series).
            num_threads: LightGBM threads (keep at or below the cores the worker owns).
        """
        self.slot = slot
        self.horizon_days = horizon_days
        self.origins = origins
        self.origin_step_days = origin_step_days
        self.extra_features = tuple(extra_features)
        self.categorical = tuple(categorical)
        self.num_boost_round = num_boost_round
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.tweedie_variance_power = tweedie_variance_power
        self.min_data_in_leaf = min_data_in_leaf
        self.max_bin = max_bin
        self.num_threads = num_threads
        self.seed = seed

    # ------------------------------------------------------------------ features
    @property
    def transform(self) -> OriginFeatures:
        return OriginFeatures(slot=self.slot, yoy=self.slot == "weekday")

    @property
    def feature_names(self) -> list[str]:
        hour = ["hour"] if self.slot == "weekday_hour" else []
        return self.transform.columns + CALENDAR + hour + list(self.extra_features)

    def _matrix(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        x = frame.reindex(columns=self.feature_names).astype("float64")
        for col in self.categorical:
            x[col] = frame[col].astype("int64").astype("category") if col in frame else x[col]
        level = frame[self.transform.level_column].to_numpy(float)
        return x, np.log(np.maximum(np.nan_to_num(level, nan=MIN_LEVEL), MIN_LEVEL))

    def training_frame(self, history: pd.DataFrame) -> pd.DataFrame:
        """Targets from several origins, each with only what was known at its origin."""
        end = history["ds"].max() + pd.Timedelta(seconds=1)
        day_end = end.normalize()
        step = pd.Timedelta(days=self.origin_step_days)
        horizon = pd.Timedelta(days=self.horizon_days)
        newest = day_end - horizon if day_end - horizon > history["ds"].min() else day_end - step
        origins = [newest - k * step for k in range(self.origins)]
        start = history["ds"].min() + pd.Timedelta(days=self.transform.level_days)
        origins = [o for o in origins if o >= start]
        if not origins:
            raise ValueError("history too short for a single training origin")
        usable = history[~(history["closed"] | history["outlier"])]
        parts = []
        for o in origins:
            tg = usable[(usable["ds"] >= o) & (usable["ds"] < o + horizon) & (usable["ds"] < end)]
            parts.append(tg.assign(origin=o))
        targets = pd.concat(parts, ignore_index=True)
        feats = self.transform.transform(history, targets)
        return feats[feats[self.transform.level_column].notna()]

    # ------------------------------------------------------------------ interface
    def fit(self, history: pd.DataFrame) -> Self:
        """Args: history with series_id, ds, y (count), closed, outlier and calendar columns."""
        train = self.training_frame(history)
        x, offset = self._matrix(train)
        data = lgb.Dataset(
            x, label=train["y"].to_numpy(float), init_score=offset,
            categorical_feature=list(self.categorical) or "auto", free_raw_data=True,
        )
        params = booster_params(self, "tweedie", tweedie_variance_power=self.tweedie_variance_power,
                                max_bin=self.max_bin, feature_fraction=0.9, bagging_fraction=0.8, bagging_freq=1,
                                lambda_l2=1.0, force_col_wise=True)
        self.booster_ = lgb.train(params, data, num_boost_round=self.num_boost_round)
        self.history_end_ = str(history["ds"].max())
        return self

    def predict(self, future: pd.DataFrame, history: pd.DataFrame | None = None) -> pd.DataFrame:
        """Forecast future (series_id, ds + calendar columns) from ``history``'s state at its end.

        ``history`` is required: the model stores no data, so a saved model forecasts from
        whatever history it is given tomorrow (how the fallback to a previous version works).
        Series without usable history before the origin come back NaN.
        """
        if history is None:
            raise ValueError("GlobalLGBM.predict needs the history to forecast from")
        last = history.groupby("series_id")["ds"].max()
        step = pd.Timedelta(hours=1) if self.slot == "weekday_hour" else pd.Timedelta(days=1)
        targets = future.copy()
        origin = targets["series_id"].map(last) + step
        targets["origin"] = origin.fillna(targets["ds"].min())
        feats = self.transform.transform(history, targets)
        x, offset = self._matrix(feats)
        raw = self.booster_.predict(x, raw_score=True) + offset
        yhat = np.exp(raw)
        yhat[feats[self.transform.level_column].isna().to_numpy()] = np.nan
        return point_forecast(future, yhat)

    def params(self) -> dict:
        keys = ("slot", "horizon_days", "origins", "origin_step_days", "extra_features", "categorical",
                "num_boost_round", "learning_rate", "num_leaves", "tweedie_variance_power",
                "min_data_in_leaf", "max_bin", "num_threads", "seed")
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in ((k, getattr(self, k)) for k in keys)}

    def save(self, directory: Path) -> None:
        write_params(directory, self.name, self.params())
        self.booster_.save_model(str(directory / "booster.txt"))

    @classmethod
    def load(cls, directory: Path) -> Self:
        model = cls(**read_params(directory))
        model.booster_ = lgb.Booster(model_file=str(directory / "booster.txt"))
        return model


class PlainLagLGBM:
    """The plain global LightGBM a data scientist tries first (candidate "lightgbm_plain"): one
    model over every series, a count objective (Poisson, or Tweedie with ``tweedie_variance_power``),
    direct lags at or beyond the horizon plus calendar and the series as a category
    (``features.model_frames.LagFeatures``). No offsets, no origins: each history row is a
    training row, its lags reaching past the horizon so a forecast uses only what is known.

    Why beside ``GlobalLGBM``: the origin model re-learns each series' level from its last 28 days;
    on a real menu of short, spiky item series (the bakery) the plain lagged model, which learns
    a per-item effect and the year's calendar from every day, was better held out (WAPE 0.4388
    against 0.49). Which one a shard gets is the backtest's call.
    """

    name = "lightgbm_plain"

    def __init__(
        self,
        slot: str = "weekday",
        horizon_days: float = 28,
        lag_weeks: int = 5,
        objective: str = "poisson",
        tweedie_variance_power: float = 1.2,
        num_boost_round: int = 300,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_data_in_leaf: int = 20,
        num_threads: int = 1,
        seed: int = 7,
    ):
        """
        Args:
            slot: "weekday" (daily series) or "weekday_hour" (adds the hour).
            horizon_days: the forecast horizon; the shortest lag is the first whole week at or past it.
            lag_weeks: how many weekly lags.
            objective: "poisson" or "tweedie" (counts, never negative).
            tweedie_variance_power: used with "tweedie".
            num_boost_round, learning_rate, num_leaves, min_data_in_leaf: LightGBM capacity.
            num_threads: LightGBM threads.
        """
        self.slot = slot
        self.horizon_days = horizon_days
        self.lag_weeks = lag_weeks
        self.objective = objective
        self.tweedie_variance_power = tweedie_variance_power
        self.num_boost_round = num_boost_round
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_data_in_leaf = min_data_in_leaf
        self.num_threads = num_threads
        self.seed = seed

    @property
    def lags(self) -> LagFeatures:
        return LagFeatures(min_lag_days=self.horizon_days, weeks=self.lag_weeks)

    def _frame(self, rows: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
        x = self.lags.transform(history, rows)
        hour = ["hour"] if self.slot == "weekday_hour" else []
        for col in CALENDAR + hour:
            x[col] = rows[col].to_numpy(float) if col in rows else np.nan
        x["series"] = pd.Categorical(rows["series_id"].where(rows["series_id"].isin(self.series_)),
                                     categories=self.series_)
        return x

    def fit(self, history: pd.DataFrame) -> Self:
        """Args: history with series_id, ds, y (count), closed and calendar columns."""
        self.series_ = sorted(int(s) for s in history["series_id"].unique())
        train = history[~history["closed"].astype(bool)]
        x = self._frame(train, history)
        keep = x["lag_mean"].notna().to_numpy()
        if not keep.any():
            raise ValueError("history too short for a single lagged row")
        params = booster_params(self, self.objective, feature_fraction=0.9, bagging_fraction=0.8, bagging_freq=1,
                                force_col_wise=True,
                                **({"tweedie_variance_power": self.tweedie_variance_power}
                                   if self.objective == "tweedie" else {}))
        self.booster_ = lgb.train(params, lgb.Dataset(x[keep], label=train["y"].to_numpy(float)[keep]),
                                  num_boost_round=self.num_boost_round)
        return self

    def predict(self, future: pd.DataFrame, history: pd.DataFrame | None = None) -> pd.DataFrame:
        """Forecast future (series_id, ds + calendar columns); the lags are read from ``history``
        (required: the model stores no data)."""
        if history is None:
            raise ValueError("PlainLagLGBM.predict needs the history its lags come from")
        x = self._frame(future, history)
        return point_forecast(future, np.maximum(self.booster_.predict(x), 0.0))

    def params(self) -> dict:
        keys = ("slot", "horizon_days", "lag_weeks", "objective", "tweedie_variance_power", "num_boost_round",
                "learning_rate", "num_leaves", "min_data_in_leaf", "num_threads", "seed")
        return {k: getattr(self, k) for k in keys}

    def save(self, directory: Path) -> None:
        write_params(directory, self.name, {**self.params(), "series": self.series_})
        self.booster_.save_model(str(directory / "booster.txt"))

    @classmethod
    def load(cls, directory: Path) -> Self:
        params = read_params(directory)
        series = params.pop("series")
        model = cls(**params)
        model.series_ = [int(s) for s in series]
        model.booster_ = lgb.Booster(model_file=str(directory / "booster.txt"))
        return model
