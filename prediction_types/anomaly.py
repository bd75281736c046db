"""Anomaly units: one per entity kind (restaurant, menu_item, inventory_item), all of type ``anomaly``.

The writer replaces rows per (type, entity type), so each kind is its own unit. The inventory kind
declares only the core tables and checks the inventory module itself: the run loop skips every
unit of a type whose requirements fail, and a missing inventory module must not silence the
restaurant and menu-item anomalies. Rows are written only for entities whose last complete local
day is anomalous; the others lose yesterday's row (``scope_entity_ids``).
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

# What one kind's read hands its prediction: the kind's series, or why the kind was skipped.
AnomalyInput = dict[str, Any]


def _features_for(kind: str) -> Callable[[ReplicaReader, Scope], AnomalyInput]:
    def features(reader: ReplicaReader, scope: Scope) -> AnomalyInput:
        if kind == "inventory_item":
            missing = reader.missing(INVENTORY)
            if missing:
                return {"skipped": "; ".join(missing)}
        days = scope.inventory.anomaly_history_days + 7 * 8 + 2
        series = anomaly_series(reader, scope.restaurants, scope.as_of - pd.Timedelta(days=days), scope.as_of,
                                scope.valid_until, (kind,), kept=scope)
        return {"series": series.get(kind, pd.DataFrame())}

    return features


def _predict_for(kind: str) -> Callable[[AnomalyInput, Scope], UnitResult]:
    def predict(features: AnomalyInput, scope: Scope) -> UnitResult:
        if "skipped" in features:
            return UnitResult(rows=empty_rows(), messages=[f"anomaly ({kind}) skipped: {features['skipped']}"])
        series = features["series"]
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
        features=_features_for(kind),
        predict=_predict_for(kind),
    )
    for kind, requires in (
        ("restaurant", (ORDERS,)),
        ("menu_item", (ORDERS, ORDER_ITEMS)),
        ("inventory_item", (ORDERS,)),
    )
)
