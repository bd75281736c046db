"""The stock unit's faster paths give the same numbers as the code they replaced (issue 28, "every
unit pays its way"): ``simulate_p_out`` on the paths not yet out, ``arrival_scenarios`` with its
timestamps in one pass per zone and ``plan_inventory`` in one pass over the shard's frames, against
the code before them, kept here as the reference.

The reference is the code as it stood at 110190d, verbatim but for names and docstrings.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models.stock_projection import Z80

AS_OF = "2026-10-31T04:15:00Z"


# --------------------------------------------------------------------------- the reference


def reference_simulate_p_out(
    on_hand: float,
    lots: list[tuple[int, float]],
    usage: np.ndarray,
    usage_sd: np.ndarray,
    scenarios: list[tuple[float, np.ndarray]],
    shelf_life_days: float | None,
    *,
    seed: int = 0,
    paths: int = 4000,
    min_draws: int = 50,
    level_cv: float = 0.0,
) -> np.ndarray:
    """``models.stock_projection.simulate_p_out`` before issue 28 (every path, every day)."""
    usage = np.asarray(usage, dtype=float)
    sd = np.asarray(usage_sd, dtype=float)
    n = len(usage)
    draws = max(min_draws, paths // max(len(scenarios), 1))
    rng = np.random.default_rng(seed)
    shape = np.where((usage > 0) & (sd > 0), (usage / np.where(sd > 0, sd, 1.0)) ** 2, 0.0)
    scale = np.where(shape > 0, sd**2 / np.where(usage > 0, usage, 1.0), 0.0)
    u = np.where(shape > 0, rng.gamma(np.where(shape > 0, shape, 1.0), np.where(scale > 0, scale, 1.0), size=(draws, n)), usage)
    if level_cv > 0:
        # the forecast's level is uncertain too: a path's days share one factor (mean 1), so a
        # busy week is busy every day instead of averaging out (``models.usage.level_uncertainty``)
        s_l = math.sqrt(math.log(1 + level_cv**2))
        u = u * rng.lognormal(-s_l**2 / 2, s_l, size=(draws, 1))
    S = len(scenarios)
    use = np.tile(u, (S, 1))  # (S * draws, n), scenario-major
    weight = np.repeat(np.array([w for w, _ in scenarios], dtype=float) / draws, draws)
    arrivals = np.repeat(np.stack([np.asarray(a, dtype=float)[:n] for _, a in scenarios]), draws, axis=0)
    P = S * draws
    expiring = shelf_life_days is not None and shelf_life_days > 0
    cols = sorted([[int(d), np.full(P, float(q))] for d, q in lots if q > 0], key=lambda c: c[0])
    free = np.full(P, float(max(on_hand - sum(float(q) for _, q in lots if q > 0), 0.0)))
    out_day = np.full(P, n)
    for d in range(n):
        arr = arrivals[:, d]
        if arr.any():
            if expiring:
                cols.append([d + int(shelf_life_days), arr.copy()])
                cols.sort(key=lambda c: c[0])
            else:
                free = free + arr
        need = use[:, d].copy()
        for c in cols:
            take = np.minimum(c[1], need)
            c[1] -= take
            need -= take
        take = np.minimum(free, need)
        free -= take
        need -= take
        out_day = np.where((out_day == n) & (need > 1e-9), d, out_day)
        cols = [c for c in cols if c[0] > d]
    p = np.array([weight[out_day <= d].sum() for d in range(n)])
    return np.clip(np.maximum.accumulate(p), 0.0, 1.0)


def reference_arrival_scenarios(
    orders: pd.DataFrame,
    lead: pd.DataFrame,
    tz_of_item: dict[int, str],
    today_of_item: dict[int, pd.Timestamp],
    midpoint_hour: dict[int, float],
    as_of: pd.Timestamp,
    horizon: int,
    grid: int = 200,
    max_scenarios: int = 64,
) -> dict[int, list[tuple[float, np.ndarray]]]:
    """``models.stock_projection.arrival_scenarios`` before issue 28 (pandas per order)."""
    from models.lead_time import supplier_quantiles, supplier_shifts
    from models.stock_projection import _lead_draws

    out: dict[int, list[tuple[float, np.ndarray]]] = {}
    if orders.empty:
        return out
    shapes, shifts = supplier_quantiles(lead), supplier_shifts(lead)
    o = orders.merge(lead[["supplier_id", "expected_days", "sd_days"]], on="supplier_id", how="left")
    u = (np.arange(grid) + 0.5) / grid
    for iid, lines in o.groupby("inventory_item_id"):
        iid = int(iid)
        if iid not in tz_of_item:
            continue
        tz, today, mid = tz_of_item[iid], today_of_item[iid], midpoint_hour.get(iid, 23.0)
        per_po = []
        for _, po in lines.groupby("purchase_order_id"):
            first = po.iloc[0]
            qty = float(po["quantity"].sum())
            elapsed = max((as_of - first["ordered_at"]).total_seconds() / 86400.0, 0.0)
            placed_weekday = first["ordered_at"].tz_convert(tz).weekday()
            shift = shifts[int(first["supplier_id"])][placed_weekday] if pd.notna(first["supplier_id"]) and int(
                first["supplier_id"]) in shifts else 0.0
            lead_days = _lead_draws(first, shapes, elapsed, u, as_of, shift)
            at = (first["ordered_at"] + pd.to_timedelta(lead_days, unit="D")).tz_convert(tz).tz_localize(None)
            day = (at.normalize() - today).days.to_numpy() + (at.hour + at.minute / 60.0 >= mid).astype(int)
            per_po.append((np.maximum(day, 0), qty))
        combos = 1
        for day, _ in per_po:
            combos *= len(np.unique(day))
        if combos <= max_scenarios:
            scen = [(1.0, np.zeros(horizon))]
            for day, qty in per_po:
                vals, counts = np.unique(day, return_counts=True)
                nxt = []
                for w, arr in scen:
                    for v, c in zip(vals, counts):
                        a = arr.copy()
                        if v < horizon:
                            a[v] += qty
                        nxt.append((w * c / grid, a))
                scen = nxt
        else:
            rng = np.random.default_rng(iid)
            scen = []
            picks = [rng.permutation(grid)[:max_scenarios] for _ in per_po]
            for k in range(max_scenarios):
                a = np.zeros(horizon)
                for (day, qty), pk in zip(per_po, picks):
                    if day[pk[k]] < horizon:
                        a[day[pk[k]]] += qty
                scen.append((1.0 / max_scenarios, a))
        out[iid] = scen
    return out


def reference_plan_inventory(features, settings, restaurants: pd.DataFrame):
    """``models.inventory.plan_inventory`` before issue 28 (a filter and a frame per item)."""
    from models.lead_time import SupplierLeadTime, lead_draws_now, supplier_quantiles, supplier_shifts, weekday_shift
    from models.reorder import decide_item, stockout_alarm
    from models.stock_projection import arrival_days, stale_orders
    from models.inventory import _scenarios, _review, supplier_lead
    from models.inventory_rows import InventoryPlan
    from models.usage import usage_forecast

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
        arr = _ref_arrivals(arrivals[arrivals["inventory_item_id"] == iid], days)
        lots = _ref_lots(features.lots[features.lots["inventory_item_id"] == iid], item, tz_of, days[0])
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
        daily_frames.append(_ref_daily_frame(item, u, proj, arr, method, min(settings.horizon_days, len(days))))
        alarm = stockout_alarm(p_mix, L, settings)
        decisions.append(_ref_decision(item, u, days[0], proj, p_mix, plan, alarm, (L, sL), method, {
            "on_hand": stock0, "recorded_stock_below_zero": iid in below_zero,
            "arrival_scenarios": len(scenarios.get(iid, ())),
        }))
    daily = pd.concat(daily_frames, ignore_index=True) if daily_frames else pd.DataFrame()
    return InventoryPlan(daily, pd.DataFrame(decisions), lead, int(stale.sum()))


def _ref_arrivals(a: pd.DataFrame, days: pd.DatetimeIndex) -> np.ndarray:
    """Expected arrivals per local day of ``days`` (overdue ones today)."""
    arr = np.zeros(len(days))
    for ds, q in zip(a["ds"], a["quantity"]):
        k = max(int((pd.Timestamp(ds) - days[0]).days), 0)
        if k < len(arr):
            arr[k] += q
    return arr


def _ref_lots(item_lots: pd.DataFrame, item, tz_of: pd.Series, today: pd.Timestamp) -> list[tuple[int, float]]:
    """A perishable's batches as (local day index of expiry, quantity)."""
    if not item.is_perishable:
        return []
    tz = tz_of[item.restaurant_id]
    return [((pd.Timestamp(exp).tz_convert(tz).tz_localize(None).normalize() - today).days, q)
            for exp, q in zip(item_lots["expires_at"], item_lots["quantity"])]


