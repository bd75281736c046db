"""Every prediction type the pipeline produces, declared once. The run loop reads only this."""

from __future__ import annotations

from features.demand import daily_demand_features, hourly_demand_features
from models.demand import predict_demand_daily, predict_demand_hourly
from worker.replica import Requirement
from worker.units import PredictionUnit

SCHEDULES = ("daily", "weekly", "monthly")

_ORDERS = Requirement("orders_order", ("id", "restaurant_id", "status", "total", "subtotal", "created_at"))

UNITS: tuple[PredictionUnit, ...] = (
    PredictionUnit(
        prediction_type="demand_hourly",
        entity_type="restaurant",
        schedules=("daily",),
        requires=(_ORDERS,),
        features=hourly_demand_features,
        predict=predict_demand_hourly,
    ),
    PredictionUnit(
        prediction_type="demand_daily",
        entity_type="restaurant",
        schedules=("daily",),
        requires=(_ORDERS,),
        features=daily_demand_features,
        predict=predict_demand_daily,
    ),
)


def units_for(schedule: str) -> list[PredictionUnit]:
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")
    return [u for u in UNITS if schedule in u.schedules]
