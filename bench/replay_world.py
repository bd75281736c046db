"""Decision replay, the world and its bookkeeping: a policy judged by what following it would have done.

Over the last weeks of a synthetic chain, day by day, a *policy* decides each morning what to
order; the orders arrive after the world's lead time (``bench.replay_leadtimes``: a mixture with
weekday effects and missed rounds, not the model's lognormal, times the suppliers' bad spells),
the kitchen uses the true demand (units sold x
recipe x the planted portioning) first-expiring-first, and what expires is written off. The same
world (demand, lead-time draws, starting stock and orders in transit) is replayed for every policy:

* ``model``: the daily run's ``reorder`` advice (``models.reorder.decide_item``): order the
  advised quantity when the order-by date is today, from the item's supplier;
* ``historical``: the chain's own ordering as the generator planted it (the manager's reorder point
  and par, use-by dates read, and the planted gaps where reordering was forgotten);
* ``par_rule``: order up to P days of average use when the position is below R days, with the
  model's position rule, MOQ and shelf-life bound, R and P fitted per item on the replay's first
  half (``bench.replay_policies.fit_par_rule``);
* ``order_up_to``: the textbook periodic-review policy (``bench.replay_order_up_to``).

Bookkeeping (``replay``), per local day d, all policies alike:
1. orders due today arrive (a delivery after 23:30 local, when the generator books the day's use,
   feeds the next day); a perishable batch received on day a expires at the end of day a + shelf life;
2. the policy orders (the morning run: 08:00 UTC, the same local date in every zone of the chain);
   one purchase order per restaurant and supplier and day; no orders on days the restaurant is closed;
3. the day's demand is taken first-expiring-first; what cannot be met is short;
4. batches expiring today are written off (waste).
Figures: ``stockout_item_days`` (item-days with unmet demand), ``units_short``, ``avg_stock_value``
(end-of-day stock x unit cost, summed over items, mean over days), ``waste_units`` (expiry
write-offs), ``orders`` (purchase orders). Not simulated: random spoilage and count corrections
(the generator's 3 % / 1 % daily draws), short deliveries.

The model's inputs that do not depend on the policy are computed once per day from the replica as
it stood that morning (``model_inputs``): the usage forecast (its history is the recorded one: a
policy's own run-outs would only censor days the usage model already leaves out) and the supplier
lead-time estimates (the supplier's behaviour does not depend on who orders). Stock, batches and
open orders are the policy's own, from the replay.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

NEVER = 10**6  # expiry day of stock that does not expire / arrival of an order that never comes
ARRIVAL_CUTOFF_HOUR = 23.5  # the generator books a day's consumption at 23:30 local
ORDER_HOUR_UTC = 8  # the morning run and its orders


@dataclass
class World:
    """What every policy faces: per item (index i) and replay day d.

    demand: (D, n) true use per day; lots0: per item [(expiry day index, quantity)] at the start
    of day 0 (``NEVER`` for stock that does not expire); pending0: orders in transit at the start,
    (item index, quantity, ordered day index, arrival day index); arrive(restaurant_id,
    supplier_id, day) -> the day index on which an order placed that morning can be used;
    closed: (D, n) no orders placed that day; history: (H, n) recorded use before day 0 (for
    trailing averages).
    """

    item_id: np.ndarray
    restaurant_id: np.ndarray
    supplier_id: np.ndarray
    shelf: np.ndarray  # days; 0 = does not expire
    unit_cost: np.ndarray
    demand: np.ndarray
    lots0: list
    pending0: list
    arrive: Callable[[int, int, int], int]
    closed: np.ndarray | None = None
    history: np.ndarray | None = None
    whole: np.ndarray | None = None  # counted 'each': orders in whole units
    start: pd.Timestamp | None = None  # local date of day 0
    perishable: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.item_id)


@dataclass
class State:
    """What a policy sees on the morning of ``day`` (before that day's use): its stock in batches
    (per item a sorted list of [expiry day, quantity]), its orders in transit ([item, quantity,
    ordered day, arrival day]; the arrival day is the world's secret, policies must not read it)
    and the use recorded so far (``served``, rows < day)."""

    day: int
    lots: list
    pending: list
    served: np.ndarray
    short: np.ndarray

    def on_hand(self) -> np.ndarray:
        return np.array([sum(q for _, q in lot) for lot in self.lots])

    def on_order(self, n: int) -> np.ndarray:
        out = np.zeros(n)
        for p in self.pending:
            out[p[0]] += p[1]
        return out


@dataclass
class ReplayResult:
    demand: np.ndarray
    served: np.ndarray
    short: np.ndarray
    expired: np.ndarray
    end_stock: np.ndarray
    received: np.ndarray
    ordered: np.ndarray  # quantity ordered per day and item
    orders: int  # purchase orders (restaurant x supplier x day)
    unit_cost: np.ndarray
    orders_by_day: np.ndarray | None = None  # purchase orders placed per day

    def runouts(self) -> list[tuple[int, int]]:
        """(item index, day) of every run-out: the first day with unmet demand after a day whose
        demand was met in full (days without demand, e.g. closed, neither end nor start one)."""
        out = []
        for i in range(self.short.shape[1]):
            short = self.short[:, i] > 1e-9
            need = self.demand[:, i] > 1e-9
            down = False
            for d in range(len(short)):
                if short[d] and not down:
                    out.append((i, d))
                    down = True
                elif down and need[d] and not short[d]:
                    down = False
        return sorted(out)

    def summary(self, days: slice | None = None, items: np.ndarray | None = None) -> dict:
        """The figures over every day, or over ``days`` (e.g. the second half: the state carried
        in from the days before, only these days counted); over the ``items`` (a mask) when given
        (``orders`` then counts every item's)."""
        w = slice(None) if days is None else days
        m = np.ones(self.short.shape[1], bool) if items is None else np.asarray(items, bool)
        short, end, expired, c = self.short[w][:, m], self.end_stock[w][:, m], self.expired[w][:, m], self.unit_cost[m]
        lo = w.start or 0
        hi = len(self.short) if w.stop is None else w.stop
        return {
            "stockout_item_days": int((short > 1e-9).sum()),
            "runouts": sum(1 for i, d in self.runouts() if lo <= d < hi and m[i]),
            "units_short": round(float(short.sum()), 3),
            "short_value": round(float((short * c).sum()), 2),
            "avg_stock_value": round(float((end * c).sum(axis=1).mean()), 2) if len(end) else 0.0,
            "waste_units": round(float(expired.sum()), 3),
            "waste_value": round(float((expired * c).sum()), 2),
            "orders": int(self.orders if days is None or self.orders_by_day is None else self.orders_by_day[w].sum()),
        }


def _add_lot(lots: list, expiry: int, qty: float) -> None:
    bisect.insort(lots, [int(expiry), float(qty)])


Policy = Callable[[World, State], "np.ndarray | None"]


def replay(world: World, policy: Policy, observers: tuple = ()) -> ReplayResult:
    """Run ``policy`` through the world day by day (module docstring: the bookkeeping).

    ``observers`` are called each morning after the policy's orders with (world, state): they may
    look at the state (e.g. raise alarms) but not change it. After, because that is when the daily
    run sees the chain's orders: the generator's manager orders in the evening, the run comes the
    next morning (here both are the morning, the run second).
    """
    D, n = world.demand.shape
    lots = [sorted([int(e), float(q)] for e, q in lot if q > 0) for lot in world.lots0]
    pending = [list(p) for p in world.pending0]
    served, short, expired = np.zeros((D, n)), np.zeros((D, n)), np.zeros((D, n))
    end, received, ordered = np.zeros((D, n)), np.zeros((D, n)), np.zeros((D, n))
    orders = 0
    orders_by_day = np.zeros(D, int)
    shelf = world.shelf
    state = State(0, lots, pending, served, short)

    def deliver(i: int, qty: float, d: int) -> None:
        _add_lot(lots[i], d + int(shelf[i]) if shelf[i] > 0 else NEVER, qty)
        received[d, i] += qty

    for d in range(D):
        keep = []
        for p in pending:
            if p[3] <= d:
                deliver(p[0], p[1], d)
            else:
                keep.append(p)
        pending[:] = keep
        state.day = d
        q = policy(world, state)
        if q is not None:
            placed = set()
            for i in np.flatnonzero(np.asarray(q) > 1e-9):
                if world.closed is not None and world.closed[d, i]:
                    continue
                rid, sid = int(world.restaurant_id[i]), int(world.supplier_id[i])
                a = int(world.arrive(rid, sid, d))
                placed.add((rid, sid))
                ordered[d, i] += float(q[i])
                if a <= d:
                    deliver(int(i), float(q[i]), d)
                elif a < NEVER:
                    pending.append([int(i), float(q[i]), d, a])
            orders += len(placed)
            orders_by_day[d] = len(placed)
        for obs in observers:
            obs(world, state)
        for i in range(n):
            lot = lots[i]
            need = float(world.demand[d, i])
            got = need
            while need > 1e-12 and lot:
                t = min(lot[0][1], need)
                lot[0][1] -= t
                need -= t
                if lot[0][1] <= 1e-12:
                    lot.pop(0)
            served[d, i] = got - need
            short[d, i] = need if need > 1e-9 else 0.0
            while lot and lot[0][0] <= d:
                expired[d, i] += lot.pop(0)[1]
            end[d, i] = sum(x[1] for x in lot)
    return ReplayResult(world.demand, served, short, expired, end, received, ordered, orders, world.unit_cost, orders_by_day)


def without_new_orders(world: World, state: State, days: int) -> np.ndarray:
    """Per item, the first day offset (0 = today) on which it would run out if nobody ordered
    anything more, given its stock and the orders in transit (their true arrival); ``days`` when
    it would not within ``days`` days. The truth a P(out by day k) "without new orders" is about."""
    d0, n = state.day, world.n
    D = world.demand.shape[0]
    out = np.full(n, days)
    arrivals: dict = {}
    for p in state.pending:
        arrivals.setdefault(p[0], []).append((p[3], p[1]))
    for i in range(n):
        lot = [list(x) for x in state.lots[i]]
        arr = arrivals.get(i, [])
        for k in range(days):
            d = d0 + k
            if d >= D:
                break
            for a, q in arr:
                if a == d:
                    _add_lot(lot, d + int(world.shelf[i]) if world.shelf[i] > 0 else NEVER, q)
            need = float(world.demand[d, i])
            while need > 1e-12 and lot:
                t = min(lot[0][1], need)
                lot[0][1] -= t
                need -= t
                if lot[0][1] <= 1e-12:
                    lot.pop(0)
            if need > 1e-9:
                out[i] = k
                break
            while lot and lot[0][0] <= d:
                lot.pop(0)
    return out