def _ref_daily_frame(item, u: pd.DataFrame, proj, arr: np.ndarray, method: str, h: int) -> pd.DataFrame:
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


def _ref_decision(item, u: pd.DataFrame, today: pd.Timestamp, proj, p_mix, plan: dict, alarm: tuple[bool, int],
              lead: tuple[float, float], method: str, extra: dict) -> dict:
    """The item's ``stockout`` and ``reorder`` fields."""
    mean = u["mean"].to_numpy()
    from models.stock_projection import stockout_summary

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


# --------------------------------------------------------------------------- the comparisons


def _cases():
    """Items as the plan hands them to the simulation: lots or none, perishable or not, one or many
    arrival scenarios (some arriving after the stock ran out), usage without spread on some days,
    a shared level factor, items that never run out and items out on day 0."""
    rng = np.random.default_rng(28)
    for k in range(60):
        n = int(rng.choice([1, 5, 30, 60]))
        level = float(rng.choice([0.0, 0.3, 2.0, 12.0]))
        usage = level * rng.uniform(0.5, 1.5, n)
        cv = float(rng.choice([0.0, 0.2, 1.0, 1.9]))
        sd = usage * cv
        if k % 7 == 3:
            usage[rng.integers(0, n)] = 0.0  # a closed day
        lots = [(int(rng.integers(-1, n + 2)), float(rng.choice([0.0, rng.uniform(0, 40)])))
                for _ in range(int(rng.integers(0, 5)))]
        on_hand = float(sum(q for _, q in lots) + rng.choice([0.0, rng.uniform(0, 80)]))
        S = int(rng.choice([1, 1, 3, 7, 64]))
        scenarios = []
        for _ in range(S):
            arr = np.zeros(n)
            for _ in range(int(rng.integers(0, 3))):
                arr[rng.integers(0, n)] += float(rng.uniform(1, 30))
            scenarios.append((1.0 / S, arr))
        shelf = [None, 0.0, 1.0, 3.0, 10.0][k % 5]
        yield dict(on_hand=on_hand, lots=lots, usage=usage, usage_sd=sd, scenarios=scenarios,
                   shelf_life_days=shelf, seed=k, paths=int(rng.choice([200, 4000])),
                   level_cv=0.1 if k % 9 == 4 else 0.0)


