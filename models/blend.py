"""An equal-weight blend of the global LightGBM and Prophet per series (candidate "lightgbm+prophet").

Why: the two err differently. The global LightGBM follows each series' recent level, its
momentum and shared calendar effects, but learns the annual swing only from origins with a year
of history behind them, which a 15-month history barely has; Prophet fits each series' own yearly
curve and trend from a single year but is slow to follow a level that moved last month. Averaging
two forecasts with unrelated errors cancels part of both (on the 20-restaurant synthetic chain
the blend's held-out WAPE was below either one's). The backtest decides whether the blend earns its
cost (Prophet fits series by series); it is listed for demand_daily, whose shards have few series.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd

from models.base import point_forecast, read_params, write_params
from models.lgbm import GlobalLGBM
from models.prophet_model import ProphetPerSeries


class LGBMProphetBlend:
    name = "lightgbm+prophet"

    def __init__(self, lgbm: dict | None = None, prophet: dict | None = None, weight: float = 0.5):
        """
        Args:
            lgbm: GlobalLGBM arguments; prophet: ProphetPerSeries arguments.
            weight: the LightGBM share of the blend (0..1); Prophet gets the rest. Where one part
                has no forecast for a period, the other's is used alone.
        """
        self.lgbm = dict(lgbm or {})
        self.prophet = dict(prophet or {})
        self.weight = weight

    def fit(self, history: pd.DataFrame) -> Self:
        """Args: history as GlobalLGBM.fit and ProphetPerSeries.fit take it."""
        self.lgbm_ = GlobalLGBM(**self.lgbm).fit(history)
        self.prophet_ = ProphetPerSeries(**self.prophet).fit(history)
        return self

    def refit(self, history: pd.DataFrame, previous: "LGBMProphetBlend") -> Self:
        """The nightly refit under a recent selection: the LightGBM on today's history, Prophet's
        fits kept from ``previous`` (the artifact fitted when the blend was selected; a series it
        lacks gets the LightGBM alone). Why: Prophet per series is what the blend costs, and the
        issue's budget allows Prophet in the weekly reselection, never as a nightly refit of every
        series; its trend and yearly curve barely move in a week, so it forecasts from its fit."""
        self.lgbm_ = GlobalLGBM(**self.lgbm).fit(history)
        self.prophet_ = previous.prophet_
        return self

    def predict(self, future: pd.DataFrame, history: pd.DataFrame | None = None) -> pd.DataFrame:
        """Blended point forecasts (orders or units per period); NaN only where both parts are."""
        a = self.lgbm_.predict(future, history=history)["yhat"].to_numpy(float)
        b = self.prophet_.predict(future, history=history)["yhat"].to_numpy(float)
        blend = self.weight * a + (1 - self.weight) * b
        return point_forecast(future, np.where(np.isnan(a), b, np.where(np.isnan(b), a, blend)))

    def params(self) -> dict:
        return {"lgbm": self.lgbm_.params() if hasattr(self, "lgbm_") else self.lgbm,
                "prophet": self.prophet, "weight": self.weight}

    def save(self, directory: Path) -> None:
        write_params(directory, self.name, {"weight": self.weight, "lgbm": self.lgbm, "prophet": self.prophet})
        self.lgbm_.save(directory / "lightgbm")
        self.prophet_.save(directory / "prophet")

    @classmethod
    def load(cls, directory: Path) -> Self:
        params = read_params(directory)
        model = cls(params["lgbm"], params["prophet"], params["weight"])
        model.lgbm_ = GlobalLGBM.load(directory / "lightgbm")
        model.prophet_ = ProphetPerSeries.load(directory / "prophet")
        return model


class MeanEnsemble:
    """The equal-weight mean of several candidates' forecasts (candidate "ensemble").

    Why: simple combinations of forecasts hold up best on forecasting benchmarks (the M
    competitions): the parts err differently, and the mean cancels part of each one's errors
    without betting on which of a few noisy backtest scores is right. In the backtest it costs
    nothing (``models.backtest.rolling_origin`` averages the parts' fold forecasts); chosen, the
    nightly refit fits every part. Which parts: a type's distinct base candidates
    (``TypeSpec.ensemble``), fixed by reasoning, not searched.

    ``part_classes`` (name -> class) is set by ``models.artifacts`` so a saved ensemble loads its
    parts through the same table as any artifact.
    """

    name = "ensemble"
    part_classes: dict = {}

    def __init__(self, parts: tuple[str, ...] = (), factory: Callable[[str], object] | None = None):
        """
        Args:
            parts: candidate names averaged.
            factory: name -> unfitted candidate (needed to fit; a loaded ensemble has its parts).
        """
        self.parts = tuple(parts)
        self.factory = factory

    def fit(self, history: pd.DataFrame) -> Self:
        """Fit every part on ``history``."""
        if self.factory is None:
            raise ValueError("MeanEnsemble.fit needs a factory of its parts")
        self.models_ = {n: self.factory(n).fit(history) for n in self.parts}
        return self

    def refit(self, history: pd.DataFrame, previous: "MeanEnsemble", keep: tuple[str, ...] = ("prophet",)) -> Self:
        """The nightly refit under a recent selection: every part on today's history except those
        in ``keep``, taken fitted from ``previous`` (the artifact of the weekly reselection). Why:
        Prophet per series is most of a combination's cost and its trend and seasons barely move
        in a week, so it is fitted at the reselection only (as ``LGBMProphetBlend.refit``)."""
        if self.factory is None:
            raise ValueError("MeanEnsemble.refit needs a factory of its parts")
        kept = getattr(previous, "models_", {})
        self.models_ = {n: kept[n] if n in keep and n in kept else self.factory(n).fit(history) for n in self.parts}
        return self

    def predict(self, future: pd.DataFrame, history: pd.DataFrame | None = None) -> pd.DataFrame:
        """The mean of the parts' forecasts; a part without a forecast for a row is left out."""
        stack = np.vstack([m.predict(future, history=history)["yhat"].to_numpy(float) for m in self.models_.values()])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a row no part forecast stays NaN
            yhat = np.nanmean(stack, axis=0)
        return point_forecast(future, yhat)

    def params(self) -> dict:
        return {"parts": list(self.parts)}

    def save(self, directory: Path) -> None:
        write_params(directory, self.name, self.params())
        for n, m in self.models_.items():
            m.save(directory / n)

    @classmethod
    def load(cls, directory: Path) -> Self:
        model = cls(tuple(read_params(directory)["parts"]))
        model.models_ = {}
        for n in model.parts:
            part = json.loads((directory / n / "params.json").read_text())["class"]
            model.models_[n] = cls.part_classes[part].load(directory / n)
        return model
