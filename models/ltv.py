"""Lifetime value: a customer's expected spend (and orders) in the next 12 months.

Primary model: LightGBM corrections to the buy-till-you-die view. Spend (Tweedie) and orders
(Poisson) are boosted from an offset, log of BG/NBD x Gamma-Gamma expected spend and of BG/NBD
expected orders for the same customer and window, so the trees learn multiplicative corrections
(regular intervals, order mix, signup behaviour) to a well-founded baseline. Why not a plain
regressor: most customers are one-time guests; an L2 regressor spread their zeros over everyone,
and one trained at an earlier cutoff carried that cutoff's customer mix into the prediction,
over-predicting totals by half or more; the offset keeps each customer anchored to his own
history. Large leaves (``min_data_in_leaf``) keep the corrections to what many customers share.

The label window is 12 months when the replica holds enough history, and shorter otherwise (see
``features.customer_frames.ltv_label_window``). A shorter window is extrapolated to 12 months with each
customer's own BG/NBD ratio E[orders in 365 d] / E[orders in window]: a regular keeps buying at
his rate while a lapsing one's expected purchases flatten, which a flat 365/window would ignore.

Fallbacks: ``previous_model`` (the newest registered model of the shard, checksum-verified) when
the fit fails, its predictions are implausible or there are too few customers to train; then
``method='rule'``: BG/NBD expected purchases times the Gamma-Gamma expected order value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Self

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.customer_frames import HOME_RESTAURANT_FEATURES, LTV_HORIZON_DAYS, MODEL_FEATURES

# without the home restaurant's rates: see features.customer_frames.HOME_RESTAURANT_FEATURES
LTV_FEATURES = tuple(f for f in MODEL_FEATURES if f not in HOME_RESTAURANT_FEATURES)
from numpy.typing import ArrayLike

from models.btyd import BTYD_FEATURES, BetaGeo, GammaGamma, add_btyd_features
from models.churn import bgnbd_inputs, fit_bgnbd
from models.lgbm_params import SAMPLED, booster_params, keep_capacity

MODEL_NAME = "ltv_lgbm"
FALLBACK_NAME = "ltv_bgnbd_gg"
MIN_TRAIN_CUSTOMERS = 200
# A fitted model is trusted when its mean predicted window spend on the scored customers is within
# this factor of the training customers' mean observed spend (a model off by more is broken, not
# a change in customers: the shard's mix does not move that much between two cutoffs).
TRUST_SPEND_FACTOR = 5.0
SPEND_FLOOR = 0.5  # currency units added before the log offset (BTYD can say 0)
ORDERS_FLOOR = 0.01

# Segments by percentile of predicted LTV among the shard's scored customers (docs/customers.md).
SEGMENTS = ((0.90, "vip"), (0.60, "high"), (0.25, "medium"), (0.0, "low"))


class LtvRegressor:
    """Spend and order counts in a window. Fitted state: ``spend_``, ``orders_`` (boosters)."""

    name = "ltv_lgbm"

    def __init__(self, features: tuple[str, ...] = LTV_FEATURES + BTYD_FEATURES, num_boost_round: int = 300,
                 learning_rate: float = 0.05, num_leaves: int = 15, min_data_in_leaf: int = 200,
                 num_threads: int = 1, seed: int = 7):
        """
        Args:
            features: columns of the feature frame to learn from.
            num_boost_round, learning_rate, num_leaves, min_data_in_leaf: LightGBM capacity.
            num_threads: LightGBM threads.
        """
        self.features = tuple(features)
        keep_capacity(self, num_boost_round, learning_rate, num_leaves, min_data_in_leaf, num_threads, seed)
        self.spend_: lgb.Booster | None = None
        self.orders_: lgb.Booster | None = None

    def _params(self, objective: str) -> dict:
        return booster_params(self, objective, **SAMPLED)

    @staticmethod
    def _offsets(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """log of the BTYD expectations in the window: BG/NBD orders, and x Gamma-Gamma value for spend."""
        orders = frame["bg_expected_orders"].to_numpy(float)
        spend = orders * frame["gg_expected_value"].to_numpy(float)
        return np.log(np.nan_to_num(spend, nan=0.0) + SPEND_FLOOR), np.log(np.nan_to_num(orders, nan=0.0) + ORDERS_FLOOR)

    def fit(self, frame: pd.DataFrame, spend: ArrayLike, orders: ArrayLike) -> Self:
        """Args: frame with the features and ``models.btyd.add_btyd_features`` columns (for the
        same window); spend (currency units) and orders (count) of each customer in the window."""
        X = frame.loc[:, list(self.features)].astype(float)
        off_spend, off_orders = self._offsets(frame)
        self.spend_ = lgb.train(self._params("tweedie"), lgb.Dataset(X, np.asarray(spend, float), init_score=off_spend),
                                num_boost_round=self.num_boost_round)
        self.orders_ = lgb.train(self._params("poisson"), lgb.Dataset(X, np.asarray(orders, float), init_score=off_orders),
                                 num_boost_round=self.num_boost_round)
        return self

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Columns spend and orders (window totals, never negative), one row per row of ``frame``."""
        if self.spend_ is None:
            raise RuntimeError("LtvRegressor is not fitted")
        X = frame.loc[:, list(self.features)].astype(float)
        off_spend, off_orders = self._offsets(frame)
        spend = np.exp(self.spend_.predict(X, raw_score=True) + off_spend)
        orders = np.exp(self.orders_.predict(X, raw_score=True) + off_orders)
        return pd.DataFrame({"spend": spend, "orders": orders}, index=frame.index)

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.spend_.save_model(str(directory / "spend.txt"))
        self.orders_.save_model(str(directory / "orders.txt"))
        (directory / "params.json").write_text(json.dumps({"class": self.name, "features": list(self.features)}))

    @classmethod
    def load(cls, directory: Path) -> Self:
        directory = Path(directory)
        meta = json.loads((directory / "params.json").read_text())
        model = cls(features=tuple(meta["features"]))
        model.spend_ = lgb.Booster(model_file=str(directory / "spend.txt"))
        model.orders_ = lgb.Booster(model_file=str(directory / "orders.txt"))
        return model


