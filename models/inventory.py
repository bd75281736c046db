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
    leads = _supplier_leads(lead)
    # one pass over the shard's frames instead of a filter of each per item (most of a shard's
    # time went to pandas slicing and building a small frame per item)
    rows = _item_rows(use)
    arrivals_of = _pairs_by_item(arrivals, "ds", "quantity")
    lots_of = _pairs_by_item(features.lots, "expires_at", "quantity")
    ds_all, mean_all, sd_all = pd.DatetimeIndex(use["ds"]), use["mean"].to_numpy(), use["sd"].to_numpy()
    enough_all, model_all = use["enough_history"].to_numpy(), use["usage_model"].to_numpy()
    daily_parts, decisions = [], []
    for item in items.itertuples(index=False):
        iid = int(item.inventory_item_id)
        if iid not in rows:
            continue
        start, stop = rows[iid]
        days = ds_all[start:stop]
        mean, sd = mean_all[start:stop].copy(), sd_all[start:stop].copy()
        arr = _arrivals(arrivals_of.get(iid, ()), days)
        lots = _lots(lots_of.get(iid, ()), item, tz_of, days[0])
        shelf = item.shelf_life_days if item.is_perishable and pd.notna(item.shelf_life_days) else None
        stock0 = float(on_hand.get(iid, 0.0))
        L0, sL = leads(item.supplier_id)
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
        method = "model" if bool(enough_all[start]) else "rule"
        usage_model = str(model_all[start])
        daily_parts.append((item, start, min(settings.horizon_days, len(days)), proj, arr, method))
        alarm = stockout_alarm(p_mix, L, settings)
        decisions.append(_decision(item, mean, usage_model, days[0], proj, p_mix, plan, alarm, (L, sL), method, {
            "on_hand": stock0, "recorded_stock_below_zero": iid in below_zero,
            "arrival_scenarios": len(scenarios.get(iid, ())),
        }))
    daily = _daily_frame(use, daily_parts) if daily_parts else pd.DataFrame()
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


def _supplier_leads(lead: pd.DataFrame):
    """``supplier_lead`` for every item of a shard: the estimates indexed once, not per item."""
    by = {}
    if len(lead):
        for sid, mean, sd in zip(lead["supplier_id"], lead["expected_days"], lead["sd_days"]):
            if int(sid) not in by and np.isfinite(mean):
                by[int(sid)] = (float(mean), float(sd))
    fallback = supplier_lead(lead, None)

    def leads(supplier_id: float | None) -> tuple[float, float]:
        return by.get(int(supplier_id), fallback) if pd.notna(supplier_id) else fallback

    return leads


def _item_rows(use: pd.DataFrame) -> dict[int, tuple[int, int]]:
    """Per item id, the [start, stop) rows of its days in ``use`` (sorted by item)."""
    ids = use["inventory_item_id"].to_numpy()
    if not len(ids):
        return {}
    cut = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    starts, stops = np.concatenate([[0], cut]), np.concatenate([cut, [len(ids)]])
    return {int(ids[s]): (int(s), int(e)) for s, e in zip(starts, stops)}


def _pairs_by_item(frame: pd.DataFrame, first: str, second: str) -> dict[int, list[tuple]]:
    """Per item id, its rows' (``first``, ``second``) in the frame's order."""
    out: dict[int, list[tuple]] = {}
    for iid, a, b in zip(frame["inventory_item_id"].tolist(), frame[first], frame[second]):
        out.setdefault(int(iid), []).append((a, b))
    return out


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


def _arrivals(pairs, days: pd.DatetimeIndex) -> np.ndarray:
    """Expected arrivals per local day of ``days`` (overdue ones today), from (ds, quantity) pairs."""
    arr = np.zeros(len(days))
    for ds, q in pairs:
        k = max(int((pd.Timestamp(ds) - days[0]).days), 0)
        if k < len(arr):
            arr[k] += q
    return arr


def _lots(pairs, item, tz_of: pd.Series, today: pd.Timestamp) -> list[tuple[int, float]]:
    """A perishable's batches as (local day index of expiry, quantity), from (expires_at, quantity) pairs."""
    if not item.is_perishable:
        return []
    tz = tz_of[item.restaurant_id]
    return [((pd.Timestamp(exp).tz_convert(tz).tz_localize(None).normalize() - today).days, q) for exp, q in pairs]


def _daily_frame(use: pd.DataFrame, parts: list) -> pd.DataFrame:
    """The ``stock_daily`` inputs of every item, its first ``h`` days: ``parts`` holds per item
    (item, its first row in ``use``, h, projection, arrivals, method)."""
    take = np.concatenate([np.arange(start, start + h) for _, start, h, *_ in parts])
    h_of = np.array([h for _, _, h, *_ in parts])
    starts = [start for _, start, *_ in parts]

    def per_item(values, dtype) -> np.ndarray:
        return np.repeat(np.array(values, dtype=dtype), h_of)

    def per_day(field) -> np.ndarray:
        return np.concatenate([field(proj, arr)[:h] for _, _, h, proj, arr, _ in parts])

    stock, net, sd = per_day(lambda p, a: p.end_stock), per_day(lambda p, a: p.net), per_day(lambda p, a: p.sd)
    return pd.DataFrame(
        {
            "inventory_item_id": per_item([int(it.inventory_item_id) for it, *_ in parts], "int64"),
            "restaurant_id": per_item([int(it.restaurant_id) for it, *_ in parts], "int64"),
            "ds": pd.DatetimeIndex(use["ds"])[take],
            "target_start": use["target_start"].to_numpy()[take],
            "stock": stock,
            "lower": np.minimum(np.maximum(net - Z80 * sd, 0), stock),
            "upper": np.maximum(np.maximum(net + Z80 * sd, 0), stock),
            "arrivals": per_day(lambda p, a: a),
            "expired": per_day(lambda p, a: p.expired),
            "method": per_item([m for *_, m in parts], object),
            "usage_model": per_item([str(m) for m in use["usage_model"].to_numpy()[starts]], object),
        }
    )


def _decision(item, mean: np.ndarray, usage_model: str, today: pd.Timestamp, proj, p_mix, plan: dict,
              alarm: tuple[bool, int], lead: tuple[float, float], method: str, extra: dict) -> dict:
    """The item's ``stockout`` and ``reorder`` fields (``mean``: its daily usage forecast)."""
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
        "usage_model": usage_model,
        "arrival_scenarios": extra["arrival_scenarios"],
        "p_out": p_mix,
        **plan,
    }
