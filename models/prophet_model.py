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
                 mode: str | None = None, drop_outliers: bool = False, forecast_days: int = 0):
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
            forecast_days: daily, additive fits only: how many days after the history's end
                ``save`` stores each series' forecast for, with its regressors' coefficients, so
                that the nights which keep these fits (``models.blend.MeanEnsemble.refit``)
                forecast from the stored curve instead of rebuilding Prophet series by series
                (about 80 ms each, half deserialising the fit, half its predict: most of a warm
                night's Prophet cost). Exact: Prophet's forecast is its no-regressor curve plus
                each additive regressor's coefficient times the regressor. 0: nothing stored.
        """
        self.hourly = hourly
        self.n_jobs = n_jobs
        self.holidays = holidays
        self.holiday_days = holiday_days
        self.mode = mode
        self.drop_outliers = drop_outliers
        self.forecast_days = forecast_days

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
        self.end_ = pd.Timestamp(history["ds"].max()).normalize() if len(history) else None
        self.curves_: dict[int, dict] = {}
        return self

    @property
    def _cacheable(self) -> bool:
        return self.forecast_days > 0 and not self.hourly and (self.mode or "additive") == "additive"

    def store_curves(self) -> None:
        """Each series' forecast for ``forecast_days`` days after the history, without regressors,
        and its regressors' additive coefficients (``prophet.utilities.regressor_coefficients``)."""
        from prophet.serialize import model_from_json
        from prophet.utilities import regressor_coefficients

        _quiet()
        if not self._cacheable or self.end_ is None:
            return
        days = pd.date_range(self.end_ + pd.Timedelta(days=1), periods=self.forecast_days, freq="D")
        frame = pd.DataFrame({"ds": days, **{col: 0.0 for col in self.regressors}})
        for sid, js in self.models_.items():
            model = model_from_json(js)
            coef = (regressor_coefficients(model).set_index("regressor")["coef"] if self.regressors
                    else pd.Series(dtype=float))
            self.curves_[sid] = {"base": model.predict(frame)["yhat"].to_numpy(float).tolist(),
                                 "coef": {col: float(coef[col]) for col in self.regressors}}

    def _from_curve(self, sid: int, rows: pd.DataFrame) -> np.ndarray | None:
        """The stored forecast for ``rows`` (ds + regressors), None when a day is outside it."""
        curve = self.curves_.get(sid)
        if curve is None or self.end_ is None:
            return None
        pos = ((rows["ds"] - self.end_) // pd.Timedelta(days=1)).to_numpy() - 1
        on_day = (rows["ds"] == rows["ds"].dt.normalize()).all()
        if not on_day or (pos < 0).any() or (pos >= len(curve["base"])).any():
            return None
        yhat = np.asarray(curve["base"], float)[pos]
        for col, c in curve["coef"].items():
            yhat = yhat + c * rows[col].to_numpy(float)
        return yhat

    def predict(self, future: pd.DataFrame, history: pd.DataFrame | None = None) -> pd.DataFrame:
        """Point forecasts floored at zero; series that could not be fit come back NaN."""
        from prophet.serialize import model_from_json

        _quiet()
        yhat = pd.Series(np.nan, index=future.index)
        for sid, idx in future.groupby("series_id").groups.items():
            js = self.models_.get(int(sid))
            if js is None:
                continue
            cols = ["ds"] + self.regressors
            stored = self._from_curve(int(sid), future.loc[idx, cols])
            if stored is None:
                stored = model_from_json(js).predict(future.loc[idx, cols].reset_index(drop=True))["yhat"].to_numpy()
            yhat.loc[idx] = np.maximum(stored, 0.0)
        return point_forecast(future, yhat)

    def save(self, directory: Path) -> None:
        write_params(directory, self.name, {"hourly": self.hourly, "n_jobs": self.n_jobs, "holidays": self.holidays,
                                            "holiday_days": self.holiday_days, "mode": self.mode,
                                            "drop_outliers": self.drop_outliers, "forecast_days": self.forecast_days})
        (directory / "models.json").write_text(json.dumps({str(k): v for k, v in self.models_.items()}))
        if self._cacheable and not self.curves_:
            self.store_curves()
        if self.curves_:
            (directory / "curves.json").write_text(json.dumps(
                {"end": str(self.end_.date()), "series": {str(k): v for k, v in self.curves_.items()}}))

    @classmethod
    def load(cls, directory: Path) -> Self:
        model = cls(**read_params(directory))
        model.models_ = {int(k): v for k, v in json.loads((directory / "models.json").read_text()).items()}
        model.end_, model.curves_ = None, {}
        curves = directory / "curves.json"
        if curves.exists():
            stored = json.loads(curves.read_text())
            model.end_ = pd.Timestamp(stored["end"])
            model.curves_ = {int(k): v for k, v in stored["series"].items()}
        return model
