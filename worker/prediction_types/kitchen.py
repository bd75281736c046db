"""Kitchen unit: prep time per menu item, daily."""

from __future__ import annotations

from features.kitchen import kitchen_unit_features
from models.prep_time import predict_prep_time
from core.replica import Requirement
from core.units import PredictionUnit

UNITS: tuple[PredictionUnit, ...] = (
    PredictionUnit(
        prediction_type="prep_time",
        entity_type="menu_item",
        schedules=("daily",),
        requires=(
            Requirement("kitchen_orderitemstation", ("order_item_id", "station_id", "status", "queued_at",
                                                     "prep_time_minutes", "queue_size_at_start")),
            Requirement("kitchen_station", ("id", "restaurant_id", "station_type")),
            Requirement("orders_orderitem", ("id", "menu_item_id", "quantity", "has_modifiers")),
            Requirement("menu_menuitem", ("id", "restaurant_id", "station_id", "is_active")),
        ),
        features=kitchen_unit_features,
        predict=predict_prep_time,
    ),
)
