"""Every prediction type the pipeline produces, gathered from ``prediction_types``.

The run loop reads only this. A new prediction type is a new unit in a domain module there,
plus one line here.
"""

from __future__ import annotations

from prediction_types import demand
from prediction_types import anomaly, inventory, pricing
from prediction_types import customers, kitchen
from core.units import PredictionUnit

SCHEDULES = ("daily", "weekly", "monthly")

UNITS: tuple[PredictionUnit, ...] = (
    *demand.UNITS,
    *inventory.UNITS,
    *pricing.UNITS,
    *anomaly.UNITS,
    *customers.UNITS,
    *kitchen.UNITS,
)


def units_for(schedule: str) -> list[PredictionUnit]:
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")
    return [u for u in UNITS if schedule in u.schedules]
