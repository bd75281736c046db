"""Decision replay: the inventory advice judged by what following it would have done.

Over the last weeks of a synthetic chain, day by day, a *policy* decides each morning what to
order; the orders arrive with the supplier's true lead-time behaviour (the generator's lognormal
and its bad spells, ``synthetic.sim_inventory``), the kitchen uses the true demand (units sold x
recipe x the planted portioning) first-expiring-first, and what expires is written off. The same
world (demand, lead-time draws, starting stock and orders in transit) is replayed for every policy:

* ``model``: the daily run's ``reorder`` advice (``models.inventory.decide_item``): order the
  advised quantity when the order-by date is today, from the item's supplier;
* ``historical``: the chain's own ordering as the generator planted it (the manager's reorder point
  and par, use-by dates read, and the planted gaps where reordering was forgotten);
* ``par_rule``: order up to P days of average use when the position (stock + on order) is below R
  days, R and P fitted per item on the weeks before the replay (``fit_par_rule``).

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
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

NEVER = 10**6  # expiry day of stock that does not expire / arrival of an order that never comes
ARRIVAL_CUTOFF_HOUR = 23.5  # the generator books a day's consumption at 23:30 local
ORDER_HOUR_UTC = 8  # the morning run and its orders


# --------------------------------------------------------------------------- the world and its bookkeeping


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

    def summary(self) -> dict:
        return {
            "stockout_item_days": int((self.short > 1e-9).sum()),
            "runouts": len(self.runouts()),
            "units_short": round(float(self.short.sum()), 3),
            "short_value": round(float((self.short * self.unit_cost).sum()), 2),
            "avg_stock_value": round(float((self.end_stock * self.unit_cost).sum(axis=1).mean()), 2),
            "waste_units": round(float(self.expired.sum()), 3),
            "waste_value": round(float((self.expired * self.unit_cost).sum()), 2),
            "orders": int(self.orders),
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
    return ReplayResult(world.demand, served, short, expired, end, received, ordered, orders, world.unit_cost)


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


# --------------------------------------------------------------------------- policies


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


# --------------------------------------------------------------------------- the model as a policy


@dataclass
class ModelInputs:
    """Per replay day, what the model knows that no policy changes: as_of, per item id the usage
    forecast (mean, sd per day from that local day), the supplier lead-time estimates, and the
    restaurants' usage midpoint hours."""

    as_of: list
    usage: list  # per day: {item id: (mean array, sd array)}
    lead: list  # per day: SupplierLeadTime.estimates_
    items: pd.DataFrame
    restaurants: pd.DataFrame
    midpoint: list = field(default_factory=list)


def _orders_frame(world: World, state: State, inputs: ModelInputs, ordered_at0: dict) -> pd.DataFrame:
    """The policy's orders in transit as ``open_purchase_orders`` would read them."""
    rows = []
    for k, (i, q, o, _a) in enumerate(state.pending):
        at = ordered_at0.get((i, o, q)) if o < 0 else inputs.as_of[o]
        if at is None:
            at = inputs.as_of[0] + pd.Timedelta(days=o)
        rows.append((hash((int(world.restaurant_id[i]), int(world.supplier_id[i]), o)) & 0x7FFFFFFF,
                     int(world.supplier_id[i]), int(world.item_id[i]), float(q), at))
    frame = pd.DataFrame(rows, columns=["purchase_order_id", "supplier_id", "inventory_item_id", "quantity", "ordered_at"])
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"], utc=True)
    frame["expected_at"] = pd.NaT
    frame["expected_at"] = pd.to_datetime(frame["expected_at"], utc=True)
    return frame


