"""Demand units: orders per restaurant and local hour/day."""

from __future__ import annotations

from features.demand import daily_demand_features, hourly_demand_features
from models.demand import predict_demand_daily, predict_demand_hourly
from worker.replica import Requirement
from worker.units import PredictionUnit

ORDERS = Requirement("orders_order", ("id", "restaurant_id", "status", "total", "subtotal", "created_at"))

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
)
