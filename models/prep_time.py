"""Prep time per menu item: minutes for one unit at an idle station, and how a queue stretches it.

Model: LightGBM on the ratio of a ticket's prep minutes to its item's median (see
``features.kitchen_frames.add_item_reference``), from queue size, quantity, modifiers, local hour and
weekday, and station type. Monotone constraints make more tickets ahead or more units never
predict a faster dish, so ``minutes_by_queue`` always reads as the kitchen expects.
The 80 % interval comes from the 10th/90th percentiles of actual/predicted on the newest 15 % of
training tickets, held out from the fit.

Fallback chain per item (``method``): ``model`` when the item has at least ``MIN_ITEM_TICKETS``
single-unit tickets; else ``average`` = the item's historical median; else the station's median;
else (a station with no completed tickets) the item is skipped and counted in the run messages.
Tickets left unbumped on the kitchen screen (``features.kitchen_frames.left_unbumped``) are kept out of
training and counted in the run messages.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Self

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.kitchen_frames import add_item_reference, left_unbumped, reference_minutes
from models.lgbm_params import booster_params, keep_capacity, monotone_up

MODEL_NAME = "prep_time_lgbm"
FALLBACK_NAME = "prep_time_median"
QUEUE_SIZES = (0, 2, 5, 10)
MIN_TICKETS = 300
MIN_ITEM_TICKETS = 10
GRID_ROWS_PER_ITEM = 48  # the item's recent hours/weekdays over which idle minutes are averaged
FEATURES = ("queue_size", "quantity", "has_modifiers", "local_hour", "local_dow", "station_code", "item_ref", "station_ref")
MONOTONE_UP = ("queue_size", "quantity")


REFERENCES_FILE = "references.json"
# the columns of ``features.kitchen.prep_medians`` and the dtypes it reads them in (level: text)
_REFERENCE_NUMBERS = {"menu_item_id": "float64", "station_id": "int64", "tickets": "int64", "median_minutes": "float64"}
_REFERENCE_COLUMNS = ("level", *_REFERENCE_NUMBERS)


class PrepTimeModel:
    """Fitted state: ``booster_``, ``station_types_``, ``ratio_q10_``/``ratio_q90_`` (interval),
    ``references_``: the item and station medians its ratio target was taken against, when given
    to ``fit`` (None for an artifact saved before they were kept).

    Why the model keeps its references: the nights that reuse the model (``REFIT_DAYS`` in
    ``prediction_types.kitchen``) would otherwise read the 365-day medians again from the whole
    year of tickets, most of a warm night's prep time (issue 28), to get what differs from these by
    at most a week of a year's tickets (see ``prediction_types.kitchen.predict_prep_time``).
    """

    name = "prep_time_lgbm"

    def __init__(self, num_boost_round: int = 300, learning_rate: float = 0.05, num_leaves: int = 31,
                 min_data_in_leaf: int = 40, holdout_share: float = 0.15, num_threads: int = 1, seed: int = 7):
        """
        Args:
            num_boost_round, learning_rate, num_leaves, min_data_in_leaf: LightGBM capacity.
            holdout_share: newest share of tickets kept out of the fit to size the interval.
            num_threads: LightGBM threads.
        """
        keep_capacity(self, num_boost_round, learning_rate, num_leaves, min_data_in_leaf, num_threads, seed)
        self.holdout_share = holdout_share
        self.booster_: lgb.Booster | None = None
        self.station_types_: list[str] = []
        self.ratio_q10_ = 1.0
        self.ratio_q90_ = 1.0
        self.holdout_mae_: float | None = None
        self.references_: pd.DataFrame | None = None

    def _X(self, frame: pd.DataFrame) -> pd.DataFrame:
        codes = {t: i for i, t in enumerate(self.station_types_)}
        X = frame.assign(station_code=frame["station_type"].map(codes).fillna(-1).astype(float))
        return X.loc[:, list(FEATURES)].astype(float)

    def fit(self, tickets: pd.DataFrame, references: pd.DataFrame | None = None) -> Self:
        """Learn from ``add_item_reference`` output (needs prep_ratio, item_ref, queued_at);
        ``references``: the medians (``features.kitchen.prep_medians`` shape) that output was
        built on, kept as ``references_`` and saved with the model."""
        self.references_ = None if references is None else references[list(_REFERENCE_COLUMNS)].reset_index(drop=True)
        data = tickets[np.isfinite(tickets["prep_ratio"]) & (tickets["item_ref"] > 0)].sort_values("queued_at")
        if len(data) < 2:
            raise ValueError("prep-time model needs tickets")
        self.station_types_ = sorted(data["station_type"].unique().tolist())
        n_hold = int(len(data) * self.holdout_share)
        fit_part, hold = data.iloc[: len(data) - n_hold], data.iloc[len(data) - n_hold:]
        params = booster_params(self, "regression", **monotone_up(FEATURES, MONOTONE_UP))
        self.booster_ = lgb.train(params, lgb.Dataset(self._X(fit_part), fit_part["prep_ratio"].to_numpy(float)),
                                  num_boost_round=self.num_boost_round)
        if len(hold):
            pred = self.predict(hold)
            ratio = hold["prep_minutes"].to_numpy() / np.maximum(pred, 1e-6)
            self.ratio_q10_, self.ratio_q90_ = (float(v) for v in np.quantile(ratio, [0.1, 0.9]))
            self.holdout_mae_ = float(np.mean(np.abs(hold["prep_minutes"].to_numpy() - pred)))
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Minutes per ticket for rows with the FEATURES columns (station_type instead of its code)."""
        if self.booster_ is None:
            raise RuntimeError("PrepTimeModel is not fitted")
        ratio = self.booster_.predict(self._X(frame))
        return np.maximum(ratio, 0.05) * frame["item_ref"].to_numpy(float)

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.booster_.save_model(str(directory / "booster.txt"))
        (directory / "params.json").write_text(json.dumps({
            "class": self.name, "station_types": self.station_types_, "ratio_q10": self.ratio_q10_,
            "ratio_q90": self.ratio_q90_, "holdout_mae": self.holdout_mae_}))
        if self.references_ is not None:
            # column lists, NaN as null: json keeps every float exactly (shortest repr round-trips)
            cols = {c: [None if pd.isna(v) else v for v in self.references_[c].tolist()] for c in _REFERENCE_COLUMNS}
            (directory / REFERENCES_FILE).write_text(json.dumps(cols))

    @classmethod
    def load(cls, directory: Path) -> Self:
        directory = Path(directory)
        meta = json.loads((directory / "params.json").read_text())
        model = cls()
        model.booster_ = lgb.Booster(model_file=str(directory / "booster.txt"))
        model.station_types_ = list(meta["station_types"])
        model.ratio_q10_, model.ratio_q90_ = meta["ratio_q10"], meta["ratio_q90"]
        model.holdout_mae_ = meta.get("holdout_mae")
        path = directory / REFERENCES_FILE
        if path.exists():
            cols = json.loads(path.read_text())
            ref = pd.DataFrame({c: cols[c] for c in _REFERENCE_COLUMNS})  # level: text, as a replica read infers it
            model.references_ = ref.astype(_REFERENCE_NUMBERS)
        return model