class ModelPolicy:
    """Each morning, ``models.inventory.decide_item`` on the replay's own stock, batches and orders
    in transit; orders the advised quantity when the order-by date is today. With ``alarms`` it
    also keeps P(out by day k) (k < ``alarm_days``) and the expected lead time per day and item
    (``p_out``, ``lead``), from the arrival scenarios of the orders in transit, like the daily run."""

    def __init__(self, inputs: ModelInputs, settings, ordered_at0: dict | None = None, *, alarms: bool = False,
                 alarm_days: int = 21, paths: int = 1000, order: bool = True):
        self.inputs, self.settings, self.alarms, self.alarm_days, self.paths = inputs, settings, alarms, alarm_days, paths
        self.ordered_at0 = ordered_at0 or {}
        self.order = order
        self.p_out: dict = {}
        self.lead_days: dict = {}
        self.position: dict = {}
        self.rop: dict = {}
        it = inputs.items.set_index("inventory_item_id")
        self._item = it

    def __call__(self, world: World, state: State) -> np.ndarray | None:
        from models.inventory import decide_item
        from models.stock_projection import arrival_days, arrival_scenarios

        d = state.day
        inp = self.inputs
        as_of, lead, use = inp.as_of[d], inp.lead[d], inp.usage[d]
        today = world.start + pd.Timedelta(days=d)
        oo = _orders_frame(world, state, inp, self.ordered_at0)
        arr_days = arrival_days(oo, lead, inp.restaurants, inp.items, as_of)
        horizon = max((len(m) for m, _ in use.values()), default=0)
        arr = {}
        for iid, ds, q in zip(arr_days["inventory_item_id"], arr_days["ds"], arr_days["quantity"]):
            k = max(int((pd.Timestamp(ds) - today).days), 0)
            if k < horizon:
                arr.setdefault(int(iid), np.zeros(horizon))[k] += q
        scen = {}
        if self.alarms and len(oo):
            rest_of = inp.items.set_index("inventory_item_id")["restaurant_id"]
            tz = inp.restaurants.set_index("id")["timezone"]
            ids = [int(x) for x in oo["inventory_item_id"].unique()]
            mid = inp.midpoint[d] if inp.midpoint else {}
            scen = arrival_scenarios(oo, lead, {i: tz[rest_of[i]] for i in ids}, {i: today for i in ids},
                                     {i: mid.get(int(rest_of[i]), 23.0) for i in ids}, as_of, self.alarm_days)
        lead_by = lead.set_index("supplier_id") if len(lead) else pd.DataFrame()
        default_L = float(lead["expected_days"].median()) if len(lead) else 2.0
        default_sL = float(lead["sd_days"].median()) if len(lead) else 0.5
        q = np.zeros(world.n)
        for i in range(world.n):
            iid = int(world.item_id[i])
            if iid not in use:
                continue
            mean, sd = use[iid]
            sid = int(world.supplier_id[i])
            if sid in lead_by.index and np.isfinite(lead_by.loc[sid, "expected_days"]):
                L, sL = float(lead_by.loc[sid, "expected_days"]), float(lead_by.loc[sid, "sd_days"])
            else:
                L, sL = default_L, default_sL
            lots = [(e - d, qq) for e, qq in state.lots[i] if e < NEVER]
            on_hand = float(sum(qq for _, qq in state.lots[i]))
            row = self._item.loc[iid]
            a = arr.get(iid, np.zeros(len(mean)))
            shelf = float(world.shelf[i]) if world.shelf[i] > 0 else None
            _, p, plan = decide_item(
                on_hand, lots, mean, sd, a, shelf, L, sL, self.settings,
                unit_cost=float(row["unit_cost"] or 0.0),
                par_level=None if pd.isna(row["par_level"]) else float(row["par_level"]),
                min_order_quantity=None if pd.isna(row["min_order_quantity"]) else float(row["min_order_quantity"]),
                whole_units=row["unit"] == "each", scenarios=scen.get(iid) or [(1.0, a[: self.alarm_days])],
                seed=iid, p_out=self.alarms, p_out_days=self.alarm_days, paths=self.paths,
            )
            if self.alarms:
                self.p_out[(d, i)] = p
                self.lead_days[(d, i)] = L
                self.position[(d, i)] = plan["position"]
                self.rop[(d, i)] = plan["reorder_point"]
            if self.order and plan["order_by_index"] == 0 and plan["quantity"] > 0:
                q[i] = plan["quantity"]
        return q if self.order else None


