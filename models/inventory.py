"""Stock projection, stockout and reorder for a shard: from usage forecasts to what to order and when.

``plan_inventory`` runs, per item, the usage forecast (``models.usage``), the projection and
P(out by day d) (``models.stock_projection``) and the reorder maths and alarm
(``models.reorder``); the rows come from ``models.inventory_rows``. docs/inventory.md has the
formulas.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.settings import InventorySettings
from features.inventory_frames import InventoryFeatures
from models.inventory_rows import InventoryPlan
from models.reorder import decide_item, stockout_alarm
from models.stock_projection import (
    Z80,
    arrival_days,
    arrival_scenarios,
    stale_orders,
    stockout_summary,
)
from models.usage import usage_forecast


def plan_inventory(features: InventoryFeatures, settings: InventorySettings, restaurants: pd.DataFrame) -> InventoryPlan:
    """Project every item of the shard and decide its stockout and reorder figures.

    Args:
        features: ``features.inventory_frames.InventoryFeatures`` (read by ``features.inventory``).
        settings: ``core.settings.InventorySettings``.
        restaurants: the scope's restaurants (id, timezone).
    """
    from models.lead_time import SupplierLeadTime, lead_draws_now, supplier_quantiles, supplier_shifts, weekday_shift

    items = features.items
    lead = SupplierLeadTime.from_settings(settings).fit(features.suppliers, features.lead_times,
                                                         features.recent_orders).estimates_
    if items.empty or features.future.empty:
        return InventoryPlan(pd.DataFrame(), pd.DataFrame(), lead)
    use, _ = usage_forecast(features)
    use = use.sort_values(["inventory_item_id", "ds"])
    stale = stale_orders(features.open_orders, lead, features.as_of)
    open_orders = features.open_orders[~stale]
    arrivals = arrival_days(open_orders, lead, restaurants, items, features.as_of)
    scenarios = _scenarios(features, open_orders, lead, restaurants)
    on_hand = features.on_hand.set_index("inventory_item_id")["on_hand"]
    # more used than ever received: deliveries never booked; projected from zero, and said so
    recorded = features.on_hand.set_index("inventory_item_id").get("recorded", on_hand)
    below_zero = set(recorded.index[recorded < -1e-9])
    tz_of = restaurants.set_index("id")["timezone"]
    shapes, shifts = supplier_quantiles(lead), supplier_shifts(lead)
    daily_frames, decisions = [], []
    for item in items.itertuples(index=False):
        iid = int(item.inventory_item_id)
        u = use[use["inventory_item_id"] == iid]
        if u.empty:
            continue
        days = pd.DatetimeIndex(u["ds"])
        mean, sd = u["mean"].to_numpy(), u["sd"].to_numpy()
        arr = _arrivals(arrivals[arrivals["inventory_item_id"] == iid], days)
        lots = _lots(features.lots[features.lots["inventory_item_id"] == iid], item, tz_of, days[0])
        shelf = item.shelf_life_days if item.is_perishable and pd.notna(item.shelf_life_days) else None
        stock0 = float(on_hand.get(iid, 0.0))
        L0, sL = supplier_lead(lead, item.supplier_id)
        L = max(L0 + weekday_shift(shifts, item.supplier_id, days[0].weekday()), 0.0)  # an order placed today
        # what is ordered today must last until the next review's order lands: that one's weekday
        shift = weekday_shift(shifts, item.supplier_id, (days[0] + _review(settings)).weekday())
        L_cover = max(L0 + shift, 0.0)
        proj, p_mix, plan = decide_item(
            stock0, lots, mean, sd, arr, shelf, L_cover, sL, settings,
            unit_cost=float(item.unit_cost or 0.0),
            par_level=None if pd.isna(item.par_level) else float(item.par_level),
            min_order_quantity=None if pd.isna(item.min_order_quantity) else float(item.min_order_quantity),
            whole_units=item.unit == "each", scenarios=scenarios.get(iid) or [(1.0, arr)], seed=iid,
            lead_draws=lead_draws_now(shapes, item.supplier_id, shift=shift),
        )
        method = "model" if bool(u["enough_history"].iloc[0]) else "rule"
        daily_frames.append(_daily_frame(item, u, proj, arr, method, min(settings.horizon_days, len(days))))
        alarm = stockout_alarm(p_mix, L, settings)
        decisions.append(_decision(item, u, days[0], proj, p_mix, plan, alarm, (L, sL), method, {
            "on_hand": stock0, "recorded_stock_below_zero": iid in below_zero,
            "arrival_scenarios": len(scenarios.get(iid, ())),
        }))
    daily = pd.concat(daily_frames, ignore_index=True) if daily_frames else pd.DataFrame()
    return InventoryPlan(daily, pd.DataFrame(decisions), lead, int(stale.sum()))


def _review(settings: InventorySettings) -> pd.Timedelta:
    """The review period as whole days: when the next run can order."""
    return pd.Timedelta(days=int(np.ceil(settings.review_period_days)))


def supplier_lead(lead: pd.DataFrame, supplier_id: float | None) -> tuple[float, float]:
    """The supplier's expected lead time and its sd (``SupplierLeadTime.estimates_``); the median
    over the suppliers (else 2 and 0.5 days) for an item without a supplier or an estimate."""
    if len(lead) and pd.notna(supplier_id):
        by = lead.set_index("supplier_id")
        if int(supplier_id) in by.index and np.isfinite(by.loc[int(supplier_id), "expected_days"]):
            return float(by.loc[int(supplier_id), "expected_days"]), float(by.loc[int(supplier_id), "sd_days"])
    L = float(lead["expected_days"].median()) if len(lead) and lead["expected_days"].notna().any() else 2.0
    sL = float(lead["sd_days"].median()) if len(lead) and lead["sd_days"].notna().any() else 0.5
    return L, sL


def _scenarios(features: InventoryFeatures, open_orders: pd.DataFrame, lead: pd.DataFrame,
               restaurants: pd.DataFrame) -> dict:
    """Arrival scenarios of every item's open orders (``arrival_scenarios``)."""
    items = features.items
    rest_of = items.set_index("inventory_item_id")["restaurant_id"]
    tz_by_rest = restaurants.set_index("id")["timezone"]
    today_by_rest = features.future.groupby("restaurant_id")["ds"].min()
    known = rest_of[rest_of.isin(today_by_rest.index) & rest_of.isin(tz_by_rest.index)]
    return arrival_scenarios(
        open_orders, lead,
        {int(i): tz_by_rest[r] for i, r in known.items()},
        {int(i): today_by_rest[r] for i, r in known.items()},
        {int(i): (features.midpoint_hour or {}).get(int(r), 23.0) for i, r in known.items()},
        features.as_of, int(features.future.groupby("restaurant_id").size().max()),
    )


