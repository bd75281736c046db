"""Inventory units: stock_daily, stockout, reorder (daily, per inventory item) and lead_time (weekly,
per supplier). Formulas in ``models.stock_projection`` / ``models.reorder`` / ``models.inventory`` / ``models.lead_time`` and docs/inventory.md.

The three daily types share one projection (``shares="stock"``): the run loop reads the shard's
features and projects its plan once, and hands the same ``StockPlan`` to each of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from core.replica import ReplicaReader
from core.tables import (
    BATCHES,
    INVENTORY_ITEMS,
    PURCHASE_ORDER_LINES,
    PURCHASE_ORDERS,
    RECIPES,
    STOCK_MOVEMENTS,
    SUPPLIERS,
)
from core.units import PredictionUnit, Scope, UnitResult
from features.inventory import inventory_features
from features.inventory_frames import InventoryFeatures
from features.suppliers import SupplierHistory, supplier_history
from models.artifacts import saved_model
from models.inventory import plan_inventory
from models.inventory_rows import InventoryPlan, reorder_rows, stock_daily_rows, stockout_rows
from models.lead_time import SupplierLeadTime, lead_time_rows
from models.stock_projection import STALE_ORDER_LEAD_MULTIPLE, STALE_ORDER_MIN_DAYS

STOCK_REQUIRES = (INVENTORY_ITEMS, SUPPLIERS, PURCHASE_ORDERS, PURCHASE_ORDER_LINES, BATCHES, STOCK_MOVEMENTS, RECIPES)
LEAD_REQUIRES = (INVENTORY_ITEMS, SUPPLIERS, PURCHASE_ORDERS)


@dataclass(frozen=True)
class StockPlan:
    """What the three daily stock units share: the shard's features and their projection."""

    features: InventoryFeatures
    plan: InventoryPlan


def stock_plan(reader: ReplicaReader, scope: Scope) -> StockPlan:
    """Read the shard's stock history and project it (once per shard, see ``shares``)."""
    features = inventory_features(reader, scope, scope.inventory)
    return StockPlan(features, plan_inventory(features, scope.inventory, scope.restaurants))


def _item_ids(features: InventoryFeatures) -> list[int]:
    return [int(i) for i in features.items["inventory_item_id"]]


def predict_stock_daily(stock: StockPlan, scope: Scope) -> UnitResult:
    return UnitResult(rows=stock_daily_rows(stock.plan), scope_entity_ids=_item_ids(stock.features))


def predict_stockout(stock: StockPlan, scope: Scope) -> UnitResult:
    plan = stock.plan
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
    return UnitResult(rows=stockout_rows(plan), scope_entity_ids=_item_ids(stock.features), messages=messages)


def predict_reorder(stock: StockPlan, scope: Scope) -> UnitResult:
    return UnitResult(rows=reorder_rows(stock.plan), scope_entity_ids=_item_ids(stock.features))


def lead_time_features(reader: ReplicaReader, scope: Scope) -> SupplierHistory:
    return supplier_history(reader, scope.restaurant_ids, scope.as_of, scope.inventory)


def predict_lead_time(features: SupplierHistory, scope: Scope) -> UnitResult:
    """Rows only for the suppliers this shard owns (see ``features.suppliers.shard_suppliers``)."""
    suppliers, history, recent = features
    owned = suppliers.loc[suppliers["owned"], "supplier_id"]
    model = SupplierLeadTime.from_settings(scope.inventory).fit(suppliers[suppliers["owned"]], history, recent)
    rows = lead_time_rows(model.estimates_, owned)
    models = []
    if len(rows):
        models.append(
            saved_model(
                model, scope, "lead_time",
                training_start=scope.as_of - pd.Timedelta(days=scope.inventory.lead_time_history_days),
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
        features=stock_plan,
        predict=predict_stock_daily,
        shares="stock",
        scored=True,
    ),
    PredictionUnit(
        prediction_type="stockout",
        entity_type="inventory_item",
        schedules=("daily",),
        requires=STOCK_REQUIRES,
        features=stock_plan,
        predict=predict_stockout,
        shares="stock",
    ),
    PredictionUnit(
        prediction_type="reorder",
        entity_type="inventory_item",
        schedules=("daily",),
        requires=STOCK_REQUIRES,
        features=stock_plan,
        predict=predict_reorder,
        shares="stock",
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
