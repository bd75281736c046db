"""Prophet fitted series by series: a backtest candidate and the comparison the issue asks for.

Field notes applied: ``uncertainty_samples=0`` (its sampled intervals cost seconds per series and
assume Gaussian noise; intervals come from ``models.intervals`` like every other candidate), ``ds``
is naive local time, negative forecasts are floored at zero, closed days are left out of the fit
(Prophet treats missing days correctly, zeros it would learn), and parallel fits use processes,
never threads (prophet#2345).
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd

from models.base import point_forecast, read_params, write_params

# prophet.plot logs "ERROR Importing plotly failed" when prophet is imported without plotly; we draw
# no interactive plots. Silenced before the imports below (in every process that fits: the logger
# setting is made again wherever this module is imported).
logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)

MIN_POINTS = 14
# days of history from which a series' fit includes the yearly curve
YEARLY_MIN_DAYS = 365


def _quiet() -> None:
    for name in ("cmdstanpy", "prophet", "prophet.plot"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _fit_one(args: tuple) -> tuple[int, str | None]:
    """Fit one series; returns (series_id, serialized model JSON or None when it cannot be fit)."""
    from prophet import Prophet
    from prophet.serialize import model_to_json

    _quiet()
    sid, frame, hourly, holidays, mode = args
    if len(frame) < MIN_POINTS or frame["y"].sum() <= 0:
        return sid, None
    span_days = (frame["ds"].max() - frame["ds"].min()).days
    model = Prophet(
        uncertainty_samples=0,
        seasonality_mode=mode or ("multiplicative" if hourly else "additive"),
        weekly_seasonality=True,
        daily_seasonality=hourly,
        yearly_seasonality=span_days >= YEARLY_MIN_DAYS,
    )
    for col in holidays:
        model.add_regressor(col)
    try:
        model.fit(frame)
    except Exception:  # a degenerate series must not sink the comparison
        return sid, None
    return sid, model_to_json(model)


class ProphetPerSeries:
    name = "prophet"

    def __init__(self, hourly: bool = False, n_jobs: int = 1, holidays: bool = True, holiday_days: bool = False,
                 mode: str | None = None, drop_outliers: bool = False):
        """
        Args:
            hourly: add Prophet's daily seasonality (hour of day) for hourly series.
            n_jobs: worker processes for fitting (1 fits in this process).
            holidays: use the ``is_holiday`` column of history/future as a regressor.
            holiday_days: also the eves and the days after (``is_holiday_eve``, ``is_holiday_after``):
                the country's holidays with the days around them, each an effect of its own.
            mode: Prophet's seasonality_mode; None: multiplicative for hourly, additive for daily.
            drop_outliers: leave days flagged ``outlier`` out of the fit, as closed days are (an
                event day otherwise bends the trend for weeks).
        """
        self.hourly = hourly
        self.n_jobs = n_jobs
        self.holidays = holidays
        self.holiday_days = holiday_days
        self.mode = mode
        self.drop_outliers = drop_outliers

    @property
    def regressors(self) -> list[str]:
        if not self.holidays:
            return []
        return ["is_holiday"] + (["is_holiday_eve", "is_holiday_after"] if self.holiday_days else [])

    def fit(self, history: pd.DataFrame) -> Self:
        """Args: history with series_id, ds (naive local), y, closed[, is_holiday]."""
        data = history
        if "closed" in data.columns:
            data = data[~data["closed"].astype(bool)]
        if self.drop_outliers and "outlier" in data.columns:
            data = data[~data["outlier"].astype(bool)]
        cols = ["ds", "y"] + self.regressors
        jobs = [(int(sid), g[cols].reset_index(drop=True), self.hourly, self.regressors, self.mode)
                for sid, g in data.groupby("series_id")]
        if self.n_jobs > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(max_workers=self.n_jobs) as pool:
                fitted = list(pool.map(_fit_one, jobs, chunksize=max(1, len(jobs) // (4 * self.n_jobs))))
        else:
            fitted = [_fit_one(j) for j in jobs]
        self.models_ = {sid: js for sid, js in fitted if js is not None}
        return self

    def predict(self, future: pd.DataFrame, history: pd.DataFrame | None = None) -> pd.DataFrame:
        """Point forecasts floored at zero; series that could not be fit come back NaN."""
        from prophet.serialize import model_from_json

        _quiet()
        yhat = pd.Series(np.nan, index=future.index)
        for sid, idx in future.groupby("series_id").groups.items():
            js = self.models_.get(int(sid))
            if js is None:
                continue
            model = model_from_json(js)
            cols = ["ds"] + self.regressors
            fc = model.predict(future.loc[idx, cols].reset_index(drop=True))
            yhat.loc[idx] = np.maximum(fc["yhat"].to_numpy(), 0.0)
        return point_forecast(future, yhat)

    def save(self, directory: Path) -> None:
        write_params(directory, self.name, {"hourly": self.hourly, "n_jobs": self.n_jobs, "holidays": self.holidays,
                                            "holiday_days": self.holiday_days, "mode": self.mode,
                                            "drop_outliers": self.drop_outliers})
        (directory / "models.json").write_text(json.dumps({str(k): v for k, v in self.models_.items()}))

    @classmethod
    def load(cls, directory: Path) -> Self:
        model = cls(**read_params(directory))
        model.models_ = {int(k): v for k, v in json.loads((directory / "models.json").read_text()).items()}
        return model
