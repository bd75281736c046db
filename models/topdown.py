"""Top-down item forecasts: the restaurant's daily order forecast x the item's share of it.

Why: an item series holds a few units a day over at most half a year; a model fitted to it (or
across items, from their own levels) cannot see the annual swing, trend or holidays its
restaurant shows clearly in two years of orders, and its level estimate is noisy. Orders of the
restaurant are a large count with a long history, forecast by the project's restaurant daily
model (``GlobalLGBM`` with demand_daily's settings, fitted on the shard's restaurants), and an
item's units per order (its share) moves slowly. So:

    item units on day d = restaurant orders forecast for d x share(item, weekday of d)

share(item, weekday) = (units on that weekday + k x share x mean orders a day) /
                       (orders on that weekday + k x mean orders a day)

over the item's open days of the last ``share_weeks`` weeks before the origin: the all-days
share, with each weekday's own share weighing in as far as its data supports it (``k`` days of
prior). Candidates ``topdown`` and ``lightgbm+topdown`` (an equal-weight blend with the item
LightGBM, whose errors are unrelated) compete in the item backtest like the others.

As of: the restaurant model is fitted only on restaurant days before the item history's end
(the backtest fold's origin), and forecasts from there; shares use only item history before it.
The restaurant history is not part of the artifact: the model is handed it (``RestaurantContext``)
by the run, from the replica as of the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd

from models.base import SavedModel, point_forecast, read_params, write_params
from models.blend import MeanEnsemble
from models.lgbm import GlobalLGBM

DAY = pd.Timedelta(days=1)


@dataclass
class RestaurantContext:
    """The shard's restaurant daily orders, for item candidates that forecast top-down.

    history: series_id (= restaurant id), ds (local day), y (orders), closed, outlier and the
        calendar/holiday columns of ``features.demand.daily_demand_features``.
    restaurant_of: item series_id -> restaurant id.
    It also caches fits for one forecast run: the restaurant model by the day its training stops
    (one fit per backtest fold, shared by both top-down candidates; a key never sees a later
    day), the item LightGBM by its training frame (``SharedFit``).
    """

    history: pd.DataFrame
    restaurant_of: pd.Series
    _fits: dict = field(default_factory=dict, repr=False)

    def upto(self, end: pd.Timestamp) -> pd.DataFrame:
        """Restaurant days strictly before ``end`` (the item history's origin)."""
        return self.history[self.history["ds"] < end]

    def fitted(self, model: GlobalLGBM, history: pd.DataFrame) -> GlobalLGBM:
        """``model`` fitted on ``history`` (item days), once per (class, parameters, training
        frame): the backtest hands every candidate of a fold the same frame object, so the item
        LightGBM that is a candidate and a part of the blend is fitted once per fold."""
        key = (type(model).__name__, json.dumps(model.params(), sort_keys=True, default=str))
        hit = self._fits.get(key)
        if hit is not None and hit[0] is history:
            return hit[1]
        fitted = model.fit(history)
        self._fits[key] = (history, fitted)
        return fitted

    def restaurant_fit(self, model: GlobalLGBM, end: pd.Timestamp) -> GlobalLGBM:
        """The restaurant model fitted on restaurant days before ``end``, once per ``end``."""
        key = ("restaurant", type(model).__name__, json.dumps(model.params(), sort_keys=True, default=str),
               pd.Timestamp(end))
        if key not in self._fits:
            self._fits[key] = (None, model.fit(self.upto(end)))
        return self._fits[key][1]


class SharedFit:
    """A candidate fitted through the context's cache (``fit`` returns the fitted model itself)."""

    def __init__(self, model, context: RestaurantContext | None):
        self.model, self.context = model, context
        self.name = model.name

    def fit(self, history: pd.DataFrame):
        return self.context.fitted(self.model, history) if self.context is not None else self.model.fit(history)


def history_end(history: pd.DataFrame) -> pd.Timestamp:
    """The origin a history forecasts from: the day after its last day."""
    return history["ds"].max().normalize() + DAY


class TopDown:
    name = "topdown"

    def __init__(self, context: RestaurantContext | None = None, restaurant: dict | None = None,
                 share_weeks: int = 8, weekday_prior_days: float = 28.0):
        """
        Args:
            context: the restaurants' daily history (required to fit and predict; not saved).
            restaurant: GlobalLGBM arguments of the restaurant daily model (demand_daily's).
            share_weeks: weeks of item history the share is estimated from.
            weekday_prior_days: k, in days of the item's mean daily orders, that the all-days
                share weighs in each weekday's share.
        """
        self.context = context
        self.restaurant = dict(restaurant or {})
        self.share_weeks = share_weeks
        self.weekday_prior_days = weekday_prior_days

    def _make_restaurant(self) -> GlobalLGBM:
        return GlobalLGBM(**self.restaurant)

    def _need_context(self) -> RestaurantContext:
        if self.context is None:
            raise ValueError("TopDown needs the restaurants' daily history (RestaurantContext)")
        return self.context

    def fit(self, history: pd.DataFrame) -> Self:
        """Fit the restaurant model on restaurant days before the item history's end."""
        ctx = self._need_context()
        self.end_ = history_end(history)
        self.restaurant_ = ctx.restaurant_fit(self._make_restaurant(), self.end_)
        return self

    def shares(self, history: pd.DataFrame) -> pd.DataFrame:
        """series_id x weekday (0..6) shares (units per restaurant order), as of history's end."""
        ctx = self._need_context()
        end = history_end(history)
        start = end - pd.Timedelta(weeks=self.share_weeks)
        h = history[(history["ds"] >= start) & ~history["closed"] & ~history["outlier"]]
        h = h.loc[:, ["series_id", "ds", "y"]].assign(restaurant_id=h["series_id"].map(ctx.restaurant_of))
        rest = ctx.upto(end)
        rest = rest.loc[(rest["ds"] >= start) & ~rest["closed"] & (rest["y"] > 0), ["series_id", "ds", "y"]]
        rest = rest.rename(columns={"series_id": "restaurant_id", "y": "orders"})
        h = h.merge(rest, on=["restaurant_id", "ds"], how="inner")
        h["dow"] = h["ds"].dt.day_of_week
        total = h.groupby("series_id")[["y", "orders"]].sum()
        days = h.groupby("series_id").size()
        share = total["y"] / total["orders"]
        prior_orders = self.weekday_prior_days * total["orders"] / days  # k days of mean orders
        by_dow = h.groupby(["series_id", "dow"])[["y", "orders"]].sum()
        grid = pd.MultiIndex.from_product([share.index, range(7)], names=["series_id", "dow"])
        by_dow = by_dow.reindex(grid, fill_value=0.0)
        sid = by_dow.index.get_level_values("series_id")
        s, p = share.reindex(sid).to_numpy(), prior_orders.reindex(sid).to_numpy()
        value = (by_dow["y"].to_numpy() + p * s) / (by_dow["orders"].to_numpy() + p)
        return pd.DataFrame({"series_id": sid, "dow": by_dow.index.get_level_values("dow"), "share": value})

    def restaurant_forecast(self, future: pd.DataFrame, history: pd.DataFrame) -> pd.Series:
        """The restaurant's orders forecast for each future row's restaurant and day."""
        ctx = self._need_context()
        end = history_end(history)
        rid = future["series_id"].map(ctx.restaurant_of)
        rf = future.assign(series_id=rid).dropna(subset=["series_id"]).drop_duplicates(["series_id", "ds"])
        rf["series_id"] = rf["series_id"].astype("int64")
        rest_hist = ctx.upto(end)
        rf = rf[rf["series_id"].isin(rest_hist["series_id"].unique())]
        if rf.empty:
            return pd.Series(np.nan, index=future.index)
        pred = self.restaurant_.predict(rf, history=rest_hist)
        key = pd.MultiIndex.from_arrays([pred["series_id"], pred["ds"]])
        orders = pd.Series(pred["yhat"].to_numpy(float), index=key)
        return pd.Series(orders.reindex(pd.MultiIndex.from_arrays([rid, future["ds"]])).to_numpy(), index=future.index)

    def predict(self, future: pd.DataFrame, history: pd.DataFrame | None = None) -> pd.DataFrame:
        """Units per item and day; NaN for an item without open days in the share window."""
        if history is None:
            raise ValueError("TopDown.predict needs the item history to forecast from")
        orders = self.restaurant_forecast(future, history).to_numpy(float)
        sh = self.shares(history).set_index(["series_id", "dow"])["share"]
        key = pd.MultiIndex.from_arrays([future["series_id"], future["ds"].dt.day_of_week])
        share = sh.reindex(key).to_numpy(float)
        return point_forecast(future, orders * share)

    def params(self) -> dict:
        return {"restaurant": self.restaurant, "share_weeks": self.share_weeks,
                "weekday_prior_days": self.weekday_prior_days}

    def save(self, directory: Path) -> None:
        write_params(directory, self.name, self.params())
        self.restaurant_.save(directory / "restaurant")

    @classmethod
    def load(cls, directory: Path) -> Self:
        model = cls(**read_params(directory))
        model.restaurant_ = GlobalLGBM.load(directory / "restaurant")
        return model


class LGBMTopDownBlend:
    """Equal-weight blend of the item LightGBM and ``TopDown`` (candidate "lightgbm+topdown")."""

    name = "lightgbm+topdown"

    def __init__(self, context: RestaurantContext | None = None, lgbm: dict | None = None,
                 topdown: dict | None = None, weight: float = 0.5):
        self.context = context
        self.lgbm = dict(lgbm or {})
        self.topdown = dict(topdown or {})
        self.weight = weight

    def fit(self, history: pd.DataFrame) -> Self:
        self.lgbm_ = SharedFit(GlobalLGBM(**self.lgbm), self.context).fit(history)
        self.topdown_ = TopDown(self.context, **self.topdown).fit(history)
        return self

    def predict(self, future: pd.DataFrame, history: pd.DataFrame | None = None) -> pd.DataFrame:
        """Blended units; where one part has no forecast the other's is used alone."""
        self.topdown_.context = self.context
        a = self.lgbm_.predict(future, history=history)["yhat"].to_numpy(float)
        b = self.topdown_.predict(future, history=history)["yhat"].to_numpy(float)
        blend = self.weight * a + (1 - self.weight) * b
        return point_forecast(future, np.where(np.isnan(a), b, np.where(np.isnan(b), a, blend)))

    def params(self) -> dict:
        return {"lgbm": self.lgbm, "topdown": self.topdown, "weight": self.weight}

    def save(self, directory: Path) -> None:
        write_params(directory, self.name, self.params())
        self.lgbm_.save(directory / "lightgbm")
        self.topdown_.save(directory / "topdown")

    @classmethod
    def load(cls, directory: Path) -> Self:
        params = read_params(directory)
        model = cls(None, params["lgbm"], params["topdown"], params["weight"])
        model.lgbm_ = GlobalLGBM.load(directory / "lightgbm")
        model.topdown_ = TopDown.load(directory / "topdown")
        return model


def with_context(model: SavedModel, context: RestaurantContext | None) -> SavedModel:
    """Hand a loaded top-down model (an artifact carries no history) the run's restaurant days."""
    for part in getattr(model, "models_", {}).values() if isinstance(model, MeanEnsemble) else ():
        with_context(part, context)
    if isinstance(model, (TopDown, LGBMTopDownBlend)):
        model.context = context
        if isinstance(model, LGBMTopDownBlend):
            model.topdown_.context = context
    return model


__all__ = ["RestaurantContext", "SharedFit", "TopDown", "LGBMTopDownBlend", "with_context"]