# --------------------------------------------------------------------------- alarms in time


class AlarmWatch:
    """Observer of a replay: each morning, the model's P(out) (a ``ModelPolicy`` with ``order``
    False), days of cover, and the truth without new orders (``without_new_orders``)."""

    def __init__(self, model: ModelPolicy, horizon: int = 21):
        self.model, self.horizon = model, horizon
        self.cover: dict = {}
        self.cf: dict = {}
        self.out_now: dict = {}

    def __call__(self, world: World, state: State) -> None:
        self.model(world, state)
        d = state.day
        stock = state.on_hand()
        rate = trailing_use(world, state)
        cf = without_new_orders(world, state, self.horizon)
        for i in range(world.n):
            self.cover[(d, i)] = stock[i] / rate[i] if rate[i] > 0 else np.inf
            self.cf[(d, i)] = int(cf[i])
            self.out_now[(d, i)] = stock[i] <= 1e-9 or (d > 0 and state.short[d - 1, i] > 1e-9)


def alarm_days(watch: AlarmWatch, world: World, settings, threshold: float | None = None) -> tuple[dict, dict, dict]:
    """Per (day, item) not already out: the model's alarm (``models.inventory.stockout_alarm``,
    at ``threshold`` when given), the days-of-cover alarm at the same horizon (floor(stock /
    trailing 28-day use) <= h), and (notice, h): the notice needed (``notice_days`` of the
    supplier's expected lead time) and the alarm's horizon."""
    from models.inventory import notice_days, stockout_alarm

    model, cover, notice = {}, {}, {}
    for (d, i), p in watch.model.p_out.items():
        if watch.out_now[(d, i)] or p is None:
            continue
        L = watch.model.lead_days[(d, i)]
        model[(d, i)], h = stockout_alarm(p, L, settings, threshold)
        notice[(d, i)] = (notice_days(L), h)
        c = watch.cover[(d, i)]
        cover[(d, i)] = bool(np.isfinite(c) and math.floor(c) <= h)
    return model, cover, notice


def alarms_in_time(alarms: dict, notice: dict, runouts: list[tuple[int, int]], days: int) -> dict:
    """Precision and recall of alarms that come in time.

    A run-out (item i short on day D with stock that morning) is caught when an alarm for i fired
    on a day t with notice <= D - t <= h (``alarm_days``): at least the supplier's expected lead
    time before, so an order placed then could still land, and within the alarm's horizon. An
    alarm-day is true when such a run-out follows it; an alarm-day with a run-out already closer
    than the notice (too late to act on, nothing left to prevent) counts neither way (``late``).
    Run-outs too early in the replay for any alarm to come in time are left out.
    """
    by_item: dict = {}
    for i, D in runouts:
        by_item.setdefault(i, []).append(D)
    fired = [k for k, v in alarms.items() if v]
    true = late = 0
    for d, i in fired:
        L, h = notice[(d, i)]
        ds = [D - d for D in by_item.get(i, [])]
        if any(L <= x <= h for x in ds):
            true += 1
        elif any(0 <= x < L for x in ds):
            late += 1
    caught, counted = 0, 0
    for i, D in runouts:
        cands = [(t, notice[(t, i)]) for t in range(max(0, D - 30), D) if (t, i) in notice]
        if not cands or D < min(L for _, (L, _h) in cands) + 1:
            continue
        counted += 1
        if any(alarms.get((t, i)) and L <= D - t <= h for t, (L, h) in cands):
            caught += 1
    judged = len(fired) - late
    return {"precision": (true / judged if judged else None), "recall": (caught / counted if counted else None),
            "alarms": len(fired), "late": late, "runouts": counted, "caught": caught}


