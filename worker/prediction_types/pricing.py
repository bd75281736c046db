"""Pricing unit: price_recommendation (monthly, per active menu item). See models.pricing."""

from __future__ import annotations

import pandas as pd

from features.prices import pricing_features
from models.pricing import ElasticityEstimator, price_rows
from worker.prediction_types.inventory import saved_model
from core.replica import Requirement
from worker.settings import get_settings
from core.units import PredictionUnit, Scope, UnitResult

MENU = Requirement("menu_menuitem", ("id", "restaurant_id", "category", "price", "cost", "is_active"))
ORDERS = Requirement("orders_order", ("id", "restaurant_id", "status", "created_at"))
LINES = Requirement("orders_orderitem", ("order_id", "menu_item_id", "quantity", "unit_price", "created_at"))


def _features(reader, scope: Scope):
    return pricing_features(reader, scope, get_settings().inventory)


def predict_price(features, scope: Scope) -> UnitResult:
    settings = get_settings().inventory
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
        requires=(MENU, ORDERS, LINES),
        features=_features,
        predict=predict_price,
    ),
)
