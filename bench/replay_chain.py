"""The replay's world built from a seeded synthetic chain: true demand, the stock, batches and
orders in transit at the first morning, the true arrivals, and the chain's own ordering."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd

from bench.replay_policies import HistoricalPolicy
from bench.replay_world import ARRIVAL_CUTOFF_HOUR, NEVER, ORDER_HOUR_UTC, World

def _day_index(t: pd.Timestamp, tz: str, start: pd.Timestamp) -> int:
    """Replay day on which stock arriving at ``t`` can be used (after 23:30 local: the next day)."""
    local = pd.Timestamp(t).tz_convert(tz)
    late = local.hour + local.minute / 60.0 >= ARRIVAL_CUTOFF_HOUR
    return int((local.tz_localize(None).normalize() - start).days) + int(late)


def morning(start: pd.Timestamp, d: int) -> pd.Timestamp:
    """The replay's morning instant of day ``d`` (UTC)."""
    return (start + pd.Timedelta(days=d)).tz_localize("UTC") + pd.Timedelta(hours=ORDER_HOUR_UTC)


def true_arrivals(truth: dict, restaurants: pd.DataFrame, start: pd.Timestamp) -> Callable[[int, int, int], int]:
    """``World.arrive`` from the generator's ground truth: each supplier's lognormal lead time
    (``true_lead_mean_days``/``true_lead_sd_days``) times its bad-spell factor at the order's
    instant (``synthetic.sim_inventory.supplier_spells``, rebuilt from the chain's seed). One draw
    per (restaurant, supplier, day), seeded by them: every policy ordering that day gets the same
    lead time (common random numbers)."""
    from synthetic.sim_inventory import spell_factor, supplier_spells

    seed = int(truth["seed"])
    sups = truth["suppliers"]
    start_us = int(pd.Timestamp(truth["window_start"]).tz_convert("UTC").value // 1000) if pd.Timestamp(
        truth["window_start"]).tzinfo else int(pd.Timestamp(truth["window_start"]).tz_localize("UTC").value // 1000)
    end_us = int(pd.Timestamp(truth["end"]).tz_localize("UTC").value // 1000)
    spells = supplier_spells(seed, len(sups), start_us, end_us)
    params = {}
    for k, s in enumerate(sups):
        mean, sd = float(s["true_lead_mean_days"]), float(s["true_lead_sd_days"])
        s2 = math.log(1 + (sd / mean) ** 2)
        params[int(s["supplier_id"])] = (k, math.log(mean) - s2 / 2, math.sqrt(s2))
    tz = restaurants.set_index("id")["timezone"].to_dict()
    cache: dict = {}

    def arrive(rid: int, sid: int, d: int) -> int:
        key = (rid, sid, d)
        if key not in cache:
            if sid not in params:
                cache[key] = d + 1
            else:
                k, mu, sg = params[sid]
                at = morning(start, d)
                day = int((start + pd.Timedelta(days=d)).toordinal())
                lead = float(np.random.default_rng([seed, 4242, rid, sid, day]).lognormal(mu, sg))
                lead *= spell_factor(spells[k], int(at.value // 1000))
                cache[key] = max(_day_index(at + pd.Timedelta(days=lead), tz[rid], start), d)
        return cache[key]

    return arrive


def true_demand(reader, truth: dict, restaurants: pd.DataFrame, items: pd.DataFrame, recipes: pd.DataFrame,
                first: pd.Timestamp, days: int) -> tuple[np.ndarray, np.ndarray]:
    """(days, n) true use per local day from ``first`` (units sold, not cancelled, x recipe x the
    planted portioning; whole units for items counted 'each') and (days, n) closed (the item's
    restaurant sold nothing that day)."""
    from features.demand import checked_zones
    from features.items import item_daily_units

    zones, _ = checked_zones(restaurants)
    t0 = first.tz_localize("UTC") - pd.Timedelta(days=2)
    t1 = (first + pd.Timedelta(days=days + 2)).tz_localize("UTC")
    sold = item_daily_units(reader, zones, t0, t1, pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1))
    sold = sold.rename(columns={"local_date": "ds"})
    sold["ds"] = pd.to_datetime(sold["ds"])
    sold = sold[(sold["ds"] >= first) & (sold["ds"] < first + pd.Timedelta(days=days))]
    port = {int(x["inventory_item_id"]): float(x["portioning"]) for x in truth.get("inventory_items", [])}
    need = sold.merge(recipes, on="menu_item_id")
    need["need"] = need["units"] * need["quantity_per_unit"] * need["inventory_item_id"].map(port).fillna(1.0)
    need = need.groupby(["ds", "inventory_item_id"])["need"].sum().unstack(fill_value=0.0)
    dates = pd.date_range(first, periods=days, freq="D")
    need = need.reindex(index=dates, columns=items["inventory_item_id"], fill_value=0.0)
    whole = (items["unit"] == "each").to_numpy()
    m = need.to_numpy(float)
    m = np.where(whole, np.rint(m), np.round(m, 3))
    open_days = sold[sold["units"] > 0].groupby("restaurant_id")["ds"].apply(set)
    closed = np.array([[dt not in open_days.get(int(r), set()) for r in items["restaurant_id"]] for dt in dates])
    return m, closed


def build_world(reader, truth: dict, restaurants: pd.DataFrame, start: pd.Timestamp, days: int,
                history_days: int = 28, lead_times: str = "mixture") -> tuple[World, pd.DataFrame, dict]:
    """The chain's world over ``days`` local days from ``start`` (naive local date): items, true
    demand, the stock, batches and orders in transit at the morning of ``start`` as the replica
    holds them, and the arrivals of new orders: ``lead_times`` "mixture" (``bench.replay_leadtimes``,
    a family the model does not assume) or "lognormal" (the generator's, ``true_arrivals``).
    Returns (world, items, ordered_at of the orders in transit)."""
    from bench.replay_leadtimes import mixture_arrivals

    from features.inventory import (
        expiring_batches,
        inventory_items,
        open_purchase_orders,
        recipe_lines,
        stock_on_hand,
    )
    from features.inventory_frames import allocate_batches

    rids = [int(r) for r in restaurants["id"]]
    items = inventory_items(reader, rids)
    recipes = recipe_lines(reader, rids)
    hist, _ = true_demand(reader, truth, restaurants, items, recipes, start - pd.Timedelta(days=history_days), history_days)
    demand, closed = true_demand(reader, truth, restaurants, items, recipes, start, days)
    as_of = morning(start, 0)
    valid_until = pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1)
    on_hand = stock_on_hand(reader, rids, as_of, valid_until)
    lots = allocate_batches(expiring_batches(reader, rids, as_of, valid_until), on_hand)
    tz = restaurants.set_index("id")["timezone"].to_dict()
    index = {int(i): k for k, i in enumerate(items["inventory_item_id"])}
    rest_of = items["restaurant_id"].to_numpy()
    perish = items["is_perishable"].to_numpy(bool)
    shelf = np.where(perish, items["shelf_life_days"].fillna(0).to_numpy(), 0).astype(int)
    lots0 = [[] for _ in range(len(items))]
    stock = on_hand.set_index("inventory_item_id")["on_hand"]
    for iid, exp, q in zip(lots["inventory_item_id"], lots["expires_at"], lots["quantity"]):
        k = index.get(int(iid))
        if k is not None and shelf[k] > 0:
            lots0[k].append((int((pd.Timestamp(exp).tz_convert(tz[int(rest_of[k])]).tz_localize(None).normalize() - start).days), float(q)))
    for iid, k in index.items():
        rest = float(stock.get(iid, 0.0)) - sum(q for _, q in lots0[k])
        if rest > 1e-9:
            lots0[k].append((NEVER, rest))
    orders = open_purchase_orders(reader, rids, as_of, valid_until)
    got = reader.frame("SELECT id, received_at FROM inventory_purchaseorder WHERE id = ANY(:ids)",
                       {"ids": [int(x) for x in orders["purchase_order_id"].unique()]}) if len(orders) else pd.DataFrame(columns=["id", "received_at"])
    got = got.set_index("id")["received_at"]
    pending0, ordered_at0 = [], {}
    for po, iid, q, at in zip(orders["purchase_order_id"], orders["inventory_item_id"], orders["quantity"], orders["ordered_at"]):
        k = index.get(int(iid))
        if k is None:
            continue
        r = got.get(int(po))
        z = tz[int(rest_of[k])]
        a = NEVER if r is None or pd.isna(r) else max(_day_index(pd.Timestamp(r), z, start), 0)
        o = int((pd.Timestamp(at).tz_convert(z).tz_localize(None).normalize() - start).days)
        pending0.append((k, float(q), o, a))
        ordered_at0[(k, o, float(q))] = pd.Timestamp(at)
    world = World(
        item_id=items["inventory_item_id"].to_numpy(), restaurant_id=rest_of,
        supplier_id=items["supplier_id"].fillna(-1).astype("int64").to_numpy(), shelf=shelf,
        unit_cost=items["unit_cost"].fillna(0).to_numpy(float), demand=demand, lots0=lots0, pending0=pending0,
        arrive=(mixture_arrivals(truth, restaurants, start, morning, ARRIVAL_CUTOFF_HOUR) if lead_times == "mixture"
                else true_arrivals(truth, restaurants, start)), closed=closed, history=hist,
        whole=(items["unit"] == "each").to_numpy(), start=start, perishable=perish,
    )
    return world, items, ordered_at0


def historical_policy(world: World, items: pd.DataFrame, truth: dict) -> HistoricalPolicy:
    """The generator's manager (``HistoricalPolicy``) with the item table's reorder point, par and
    minimum order, mean use from the history, the true mean lead time, and the planted gaps."""
    lead = {int(s["supplier_id"]): float(s["true_lead_mean_days"]) for s in truth["suppliers"]}
    D = world.demand.shape[0]
    sup = np.zeros((D, world.n), bool)
    index = {int(i): k for k, i in enumerate(world.item_id)}
    for g in truth.get("reorder_gaps", []):
        k = index.get(int(g["inventory_item_id"]))
        if k is None:
            continue
        a, b = pd.Timestamp(g["start_date"]), pd.Timestamp(g["end_date"])
        for d in range(D):
            evening = world.start + pd.Timedelta(days=d - 1)  # the manager orders the evening before
            sup[d, k] = a <= evening < b
    usage = world.history.mean(axis=0) if world.history is not None and len(world.history) else world.demand.mean(axis=0)
    return HistoricalPolicy(
        rop=items["manual_reorder_point"].fillna(0).to_numpy(float), par=items["par_level"].fillna(0).to_numpy(float),
        moq=items["min_order_quantity"].fillna(0).to_numpy(float), usage=usage,
        look=np.ceil(np.array([lead.get(int(s), 2.0) for s in world.supplier_id]) + 1).astype(int), suppressed=sup,
    )
