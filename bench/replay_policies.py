"""The replay's non-model ordering policies: the fair par rule (and its fit on the first half of
the replay), the textbook order-up-to policy and the chain's own (planted) ordering. Each is a
callable (world, state) -> quantity per item, see ``bench.replay_world``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.replay_world import NEVER, ReplayResult, State, World, replay


def trailing_use(world: World, state: State, days: int = 28, demand: bool = False) -> np.ndarray:
    """Mean recorded use per item over the last ``days`` days before this morning (``demand``:
    what sales needed, units sold x recipe, which a run-out does not censor)."""
    d = state.day
    recent = (world.demand if demand else state.served)[max(0, d - days):d]
    if len(recent) < days and world.history is not None and len(world.history):
        recent = np.vstack([world.history[-(days - len(recent)):], recent])
    return recent.mean(axis=0) if len(recent) else np.zeros(world.n)


def expiring(lots: list, day: int, rate: float, horizon: int) -> float:
    """What of ``lots`` (sorted [expiry day, quantity]) expires within ``horizon`` days from
    ``day`` (through day + horizon - 1) when ``rate`` a day is used first-expiring-first: the
    stock the model's position leaves out (``models.reorder.reorder_plan``: it rots before it
    covers anything)."""
    used = lost = 0.0
    for e, q in lots:
        if e >= NEVER or e > day + horizon - 1:
            break
        u = min(q, max(rate * (e - day + 1) - used, 0.0))
        used += u
        lost += q - u
    return lost


def usable_position(world: World, state: State, rate: np.ndarray, cover: np.ndarray) -> np.ndarray:
    """Stock on hand + on order, minus what expires within ``cover`` days at ``rate`` (per item)."""
    pos = state.on_hand() + state.on_order(world.n)
    for i in np.flatnonzero(world.shelf > 0):
        pos[i] -= expiring(state.lots[i], state.day, float(rate[i]), int(math.ceil(cover[i])))
    return pos


def order_quantity(world: World, q: np.ndarray, moq: np.ndarray | None) -> np.ndarray:
    """At least the minimum order quantity when ordering; whole units for items counted 'each'."""
    q = np.maximum(q, 0.0)
    if moq is not None:
        q = np.where(q > 1e-9, np.maximum(q, moq), 0.0)
    if world.whole is not None:
        q = np.where(world.whole, np.ceil(q - 1e-9), q)
    return q


@dataclass
class ParRule:
    """Order up to P days of average use when the position is below R days (per item arrays;
    average use = what the last 28 days' sales needed, units sold x recipe: the recorded use
    would feed a run-out back into smaller orders).

    The fair version (issue 26) keeps the model's rules: with ``lead`` (the supplier's expected
    lead time, days) the position leaves out what expires within lead + 1 days at average use,
    ``moq`` is the item's minimum order quantity, and the fit (``fit_par_rule``) bounds a
    perishable's P by lead + shelf life. Without them it is the plain rule."""

    R: np.ndarray
    P: np.ndarray
    moq: np.ndarray | None = None
    lead: np.ndarray | None = None

    def __call__(self, world: World, state: State) -> np.ndarray:
        avg = trailing_use(world, state, demand=True)
        if self.lead is None:
            position = state.on_hand() + state.on_order(world.n)
        else:
            position = usable_position(world, state, avg, self.lead + 1.0)
        q = np.where(position < self.R * avg, self.P * avg - position, 0.0)
        return order_quantity(world, q, self.moq)


PAR_R_GRID = (1, 2, 3, 4, 5, 7, 10, 14, 21)
PAR_CYCLE_GRID = (1, 2, 3, 5, 7, 10, 14)


def shortage_penalty(alpha: float) -> float:
    """Cost of a unit short, in units of its value, at service level ``alpha``: the newsvendor's
    critical fractile b / (b + 1) = alpha with the unit's value as the cost of one too many."""
    return alpha / (1.0 - alpha)


