"""Stock projection, stockout and reorder: from usage forecasts to what to order and when.

Formulas (docs/inventory.md has the full page):

* Usage: ``models.usage`` (recipe-based or own-history daily mean and sd per item).
* Projection, day by day: arrivals of open purchase orders (ordered_at + the supplier's expected
  lead time; overdue orders arrive today) are added, usage is taken first-expiring-first, then
  batches expiring that day are lost. ``stock_daily`` is the end-of-day stock.
* Stockout date: the median day usage cannot be met. P(out by day d) is the share of usage
  paths (daily usage Gamma with the forecast's mean and sd, independent days) x open-order
  arrival scenarios whose first-expiring-first projection has unmet usage by day d
  (``simulate_p_out``). ``confidence`` = P(the stockout falls within +/- 1 day of the predicted
  date) = P(out by D+1) - P(out by D-2). (``Projection.p_out_by``, a Normal on the mean path's
  net stock, is kept only as the fallback of ``stockout_summary``.)
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
from models.usage import usage_forecast

Z80 = 1.2815515655446004


# An open order this far past its expected lead time is not late, it is a purchase order nobody
# closed in the RMS (the goods came and were booked as receipts, or never came): counting it as
# arriving tomorrow would hide every run-out of its items. Past max(STALE_ORDER_MIN_DAYS,
# STALE_ORDER_LEAD_MULTIPLE x the supplier's expected lead time) since it was placed.
STALE_ORDER_MIN_DAYS = 14.0
STALE_ORDER_LEAD_MULTIPLE = 4.0


def stale_orders(orders: pd.DataFrame, lead: pd.DataFrame, as_of: pd.Timestamp) -> pd.Series:
    """True for open purchase-order lines too old to be still on their way.

    Args:
        orders: ``features.inventory.open_purchase_orders``.
        lead: ``SupplierLeadTime.estimates_`` (supplier_id, expected_days); a supplier without an
            estimate is judged on the order's own ``expected_at``, else on the minimum alone.
        as_of: the run's instant (UTC).
    Returns a boolean Series on ``orders``' index.
    """
    if orders.empty:
        return pd.Series(False, index=orders.index)
    estimate = lead.set_index("supplier_id")["expected_days"] if len(lead) else pd.Series(dtype=float)
    expected = orders["supplier_id"].map(estimate)
    own = (orders["expected_at"] - orders["ordered_at"]) / pd.Timedelta(days=1)
    expected = expected.fillna(own).fillna(0.0).clip(lower=0.0)
    elapsed = (as_of - orders["ordered_at"]) / pd.Timedelta(days=1)
    return elapsed > np.maximum(STALE_ORDER_MIN_DAYS, STALE_ORDER_LEAD_MULTIPLE * expected)


def arrival_days(orders: pd.DataFrame, lead: pd.DataFrame, restaurants: pd.DataFrame, items: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Local arrival date of each open order line: ordered_at + the supplier's expected lead time.

    Overdue orders (expected before as_of) are expected today. Without a lead-time estimate the
    order's own expected_at is used, else tomorrow. Returns inventory_item_id, ds, quantity.
    """
    if orders.empty:
        return pd.DataFrame({"inventory_item_id": pd.Series(dtype="int64"), "ds": pd.Series(dtype="datetime64[ns]"), "quantity": pd.Series(dtype=float)})
    o = orders[orders["inventory_item_id"].isin(items["inventory_item_id"])]
    o = o.merge(lead[["supplier_id", "expected_days"]], on="supplier_id", how="left")
    eta = o["ordered_at"] + pd.to_timedelta(o["expected_days"], unit="D")
    eta = eta.fillna(o["expected_at"]).fillna(as_of + pd.Timedelta(days=1))
    eta = eta.where(eta > as_of, as_of)
    tz = o["inventory_item_id"].map(items.set_index("inventory_item_id")["restaurant_id"]).map(
        restaurants.set_index("id")["timezone"]
    )
    ds = [pd.Timestamp(t).tz_convert(z).tz_localize(None).normalize() for t, z in zip(eta, tz)]
    return pd.DataFrame({"inventory_item_id": o["inventory_item_id"].to_numpy(), "ds": ds, "quantity": o["quantity"].to_numpy()})


