"""The reorder maths and the stockout alarm of one item: what to order and when, and whether to warn.

Formulas (docs/inventory.md has the full page):

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

import numpy as np
from scipy.special import ndtr
from scipy.stats import norm

from core.settings import InventorySettings
from models.stock_projection import Projection, project_item, simulate_p_out


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
    lead_draws: np.ndarray | None = None,
    cover_arrivals: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """Reorder point, safety stock, EOQ, order-by day, urgency and quantity (module docstring).

    ``lead_draws``: equally likely lead times of an order placed now (``lead_draws_now``): the
    reorder point is the service level's quantile of use over lead + review
    (``reorder_point_quantile``), not the Normal formula with the lead time's sd.
    ``cover_arrivals``: (weights, quantity landing within the cover) per arrival scenario of the
    open orders (``arrivals_within``): the position counts their expected quantity, and the order
    is due now when the chance of running short over the cover, mixed over the scenarios,
    exceeds 1 - service level (``short_risk``; position <= reorder point when they agree), so an
    order long overdue orders again for its "maybe never" scenarios. Default: open orders in full.
    """
    n = len(usage)
    cover = max(lead_days + review_period_days, 1.0)
    window = usage[1 : 1 + max(int(math.ceil(cover)), 7)]
    d = float(np.mean(window)) if len(window) else float(np.mean(usage)) if n else 0.0
    sd_d = float(np.sqrt(np.mean(np.asarray(usage_sd[1 : 1 + len(window)]) ** 2))) if len(window) else 0.0
    rop, safety = _reorder_point(d, sd_d, cover, lead_sd, service_level, lead_draws, review_period_days)
    if unit_cost > 0 and holding_rate > 0 and d > 0:
        eoq = math.sqrt(2 * 365 * d * order_cost / (holding_rate * unit_cost))
    else:
        eoq = 7 * d
    if shelf_life_days and shelf_life_days > 0:
        eoq = min(eoq, d * shelf_life_days)
    # stock that expires (on the mean path) before the cover is over is not there to cover it: a
    # perishable's position counted it and ordered too late (the decision replay's run-outs)
    # and an open order not expected to land within the cover does not cover it either: an order
    # long overdue from a supplier whose late orders can take weeks (the replay's 32-day order)
    expiring = float(np.sum(proj.expired[: int(math.ceil(cover))]))
    on_order, due_now = _open_orders(proj, cover_arrivals, on_hand - expiring, d, sd_d, lead_draws,
                                     review_period_days, service_level)
    position_now = on_hand + on_order - expiring
    position = proj.end_stock + proj.on_order_after
    if (position_now <= rop) if due_now is None else due_now:
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


def _open_orders(proj: Projection, cover_arrivals: tuple[np.ndarray, np.ndarray] | None, stock: float, d: float,
                 sd_d: float, lead_draws: np.ndarray | None, review_period_days: float,
                 service_level: float) -> tuple[float, bool | None]:
    """(open orders counted in the position, whether an order is due now by ``short_risk``; None:
    decide by position <= reorder point). See ``reorder_plan``'s ``cover_arrivals``."""
    if cover_arrivals is None or not len(cover_arrivals[0]):
        return proj.on_order_total, None
    w, landed = (np.asarray(x, float) for x in cover_arrivals)
    on_order = min(float(np.sum(w * landed)), proj.on_order_total)
    if lead_draws is None or not len(lead_draws) or d <= 0 or np.ptp(landed) <= 1e-9:
        return on_order, None
    risk = short_risk(stock + landed, w, d, sd_d, np.asarray(lead_draws, float) + review_period_days)
    return on_order, bool(risk > 1 - service_level)


