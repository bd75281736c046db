"""The interfaces the models share: every saved model (``SavedModel``: a name, ``save(dir)``,
``load(dir)``, which ``models.artifacts`` checksums), and every demand forecaster (``Forecaster``,
which ``models.forecasting`` backtests, swaps and falls back between).

Frames are long: one row per (series_id, ds). ``ds`` is naive LOCAL wall time of the period start
(Prophet rejects aware timestamps, and seasonality lives in local time); ``y`` is the target in
the type's unit. ``predict`` returns ``yhat`` with ``lower``/``upper`` bounds of the model's
documented interval level. Fitted state ends in ``_``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol, Self, TypeVar

import numpy as np
import pandas as pd


class SavedModel(Protocol):
    name: str

    def save(self, directory: Path) -> None:
        """Write fitted state as plain files (JSON, LightGBM text) into ``directory``."""

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Rebuild a fitted model from ``save``'s files (checksum already checked by the caller)."""


M = TypeVar("M")


class Forecaster(SavedModel, Protocol):

    def fit(self, history: pd.DataFrame) -> Self:
        """Learn from columns series_id, ds, y (and any exogenous columns the model documents)."""

    def predict(self, future: pd.DataFrame) -> pd.DataFrame:
        """For columns series_id, ds: return them with yhat, lower, upper (never negative counts)."""


def write_params(directory: Path, name: str, params: dict) -> None:
    """Create ``directory`` and write its ``params.json``: the model's class name (what
    ``models.artifacts`` dispatches on when loading) and its constructor arguments."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "params.json").write_text(json.dumps({"class": name, **params}, default=list))


def read_params(directory: Path) -> dict:
    """The constructor arguments ``write_params`` saved (the class name left out)."""
    params = json.loads((directory / "params.json").read_text())
    params.pop("class", None)
    return params


def save_table_model(model: SavedModel, directory: Path, params: dict, table: str) -> None:
    """Save a model whose fitted state is one table: its constructor arguments (``write_params``)
    and the table, the attribute ``table`` (``"estimates_"``) as ``estimates.csv``."""
    write_params(directory, model.name, params)
    getattr(model, table).to_csv(directory / f"{table.rstrip('_')}.csv", index=False)


def load_table_model(cls: type[M], directory: Path, table: str) -> M:
    """The model ``save_table_model`` saved: built from its arguments, its table read back."""
    model = cls(**read_params(directory))
    setattr(model, table, pd.read_csv(directory / f"{table.rstrip('_')}.csv"))
    return model


def point_forecast(future: pd.DataFrame, yhat: np.ndarray | pd.Series) -> pd.DataFrame:
    """The ``predict`` frame of a model without its own interval: series_id, ds, yhat and NaN
    bounds (``models.intervals`` calibrates them afterwards from backtest residuals)."""
    out = future.loc[:, ["series_id", "ds"]].copy()
    out["yhat"] = np.asarray(yhat, dtype=float)
    out["lower"] = np.nan
    out["upper"] = np.nan
    return out