def horizon_ratio(bg: BetaGeo, frame: pd.DataFrame, window_days: int, horizon_days: int = LTV_HORIZON_DAYS) -> np.ndarray:
    """Per customer E[orders in horizon] / E[orders in window] under BG/NBD, in [1, horizon/window]."""
    if window_days >= horizon_days:
        return np.ones(len(frame))
    x, t_x, T = bgnbd_inputs(frame)
    num = bg.expected_purchases(horizon_days, x, t_x, T)
    den = bg.expected_purchases(window_days, x, t_x, T)
    ratio = (num + 1e-6) / (den + 1e-6)
    return np.clip(np.nan_to_num(ratio, nan=horizon_days / window_days), 1.0, horizon_days / window_days)


def bgnbd_gg_ltv(bg: BetaGeo, gg: GammaGamma, frame: pd.DataFrame, horizon_days: int) -> tuple[np.ndarray, np.ndarray]:
    """(expected spend, expected orders) over ``horizon_days`` from BG/NBD x Gamma-Gamma."""
    orders = bg.expected_purchases(horizon_days, *bgnbd_inputs(frame))
    value = gg.expected_value(frame["n_orders"].to_numpy(float), frame["spend_mean"].to_numpy(float))
    return orders * value, orders


def fit_gamma_gamma(frame: pd.DataFrame) -> GammaGamma:
    """Gamma-Gamma on customers with a positive mean spend; the sample mean as a flat value otherwise."""
    try:
        return GammaGamma().fit(frame["n_orders"].to_numpy(float), frame["spend_mean"].to_numpy(float))
    except ValueError:
        mean = float(frame["spend_mean"].mean()) if len(frame) else 0.0
        return GammaGamma(p_=1.0, q_=2.0, v_=max(mean, 0.0))  # E[value] = v p / (p n + q - 1) -> mean at n = 0


def value_segment(ltv: np.ndarray) -> np.ndarray:
    ltv = np.asarray(ltv, float)
    if len(ltv) == 0:
        return np.array([], dtype=object)
    pct = pd.Series(ltv).rank(pct=True, method="average").to_numpy()
    return np.select([pct >= cut for cut, _ in SEGMENTS[:-1]], [name for _, name in SEGMENTS[:-1]],
                     SEGMENTS[-1][1]).astype(object)


def ltv_rows(scored: pd.DataFrame, spend: np.ndarray, orders: np.ndarray, *, model_name: str, version: str,
             method: str, window_days: int) -> pd.DataFrame:
    segment = value_segment(spend)
    details = [
        {"value_segment": str(s), "expected_orders": round(float(o), 3), "horizon_days": LTV_HORIZON_DAYS,
         "label_window_days": int(window_days), "trailing_12m_spend": round(float(t), 2)}
        for s, o, t in zip(segment, orders, scored["spend_365d"])
    ]
    return pd.DataFrame({
        "entity_id": scored["customer_id"].astype("int64").to_numpy(),
        "restaurant_id": scored["restaurant_id"].astype("int64").to_numpy(),
        "value": np.round(np.asarray(spend, float), 2),
        "details": details,
        "model_name": model_name,
        "model_version": version,
        "method": method,
    })


def trust_problem(pred: pd.DataFrame, train: pd.DataFrame) -> str | None:
    """Why a freshly fitted model's predictions must not be used, or None when they can be."""
    values = pred[["spend", "orders"]].to_numpy(float)
    if not np.isfinite(values).all():
        return "non-finite predictions"
    seen = float(train["future_spend"].mean())
    got = float(pred["spend"].mean())
    if seen > 0 and not (seen / TRUST_SPEND_FACTOR <= got <= seen * TRUST_SPEND_FACTOR):
        return f"mean predicted spend {got:.2f} against {seen:.2f} observed in training"
    return None


def evaluate_ltv(train: pd.DataFrame, test: pd.DataFrame, window_days: int) -> dict:
    """Fit on ``train`` and predict ``test``'s spend in its (unseen) window, against BG/NBD x
    Gamma-Gamma (fitted on the test cutoff's RFM) and trailing spend over an equal window.

    Returns {"mae": {...}, "aggregate_error_pct": {...}, "n_test": int, "window_days": int}; the
    aggregate error is (sum predicted - sum actual) / sum actual, in percent.
    """
    train = add_btyd_features(train, window_days)
    test = add_btyd_features(test, window_days)
    actual = test["future_spend"].to_numpy(float)
    model = LtvRegressor().fit(train, train["future_spend"], train["future_orders"])
    pred = model.predict(test)["spend"].to_numpy()
    bg, _ = fit_bgnbd(test)
    gg = fit_gamma_gamma(test)
    bg_spend, _ = bgnbd_gg_ltv(bg, gg, test, window_days)
    trailing = test["trailing_spend"].to_numpy(float)
    preds = {"model": pred, "bgnbd_gg": bg_spend, "trailing": trailing}
    total = actual.sum() or 1.0
    return {
        "mae": {k: float(np.mean(np.abs(v - actual))) for k, v in preds.items()},
        "aggregate_error_pct": {k: float(100 * (v.sum() - actual.sum()) / total) for k, v in preds.items()},
        "n_test": int(len(actual)),
        "window_days": int(window_days),
    }
