"""Anomaly units: one per entity kind (restaurant, menu_item, inventory_item), all of type ``anomaly``.

The writer replaces rows per (type, entity type), so each kind is its own unit. The inventory kind
declares only the core tables and checks the inventory module itself: the run loop skips every
unit of a type whose requirements fail, and a missing inventory module must not silence the
restaurant and menu-item anomalies. Rows are written only for entities whose last complete local
day is anomalous; the others lose yesterday's row (``scope_entity_ids``). The three units share
one read of the shard's series (``anomaly_inputs``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from core.replica import ReplicaReader
from core.tables import INVENTORY_ITEMS, ORDER_ITEMS, ORDERS, STOCK_MOVEMENTS
from core.units import PredictionUnit, Scope, UnitResult
from features.anomalies import anomaly_series
from features.timegrid import local_date, local_midnight
from models.anomaly import RobustWeekdayZ, anomaly_rows, empty_rows

INVENTORY = (INVENTORY_ITEMS, STOCK_MOVEMENTS)

# What the shard's anomaly units share (``shares="anomaly"``): each kind's series, or why the kind
# was skipped. Why one read: every kind's series carries the restaurants' open days, so three
# separate reads took the restaurants' daily orders three times a night.
AnomalyInput = dict[str, Any]


def anomaly_inputs(reader: ReplicaReader, scope: Scope) -> AnomalyInput:
    """The series of every kind this replica has (``features.anomalies.anomaly_series``), read once."""
    kinds, skipped = ["restaurant"], {}
    for kind, needs in (("menu_item", (ORDER_ITEMS,)), ("inventory_item", INVENTORY)):
        missing = reader.missing(needs)
        if missing:
            skipped[kind] = "; ".join(missing)
        else:
            kinds.append(kind)
    days = scope.inventory.anomaly_history_days + 7 * 8 + 2
    series = anomaly_series(reader, scope.restaurants, scope.as_of - pd.Timedelta(days=days), scope.as_of,
                            scope.valid_until, tuple(kinds), kept=scope)
    return {"series": series, "skipped": skipped}


def _predict_for(kind: str) -> Callable[[AnomalyInput, Scope], UnitResult]:
    def predict(features: AnomalyInput, scope: Scope) -> UnitResult:
        if kind in features["skipped"]:
            return UnitResult(rows=empty_rows(), messages=[f"anomaly ({kind}) skipped: {features['skipped'][kind]}"])
        series = features["series"].get(kind, pd.DataFrame())
        model = RobustWeekdayZ(threshold=scope.inventory.anomaly_z)
        scored = model.score(series)
        last_day, starts = {}, {}
        for r in scope.restaurants.itertuples(index=False):
            d = local_date(scope.as_of, r.timezone) - pd.Timedelta(days=1)
            last_day[int(r.id)] = d
            starts[int(r.id)] = local_midnight(d, r.timezone).tz_convert("UTC")
        rows = anomaly_rows(scored, last_day, starts, kind)
        ids = sorted({int(e) for e in series["entity_id"]}) if len(series) else []
        return UnitResult(rows=rows, scope_entity_ids=ids)

    return predict


UNITS: tuple[PredictionUnit, ...] = tuple(
    PredictionUnit(
        prediction_type="anomaly",
        entity_type=kind,
        schedules=("daily",),
        requires=requires,
        features=anomaly_inputs,
        predict=_predict_for(kind),
        shares="anomaly",
    )
    for kind, requires in (
        ("restaurant", (ORDERS,)),
        ("menu_item", (ORDERS, ORDER_ITEMS)),
        ("inventory_item", (ORDERS,)),
    )
)