def calibration(watch: AlarmWatch, world: World, result: ReplayResult, ks: tuple = (1, 3)) -> dict:
    """Summed P(out by day k) against the items that ran out by then: ``realised`` in the replay
    (the manager kept ordering) and ``realised_no_new_orders`` (``without_new_orders``: what the
    prediction is about), perishable or not. Items already out in the morning are left out."""
    short = result.short > 1e-9
    D = short.shape[0]
    out = {g: {f"by_day_{k}": {"expected": 0.0, "realised": 0, "realised_no_new_orders": 0} for k in ks}
           for g in ("perishable", "other")}
    for (d, i), p in watch.model.p_out.items():
        if p is None or watch.out_now[(d, i)]:
            continue
        g = "perishable" if world.shelf[i] > 0 else "other"
        for k in ks:
            if d + k >= D:
                continue
            c = out[g][f"by_day_{k}"]
            c["expected"] += float(p[k])
            c["realised"] += int(short[d:d + k + 1, i].any())
            c["realised_no_new_orders"] += int(watch.cf[(d, i)] <= k)
    for g in out.values():
        for c in g.values():
            c["expected"] = round(c["expected"], 1)
    return out


# --------------------------------------------------------------------------- building the world from the chain


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
                history_days: int = 28) -> tuple[World, pd.DataFrame, dict]:
    """The chain's world over ``days`` local days from ``start`` (naive local date): items, true
    demand, the stock, batches and orders in transit at the morning of ``start`` as the replica
    holds them, and the true arrivals. Returns (world, items, ordered_at of the orders in transit)."""
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
        arrive=true_arrivals(truth, restaurants, start), closed=closed, history=hist,
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


def model_inputs(reader, restaurants: pd.DataFrame, settings, start: pd.Timestamp, days: int) -> ModelInputs:
    """``ModelInputs`` for each replay morning, from the replica as it stood then (SQL once a day:
    the usage forecast's features and the suppliers' lead-time history)."""
    from datetime import datetime, timezone
    from pathlib import Path

    from core.units import Scope
    from features.inventory import inventory_features
    from models.lead_time import SupplierLeadTime
    from models.usage import usage_forecast
    from worker.settings import get_settings

    out = ModelInputs([], [], [], pd.DataFrame(), restaurants.reset_index(drop=True), [])
    for d in range(days):
        as_of = morning(start, d)
        scope = Scope("replay", "daily", as_of, restaurants.reset_index(drop=True), get_settings().forecast,
                      Path("/tmp/rmsml-bench-models"), datetime.now(timezone.utc))
        feats = inventory_features(reader, scope, settings)
        use, _ = usage_forecast(feats)
        use = use.sort_values(["inventory_item_id", "ds"])
        out.as_of.append(as_of)
        out.usage.append({int(i): (g["mean"].to_numpy(float), g["sd"].to_numpy(float)) for i, g in use.groupby("inventory_item_id")})
        out.lead.append(SupplierLeadTime.from_settings(settings).fit(feats.suppliers, feats.lead_times, feats.recent_orders).estimates_)
        out.midpoint.append(feats.midpoint_hour or {})
        if d == 0:
            out.items = feats.items
    return out


# --------------------------------------------------------------------------- the bench's figures

SERVICE_LEVELS = (0.8, 0.9, 0.95, 0.99, 0.995)
ALARM_THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7)
PAR_FIT_DAYS = 56


def label_runouts(world: World, truth: dict, runouts: list[tuple[int, int]]) -> dict:
    """Per run-out: ``planted`` (on a planted reorder gap's days, up to 3 days after it), ``spike``
    (a planted one-day demand spike of its restaurant that day or the day before) or ``other``."""
    gap = {int(g["inventory_item_id"]): ((pd.Timestamp(g["start_date"]) - world.start).days,
                                         (pd.Timestamp(g["end_date"]) - world.start).days)
           for g in truth.get("reorder_gaps", [])}
    spikes = {(int(r["restaurant_id"]), (pd.Timestamp(a["date"]) - world.start).days)
              for r in truth.get("restaurants", []) for a in r.get("anomalies", []) if a.get("kind") == "spike"}
    out = {}
    for i, D in runouts:
        g, rid = gap.get(int(world.item_id[i])), int(world.restaurant_id[i])
        out[(i, D)] = ("planted" if g and g[0] <= D <= g[1] + 3
                       else "spike" if (rid, D) in spikes or (rid, D - 1) in spikes else "other")
    return out


