"""The replay's non-model ordering policies: the fair par rule (and its fit on the first half of
the replay), the textbook order-up-to policy and the chain's own (planted) ordering. Each is a
callable (world, state) -> quantity per item, see ``bench.replay_world``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.replay_world import NEVER, State, World, replay

def trailing_use(world: World, state: State, days: int = 28, demand: bool = False) -> np.ndarray:
    """Mean recorded use per item over the last ``days`` days before this morning (``demand``:
    what sales needed, units sold x recipe, which a run-out does not censor)."""
    d = state.day
    recent = (world.demand if demand else state.served)[max(0, d - days):d]
    if len(recent) < days and world.history is not None and len(world.history):
        recent = np.vstack([world.history[-(days - len(recent)):], recent])
    return recent.mean(axis=0) if len(recent) else np.zeros(world.n)


@dataclass
class ParRule:
    """Order up to P days of average use when stock + on order is below R days (per item arrays;
    average use = what the last 28 days' sales needed, units sold x recipe: the recorded use
    would feed a run-out back into smaller orders)."""

    R: np.ndarray
    P: np.ndarray

    def __call__(self, world: World, state: State) -> np.ndarray:
        avg = trailing_use(world, state, demand=True)
        position = state.on_hand() + state.on_order(world.n)
        q = np.where(position < self.R * avg, self.P * avg - position, 0.0)
        q = np.maximum(q, 0.0)
        if world.whole is not None:
            q = np.where(world.whole, np.ceil(q - 1e-9), q)
        return q


PAR_R_GRID = (1, 2, 3, 4, 5, 7, 10, 14, 21, 28)
PAR_CYCLE_GRID = (1, 2, 3, 5, 7, 10, 14)


def fit_par_rule(world: World) -> tuple[ParRule, pd.DataFrame]:
    """R and P per item, fitted on a world of the weeks before the replay: every (R, P - R) of the
    grids is replayed (each from its own par, nothing in transit); per item the pair with the
    fewest stockout item-days, then the lowest average stock value + waste value per day (the
    cheapest pair that kept it in stock); a perishable's P - R is below its shelf life."""
    import dataclasses

    rows = []
    avg = world.history.mean(axis=0) if world.history is not None and len(world.history) else world.demand.mean(axis=0)
    for R in PAR_R_GRID:
        for c in PAR_CYCLE_GRID:
            # each pair starts at its own par, nothing in transit: the steady state, not the stock
            # the chain happened to hold (which can outlast a short fit period and make every R look safe)
            start = [[(int(world.shelf[i]) if world.shelf[i] > 0 else NEVER, float((R + c) * avg[i]))] for i in range(world.n)]
            w = dataclasses.replace(world, lots0=start, pending0=[])
            res = replay(w, ParRule(np.full(world.n, float(R)), np.full(world.n, float(R + c))))
            D = res.short.shape[0]
            rows.append(pd.DataFrame({
                "i": np.arange(world.n), "R": R, "P": R + c,
                "stockout_days": (res.short > 1e-9).sum(axis=0),
                "cost": (res.end_stock * res.unit_cost).mean(axis=0)
                + (res.expired * res.unit_cost).sum(axis=0) / D,
            }))
    grid = pd.concat(rows, ignore_index=True)
    # a perishable's order (about P - R days of use) is used within its shelf life (more is bought
    # to be thrown away)
    shelf = world.shelf[grid["i"].to_numpy()]
    grid = grid[(shelf == 0) | (grid["P"] - grid["R"] <= np.maximum(shelf - 1, 1))]
    best = grid.sort_values(["i", "stockout_days", "cost"]).groupby("i").head(1).sort_values("i")
    return ParRule(best["R"].to_numpy(float), best["P"].to_numpy(float)), best


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