def item_costs(res: ReplayResult, days: slice, settings, alpha: float) -> np.ndarray:
    """Per item, over ``days``, the cost the advice minimises (``models.reorder``: EOQ trades order
    cost against holding cost, the safety stock holds the service level): holding
    (``holding_cost_rate_per_year`` / 365 x stock value per day), ordering (``order_cost`` per day
    the item is ordered), waste value, and the units short at ``shortage_penalty(alpha)`` x value."""
    c = res.unit_cost
    hold = settings.holding_cost_rate_per_year / 365.0 * (res.end_stock[days] * c).sum(axis=0)
    order = settings.order_cost * (res.ordered[days] > 1e-9).sum(axis=0)
    waste = (res.expired[days] * c).sum(axis=0)
    short = shortage_penalty(alpha) * (res.short[days] * c).sum(axis=0)
    return hold + order + waste + short


@dataclass
class ParFit:
    """The par rule's grid on the first half: per item and (R, P) its cost parts; ``rule(alpha)``
    the per-item pair of least cost at ``alpha``."""

    grid: pd.DataFrame  # i, R, P, hold, order, waste, short_value, stockout_days
    moq: np.ndarray
    lead: np.ndarray

    def rule(self, alpha: float) -> ParRule:
        g = self.grid.assign(cost=self.grid["hold"] + self.grid["order"] + self.grid["waste"]
                             + shortage_penalty(alpha) * self.grid["short_value"])
        best = g.sort_values(["i", "cost", "R"]).groupby("i").head(1).sort_values("i")
        return ParRule(best["R"].to_numpy(float), best["P"].to_numpy(float), self.moq, self.lead)


def fit_par_rule(world: World, days: int, settings, moq: np.ndarray, lead: np.ndarray) -> ParFit:
    """Every (R, P - R) of the grids replayed on the world's first ``days`` days (from the stock
    and orders in transit the replay starts with, as every policy); a perishable's P is at most
    its lead + shelf life (what is on hand when an order lands, P - lead days of use, keeps)."""
    import dataclasses

    w = dataclasses.replace(world, demand=world.demand[:days],
                            closed=None if world.closed is None else world.closed[:days])
    rows = []
    c = world.unit_cost
    for R in PAR_R_GRID:
        for cyc in PAR_CYCLE_GRID:
            P = np.full(world.n, float(R + cyc))
            res = replay(w, ParRule(np.full(world.n, float(R)), P, moq, lead))
            rows.append(pd.DataFrame({
                "i": np.arange(world.n), "R": R, "P": R + cyc,
                "hold": settings.holding_cost_rate_per_year / 365.0 * (res.end_stock * c).sum(axis=0),
                "order": settings.order_cost * (res.ordered > 1e-9).sum(axis=0),
                "waste": (res.expired * c).sum(axis=0),
                "short_value": (res.short * c).sum(axis=0),
                "stockout_days": (res.short > 1e-9).sum(axis=0),
            }))
    grid = pd.concat(rows, ignore_index=True)
    i = grid["i"].to_numpy()
    shelf = world.shelf[i]
    grid = grid[(shelf == 0) | (grid["P"].to_numpy() <= lead[i] + np.maximum(shelf, 1))]
    return ParFit(grid.reset_index(drop=True), moq, lead)


@dataclass
class HistoricalPolicy:
    """The chain's own ordering as the generator planted it (synthetic/sim_inventory.py): order
    when usable stock (minus what will expire before use at the item's mean use) + on order is
    below the manager's reorder point, up to par, at least the minimum order quantity; nothing
    on the planted days where reordering was forgotten (``suppressed``, (D, n))."""

    rop: np.ndarray
    par: np.ndarray
    moq: np.ndarray
    usage: np.ndarray
    look: np.ndarray  # days until an order placed now is in use (ceil(true mean lead + 1))
    suppressed: np.ndarray

    def __call__(self, world: World, state: State) -> np.ndarray:
        d = state.day
        usable = state.on_hand()
        for i in np.flatnonzero(world.shelf > 0):
            left, lost = 0.0, 0.0
            for e, rem in state.lots[i]:
                if e >= NEVER or e > d - 1 + self.look[i]:
                    break
                use = min(rem, max(self.usage[i] * (e - d + 1) - left, 0.0))
                left += use
                lost += rem - use
            usable[i] -= lost
        transit = state.on_order(world.n)
        trig = (usable + transit < self.rop) & ~self.suppressed[d]
        q = np.where(trig, np.maximum(self.par - usable - transit, self.moq), 0.0)
        if world.whole is not None:
            q = np.where(world.whole, np.ceil(q - 1e-9), q)
        return q
