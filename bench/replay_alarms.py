"""Alarms in time and the calibration of P(out), watched on a replay (``AlarmWatch``)."""

from __future__ import annotations

import math

import numpy as np

from bench.replay_model import ModelPolicy
from bench.replay_policies import trailing_use
from bench.replay_world import ReplayResult, State, World, without_new_orders

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
    """Per (day, item) not already out: the model's alarm (``models.reorder.stockout_alarm``,
    at ``threshold`` when given), the days-of-cover alarm at the same horizon (floor(stock /
    trailing 28-day use) <= h), and (notice, h): the notice needed (``notice_days`` of the
    supplier's expected lead time) and the alarm's horizon."""
    from models.reorder import notice_days, stockout_alarm

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


BUCKETS = (0.0, 0.05, 0.2, 0.4, 0.6, 0.8, 0.95, 1.0 + 1e-9)


def calibration_buckets(watch: AlarmWatch, world: World, days: range, ks: tuple = (1, 3),
                        buckets: tuple = BUCKETS) -> dict:
    """Reliability of P(out by day k) per probability bucket, on the truth it is about: whether the
    item ran out by day k *without new orders* (its stock and the orders in transit at their true
    arrival, ``without_new_orders``). Mornings in ``days`` whose day k is still in the replay; items
    already out that morning left out. Per bucket: cases, mean predicted, realised rate."""
    D = world.demand.shape[0]
    out = {}
    for k in ks:
        pred, real = [], []
        for (d, i), p in watch.model.p_out.items():
            if d not in days or p is None or watch.out_now[(d, i)] or d + k >= D:
                continue
            pred.append(float(p[min(k, len(p) - 1)]))
            real.append(watch.cf[(d, i)] <= k)
        pred_a, real_a = np.asarray(pred), np.asarray(real, float)
        rows = []
        for lo, hi in zip(buckets[:-1], buckets[1:]):
            m = (pred_a >= lo) & (pred_a < hi)
            n = int(m.sum())
            rows.append({"bucket": f"{lo:.2f}-{min(hi, 1.0):.2f}", "cases": n,
                         "predicted": round(float(pred_a[m].mean()), 4) if n else None,
                         "realised": round(float(real_a[m].mean()), 4) if n else None})
        out[f"by_day_{k}"] = rows
    return out


def calibration_holds(buckets: dict, min_cases: int = 30, tolerance: float = 0.1) -> bool:
    """Every bucket with at least ``min_cases`` cases realises within ``tolerance`` of its mean
    prediction (``calibration_buckets``)."""
    return all(abs(r["predicted"] - r["realised"]) <= tolerance
               for rows in buckets.values() for r in rows if r["cases"] >= min_cases)


def alarms_without_new_orders(alarms: dict, notice: dict, watch: AlarmWatch, days: range, end: int) -> dict:
    """Alarms judged against run-outs without new orders, item-day by item-day: on a morning in
    ``days`` an item *needs* an alarm when, if nobody ordered anything more, it would run out on
    a day x with notice <= x <= h (``alarm_days``: an order placed now could still land, and it is
    within the alarm's horizon). An alarm is true when the item needs one; an alarm (or a need)
    with the run-out closer than the notice is too late to act on and counts neither way. Mornings
    whose horizon passes the replay's ``end`` (day count) are left out: their truth is not known."""
    tp = fp = need = late = 0
    for (d, i), (L, h) in notice.items():
        if d not in days or d + h >= end:
            continue
        x = watch.cf[(d, i)]
        fired = bool(alarms.get((d, i)))
        if x < L:
            late += int(fired)
            continue
        hit = x <= h
        need += int(hit)
        tp += int(fired and hit)
        fp += int(fired and not hit)
    return {"precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "recall": round(tp / need, 4) if need else None,
            "alarms": tp + fp, "true": tp, "needed": need, "late": late}