def _reorder_point(d: float, sd_d: float, cover: float, lead_sd: float, service_level: float,
                   lead_draws: np.ndarray | None, review_period_days: float) -> tuple[float, float]:
    """(reorder point, safety stock): from the lead-time draws when there are some
    (``reorder_point_quantile``), else d * cover + z sqrt(cover s_d^2 + d^2 s_L^2)."""
    if lead_draws is not None and len(lead_draws) and d > 0:
        rop = reorder_point_quantile(d, sd_d, np.asarray(lead_draws, float) + review_period_days, service_level)
        return rop, max(rop - d * cover, 0.0)
    safety = float(norm.ppf(service_level)) * math.sqrt(cover * sd_d**2 + d**2 * lead_sd**2)
    return d * cover + safety, safety


def _use_cdf(x: np.ndarray, d: float, sd_d: float, cover_draws: np.ndarray) -> np.ndarray:
    """P(use over the cover <= x) for each x: per equally likely cover T, Normal(d T, sd_d^2 T)."""
    T = np.maximum(np.asarray(cover_draws, float), 1e-6)
    mu, s = d * T, np.maximum(sd_d * np.sqrt(T), 1e-9 * max(d, 1e-9))
    return ndtr((np.asarray(x, float)[:, None] - mu[None, :]) / s[None, :]).mean(axis=1)


def reorder_point_quantile(d: float, sd_d: float, cover_draws: np.ndarray, service_level: float) -> float:
    """The ``service_level`` quantile of use over a random cover (lead + review, equally likely
    draws ``cover_draws``): per draw T the use is Normal(d T, sd_d^2 T), mixed over the draws.
    With a heavy-tailed lead time (missed rounds, lost orders) this is what protects against the
    late delivery; the Normal formula with the lead time's sd understates a long tail and
    overstates a short one. (The forecast's own days instead of d T, weekdays and all, was tried
    in the decision replay: more stock and more stockouts on its first half at 0.9.)

    Found on a grid of the mixture's CDF, then on a finer grid inside the bracketing cell, linear
    in between (1/4,000 of the range: a bisection of 50 steps cost 60 % of a replay's time)."""
    T = np.maximum(np.asarray(cover_draws, float), 1e-6)
    s = np.maximum(sd_d * np.sqrt(T), 1e-9 * max(d, 1e-9))
    lo, hi = max(float(np.min(d * T - 6 * s)), 0.0), float(np.max(d * T + 8 * s))
    for points in (129, 33):
        grid = np.linspace(lo, hi, points)
        F = _use_cdf(grid, d, sd_d, T)
        k = int(np.clip(np.searchsorted(F, service_level), 1, points - 1))
        lo, hi = float(grid[k - 1]), float(grid[k])
    f0, f1 = (float(v) for v in _use_cdf(np.array([lo, hi]), d, sd_d, T))
    return hi if f1 <= f0 else lo + (hi - lo) * float(np.clip((service_level - f0) / (f1 - f0), 0.0, 1.0))


def short_risk(available: np.ndarray, weights: np.ndarray, d: float, sd_d: float, cover_draws: np.ndarray) -> float:
    """P(use over the cover exceeds the stock available), mixed over the open orders' arrival
    scenarios (``available``: stock plus what lands within the cover in each, with ``weights``)."""
    return float(np.sum(np.asarray(weights, float) * (1 - _use_cdf(available, d, sd_d, cover_draws))))


def arrivals_within(scenarios: list[tuple[float, np.ndarray]] | None, days: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(weights, quantity landing on days 0 .. ``days`` - 1) per arrival scenario
    (``arrival_scenarios``); None without scenarios."""
    if not scenarios:
        return None
    return (np.array([w for w, _ in scenarios], float),
            np.array([float(np.sum(np.asarray(a)[:days])) for _, a in scenarios]))


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
    lead_draws: np.ndarray | None = None,
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
        lead_draws: equally likely lead times of an order placed now (``models.lead_time.lead_quantile``):
            the reorder point from the supplier's lead-time distribution, and the open orders
            counted in the position by their chance of landing within the cover (``scenarios``).
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
        lead_draws=lead_draws,
        cover_arrivals=None if lead_draws is None else arrivals_within(
            scenarios, int(math.ceil(max(lead_days + settings.review_period_days, 1.0)))),
    )
    return proj, p_mix, plan