def _arrivals(a: pd.DataFrame, days: pd.DatetimeIndex) -> np.ndarray:
    """Expected arrivals per local day of ``days`` (overdue ones today)."""
    arr = np.zeros(len(days))
    for ds, q in zip(a["ds"], a["quantity"]):
        k = max(int((pd.Timestamp(ds) - days[0]).days), 0)
        if k < len(arr):
            arr[k] += q
    return arr


def _lots(item_lots: pd.DataFrame, item, tz_of: pd.Series, today: pd.Timestamp) -> list[tuple[int, float]]:
    """A perishable's batches as (local day index of expiry, quantity)."""
    if not item.is_perishable:
        return []
    tz = tz_of[item.restaurant_id]
    return [((pd.Timestamp(exp).tz_convert(tz).tz_localize(None).normalize() - today).days, q)
            for exp, q in zip(item_lots["expires_at"], item_lots["quantity"])]


def _daily_frame(item, u: pd.DataFrame, proj, arr: np.ndarray, method: str, h: int) -> pd.DataFrame:
    """The item's ``stock_daily`` inputs for the first ``h`` days."""
    return pd.DataFrame(
        {
            "inventory_item_id": int(item.inventory_item_id),
            "restaurant_id": int(item.restaurant_id),
            "ds": pd.DatetimeIndex(u["ds"])[:h],
            "target_start": u["target_start"].to_numpy()[:h],
            "stock": proj.end_stock[:h],
            "lower": np.minimum(np.maximum(proj.net[:h] - Z80 * proj.sd[:h], 0), proj.end_stock[:h]),
            "upper": np.maximum(np.maximum(proj.net[:h] + Z80 * proj.sd[:h], 0), proj.end_stock[:h]),
            "arrivals": arr[:h],
            "expired": proj.expired[:h],
            "method": method,
            "usage_model": str(u["usage_model"].iloc[0]),
        }
    )


def _decision(item, u: pd.DataFrame, today: pd.Timestamp, proj, p_mix, plan: dict, alarm: tuple[bool, int],
              lead: tuple[float, float], method: str, extra: dict) -> dict:
    """The item's ``stockout`` and ``reorder`` fields."""
    mean = u["mean"].to_numpy()
    so = stockout_summary(proj, today, p_mix)
    when = plan.pop("order_by_index")
    sup = item.supplier_id
    return {
        "inventory_item_id": int(item.inventory_item_id),
        "restaurant_id": int(item.restaurant_id),
        "supplier_id": None if pd.isna(sup) else int(sup),
        "on_hand": extra["on_hand"],
        "recorded_stock_below_zero": extra["recorded_stock_below_zero"],
        "stockout_days": so["days"],
        "stockout_date": so["date"],
        "stockout_lower": so["lower"],
        "stockout_upper": so["upper"],
        "stockout_confidence": so["confidence"],
        "stockout_alarm": alarm[0],
        "alarm_horizon_days": alarm[1],
        "daily_usage_forecast": float(np.mean(mean[1:8])) if len(mean) > 1 else float(mean.mean()),
        "order_by_date": None if when is None else (today + pd.Timedelta(days=when)).date(),
        "expected_lead_time_days": lead[0],
        "lead_time_sd_days": lead[1],
        "manual_reorder_point": None if pd.isna(item.manual_reorder_point) else float(item.manual_reorder_point),
        "method": method,
        "usage_model": str(u["usage_model"].iloc[0]),
        "arrival_scenarios": extra["arrival_scenarios"],
        "p_out": p_mix,
        **plan,
    }
