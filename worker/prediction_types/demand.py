"""Demand units: orders per restaurant and local hour/day, units per menu item and local day."""

from __future__ import annotations

from features.demand import daily_demand_features, hourly_demand_features
from features.items import item_demand_features
from models.demand import predict_demand_daily, predict_demand_hourly, predict_item_demand_daily
from core.replica import Requirement
from core.units import PredictionUnit

ORDERS = Requirement("orders_order", ("id", "restaurant_id", "status", "total", "subtotal", "created_at"))
ORDER_ITEMS = Requirement("orders_orderitem", ("order_id", "menu_item_id", "quantity", "unit_price", "created_at"))
MENU_ITEMS = Requirement("menu_menuitem", ("id", "restaurant_id", "category", "is_active", "created_at"))

UNITS: tuple[PredictionUnit, ...] = (
    PredictionUnit(
        prediction_type="demand_hourly",
        entity_type="restaurant",
        schedules=("daily",),
        requires=(ORDERS,),
        features=hourly_demand_features,
        predict=predict_demand_hourly,
    ),
    PredictionUnit(
        prediction_type="demand_daily",
        entity_type="restaurant",
        schedules=("daily",),
        requires=(ORDERS,),
        features=daily_demand_features,
        predict=predict_demand_daily,
    ),
    PredictionUnit(
        prediction_type="item_demand_daily",
        entity_type="menu_item",
        schedules=("daily",),
        requires=(ORDERS, ORDER_ITEMS, MENU_ITEMS),
        features=item_demand_features,
        predict=predict_item_demand_daily,
    ),
)