def test_simulated_run_out_is_the_same_as_over_every_path_and_day():
    from models.stock_projection import simulate_p_out

    compared = ran_out = 0
    for case in _cases():
        args = (case.pop("on_hand"), case.pop("lots"), case.pop("usage"), case.pop("usage_sd"),
                case.pop("scenarios"), case.pop("shelf_life_days"))
        new, old = simulate_p_out(*args, **case), reference_simulate_p_out(*args, **case)
        assert np.array_equal(new, old), (case, new, old)
        compared += 1
        ran_out += bool(len(old) and 0 < old[-1])
    # the cases reach both ends: items that never run out, and ones that do on some paths
    assert compared == 60 and 10 < ran_out < 60


def test_the_shard_plan_is_the_same_as_item_by_item(seeded_replica, monkeypatch):
    """The whole shard plan (the usage-path simulation included, against its reference too) on the
    seeded chain: every stock_daily, stockout and reorder figure equal, P(out) paths too."""
    import models.inventory
    import models.reorder
    from bench.inventory import _scope
    from core.replica import ReplicaReader
    from features.inventory import inventory_features
    from features.restaurants import load_restaurants
    from models.inventory import plan_inventory
    from models.inventory_rows import reorder_rows, stock_daily_rows, stockout_rows
    from worker import db
    from worker.settings import get_settings

    reader = ReplicaReader(db.replica_engine())
    restaurants = load_restaurants(reader).restaurants.reset_index(drop=True)
    settings = get_settings().inventory
    features = inventory_features(reader, _scope(restaurants, pd.Timestamp(AS_OF)), settings)
    new = plan_inventory(features, settings, restaurants)
    monkeypatch.setattr(models.reorder, "simulate_p_out", reference_simulate_p_out)
    monkeypatch.setattr(models.inventory, "arrival_scenarios", reference_arrival_scenarios)
    old = reference_plan_inventory(features, settings, restaurants)

    assert len(new.items) > 20 and len(new.daily) == len(new.items) * settings.horizon_days
    assert new.items["p_out"].map(lambda p: p[-1]).between(0.01, 0.99).any()  # some items may run out
    assert (new.items["arrival_scenarios"] > 1).sum() >= 3  # open orders with uncertain arrival days
    pd.testing.assert_frame_equal(new.daily, old.daily, check_exact=True)
    assert all(np.array_equal(a, b) for a, b in zip(new.items["p_out"], old.items["p_out"]))
    pd.testing.assert_frame_equal(new.items.drop(columns="p_out"), old.items.drop(columns="p_out"), check_exact=True)
    pd.testing.assert_frame_equal(new.lead, old.lead, check_exact=True)
    for rows in (stock_daily_rows, stockout_rows, reorder_rows):
        pd.testing.assert_frame_equal(rows(new), rows(old), check_exact=True)