def arrival_scenarios(
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
    """Where open orders may land: per item, weighted arrival vectors (quantity per local day).

    Each open purchase order's lead time is lognormal with the supplier's expected lead time and
    sd (``models.lead_time``), conditioned on not having arrived by ``as_of`` (an order already
    late is more likely to come tomorrow than at its promised time). It is discretised on
    ``grid`` equally likely quantiles (no random draws: the same input gives the same output).
    An arrival after the restaurant's ``midpoint_hour`` (half the day's use already recorded)
    feeds the next day. Orders of one item combine as independent; more than ``max_scenarios``
    combinations are thinned to that many equally weighted joint quantiles.

    Args:
        orders: ``features.inventory.open_purchase_orders`` (quantity in item units).
        lead: ``SupplierLeadTime.estimates_`` (expected_days, sd_days).
        tz_of_item, today_of_item: per item id, its restaurant's zone and local today.
        midpoint_hour: per item id, its restaurant's usage midpoint (local hour, 0-24).
        horizon: days projected.
    Returns:
        item id -> [(weight, arrivals per day)]; items without open orders are absent.
    """
    from scipy.stats import lognorm

    out: dict[int, list[tuple[float, np.ndarray]]] = {}
    if orders.empty:
        return out
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
            mean, sd = first["expected_days"], first["sd_days"]
            elapsed = max((as_of - first["ordered_at"]).total_seconds() / 86400.0, 0.0)
            if pd.notna(mean) and mean > 0 and pd.notna(sd) and sd > 1e-6:
                s2 = math.log(1 + (sd / mean) ** 2)
                dist = lognorm(s=math.sqrt(s2), scale=math.exp(math.log(mean) - s2 / 2))
                lo = float(dist.cdf(elapsed))
                lead_days = dist.ppf(np.minimum(lo + (1 - lo) * u, 1 - 1e-9)) if lo < 1 - 1e-9 else np.full(grid, elapsed)
            else:
                eta = first["ordered_at"] + pd.Timedelta(days=float(mean)) if pd.notna(mean) else first["expected_at"]
                eta = eta if pd.notna(eta) else as_of + pd.Timedelta(days=1)
                lead_days = np.full(grid, max((eta - first["ordered_at"]).total_seconds() / 86400.0, elapsed))
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


@dataclass
class Projection:
    end_stock: np.ndarray  # end-of-day stock (mean path), item units
    net: np.ndarray  # end stock minus cumulative unmet usage (can be negative)
    sd: np.ndarray  # sd of cumulative usage up to each day
    shortfall: np.ndarray  # unmet usage per day
    expired: np.ndarray  # stock lost to expiry per day
    on_order_after: np.ndarray  # ordered stock still to arrive after each day
    on_order_total: float = 0.0  # ordered stock not yet arrived at as_of

    def p_out_by(self) -> np.ndarray:
        """P(stock has run out by the end of each day).

        Without any usage uncertainty (no usage at all) it is certain: out only with unmet usage;
        an empty shelf nobody draws from has not run out.
        """
        sd = np.where(self.sd > 0, self.sd, 1.0)
        p = np.where(self.sd > 0, norm.cdf(-self.net / sd), (self.shortfall > 1e-12).astype(float))
        return np.maximum.accumulate(np.where(self.shortfall > 0, np.maximum(p, 0.5), p))


def project_item(
    on_hand: float,
    lots: list[tuple[int, float]],
    usage: np.ndarray,
    usage_sd: np.ndarray,
    arrivals: np.ndarray,
    shelf_life_days: float | None,
) -> Projection:
    """Day-by-day stock of one item.

    Args:
        on_hand: stock at as_of (item units).
        lots: (day index on which it expires, quantity) for stock that expires; the rest of
            ``on_hand`` does not expire.
        usage, usage_sd: expected usage and its sd per day (item units).
        arrivals: quantity arriving per day.
        shelf_life_days: shelf life of arriving stock (None: it does not expire).
    """
    n = len(usage)
    lots = sorted([[int(d), float(q)] for d, q in lots if q > 0])
    in_lots = sum(q for _, q in lots)
    free = max(on_hand - in_lots, 0.0)
    end = np.zeros(n)
    short = np.zeros(n)
    expired = np.zeros(n)
    for d in range(n):
        if arrivals[d] > 0:
            if shelf_life_days and shelf_life_days > 0:
                lots.append([d + int(shelf_life_days), float(arrivals[d])])
                lots.sort()
            else:
                free += arrivals[d]
        need = usage[d]
        while need > 1e-12 and lots:
            take = min(lots[0][1], need)
            lots[0][1] -= take
            need -= take
            if lots[0][1] <= 1e-12:
                lots.pop(0)
        take = min(free, need)
        free -= take
        need -= take
        short[d] = need
        while lots and lots[0][0] <= d:
            expired[d] += lots.pop(0)[1]
        end[d] = free + sum(q for _, q in lots)
    arrived_after = np.concatenate([np.cumsum(arrivals[::-1])[::-1][1:], [0.0]])
    return Projection(
        end_stock=end,
        net=end - np.cumsum(short),
        sd=np.sqrt(np.cumsum(np.asarray(usage_sd, dtype=float) ** 2)),
        shortfall=short,
        expired=expired,
        on_order_after=arrived_after,
        on_order_total=float(np.sum(arrivals)),
    )


def simulate_p_out(
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
    """P(the item has run out by the end of each day), by projecting usage paths, not the mean path.

    Daily usage is drawn Gamma with the forecast's mean and sd (non-negative and right-skewed:
    an overdispersed slow mover uses nothing on most days and a lot on a few, so its typical
    cumulative use is below the mean), independent across days, and every path is projected
    with the same first-expiring-first rule as ``project_item``. That matters for perishables:
    a busy day uses stock that would otherwise have expired, so extra use before an expiry costs
    no stock, while a quiet day lets more expire -- a Normal on the mean path's net stock counts
    every unit of extra use as lost stock and overstated their run-outs. The usage draws are
    shared by every arrival scenario (common random numbers); the seed makes a run repeatable.

    Args:
        scenarios: [(weight, arrivals per day)] from ``arrival_scenarios`` (or one scenario with
            the expected arrivals); weights sum to 1.
        level_cv: sd (relative) of a factor shared by all days of a path: the forecast level's
            own uncertainty (0, the default: days independent; a pooled 0.1 from the backtest's
            7-day errors was tried in the decision replay and did not improve the calibration).
    Returns:
        P(out by day d) for each day (non-decreasing): the weighted share of (scenario, usage
        path) pairs whose usage could not be met on some day <= d.
    """
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


def stockout_summary(proj: Projection, today: pd.Timestamp, p_out: np.ndarray | None = None) -> dict:
    """Predicted stockout day and its uncertainty (see module docstring).

    Args:
        p_out: P(out by the end of each day), e.g. mixed over arrival scenarios; default the
            projection's own (arrivals at their expected time).
    The predicted day is the first whose P(out) reaches 1/2: the median stockout day.
    """
    n = len(proj.end_stock)
    p = proj.p_out_by() if p_out is None else np.maximum.accumulate(np.asarray(p_out, dtype=float))
    hit = np.flatnonzero(p >= 0.5 - 1e-12)
    lo = np.flatnonzero(p >= 0.1)
    hi = np.flatnonzero(p >= 0.9)
    lower = float(lo[0]) if len(lo) else float(n)
    upper = float(hi[0]) if len(hi) else float(n)
    if len(hit):
        d = int(hit[0])
        before = p[d - 2] if d >= 2 else 0.0
        after = p[min(d + 1, n - 1)]
        return {
            "days": float(d),
            "date": (today + pd.Timedelta(days=d)).date(),
            "confidence": float(np.clip(after - before, 0, 1)),
            "lower": min(lower, d),
            "upper": max(upper, d),
        }
    return {"days": float(n), "date": None, "confidence": float(1 - p[-1]) if n else 1.0, "lower": lower, "upper": float(n)}


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
