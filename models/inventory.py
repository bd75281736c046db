"""Stock projection, stockout and reorder: from usage forecasts to what to order and when.

Formulas (docs/inventory.md has the full page):

* Usage: ``models.usage`` (recipe-based or own-history daily mean and sd per item).
* Projection and P(out by day d): ``models.stock_projection``.
* Reorder (continuous review, checked daily): with mean daily usage d, its sd s_d, expected lead
  time L with sd s_L and review period R,
  ``safety_stock = z(service_level) * sqrt((L + R) * s_d^2 + d^2 * s_L^2)``,
  ``reorder_point = d * (L + R) + safety_stock``,
  ``eoq = sqrt(2 * 365 d * order_cost / (holding_rate * unit_cost))`` (capped at d x shelf life
  for perishables). ``order_by_date`` = the first day the projected inventory position (stock +
  on order) falls to the reorder point. Quantity = order up to ``par_level`` when set (else up to
  reorder_point + eoq) from the position on that day, at least ``min_order_quantity``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from core.settings import InventorySettings
from features.inventory import InventoryFeatures
from models.stock_projection import (
    Z80,
    Projection,
    arrival_days,
    arrival_scenarios,
    project_item,
    simulate_p_out,
    stale_orders,
    stockout_summary,
)
from models.usage import usage_forecast


def reorder_plan(
    proj: Projection,
    usage: np.ndarray,
    usage_sd: np.ndarray,
    on_hand: float,
    lead_days: float,
    lead_sd: float,
    *,
    service_level: float,
    review_period_days: float,
    order_cost: float,
    holding_rate: float,
    unit_cost: float,
    par_level: float | None,
    min_order_quantity: float | None,
    shelf_life_days: float | None,
    soon_days: int,
    whole_units: bool,
) -> dict:
    """Reorder point, safety stock, EOQ, order-by day, urgency and quantity (module docstring)."""
    n = len(usage)
    cover = max(lead_days + review_period_days, 1.0)
    window = usage[1 : 1 + max(int(math.ceil(cover)), 7)]
    d = float(np.mean(window)) if len(window) else float(np.mean(usage)) if n else 0.0
    sd_d = float(np.sqrt(np.mean(np.asarray(usage_sd[1 : 1 + len(window)]) ** 2))) if len(window) else 0.0
    z = float(norm.ppf(service_level))
    safety = z * math.sqrt(cover * sd_d**2 + d**2 * lead_sd**2)
    rop = d * cover + safety
    if unit_cost > 0 and holding_rate > 0 and d > 0:
        eoq = math.sqrt(2 * 365 * d * order_cost / (holding_rate * unit_cost))
    else:
        eoq = 7 * d
    if shelf_life_days and shelf_life_days > 0:
        eoq = min(eoq, d * shelf_life_days)
    # stock that expires (on the mean path) before the cover is over is not there to cover it: a
    # perishable's position counted it and ordered too late (the decision replay's run-outs)
    position_now = on_hand + proj.on_order_total - float(np.sum(proj.expired[: int(math.ceil(cover))]))
    position = proj.end_stock + proj.on_order_after
    if position_now <= rop:
        when, pos_then = 0, position_now
    else:
        below = np.flatnonzero(position <= rop)
        when, pos_then = (int(below[0]) + 1, float(position[below[0]])) if len(below) else (None, None)
    if when is not None and when >= n:
        when = None
    target = par_level if par_level and par_level > rop else rop + eoq
    if shelf_life_days and shelf_life_days > 0 and d > 0:
        # a perishable's position is worth holding only as far as it is used fresh: what is on hand
        # when an order lands (target - d * cover) must last no longer than its shelf life (a
        # manager's par of 6 days of fish that keeps 3 threw away a fifth of it in the replay)
        target = min(target, max(rop + d, d * (cover + shelf_life_days - 1)))
    qty = 0.0
    if when is not None:
        qty = max(target - pos_then, 0.0)
        if min_order_quantity and min_order_quantity > 0:
            qty = max(qty, float(min_order_quantity))
        if whole_units:
            qty = float(math.ceil(qty - 1e-9))
    stockout_idx = np.flatnonzero(proj.shortfall > 1e-9)
    if when == 0 and (position_now < safety or (len(stockout_idx) and stockout_idx[0] <= lead_days)):
        urgency = "urgent"
    elif when is not None and when <= soon_days:
        urgency = "soon"
    else:
        urgency = "ok"
    return {
        "quantity": qty,
        "order_by_index": when,
        "urgency": urgency,
        "reorder_point": rop,
        "safety_stock": safety,
        "eoq": eoq,
        "mean_daily_usage": d,
        "position": position_now,
    }



def notice_days(lead_days: float) -> int:
    """Whole days from the morning run to the first local day whose use an order placed then can
    feed, at the supplier's expected lead time: the order lands ``lead_days`` after the run and
    feeds that day when it lands before the evening's use (rounded: the run is in the morning,
    the use in the evening). At least 1."""
    return max(int(math.floor(float(lead_days) + 0.5)), 1)


def stockout_alarm(p_out: np.ndarray | None, lead_days: float, settings: InventorySettings,
                   threshold: float | None = None) -> tuple[bool, int]:
    """The stockout alarm: P(out by day h) >= ``settings.stockout_alarm_probability`` (or
    ``threshold``), h = ``notice_days(lead_days)`` + the review period: the item is likely to run
    out before an order placed at the next run could land, so only an order today (or an
    emergency one) prevents it. Returns (alarm, h)."""
    h = notice_days(lead_days) + max(int(math.ceil(settings.review_period_days)), 0)
    if p_out is None or not len(p_out):
        return False, h
    tau = settings.stockout_alarm_probability if threshold is None else threshold
    return bool(p_out[min(h, len(p_out) - 1)] >= tau), h


def decide_item(
    on_hand: float,
    lots: list[tuple[int, float]],
    usage: np.ndarray,
    usage_sd: np.ndarray,
    arrivals: np.ndarray,
    shelf_life_days: float | None,
    lead_days: float,
    lead_sd: float,
    settings: InventorySettings,
    *,
    unit_cost: float,
    par_level: float | None,
    min_order_quantity: float | None,
    whole_units: bool,
    scenarios: list[tuple[float, np.ndarray]] | None = None,
    seed: int = 0,
    p_out: bool = True,
    p_out_days: int | None = None,
    paths: int = 4000,
    level_cv: float = 0.0,
) -> tuple[Projection, np.ndarray | None, dict]:
    """One item's projection, P(out by day d) and reorder decision: what ``plan_inventory`` does
    per item, and what the bench's decision replay (``bench.inventory_replay``) calls each morning.

    Args:
        on_hand, lots, usage, usage_sd, arrivals, shelf_life_days: as ``project_item``.
        lead_days, lead_sd: the supplier's expected lead time and its sd (``models.lead_time``).
        settings: ``InventorySettings`` (service level, review period, costs, soon_days).
        scenarios: arrival scenarios (``arrival_scenarios``); default the expected arrivals.
        p_out: False skips the usage-path simulation (the reorder decision does not need it).
        p_out_days: simulate only this many days (P(out) beyond them is not needed).
    Returns (projection, P(out by day d) or None, ``reorder_plan``'s dict).
    """
    proj = project_item(on_hand, lots, usage, usage_sd, arrivals, shelf_life_days)
    p_mix = None
    if p_out:
        k = len(usage) if p_out_days is None else min(int(p_out_days), len(usage))
        scen = [(w, np.asarray(a)[:k]) for w, a in (scenarios or [(1.0, arrivals)])]
        p_mix = simulate_p_out(on_hand, lots, usage[:k], usage_sd[:k], scen, shelf_life_days, seed=seed, paths=paths,
                               level_cv=level_cv)
    plan = reorder_plan(
        proj, usage, usage_sd, on_hand, lead_days, lead_sd,
        service_level=settings.service_level,
        review_period_days=settings.review_period_days,
        order_cost=settings.order_cost,
        holding_rate=settings.holding_cost_rate_per_year,
        unit_cost=unit_cost,
        par_level=par_level,
        min_order_quantity=min_order_quantity,
        shelf_life_days=shelf_life_days,
        soon_days=settings.soon_days,
        whole_units=whole_units,
    )
    return proj, p_mix, plan


# --------------------------------------------------------------------------- rows

MODEL_VERSION = "1"


def empty_rows() -> pd.DataFrame:
    """No rows, but with the columns the writer requires (it rejects a frame without them)."""
    return pd.DataFrame({c: [] for c in ("entity_id", "value", "model_name", "model_version", "method")})


@dataclass
class InventoryPlan:
    """Per-item projections and decisions for one shard; the three row builders read from it."""

    daily: pd.DataFrame  # inventory_item_id, restaurant_id, ds, target_start, stock, lower, upper, method
    items: pd.DataFrame  # one row per item: stockout_* and reorder fields
    lead: pd.DataFrame  # SupplierLeadTime estimates
    stale_order_lines: int = 0  # open order lines left out as never closed (``stale_orders``)


def plan_inventory(features: InventoryFeatures, settings: InventorySettings, restaurants: pd.DataFrame) -> InventoryPlan:
    """Project every item of the shard and decide its stockout and reorder figures.

    Args:
        features: ``features.inventory.InventoryFeatures``.
        settings: ``core.settings.InventorySettings``.
        restaurants: the scope's restaurants (id, timezone).
    """
    from models.lead_time import SupplierLeadTime

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
    rest_of = items.set_index("inventory_item_id")["restaurant_id"]
    tz_by_rest = restaurants.set_index("id")["timezone"]
    today_by_rest = features.future.groupby("restaurant_id")["ds"].min()
    known = rest_of[rest_of.isin(today_by_rest.index) & rest_of.isin(tz_by_rest.index)]
    scenarios = arrival_scenarios(
        open_orders, lead,
        {int(i): tz_by_rest[r] for i, r in known.items()},
        {int(i): today_by_rest[r] for i, r in known.items()},
        {int(i): (features.midpoint_hour or {}).get(int(r), 23.0) for i, r in known.items()},
        features.as_of, int(features.future.groupby("restaurant_id").size().max()),
    )
    on_hand = features.on_hand.set_index("inventory_item_id")["on_hand"]
    # more used than ever received: deliveries never booked; projected from zero, and said so
    recorded = features.on_hand.set_index("inventory_item_id").get("recorded", on_hand)
    below_zero = set(recorded.index[recorded < -1e-9])
    lead_by = lead.set_index("supplier_id")
    default_lead = float(lead["expected_days"].median()) if len(lead) and lead["expected_days"].notna().any() else 2.0
    default_sd = float(lead["sd_days"].median()) if len(lead) and lead["sd_days"].notna().any() else 0.5
    tz_of = restaurants.set_index("id")["timezone"]
    daily_frames, decisions = [], []
    for item in items.itertuples(index=False):
        iid = int(item.inventory_item_id)
        u = use[use["inventory_item_id"] == iid]
        if u.empty:
            continue
        days = pd.DatetimeIndex(u["ds"])
        today = days[0]
        mean, sd = u["mean"].to_numpy(), u["sd"].to_numpy()
        arr = np.zeros(len(days))
        a = arrivals[arrivals["inventory_item_id"] == iid]
        for ds, q in zip(a["ds"], a["quantity"]):
            k = max(int((pd.Timestamp(ds) - today).days), 0)
            if k < len(arr):
                arr[k] += q
        item_lots = features.lots[features.lots["inventory_item_id"] == iid]
        lots = []
        if item.is_perishable:
            tz = tz_of[item.restaurant_id]
            for exp, q in zip(item_lots["expires_at"], item_lots["quantity"]):
                lots.append(((pd.Timestamp(exp).tz_convert(tz).tz_localize(None).normalize() - today).days, q))
        shelf = item.shelf_life_days if item.is_perishable and pd.notna(item.shelf_life_days) else None
        stock0 = float(on_hand.get(iid, 0.0))
        sup = item.supplier_id
        if pd.notna(sup) and int(sup) in lead_by.index and np.isfinite(lead_by.loc[int(sup), "expected_days"]):
            L, sL = float(lead_by.loc[int(sup), "expected_days"]), float(lead_by.loc[int(sup), "sd_days"])
        else:
            L, sL = default_lead, default_sd
        proj, p_mix, plan = decide_item(
            stock0, lots, mean, sd, arr, shelf, L, sL, settings,
            unit_cost=float(item.unit_cost or 0.0),
            par_level=None if pd.isna(item.par_level) else float(item.par_level),
            min_order_quantity=None if pd.isna(item.min_order_quantity) else float(item.min_order_quantity),
            whole_units=item.unit == "each", scenarios=scenarios.get(iid) or [(1.0, arr)], seed=iid,
        )
        usage_model = str(u["usage_model"].iloc[0])
        h = min(settings.horizon_days, len(days))
        method = "model" if bool(u["enough_history"].iloc[0]) else "rule"
        daily_frames.append(
            pd.DataFrame(
                {
                    "inventory_item_id": iid,
                    "restaurant_id": int(item.restaurant_id),
                    "ds": days[:h],
                    "target_start": u["target_start"].to_numpy()[:h],
                    "stock": proj.end_stock[:h],
                    "lower": np.minimum(np.maximum(proj.net[:h] - Z80 * proj.sd[:h], 0), proj.end_stock[:h]),
                    "upper": np.maximum(np.maximum(proj.net[:h] + Z80 * proj.sd[:h], 0), proj.end_stock[:h]),
                    "arrivals": arr[:h],
                    "expired": proj.expired[:h],
                    "method": method,
                    "usage_model": usage_model,
                }
            )
        )
        so = stockout_summary(proj, today, p_mix)
        alarm, alarm_h = stockout_alarm(p_mix, L, settings)
        when = plan.pop("order_by_index")
        decisions.append(
            {
                "inventory_item_id": iid,
                "restaurant_id": int(item.restaurant_id),
                "supplier_id": None if pd.isna(sup) else int(sup),
                "on_hand": stock0,
                "recorded_stock_below_zero": iid in below_zero,
                "stockout_days": so["days"],
                "stockout_date": so["date"],
                "stockout_lower": so["lower"],
                "stockout_upper": so["upper"],
                "stockout_confidence": so["confidence"],
                "stockout_alarm": alarm,
                "alarm_horizon_days": alarm_h,
                "daily_usage_forecast": float(np.mean(mean[1:8])) if len(mean) > 1 else float(mean.mean()),
                "order_by_date": None if when is None else (today + pd.Timedelta(days=when)).date(),
                "expected_lead_time_days": L,
                "lead_time_sd_days": sL,
                "manual_reorder_point": None if pd.isna(item.manual_reorder_point) else float(item.manual_reorder_point),
                "method": method,
                "usage_model": usage_model,
                "arrival_scenarios": len(scenarios.get(iid, ())),
                "p_out": p_mix,
                **plan,
            }
        )
    daily = pd.concat(daily_frames, ignore_index=True) if daily_frames else pd.DataFrame()
    return InventoryPlan(daily, pd.DataFrame(decisions), lead, int(stale.sum()))


def _base(frame: pd.DataFrame, model_name: str) -> dict:
    return {
        "entity_id": frame["inventory_item_id"].astype("int64").to_numpy(),
        "restaurant_id": frame["restaurant_id"].astype("int64").to_numpy(),
        "model_name": model_name,
        "model_version": MODEL_VERSION,
        "method": frame["method"].to_numpy(),
    }


def stock_daily_rows(plan: InventoryPlan) -> pd.DataFrame:
    """``stock_daily``: projected end-of-day stock per item and local day, item units, 80 % band."""
    d = plan.daily
    if d.empty:
        return empty_rows()
    return pd.DataFrame(
        {
            **_base(d, "stock_projection"),
            "target_start": d["target_start"].to_numpy(),
            "granularity": "day",
            "value": d["stock"].round(3).to_numpy(),
            "lower": d["lower"].round(3).to_numpy(),
            "upper": d["upper"].round(3).to_numpy(),
            "details": [
                {"arrivals": round(float(a), 3), "expired": round(float(e), 3), "interval_level": 0.8, "usage_model": m}
                for a, e, m in zip(d["arrivals"], d["expired"], d["usage_model"])
            ],
        }
    )


def stockout_rows(plan: InventoryPlan) -> pd.DataFrame:
    """``stockout``: days from today (local) to the first day usage cannot be met; 80 % band."""
    it = plan.items
    if it.empty:
        return empty_rows()
    return pd.DataFrame(
        {
            **_base(it, "stock_projection"),
            "value": it["stockout_days"].to_numpy(),
            "lower": it["stockout_lower"].to_numpy(),
            "upper": it["stockout_upper"].to_numpy(),
            "details": [
                {
                    "predicted_stockout_date": None if pd.isna(r.stockout_date) else r.stockout_date.isoformat(),
                    "confidence": round(float(r.stockout_confidence), 4),
                    "daily_usage_forecast": round(float(r.daily_usage_forecast), 4),
                    "current_stock": round(float(r.on_hand), 3),
                    "beyond_horizon": pd.isna(r.stockout_date),
                    "interval_level": 0.8,
                    "usage_model": r.usage_model,
                    "arrival_scenarios": int(r.arrival_scenarios),
                    "recorded_stock_below_zero": bool(r.recorded_stock_below_zero),
                    "alarm": bool(r.stockout_alarm),
                    "alarm_horizon_days": int(r.alarm_horizon_days),
                }
                for r in it.itertuples(index=False)
            ],
        }
    )


def reorder_rows(plan: InventoryPlan) -> pd.DataFrame:
    """``reorder``: quantity to order (item units) on ``order_by_date``; 0 when none is due."""
    it = plan.items
    if it.empty:
        return empty_rows()
    return pd.DataFrame(
        {
            **_base(it, "reorder_policy"),
            "value": it["quantity"].round(3).to_numpy(),
            "details": [
                {
                    "urgency": r.urgency,
                    "order_by_date": None if pd.isna(r.order_by_date) else r.order_by_date.isoformat(),
                    "reorder_point": round(float(r.reorder_point), 3),
                    "safety_stock": round(float(r.safety_stock), 3),
                    "eoq": round(float(r.eoq), 3),
                    "supplier_id": None if pd.isna(r.supplier_id) else int(r.supplier_id),
                    "expected_lead_time_days": round(float(r.expected_lead_time_days), 3),
                    "lead_time_sd_days": round(float(r.lead_time_sd_days), 3),
                    "inventory_position": round(float(r.position), 3),
                    "mean_daily_usage": round(float(r.mean_daily_usage), 4),
                    "manual_reorder_point": (
                        None if pd.isna(r.manual_reorder_point) else round(float(r.manual_reorder_point), 3)
                    ),
                }
                for r in it.itertuples(index=False)
            ],
        }
    )