def test_units_sold_from_the_kept_aggregates_give_the_features_of_a_full_read(replica_engine, predictions_engine):
    """The stock features take the menu items' units per day from the demand types' kept
    aggregates: on the nights after the first they are the frames a replica read gives."""
    import dataclasses
    import tempfile
    from pathlib import Path

    from core.replica import ReplicaReader
    from core.settings import ForecastSettings
    from core.units import Scope
    from features.aggregate_cache import trusted_days
    from features.demand import checked_zones
    from features.inventory import inventory_features
    from features.restaurants import load_restaurants
    from worker.aggregates import AggregateKeeper
    from worker.settings import get_settings

    reader = ReplicaReader(replica_engine)
    keeper = AggregateKeeper(predictions_engine)
    keeper.forget()
    settings = get_settings().inventory
    try:
        for night in (2, 1, 0):
            as_of = pd.Timestamp(AS_OF) - pd.Timedelta(days=night)
            scope = Scope(run_id="00000000-0000-0000-0000-0000000000e8", schedule="daily", as_of=as_of,
                          restaurants=load_restaurants(reader).restaurants, forecast=ForecastSettings(),
                          model_store=Path(tempfile.mkdtemp(prefix="stock-kept-")),
                          valid_until=pd.Timestamp.now(tz="UTC").to_pydatetime(), inventory=settings)
            full = inventory_features(reader, scope, settings)
            kept = inventory_features(reader, dataclasses.replace(scope, aggregates=keeper), settings)
            assert len(kept.menu_units) > 1000
            for part in ("menu_units", "usage", "items", "on_hand", "lots", "open_orders"):
                pd.testing.assert_frame_equal(getattr(kept, part), getattr(full, part), check_exact=True, obj=part)
        # the last night took most of its units from the kept days
        zones, _ = checked_zones(scope.restaurants)
        start = pd.Timestamp(AS_OF) - pd.Timedelta(days=settings.usage_history_days + 2)
        kept_days = trusted_days("items", reader, keeper, zones, start, pd.Timestamp(AS_OF), 7)
        assert len(kept_days) > (settings.usage_history_days - 10) * len(zones)
    finally:
        keeper.forget()
