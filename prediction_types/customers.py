"""Customers: churn risk and lifetime value per customer, weekly; scored for accuracy (churn).

Both units share one read (``features.customers.customer_unit_features``: the shard's anchored
customers, their current features and both training sets), declared with ``shares`` so the run
loop reads it once per shard. The weekly run is bounded by the shard (customers anchored to its
restaurants), not by the chain.

Each type walks a fallback chain, one method per shard: ``model`` (fitted now, when there are
enough customers and the fit is trusted), ``previous_model`` (the newest checksum-verified model
this shard registered in an earlier run), ``rule`` (BG/NBD, or BG/NBD x Gamma-Gamma); the run
messages name the step used. The estimators and row builders are in ``models.churn`` /
``models.ltv``; the rules in docs/customers.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.replica import ReplicaReader
from core.tables import CUSTOMERS, ORDERS
from core.units import ModelRecord, PredictionUnit, Scope, UnitResult
from features.customer_frames import LTV_HORIZON_DAYS, read_messages, scorable
from features.customers import (
    CustomerData,
    customer_coverage,
    customer_unit_features,
)
from models import churn, ltv
from models.artifacts import (
    load_model,
    previous_records,
    saved_record,
    shard_version,
)
from models.btyd import BetaGeo, add_btyd_features
from models.churn import (
    MODEL_VERSION_PREFIX,
    ChurnClassifier,
    bgnbd_inputs,
    churn_rows,
    fit_bgnbd,
)
from models.ltv import (
    LtvRegressor,
    bgnbd_gg_ltv,
    fit_gamma_gamma,
    horizon_ratio,
    ltv_rows,
)


def _previous_churn(scored: pd.DataFrame, scope: Scope, window_days: int, messages: list[str]):
    """(probabilities, record) from the newest usable registered model of this shard, else None."""
    for rec in previous_records(scope, "churn", churn.MODEL_NAME).itertuples(index=False):
        try:
            model = load_model(ChurnClassifier, Path(rec.artifact_path), rec.sha256)
            p = model.predict(add_btyd_features(scored, window_days))
            if not np.isfinite(p).all():
                raise ValueError("non-finite probabilities")
        except Exception as exc:  # a missing, tampered or incompatible artifact: try the next one
            messages.append(f"churn: previous model {rec.name} {rec.version} unusable ({type(exc).__name__}: {exc})")
            continue
        return p, rec
    return None


def predict_churn(data: CustomerData, scope: Scope) -> UnitResult:
    """Rows for every anchored customer with a purchase before the as-of (see features.customers).

    Fallback chain, one method per shard: ``model`` (fitted now, if there are enough customers
    and the fit is trusted), ``previous_model`` (the newest checksum-verified model registered
    for this shard by an earlier run), ``rule`` (BG/NBD); the run messages name the step used.
    """
    current = data.current
    scored = current[scorable(current)].reset_index(drop=True)
    messages = read_messages("churn", data.counts, len(data.churn_train))
    if data.counts.get("refunded_orders_excluded"):
        messages.append(f"churn: {data.counts['refunded_orders_excluded']} refunded order(s) not counted as purchases")
    scope_ids = current["customer_id"].astype("int64").tolist()
    window = data.churn_window_days
    if scored.empty:
        return UnitResult(rows=churn_rows(scored, np.zeros(0), model_name=churn.MODEL_NAME, version="none", method="model",
                                          window_days=window),
                          scope_entity_ids=scope_ids, messages=messages)
    version = shard_version(MODEL_VERSION_PREFIX, scope)
    train = data.churn_train
    y = train["churned"].to_numpy() if len(train) else np.zeros(0)
    enough = len(train) >= churn.MIN_TRAIN_CUSTOMERS and min((y == 1).sum(), (y == 0).sum()) >= churn.MIN_PER_CLASS
    models: list[ModelRecord] = []
    if enough:
        try:
            train = add_btyd_features(train, window)
            model = ChurnClassifier().fit(train, y)
            p = model.predict(add_btyd_features(scored, window))
            problem = churn.trust_problem(model, train, y, p)
        except Exception as exc:
            problem = f"fit failed ({type(exc).__name__}: {exc})"
        if problem is None:
            models.append(saved_record(
                model, Path(scope.model_store) / churn.MODEL_NAME / version, name=churn.MODEL_NAME, version=version,
                training_start=(data.as_of - pd.Timedelta(days=scope.forecast.history_days)).to_pydatetime(),
                training_end=data.as_of.to_pydatetime(),
                metrics={k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                         for k, v in model.holdout_.items()},
                params={"window_days": window, "features": list(model.features), "offset": model.offset},
            ))
            rows = churn_rows(scored, p, model_name=churn.MODEL_NAME, version=version, method="model", window_days=window)
            return UnitResult(rows=rows, scope_entity_ids=scope_ids, messages=messages, models=models)
        messages.append(f"churn: classifier not used: {problem}; falling back to the previous model")
    else:
        messages.append(f"churn: {len(train)} training customer(s) ({int(y.sum())} churned) are too few for the "
                        f"classifier; falling back to the previous model")
    previous = _previous_churn(scored, scope, window, messages)
    if previous is not None:
        p, rec = previous
        messages.append(f"churn: scored with previous model {rec.name} {rec.version}")
        rows = churn_rows(scored, p, model_name=rec.name, version=rec.version, method="previous_model",
                          window_days=window)
        return UnitResult(rows=rows, scope_entity_ids=scope_ids, messages=messages, models=models)
    bg, fitted = fit_bgnbd(scored)
    p = bg.prob_no_purchase(window, *bgnbd_inputs(scored))
    messages.append(f"churn: no usable previous model for this shard; BG/NBD "
                    f"{'fitted on the shard' if fitted else 'default parameters'} used")
    rows = churn_rows(scored, p, model_name=churn.FALLBACK_NAME, version=version, method="rule", window_days=window)
    return UnitResult(rows=rows, scope_entity_ids=scope_ids, messages=messages, models=models)


def _previous_ltv(scored: pd.DataFrame, scope: Scope, window: int, bg: BetaGeo, messages: list[str]):
    """(spend, orders, record) over 12 months from the newest usable registered model of this shard."""
    for rec in previous_records(scope, "ltv", ltv.MODEL_NAME).itertuples(index=False):
        try:
            model = load_model(LtvRegressor, Path(rec.artifact_path), rec.sha256)
            metrics = rec.metrics if isinstance(rec.metrics, dict) else {}
            w = int(metrics.get("label_window_days") or window)  # the window it was trained for
            pred = model.predict(add_btyd_features(scored, w))
            if not np.isfinite(pred[["spend", "orders"]].to_numpy(float)).all():
                raise ValueError("non-finite predictions")
        except Exception as exc:  # a missing, tampered or incompatible artifact: try the next one
            messages.append(f"ltv: previous model {rec.name} {rec.version} unusable ({type(exc).__name__}: {exc})")
            continue
        ratio = horizon_ratio(bg, scored, w)
        return pred["spend"].to_numpy() * ratio, pred["orders"].to_numpy() * ratio, rec
    return None


def predict_ltv(data: CustomerData, scope: Scope) -> UnitResult:
    """12-month spend for every anchored customer with a purchase before the as-of.

    Fallback chain, one method per shard: ``model`` (fitted now when there are enough customers
    and its predictions are plausible), ``previous_model`` (the newest checksum-verified model
    registered for this shard by an earlier run), ``rule`` (BG/NBD x Gamma-Gamma); the run
    messages name the step used.
    """
    current = data.current
    scored = current[scorable(current)].reset_index(drop=True)
    scope_ids = current["customer_id"].astype("int64").tolist()
    messages = read_messages("ltv", data.counts, len(data.ltv_train))
    if scored.empty:
        return UnitResult(rows=ltv_rows(scored, np.zeros(0), np.zeros(0), model_name=ltv.MODEL_NAME, version="none",
                                        method="model", window_days=data.ltv_window_days),
                          scope_entity_ids=scope_ids, messages=messages)
    version = shard_version(MODEL_VERSION_PREFIX, scope)
    window = data.ltv_window_days
    bg, _ = fit_bgnbd(scored)
    train = data.ltv_train
    models: list[ModelRecord] = []
    if len(train) >= ltv.MIN_TRAIN_CUSTOMERS:
        try:
            train = add_btyd_features(train, window)
            model = LtvRegressor().fit(train, train["future_spend"], train["future_orders"])
            pred = model.predict(add_btyd_features(scored, window))
            problem = ltv.trust_problem(pred, train)
        except Exception as exc:
            problem = f"fit failed ({type(exc).__name__}: {exc})"
        if problem is None:
            ratio = horizon_ratio(bg, scored, window)
            spend, orders = pred["spend"].to_numpy() * ratio, pred["orders"].to_numpy() * ratio
            models.append(saved_record(
                model, Path(scope.model_store) / ltv.MODEL_NAME / version, name=ltv.MODEL_NAME, version=version,
                training_start=(data.as_of - pd.Timedelta(days=scope.forecast.history_days)).to_pydatetime(),
                training_end=data.as_of.to_pydatetime(),
                metrics={"n_train": int(len(train)), "label_window_days": int(window),
                         "train_mean_spend": float(train["future_spend"].mean())},
                params={"features": list(model.features), "horizon_days": LTV_HORIZON_DAYS},
            ))
            if window < LTV_HORIZON_DAYS:
                messages.append(f"ltv: {window}-day label window (history too short for 12 months), "
                                f"extrapolated to {LTV_HORIZON_DAYS} days with BG/NBD ratios")
            rows = ltv_rows(scored, spend, orders, model_name=ltv.MODEL_NAME, version=version, method="model",
                            window_days=window)
            return UnitResult(rows=rows, scope_entity_ids=scope_ids, messages=messages, models=models)
        messages.append(f"ltv: regressor not used: {problem}; falling back to the previous model")
    else:
        messages.append(f"ltv: {len(train)} training customer(s) are too few for the regressor; "
                        f"falling back to the previous model")
    previous = _previous_ltv(scored, scope, window, bg, messages)
    if previous is not None:
        spend, orders, rec = previous
        messages.append(f"ltv: scored with previous model {rec.name} {rec.version}")
        rows = ltv_rows(scored, spend, orders, model_name=rec.name, version=rec.version, method="previous_model",
                        window_days=window)
        return UnitResult(rows=rows, scope_entity_ids=scope_ids, messages=messages, models=models)
    gg = fit_gamma_gamma(scored)
    spend, orders = bgnbd_gg_ltv(bg, gg, scored, LTV_HORIZON_DAYS)
    messages.append("ltv: no usable previous model for this shard; BG/NBD x Gamma-Gamma used")
    rows = ltv_rows(scored, spend, orders, model_name=ltv.FALLBACK_NAME, version=version, method="rule",
                    window_days=window)
    return UnitResult(rows=rows, scope_entity_ids=scope_ids, messages=messages, models=models)


def without_customers(reader: ReplicaReader) -> str | None:
    """Why churn and LTV have nothing to work on (no profiles, or no order carries a customer)."""
    n = customer_coverage(reader)
    if n["profiles"] and n["orders_with_customer"]:
        return None
    profiles = "no customer profiles" if not n["profiles"] else f"{n['profiles']:,} customer profile(s)"
    return f"{profiles}; {n['orders_with_customer']:,} of {n['orders']:,} orders carry a customer"


UNITS: tuple[PredictionUnit, ...] = (
    PredictionUnit(
        prediction_type="churn",
        entity_type="customer",
        schedules=("weekly",),
        requires=(CUSTOMERS, ORDERS),
        features=customer_unit_features,
        predict=predict_churn,
        shares="customers",
        scored=True,
        unusable=without_customers,
    ),
    PredictionUnit(
        prediction_type="ltv",
        entity_type="customer",
        schedules=("weekly",),
        requires=(CUSTOMERS, ORDERS),
        features=customer_unit_features,
        predict=predict_ltv,
        shares="customers",
        unusable=without_customers,
    ),
)
