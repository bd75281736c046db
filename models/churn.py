"""Churn: the probability that a customer places no order in the next 60 days.

Primary model: LightGBM corrections to BG/NBD's P(no purchase in the window), on RFM, drift,
gap, failure and mix features (``features.customers``), trained at a cutoff one window before
the run's as-of (labels = the last 60 days, never seen by
the features), then calibrated (Platt scaling of out-of-fold scores of those customers),
because the RMS reads the value as a probability and its risk levels are thresholds on it.

Fallbacks, when the fit fails, is not trusted (out-of-fold AUC near chance or below BG/NBD's)
or there are too few customers or churners to train: ``previous_model``, the newest model this
shard registered in an earlier run, checksum-verified before loading; then ``method='rule'``:
BG/NBD's probability of no purchase in the window, fitted on the shard's customers as of the
as-of (no labels needed). Not P(alive): that is 1 for every one-time buyer.

Risk levels and recommendations are documented rules (docs/customers.md) so that the restaurant
can act on them without reading the model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Self

import lightgbm as lgb
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from features.customer_frames import MODEL_FEATURES
from models.btyd import BTYD_FEATURES, BetaGeo, add_btyd_features
from models.lgbm_params import SAMPLED, booster_params, keep_capacity, monotone_up

MODEL_NAME = "churn_lgbm"
FALLBACK_NAME = "churn_bgnbd"
MODEL_VERSION_PREFIX = "1"
MIN_TRAIN_CUSTOMERS = 200
MIN_PER_CLASS = 20
# A fitted model is trusted only when its out-of-fold AUC on its own training customers is at
# least this (chance is 0.5) and not below BG/NBD's on the same rows by more than the tolerance.
MIN_TRUSTED_AUC = 0.55
TRUST_TOLERANCE_AUC = 0.02

# Documented thresholds on the calibrated probability (docs/customers.md).
RISK_HIGH = 0.70
RISK_MEDIUM = 0.40
LAPSING_REGULAR_MIN_ORDERS = 3
VIP_TIERS = ("gold", "platinum")

# BG/NBD parameters (per week) used when even BG/NBD cannot be fitted (a handful of customers):
# a moderately loyal population; documented as the last resort.
MONOTONE_UP = ("recency_days", "recency_over_gap")
DEFAULT_BGNBD = dict(r_=0.5, alpha_=4.0, a_=0.8, b_=2.5)


# --------------------------------------------------------------------------- shared helpers
def roc_auc(y: ArrayLike, score: ArrayLike) -> float:
    """ROC AUC by ranks (ties averaged); NaN when only one class is present."""
    from scipy.stats import rankdata

    y = np.asarray(y).astype(bool)
    n1, n0 = y.sum(), (~y).sum()
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(np.asarray(score, dtype=float))
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def brier(y: ArrayLike, p: ArrayLike) -> float:
    return float(np.mean((np.asarray(p, dtype=float) - np.asarray(y, dtype=float)) ** 2))


def calibration_table(y: ArrayLike, p: ArrayLike, bins: int = 10) -> list[dict]:
    """Mean predicted vs observed churn per probability decile bin (equal width)."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    table = []
    for b in range(bins):
        m = idx == b
        if m.any():
            table.append({"bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}", "n": int(m.sum()),
                          "predicted": round(float(p[m].mean()), 4), "observed": round(float(y[m].mean()), 4)})
    return table


