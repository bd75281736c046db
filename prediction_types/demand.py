"""Demand: orders per restaurant and local hour (``demand_hourly``) and day (``demand_daily``),
units per menu item and local day (``item_demand_daily``). Daily schedule, scored for accuracy.

The path of each type: ``features.demand`` / ``features.items`` read the history (SQL aggregates)
and build the model frames; ``models.forecasting.forecast`` backtests the candidates of the type's
spec (``models.demand``), fits the chosen one and walks the fallback chain; the rows below turn
its frame into ``m_l_predictions`` rows (details in docs/demand.md).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from core.replica import ReplicaReader
from core.tables import MENU_ITEMS, ORDER_ITEMS, ORDERS
from core.units import PredictionUnit, Scope, UnitResult
from features.demand import daily_demand_features, hourly_demand_features
from features.model_frames import DemandHistory
from features.items import item_demand_features
from models.demand import (
    HOURLY,
    INTERVAL_LEVEL,
    ITEMS,
    daily_spec,
    reconcile_hourly,
    reconcile_items,
)
from models.forecasting import Outcome, forecast


class DemandInputs:
    """What the shard's three demand units share (``shares="demand"``): the shard's demand
    histories and demand_daily's forecast, which the hourly and item forecasts are scaled to
    (``models.demand.reconcile_hourly``, ``reconcile_items``; docs/demand.md, Coherence).

    Each part is read (or forecast) once per shard, when the first unit asks for it, so a unit
    skipped for a missing module costs nothing here; the run loop drops the bundle after the last
    demand unit, so a long-lived worker holds no shard's data between tasks. Parts may be handed
    in ready-made (tests, benches).
    """

    def __init__(self, reader: ReplicaReader | None, scope: Scope, *, daily: DemandHistory | None = None,
                 hourly: DemandHistory | None = None, items: DemandHistory | None = None):
        self.reader, self.scope = reader, scope
        self._parts: dict[str, object] = {k: v for k, v in (("daily", daily), ("hourly", hourly), ("items", items))
                                          if v is not None}

    def _part(self, name: str, compute: Callable[[], object]) -> object:
        if name not in self._parts:
            self._parts[name] = compute()
        return self._parts[name]

    @property
    def daily(self) -> DemandHistory:
        return self._part("daily", lambda: daily_demand_features(self.reader, self.scope))

    @property
    def hourly(self) -> DemandHistory:
        return self._part("hourly", lambda: hourly_demand_features(self.reader, self.scope, daily=self.daily))

    @property
    def items(self) -> DemandHistory:
        return self._part("items", lambda: item_demand_features(self.reader, self.scope, daily=self.daily))

    def daily_outcome(self, daily: DemandHistory | None = None) -> Outcome:
        """demand_daily's fallback chain for the shard, run once; ``daily``: the daily features to
        forecast from when this bundle has none of its own (a unit handed its history directly)."""
        return self._part("daily_outcome", lambda: forecast(daily if daily is not None else self.daily,
                                                            daily_spec(self.scope), self.scope))


def demand_inputs(reader: ReplicaReader, scope: Scope) -> DemandInputs:
    return DemandInputs(reader, scope)


def _rows(out: pd.DataFrame, granularity: str, entity_col: str = "series_id") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "entity_id": out[entity_col].astype("int64").to_numpy(),
            "restaurant_id": out["restaurant_id"].astype("int64").to_numpy(),
            "target_start": out["target_start"].to_numpy(),
            "granularity": granularity,
            "value": out["yhat"].astype(float).round(3).to_numpy(),
            "lower": out["lower"].astype(float).round(3).to_numpy(),
            "upper": out["upper"].astype(float).round(3).to_numpy(),
            "model_name": out["model_name"].to_numpy(),
            "model_version": out["model_version"].astype(str).to_numpy(),
            "method": out["method"].to_numpy(),
        }
    )


def _with_restaurant(out: pd.DataFrame, features: DemandHistory) -> pd.DataFrame:
    return out.merge(features.series[["series_id", "restaurant_id"]], on="series_id", how="left")


def _result(outcome: Outcome, rows: pd.DataFrame, scope_ids: list[int]) -> UnitResult:
    return UnitResult(rows=rows, scope_entity_ids=scope_ids, messages=outcome.messages, models=outcome.models)


def _nothing_to_forecast(features: DemandHistory, scope_ids: list[int]) -> UnitResult | None:
    """No series to forecast in the shard (no times of day, no items: daily totals): no rows, the
    features' messages say why, and the scope's old rows go (nothing is forecast from made-up data)."""
    if len(features.series):
        return None
    rows = _rows(pd.DataFrame({c: pd.Series(dtype=object) for c in
                               ("series_id", "restaurant_id", "target_start", "yhat", "lower", "upper",
                                "model_name", "model_version", "method")}), "day")
    rows["details"] = pd.Series(dtype=object)
    return UnitResult(rows=rows, scope_entity_ids=scope_ids, messages=list(features.messages), models=[])


def average_ticket(history: pd.DataFrame, days: int = 28) -> pd.Series:
    """Typical revenue per order over the last ``days`` open days of each restaurant (currency units).

    The median of the daily tickets rather than total revenue over total orders: one well-formed
    but absurd order (a 10,000-item line) would otherwise raise every forecast day's revenue.
    Restaurants without an order in the window are absent (see ``predict_demand_daily``).
    """
    if history.empty or "revenue" not in history:
        return pd.Series(dtype=float)
    recent = history[
        (history["ds"] > history["ds"].max() - pd.Timedelta(days=days)) & ~history["closed"] & (history["y"] > 0)
    ]
    return (recent["revenue"] / recent["y"]).groupby(recent["series_id"]).median()


def predict_demand_daily(inputs: DemandInputs, scope: Scope) -> UnitResult:
    """Orders per local day; details.revenue = forecast orders x recent average ticket."""
    features = inputs.daily
    outcome = inputs.daily_outcome()
    out = _with_restaurant(outcome.frame, features)
    rows = _rows(out, "day")
    ticket = average_ticket(features.history)
    # A restaurant forecast from its peers has no ticket of its own: the peers' typical ticket
    # keeps its revenue from reading 0 next to a non-zero order forecast.
    peer_ticket = float(ticket.median()) if len(ticket) else 0.0
    # No prices in the history (daily totals, a till export without them): no revenue, rather than 0.
    rows["details"] = [
        {
            **({"revenue": round(float(v) * t, 2)} if (t := float(ticket.get(sid, peer_ticket))) > 0 else {}),
            "interval_level": INTERVAL_LEVEL,
            "closed": bool(c),
        }
        for sid, v, c in zip(rows["entity_id"], rows["value"], out["closed_pattern"])
    ]
    return _result(outcome, rows, scope.restaurant_ids)


def predict_demand_hourly(inputs: DemandInputs, scope: Scope) -> UnitResult:
    """Orders per local hour for the next 168 hours (23 or 25 rows on a DST-change day)."""
    features = inputs.hourly
    if (empty := _nothing_to_forecast(features, scope.restaurant_ids)) is not None:
        return empty
    outcome = forecast(features, HOURLY, scope)
    frame = outcome.frame.assign(daily_factor=np.nan)
    if features.daily is not None:
        try:  # a restaurant-day's hours add up to its demand_daily forecast (docs/demand.md, Coherence)
            frame = reconcile_hourly(frame, inputs.daily_outcome(features.daily).frame, features.history)
        except Exception as exc:  # the hourly forecast stands on its own
            outcome.messages.append(f"demand_hourly: not scaled to demand_daily ({type(exc).__name__}: {exc})")
    out = _with_restaurant(frame, features)
    rows = _rows(out, "hour")
    rows["details"] = [
        {"interval_level": INTERVAL_LEVEL, "local_hour": int(h), "closed": bool(c),
         **({"daily_factor": round(float(f), 4)} if np.isfinite(f) else {})}
        for h, c, f in zip(out["ds"].dt.hour, out["closed_pattern"], out["daily_factor"])
    ]
    return _result(outcome, rows, scope.restaurant_ids)


def predict_item_demand_daily(inputs: DemandInputs, scope: Scope) -> UnitResult:
    """Units per active menu item and local day for the next 14 days.

    Discontinued items are in ``features.retired_ids``: they get no rows and, being in the
    scope, lose the rows an earlier run wrote.
    """
    features = inputs.items
    if (empty := _nothing_to_forecast(features, sorted(set(features.retired_ids)))) is not None:
        return empty
    outcome = forecast(features, ITEMS, scope)
    frame = outcome.frame.assign(orders_factor=np.nan)
    if features.daily is not None:
        try:  # a restaurant-day's items add up to its orders x units per order (docs/demand.md, Coherence)
            frame = reconcile_items(frame, inputs.daily_outcome(features.daily).frame, features.history,
                                    features.daily.history, features.series.set_index("series_id")["restaurant_id"])
        except Exception as exc:  # the item forecasts stand on their own
            outcome.messages.append(f"item_demand_daily: not scaled to demand_daily ({type(exc).__name__}: {exc})")
    out = frame.merge(
        features.series[["series_id", "restaurant_id", "category"]], on="series_id", how="left"
    )
    rows = _rows(out, "day")
    rows["details"] = [
        {"interval_level": INTERVAL_LEVEL, "category": str(cat), "closed": bool(c),
         **({"dormant_days": int(d)} if pd.notna(d) else {}),
         **({"orders_factor": round(float(f), 4)} if np.isfinite(f) else {})}
        for cat, c, d, f in zip(out["category"], out["closed_pattern"], out["dormant_days"], out["orders_factor"])
    ]
    scope_ids = sorted({int(i) for i in features.series["series_id"]} | set(features.retired_ids))
    return _result(outcome, rows, scope_ids)


def _demand_unit(prediction_type: str, entity_type: str, requires: tuple, predict) -> PredictionUnit:
    """A demand unit: daily, scored, and sharing the shard's demand inputs with the other two."""
    return PredictionUnit(prediction_type=prediction_type, entity_type=entity_type, schedules=("daily",),
                          requires=requires, features=demand_inputs, predict=predict, shares="demand", scored=True)


UNITS: tuple[PredictionUnit, ...] = (
    _demand_unit("demand_daily", "restaurant", (ORDERS,), predict_demand_daily),
    _demand_unit("demand_hourly", "restaurant", (ORDERS,), predict_demand_hourly),
    _demand_unit("item_demand_daily", "menu_item", (ORDERS, ORDER_ITEMS, MENU_ITEMS), predict_item_demand_daily),
)