# --------------------------------------------------------------------------- scenarios
def scenario_minutes(model: PrepTimeModel, tickets: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """Per item: predicted minutes for one unit at each queue size in QUEUE_SIZES, and for two
    units at an idle station, averaged over the item's recent hours and weekdays.

    Args:
        tickets: training tickets with item_ref/station_ref (``add_item_reference``).
        items: menu_item_id, station_id, station_type, item_ref, station_ref of the items to score.

    Returns menu_item_id, q0, q2, q5, q10 (minutes, one unit), two_units (minutes, idle).
    """
    recent = (tickets.sort_values("queued_at").groupby("menu_item_id").tail(GRID_ROWS_PER_ITEM)
              [["menu_item_id", "local_hour", "local_dow"]])
    grid = items.merge(recent, on="menu_item_id", how="left")
    grid["local_hour"] = grid["local_hour"].fillna(12)
    grid["local_dow"] = grid["local_dow"].fillna(2)
    scenarios = [(f"q{q}", q, 1) for q in QUEUE_SIZES] + [("two_units", 0, 2)]
    parts = [grid.assign(queue_size=float(q), quantity=float(n), has_modifiers=0.0, scenario=name)
             for name, q, n in scenarios]
    full = pd.concat(parts, ignore_index=True)
    full["minutes"] = model.predict(full)
    out = full.pivot_table(index="menu_item_id", columns="scenario", values="minutes", aggfunc="mean")
    return out.reset_index()


# --------------------------------------------------------------------------- held-out evaluation
def evaluate_prep(tickets: pd.DataFrame, test_days: int = 14) -> dict:
    """Fit on all but the newest ``test_days`` of tickets and score those, against each item's
    median over the training tickets (the baseline), by MAE in minutes.

    Also reports the mean predicted idle and 10-ahead minutes (queue effect) over test items.
    """
    cut = tickets["queued_at"].max() - pd.Timedelta(days=test_days)
    train, test = tickets[tickets["queued_at"] < cut], tickets[tickets["queued_at"] >= cut]
    ref = reference_minutes(train)
    train = add_item_reference(train, ref)
    train = train[~left_unbumped(train)]
    test = add_item_reference(test, ref)
    test = test[test["item_ref"].notna()]
    model = PrepTimeModel().fit(train)
    pred = model.predict(test)
    actual = test["prep_minutes"].to_numpy()
    return {
        "mae": {"model": float(np.mean(np.abs(pred - actual))),
                "item_median": float(np.mean(np.abs(test["item_ref"].to_numpy() - actual)))},
        "n_test": int(len(test)),
        "model": model,
        "train": train,
    }