def bgnbd_inputs(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T) in days from ``rfm_transform`` output (customers with at least one purchase)."""
    return (
        frame["x_repeat"].to_numpy(float),
        frame["t_x_days"].fillna(0).to_numpy(float),
        np.maximum(frame["tenure_days"].fillna(0).to_numpy(float), 1e-3),
    )


# --------------------------------------------------------------------------- the model
def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


class ChurnClassifier:
    """Calibrated LightGBM corrections to BG/NBD. Fitted state: ``booster_``, ``platt_a_``, ``platt_b_``.

    Why an offset: the booster starts from the logit of BG/NBD's P(no purchase in the window)
    (``offset`` column, fitted on each cutoff's own customers, no labels) and learns only what
    BG/NBD misses: a visit rate decaying over the last months, lengthening gaps, a cancelled or
    refunded order after the last purchase, steadier or burstier regulars than Poisson. Trained
    from scratch, the trees had to relearn the ranking of one-time guests from training cutoffs
    with shorter history than the scoring one, and ranked them worse than BG/NBD; from the
    offset they stay at BG/NBD where the data says nothing new.
    """

    name = "churn_lgbm"

    def __init__(self, features: tuple[str, ...] = MODEL_FEATURES + BTYD_FEATURES, num_boost_round: int = 300,
                 learning_rate: float = 0.02, num_leaves: int = 7, min_data_in_leaf: int = 100,
                 offset: str | None = "bg_p_quiet", folds: int = 4, num_threads: int = 1, seed: int = 7):
        """
        Args:
            features: columns of the feature frame to learn from (see features.customers).
            num_boost_round, learning_rate, num_leaves, min_data_in_leaf: LightGBM capacity.
            offset: column holding a baseline probability of churn the booster corrects (None:
                learn from scratch).
            folds: out-of-fold boosters whose scores fit the calibration map.
            num_threads: LightGBM threads (at most the cores the worker owns).

        Small trees with large leaves: churn in a 60-day window is noisy (a low-rate regular
        often skips two months), and deeper trees fitted that noise; on held-out time they lost
        to BG/NBD among the heaviest customers, where there are few training rows.
        """
        self.features = tuple(features)
        keep_capacity(self, num_boost_round, learning_rate, num_leaves, min_data_in_leaf, num_threads, seed)
        self.offset = offset
        self.folds = folds
        self.booster_: lgb.Booster | None = None
        self.platt_a_ = 1.0
        self.platt_b_ = 0.0
        self.holdout_: dict = {}

    def _params(self) -> dict:
        # A longer silence never makes a customer less likely to churn.
        return booster_params(self, "binary", **SAMPLED, **monotone_up(self.features, MONOTONE_UP))

    def _offset(self, frame: pd.DataFrame) -> np.ndarray:
        if self.offset is None:
            return np.zeros(len(frame))
        return _logit(frame[self.offset].to_numpy(float))

    def fit(self, frame: pd.DataFrame, y: ArrayLike) -> Self:
        """Learn P(churn) from ``frame[features]`` and 0/1 labels ``y`` (1 = no purchase in window).

        Calibration (Platt): a logistic map of out-of-fold margins from ``folds`` boosters (folds
        by customer, so a customer stacked at several cutoffs never scores himself) to the
        labels; it is applied to the booster trained on every row. Platt rather than isotonic:
        lapsing regulars are few, and isotonic steps pooled them with the undecided middle; a
        smooth map keeps the model's ranking at the top.
        """
        from sklearn.linear_model import LogisticRegression

        y = np.asarray(y, dtype=int)
        X = frame.loc[:, list(self.features)].astype(float)
        base = self._offset(frame)
        ids = frame["customer_id"].to_numpy() if "customer_id" in frame else np.arange(len(y))
        codes, uniques = pd.factorize(ids)
        fold_of = np.random.default_rng(self.seed).integers(0, self.folds, len(uniques))[codes]
        oof = np.zeros(len(y))
        for k in range(self.folds):
            test = fold_of == k
            if test.any() and (~test).any():
                booster = lgb.train(self._params(), lgb.Dataset(X[~test], y[~test], init_score=base[~test]),
                                    num_boost_round=self.num_boost_round)
                oof[test] = booster.predict(X[test], raw_score=True) + base[test]
        self.booster_ = lgb.train(self._params(), lgb.Dataset(X, y, init_score=base),
                                  num_boost_round=self.num_boost_round)
        platt = LogisticRegression(C=1e6).fit(oof[:, None], y)
        self.platt_a_ = float(platt.coef_[0][0])
        self.platt_b_ = float(platt.intercept_[0])
        p = self._calibrate(oof)
        self.holdout_ = {"auc_oof": roc_auc(y, oof), "brier_oof": brier(y, p), "n_train": int(len(y)),
                         "base_rate": float(y.mean())}
        return self

    def _calibrate(self, margin: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.platt_a_ * margin + self.platt_b_)))

    def predict_margin(self, frame: pd.DataFrame) -> np.ndarray:
        """Uncalibrated log-odds of churn: the offset plus the booster's correction."""
        return self.booster_.predict(frame.loc[:, list(self.features)].astype(float), raw_score=True) + self._offset(frame)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of no purchase in the window, one per row of ``frame``."""
        if self.booster_ is None:
            raise RuntimeError("ChurnClassifier is not fitted")
        return self._calibrate(self.predict_margin(frame))

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.booster_.save_model(str(directory / "booster.txt"))
        (directory / "params.json").write_text(json.dumps({
            "class": self.name, "features": list(self.features), "offset": self.offset,
            "platt_a": self.platt_a_, "platt_b": self.platt_b_, "holdout": self.holdout_,
        }, allow_nan=True))

    @classmethod
    def load(cls, directory: Path) -> Self:
        directory = Path(directory)
        meta = json.loads((directory / "params.json").read_text())
        model = cls(features=tuple(meta["features"]), offset=meta.get("offset"))
        model.booster_ = lgb.Booster(model_file=str(directory / "booster.txt"))
        model.platt_a_, model.platt_b_ = float(meta["platt_a"]), float(meta["platt_b"])
        model.holdout_ = meta.get("holdout", {})
        return model


def fit_bgnbd(frame: pd.DataFrame) -> tuple[BetaGeo, bool]:
    """BG/NBD fitted on ``frame`` (customers with purchases); defaults when it cannot be fitted.

    Returns the model and whether it was fitted (False: documented default parameters)."""
    if len(frame) >= 20:
        try:
            return BetaGeo().fit(*bgnbd_inputs(frame)), True
        except (ValueError, FloatingPointError):
            pass
    return BetaGeo(**DEFAULT_BGNBD), False


# --------------------------------------------------------------------------- rules
def risk_level(p: ArrayLike) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return np.where(p >= RISK_HIGH, "high", np.where(p >= RISK_MEDIUM, "medium", "low"))


def recommendations(frame: pd.DataFrame, risk: np.ndarray) -> list[list[str]]:
    """Concrete actions per customer from the documented rules (docs/customers.md), in priority order."""
    out: list[list[str]] = []
    for n, rec, tier, gap, level in zip(frame["n_orders"], frame["recency_days"], frame["loyalty_tier"],
                                        frame["gap_mean_days"], risk):
        acts: list[str] = []
        regular = n >= LAPSING_REGULAR_MIN_ORDERS
        if level == "high" and regular:
            acts.append("win_back_offer")
        if level != "low" and tier in VIP_TIERS:
            acts.append("personal_outreach")
        if n == 1 and level != "low":
            acts.append("second_visit_incentive")
        if level == "medium" and regular and pd.notna(gap) and rec > gap:
            acts.append("reminder_favourite_items")
        if level == "low" and regular and tier == "none":
            acts.append("loyalty_programme_invite")
        out.append(acts[:3])
    return out


# Bounds of a published churn probability. 0 and 1 are claims of certainty no model has (a
# 0.99996 from the calibrator rounded to 4 places read 1.0 on real data); the written value stays
# within the 4 decimals the row keeps.
P_MIN, P_MAX = 1e-4, 1 - 1e-4


def churn_rows(scored: pd.DataFrame, p: np.ndarray, *, model_name: str, version: str, method: str,
               window_days: int) -> pd.DataFrame:
    """One row per scored customer; the probability is kept within [``P_MIN``, ``P_MAX``]."""
    p = np.clip(np.asarray(p, dtype=float), P_MIN, P_MAX)
    risk = risk_level(p)
    recs = recommendations(scored, risk)
    details = [
        {"risk_level": str(level), "recommendations": r, "days_since_last_order": int(np.floor(rec)),
         "window_days": int(window_days), "orders_to_date": int(n)}
        for level, r, rec, n in zip(risk, recs, scored["recency_days"], scored["n_orders"])
    ]
    return pd.DataFrame({
        "entity_id": scored["customer_id"].astype("int64").to_numpy(),
        "restaurant_id": scored["restaurant_id"].astype("int64").to_numpy(),
        "value": np.round(p, 4),
        "details": details,
        "model_name": model_name,
        "model_version": version,
        "method": method,
    })


def trust_problem(model: ChurnClassifier, train: pd.DataFrame, y: np.ndarray, p: np.ndarray) -> str | None:
    """Why a freshly fitted model must not be used, or None when it can be."""
    if not np.isfinite(p).all():
        return "non-finite probabilities"
    auc = model.holdout_.get("auc_oof", float("nan"))
    base = roc_auc(y, train["bg_p_quiet"]) if "bg_p_quiet" in train else float("nan")
    if not np.isfinite(auc) or auc < MIN_TRUSTED_AUC:
        return f"out-of-fold AUC {auc:.3f} below {MIN_TRUSTED_AUC}"
    if np.isfinite(base) and auc < base - TRUST_TOLERANCE_AUC:
        return f"out-of-fold AUC {auc:.3f} below BG/NBD's {base:.3f} on the same customers"
    return None


# --------------------------------------------------------------------------- held-out evaluation
def evaluate_churn(train: pd.DataFrame, test: pd.DataFrame, window_days: int) -> dict:
    """Fit on ``train`` (features at an earlier cutoff, label ``churned``) and score ``test`` (a
    later cutoff whose labels the model never saw), against BG/NBD's P(no purchase in window)
    (fitted on the test cutoff's RFM, which needs no labels) and recency alone.

    Returns {"auc": {...}, "auc_repeat": {...} (customers with 2+ purchases), "brier": {...},
    "calibration": [...], "n_test": int, "base_rate": float, ...}.
    Recency's Brier score uses an isotonic map from recency to churn fitted on ``train``.
    """
    from sklearn.isotonic import IsotonicRegression

    train = add_btyd_features(train, window_days)
    test = add_btyd_features(test, window_days)
    y_train = train["churned"].to_numpy()
    y = test["churned"].to_numpy()
    model = ChurnClassifier().fit(train, y_train)
    p_model = model.predict(test)
    bg, _ = fit_bgnbd(test)
    p_bg = bg.prob_no_purchase(window_days, *bgnbd_inputs(test))
    rec_map = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(train["recency_days"], y_train)
    p_rec = rec_map.predict(test["recency_days"])
    # Among repeat customers (2+ purchases before the cutoff): one-time guests are most of the
    # chain and every method ranks them alike, so the whole-population AUC hides the regulars.
    rep = test["n_orders"].to_numpy() >= 2
    return {
        "auc": {"model": roc_auc(y, p_model), "bgnbd": roc_auc(y, p_bg), "recency": roc_auc(y, test["recency_days"])},
        "auc_repeat": {"model": roc_auc(y[rep], p_model[rep]), "bgnbd": roc_auc(y[rep], p_bg[rep]),
                       "recency": roc_auc(y[rep], test["recency_days"].to_numpy()[rep])},
        "n_test_repeat": int(rep.sum()),
        "base_rate_repeat": float(y[rep].mean()) if rep.any() else float("nan"),
        "brier": {"model": brier(y, p_model), "bgnbd": brier(y, p_bg), "recency": brier(y, p_rec)},
        "calibration": calibration_table(y, p_model),
        "n_test": int(len(y)),
        "base_rate": float(y.mean()),
        "mean_predicted": float(np.mean(p_model)),
    }
