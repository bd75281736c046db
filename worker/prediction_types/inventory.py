"""Inventory units: stock_daily, stockout, reorder (daily, per inventory item) and lead_time (weekly,
per supplier). Formulas in ``models.inventory`` / ``models.lead_time`` and docs/inventory.md.

The three daily types share one projection: the shard's features and plan are computed once per
(run, shard, as_of) and reused by the next unit in the same process.
"""

from __future__ import annotations

import pandas as pd

from features.inventory import inventory_features, supplier_history
from models.inventory import (
    STALE_ORDER_LEAD_MULTIPLE,
    STALE_ORDER_MIN_DAYS,
    plan_inventory,
    reorder_rows,
    stock_daily_rows,
    stockout_rows,
)
from models.lead_time import SupplierLeadTime, lead_time_rows
from core.replica import Requirement
from worker.settings import get_settings
from core.units import ModelRecord, PredictionUnit, Scope, UnitResult

ITEMS = Requirement(
    "inventory_inventoryitem",
    ("id", "restaurant_id", "unit", "unit_cost", "supplier_id", "par_level", "reorder_point",
     "min_order_quantity", "is_perishable", "shelf_life_days"),
)
SUPPLIERS = Requirement("inventory_supplier", ("id", "organization_id", "default_lead_time_days"))
ORDERS = Requirement("inventory_purchaseorder", ("id", "restaurant_id", "supplier_id", "status", "ordered_at", "expected_at", "received_at"))
LINES = Requirement("inventory_purchaseorderline", ("purchase_order_id", "inventory_item_id", "quantity_ordered"))
BATCHES = Requirement("inventory_batch", ("inventory_item_id", "quantity_received", "quantity_remaining", "received_at", "expires_at"))
MOVEMENTS = Requirement("inventory_stockmovement", ("inventory_item_id", "movement_type", "quantity", "occurred_at"))
RECIPES = Requirement("menu_recipeingredient", ("menu_item_id", "inventory_item_id", "quantity_per_unit"))
STOCK_REQUIRES = (ITEMS, SUPPLIERS, ORDERS, LINES, BATCHES, MOVEMENTS, RECIPES)
LEAD_REQUIRES = (ITEMS, SUPPLIERS, ORDERS)

_cache: dict[tuple, object] = {}


def saved_model(model, scope: Scope, prediction_type: str, *, training_start, metrics: dict) -> ModelRecord:
    """Save a fitted model under the model store and describe it for the registry (with its sha256).

    One artifact and one registry version per (type, run, shard): the registry is keyed on name +
    version, so a constant version would leave only the last shard's model registered.
    """
    from models.artifacts import saved_record, shard_version

    version = shard_version(prediction_type, scope)
    return saved_record(
        model, scope.model_store / prediction_type / version, name=model.name, version=version,
        training_start=pd.Timestamp(training_start).to_pydatetime(), training_end=scope.as_of.to_pydatetime(),
        metrics=metrics,
    )


def _key(scope: Scope) -> tuple:
    return (scope.run_id, tuple(scope.restaurant_ids), scope.as_of)


def _features(reader, scope: Scope):
    key = _key(scope)
    if key not in _cache:
        _cache.clear()  # one shard at a time per process: keep only the latest
        _cache[key] = inventory_features(reader, scope, get_settings().inventory)
    return _cache[key]


def _plan(features, scope: Scope):
    key = ("plan", *_key(scope))
    if key not in _cache:
        _cache[key] = plan_inventory(features, get_settings().inventory, scope.restaurants)
    return _cache[key]


def _item_ids(features) -> list[int]:
    return [int(i) for i in features.items["inventory_item_id"]]


def predict_stock_daily(features, scope: Scope) -> UnitResult:
    plan = _plan(features, scope)
    return UnitResult(rows=stock_daily_rows(plan), scope_entity_ids=_item_ids(features))


def predict_stockout(features, scope: Scope) -> UnitResult:
    plan = _plan(features, scope)
    messages = []
    if plan.stale_order_lines:
        messages.append(
            f"stockout: {plan.stale_order_lines} open purchase-order line(s) placed over "
            f"{STALE_ORDER_LEAD_MULTIPLE:g}x their supplier's lead time (and {STALE_ORDER_MIN_DAYS:g} days) ago "
            "are taken as never closed in the RMS, not as stock on its way (stock_daily, stockout and reorder)")
    below_zero = int(plan.items["recorded_stock_below_zero"].sum()) if len(plan.items) else 0
    if below_zero:
        messages.append(
            f"stockout: {below_zero} item(s) have recorded stock below zero (more used than ever "
            "received: deliveries never booked); projected from zero, so they show as out until a count or "
            "the missing receipts correct the books (details.recorded_stock_below_zero)")
    return UnitResult(rows=stockout_rows(plan), scope_entity_ids=_item_ids(features), messages=messages)


def predict_reorder(features, scope: Scope) -> UnitResult:
    plan = _plan(features, scope)
    return UnitResult(rows=reorder_rows(plan), scope_entity_ids=_item_ids(features))


def lead_time_features(reader, scope: Scope):
    return supplier_history(reader, scope.restaurant_ids, scope.as_of, get_settings().inventory)


def predict_lead_time(features, scope: Scope) -> UnitResult:
    """Rows only for the suppliers this shard owns (see ``features.inventory.shard_suppliers``)."""
    suppliers, history, recent = features
    owned = suppliers.loc[suppliers["owned"], "supplier_id"]
    model = SupplierLeadTime.from_settings(get_settings().inventory).fit(suppliers[suppliers["owned"]], history, recent)
    rows = lead_time_rows(model.estimates_, owned)
    models = []
    if len(rows):
        models.append(
            saved_model(
                model, scope, "lead_time",
                training_start=scope.as_of - pd.Timedelta(days=get_settings().inventory.lead_time_history_days),
                metrics={"suppliers": int(len(rows)), "orders": int(history["n"].sum()) if len(history) else 0},
            )
        )
    return UnitResult(rows=rows, scope_entity_ids=[int(s) for s in owned], models=models)


UNITS: tuple[PredictionUnit, ...] = (
    PredictionUnit(
        prediction_type="stock_daily",
        entity_type="inventory_item",
        schedules=("daily",),
        requires=STOCK_REQUIRES,
        features=_features,
        predict=predict_stock_daily,
    ),
    PredictionUnit(
        prediction_type="stockout",
        entity_type="inventory_item",
        schedules=("daily",),
        requires=STOCK_REQUIRES,
        features=_features,
        predict=predict_stockout,
    ),
    PredictionUnit(
        prediction_type="reorder",
        entity_type="inventory_item",
        schedules=("daily",),
        requires=STOCK_REQUIRES,
        features=_features,
        predict=predict_reorder,
    ),
    PredictionUnit(
        prediction_type="lead_time",
        entity_type="supplier",
        schedules=("weekly",),
        requires=LEAD_REQUIRES,
        features=lead_time_features,
        predict=predict_lead_time,
    ),
)
