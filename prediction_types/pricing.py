"""Pricing: price_recommendation per active menu item, monthly. See models.pricing and docs/pricing.md."""

from __future__ import annotations

import pandas as pd

from core.replica import ReplicaReader
from core.tables import MENU_ITEMS, ORDER_ITEMS, ORDERS
from core.units import PredictionUnit, Scope, UnitResult
from features.prices import pricing_features
from models.artifacts import saved_model
from models.pricing import ElasticityEstimator, price_rows


def read_prices(reader: ReplicaReader, scope: Scope) -> dict[str, pd.DataFrame]:
    return pricing_features(reader, scope, scope.inventory)


def predict_price(features: dict[str, pd.DataFrame], scope: Scope) -> UnitResult:
    settings = scope.inventory
    items = features["items"]
    model = ElasticityEstimator().fit(items, features["sales"])
    rows = price_rows(items, model.estimates_, settings.price_max_change_pct)
    models = []
    if len(rows):
        est = model.estimates_
        models.append(
            saved_model(
                model, scope, "price_recommendation",
                training_start=scope.as_of - pd.Timedelta(days=settings.price_history_days),
                metrics={"items": int(len(est)), "items_with_own_change": int((est["source"] == "own").sum())},
            )
        )
    return UnitResult(rows=rows, scope_entity_ids=[int(i) for i in items["menu_item_id"]], models=models)


UNITS: tuple[PredictionUnit, ...] = (
    PredictionUnit(
        prediction_type="price_recommendation",
        entity_type="menu_item",
        schedules=("monthly",),
        requires=(MENU_ITEMS, ORDERS, ORDER_ITEMS),
        features=read_prices,
        predict=predict_price,
    ),
)
