"""Stock projection and run-out risk: where each item's stock goes day by day, and how likely it
is to run out by each day (docs/inventory.md, "Stock projection" and "Stockout").

* Projection, day by day: arrivals of open purchase orders (ordered_at + the supplier's expected
  lead time; overdue orders arrive today) are added, usage is taken first-expiring-first, then
  batches expiring that day are lost. ``stock_daily`` is the end-of-day stock.
* Stockout date: the median day usage cannot be met. P(out by day d) is the share of usage
  paths (daily usage Gamma with the forecast's mean and sd, independent days) x open-order
  arrival scenarios whose first-expiring-first projection has unmet usage by day d
  (``simulate_p_out``). ``confidence`` = P(the stockout falls within +/- 1 day of the predicted
  date) = P(out by D+1) - P(out by D-2). (``Projection.p_out_by``, a Normal on the mean path's
  net stock, is kept only as the fallback of ``stockout_summary``.)

Apart from ``models.reorder`` (the decisions taken on a projection: reorder, alarm) because
the replay bench and the decisions use the projection on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

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

    Each open purchase order's lead time comes from the supplier's delivery history
    (``models.lead_time``: its quantiles shrunk to the chain's, an exponential tail, the shift of
    the weekday it was placed on; a lognormal with the expected lead time and sd for estimates
    without them), conditioned on not having arrived by ``as_of`` (an order already late is
    more likely to come soon than at its usual time; one older than any seen waits the tail). It is discretised on
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
    from models.lead_time import supplier_quantiles, supplier_shifts

    out: dict[int, list[tuple[float, np.ndarray]]] = {}
    if orders.empty:
        return out
    shapes, shifts = supplier_quantiles(lead), supplier_shifts(lead)
    o = orders.merge(lead[["supplier_id", "expected_days", "sd_days"]], on="supplier_id", how="left")
    u = (np.arange(grid) + 0.5) / grid
    lines = _order_lines(o)
    # the orders' lead-time draws first, then their local arrival days in one pass per time zone
    # (the same element-wise timestamp arithmetic as per order, without pandas' cost per order)
    placed: dict[int, list] = {}
    for iid, first, qty in lines:
        if iid not in tz_of_item:
            continue
        tz = tz_of_item[iid]
        elapsed = max((as_of - first["ordered_at"]).total_seconds() / 86400.0, 0.0)
        placed_weekday = first["ordered_at"].tz_convert(tz).weekday()
        sid = first["supplier_id"]
        shift = shifts[int(sid)][placed_weekday] if pd.notna(sid) and int(sid) in shifts else 0.0
        placed.setdefault(iid, []).append((first["ordered_at"], _lead_draws(first, shapes, elapsed, u, as_of, shift), qty))
    days_of = _arrival_days_by_zone(placed, tz_of_item, today_of_item, midpoint_hour)
    for iid, pos in placed.items():
        per_po = [(np.maximum(day, 0), qty) for day, (_, _, qty) in zip(days_of[iid], pos)]
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


def _order_lines(o: pd.DataFrame) -> list[tuple[int, dict, float]]:
    """Per (item, purchase order), in item then order id order: the item id, the order's first
    line (as a dict of its fields) and the quantity of all its lines of that item."""
    if o.empty:
        return []
    iids, pos = o["inventory_item_id"].to_numpy(), o["purchase_order_id"].to_numpy()
    order = np.lexsort((pos, iids))  # stable: the lines of one (item, order) keep their order
    cut = np.flatnonzero((iids[order][1:] != iids[order][:-1]) | (pos[order][1:] != pos[order][:-1])) + 1
    fields = {c: o[c].tolist() if c in o.columns else [pd.NaT] * len(o)  # expected_at: read only without a lead time
              for c in ("supplier_id", "expected_days", "sd_days", "ordered_at", "expected_at")}
    quantity = o["quantity"].to_numpy(dtype=float)
    out = []
    for rows in np.split(order, cut):
        first = int(rows[0])
        qty = float(quantity[first]) if len(rows) == 1 else float(pd.Series(quantity[rows]).sum())
        out.append((int(iids[first]), {c: v[first] for c, v in fields.items()}, qty))
    return out


def _arrival_days_by_zone(placed: dict[int, list], tz_of_item: dict[int, str], today_of_item: dict[int, pd.Timestamp],
                          midpoint_hour: dict[int, float]) -> dict[int, list[np.ndarray]]:
    """Per item, each open order's local arrival day index at its lead-time draws: placed + lead,
    in the restaurant's zone, counted from its local today, the next day after the usage midpoint."""
    by_zone: dict[str, list[int]] = {}
    for iid in placed:
        by_zone.setdefault(tz_of_item[iid], []).append(iid)
    out: dict[int, list[np.ndarray]] = {}
    day_ns = 86_400 * 10**9
    for tz, iids in by_zone.items():
        pos = [po for iid in iids for po in placed[iid]]
        sizes = [len(draws) for _, draws, _ in pos]
        at = (pd.DatetimeIndex(np.repeat(pd.DatetimeIndex([when for when, _, _ in pos]), sizes))
              + pd.to_timedelta(np.concatenate([draws for _, draws, _ in pos]), unit="D")).tz_convert(tz).tz_localize(None)
        midnight = at.normalize().as_unit("ns").asi8
        hour = (at.hour + at.minute / 60.0).to_numpy()
        k = 0
        for iid in iids:
            today = pd.Timestamp(today_of_item[iid]).as_unit("ns").value
            mid = midpoint_hour.get(iid, 23.0)
            days = out.setdefault(iid, [])
            for _, draws, _ in placed[iid]:
                sl = slice(k, k + len(draws))
                days.append((midnight[sl] - today) // day_ns + (hour[sl] >= mid).astype(int))
                k += len(draws)
    return out


def _lead_draws(order: pd.Series, shapes: dict[int, np.ndarray], elapsed: float, u: np.ndarray,
                as_of: pd.Timestamp, shift: float = 0.0) -> np.ndarray:
    """An open order's lead time (days) at the equally likely levels ``u``, given it has not come
    after ``elapsed`` days: from the supplier's own delivery history (``models.lead_time``:
    empirical quantiles shrunk to the chain's, exponential tail, plus the ``shift`` of the weekday
    it was placed on), else a lognormal with its expected
    lead time and sd, else its own ``expected_at`` (tomorrow when it has none)."""
    from scipy.stats import lognorm

    from models.lead_time import lead_quantile

    sid = order["supplier_id"]
    q = shapes.get(int(sid)) if pd.notna(sid) else None
    if q is not None:
        return lead_quantile(np.maximum(q + shift, 0.0), u, elapsed)
    mean, sd = order["expected_days"], order["sd_days"]
    if pd.notna(mean) and mean > 0 and pd.notna(sd) and sd > 1e-6:
        s2 = math.log(1 + (sd / mean) ** 2)
        dist = lognorm(s=math.sqrt(s2), scale=math.exp(math.log(mean) - s2 / 2))
        lo = float(dist.cdf(elapsed))
        return dist.ppf(np.minimum(lo + (1 - lo) * u, 1 - 1e-9)) if lo < 1 - 1e-9 else np.full(len(u), elapsed)
    eta = order["ordered_at"] + pd.Timedelta(days=float(mean)) if pd.notna(mean) else order["expected_at"]
    eta = eta if pd.notna(eta) else as_of + pd.Timedelta(days=1)
    return np.full(len(u), max((eta - order["ordered_at"]).total_seconds() / 86400.0, elapsed))


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
    out_day = _first_day_out(on_hand, lots, u, scenarios, shelf_life_days)
    weight = np.repeat(np.array([w for w, _ in scenarios], dtype=float) / draws, draws)
    # P(out by d): the same sums as over every day, taken only on days some path ran out
    p = np.zeros(n)
    last = 0.0
    days = set(np.unique(out_day[out_day < n]).tolist())
    for d in range(n):
        if d in days:
            last = weight[out_day <= d].sum()
        p[d] = last
    return np.clip(np.maximum.accumulate(p), 0.0, 1.0)


def _first_day_out(on_hand: float, lots: list[tuple[int, float]], u: np.ndarray,
                   scenarios: list[tuple[float, np.ndarray]], shelf_life_days: float | None) -> np.ndarray:
    """The first day each path (scenario-major: scenario s, usage draw i is path s * draws + i)
    could not meet its usage, or ``n`` (the horizon) if it never ran out; ``u`` is (draws, n)."""
    draws, n = u.shape
    S = len(scenarios)
    # Paths do not interact and only their first day out counts, so each day works on the paths
    # not yet out (``live``), with the same element-wise operations in the same order as on every path:
    # the same numbers, without the days after a path ran out (most items run out within the
    # horizon on some paths) or a (paths x days) copy of the draws and arrivals per scenario.
    use_by_day = np.ascontiguousarray(u.T)  # (n, draws): a day's draws are contiguous
    arrivals = np.stack([np.asarray(a, dtype=float)[:n] for _, a in scenarios]) if S else np.zeros((0, n))
    arriving = arrivals.any(axis=0) if S else np.zeros(n, dtype=bool)
    P = S * draws
    live = np.arange(P)  # path of each live slot
    draw_of, scen_of = np.tile(np.arange(draws), S), np.repeat(np.arange(S), draws)
    expiring = shelf_life_days is not None and shelf_life_days > 0
    cols = sorted([[int(d), np.full(P, float(q))] for d, q in lots if q > 0], key=lambda c: c[0])
    free = np.full(P, float(max(on_hand - sum(float(q) for _, q in lots if q > 0), 0.0)))
    out_day = np.full(P, n)
    for d in range(n):
        if arriving[d]:
            arr = arrivals[scen_of, d]
            if expiring:
                cols.append([d + int(shelf_life_days), arr])
                cols.sort(key=lambda c: c[0])
            else:
                free = free + arr
        need = use_by_day[d][draw_of] if len(live) < P or S > 1 else use_by_day[d].copy()
        for c in cols:
            take = np.minimum(c[1], need)
            c[1] -= take
            need -= take
        take = np.minimum(free, need)
        free -= take
        need -= take
        hit = need > 1e-9
        cols = [c for c in cols if c[0] > d]
        if hit.any():
            out_day[live[hit]] = d
            keep = ~hit
            if not keep.any():
                break
            live, draw_of, scen_of, free = live[keep], draw_of[keep], scen_of[keep], free[keep]
            for c in cols:
                c[1] = c[1][keep]
    return out_day


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