def _pr(x: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in x.items()}


def evaluate_replay(reader, truth: dict, restaurants: pd.DataFrame, settings, weeks: int,
                    service_levels: tuple = SERVICE_LEVELS) -> dict:
    """Every replay figure of ``python -m bench.inventory`` over the last ``weeks`` weeks.

    ``replay``: per policy (model at ``settings.service_level``, par rule fitted on the
    ``PAR_FIT_DAYS`` before, historical) the ``ReplayResult.summary`` figures;
    ``service_level_curve``: the model at each service level; ``alarms_in_time``: on the
    historical replay (the chain ordering as it did, the daily run watching), the model's alarms
    and days of cover at the same horizon, over every run-out and without the spike-caused
    ones, planted caught, and the model's alarms at other thresholds; ``calibration``.
    """
    import time

    t0 = time.perf_counter()
    end = pd.Timestamp(truth["end"])
    days = weeks * 7
    start = end - pd.Timedelta(days=days)
    world, items, ordered_at0 = build_world(reader, truth, restaurants, start, days)
    fit_world, _, _ = build_world(reader, truth, restaurants, start - pd.Timedelta(days=PAR_FIT_DAYS), PAR_FIT_DAYS)
    par, fitted = fit_par_rule(fit_world)
    inputs = model_inputs(reader, restaurants, settings, start, days)
    t_inputs = time.perf_counter() - t0
    watch = AlarmWatch(ModelPolicy(inputs, settings, ordered_at0, alarms=True, order=False))
    historical = replay(world, historical_policy(world, items, truth), observers=(watch,))
    curve = []
    model = None
    for sl in sorted(set(service_levels) | {settings.service_level}):
        res = replay(world, ModelPolicy(inputs, settings.model_copy(update={"service_level": sl}), ordered_at0))
        curve.append({"service_level": sl, **res.summary()})
        if sl == settings.service_level:
            model = res
    par_res = replay(world, par)
    runs = historical.runouts()
    labels = label_runouts(world, truth, runs)
    figures: dict = {"alarms_in_time": {}}
    m_alarm, c_alarm, notice = alarm_days(watch, world, settings)
    for name, alarms in (("model", m_alarm), ("days_of_cover", c_alarm)):
        figures["alarms_in_time"][name] = {
            **_pr(alarms_in_time(alarms, notice, runs, days)),
            "no_spike": _pr(alarms_in_time(alarms, notice, [k for k in runs if labels[k] != "spike"], days)),
            "planted": _pr(alarms_in_time(alarms, notice, [k for k in runs if labels[k] == "planted"], days)),
        }
    figures["alarms_in_time"]["model_thresholds"] = {
        str(t): {k: v for k, v in _pr(alarms_in_time(alarm_days(watch, world, settings, t)[0], notice, runs, days)).items()
                 if k in ("precision", "recall", "alarms")}
        for t in ALARM_THRESHOLDS
    }
    figures["alarms_in_time"]["runout_causes"] = pd.Series(list(labels.values()), dtype=object).value_counts().to_dict()
    figures["replay"] = {"model": model.summary(), "par_rule": par_res.summary(), "historical": historical.summary()}
    figures["service_level_curve"] = curve
    figures["calibration"] = calibration(watch, world, historical)
    figures["replay_info"] = {
        "start": str(start.date()), "days": days, "items": world.n,
        "par_rule_fitted": {"R_median": float(np.median(par.R)), "P_median": float(np.median(par.P))},
        "truth_stockout_episodes": int(sum(1 for s in truth.get("stockouts", []) if pd.Timestamp(s["end_date"]) >= start)),
        "seconds_inputs": round(t_inputs, 1), "seconds": round(time.perf_counter() - t0, 1),
    }
    return figures
