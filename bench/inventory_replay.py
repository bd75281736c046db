"""Decision replay: the inventory advice judged by what following it would have done.

The figures of ``python -m bench.inventory`` from the replay (``evaluate_replay``). The pieces:
``bench.replay_world`` (the world and its bookkeeping), ``bench.replay_policies`` (par rule,
order-up-to, the chain's own ordering), ``bench.replay_model`` (the model's advice as a policy),
``bench.replay_alarms`` (alarms in time, calibration), ``bench.replay_chain`` (the world from a
seeded chain).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.replay_alarms import (
    AlarmWatch,
    alarm_days,
    alarms_in_time,
    alarms_without_new_orders,
    calibration,
    calibration_buckets,
    calibration_holds,
)
from bench.replay_chain import build_world, historical_policy
from bench.replay_leadtimes import WorldLeadHistory, lead_time_world
from bench.replay_model import ModelInputs, ModelPolicy, model_inputs
from bench.replay_order_up_to import OrderUpTo
from bench.replay_policies import HistoricalPolicy, ParRule, fit_par_rule, item_costs, trailing_use
from bench.replay_world import NEVER, ReplayResult, State, World, replay, without_new_orders

__all__ = ["NEVER", "AlarmWatch", "HistoricalPolicy", "ModelInputs", "ModelPolicy", "OrderUpTo", "ParRule", "ReplayResult",
           "State", "World", "alarm_days", "alarms_in_time", "build_world", "calibration", "evaluate_replay",
           "fit_par_rule", "historical_policy", "model_inputs", "replay", "trailing_use", "without_new_orders"]

# 0.92 and 0.93: the first half's 0.9 and 0.95 straddled the chain's own stockouts (76 and 46 against
# 72) after the usage level left unusual days out; a finer grid there, chosen on the first half only
SERVICE_LEVELS = (0.8, 0.9, 0.92, 0.93, 0.95, 0.98, 0.99, 0.995)
# the par rule's and the order-up-to policy's knobs reach further: at the model's levels they run
# out far more often, and their curves must reach the model's stockout levels to be compared
OTHER_LEVELS = (0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999)
ALARM_THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7)


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


def alarm_limits(watch: AlarmWatch, world: World, truth: dict, notice: dict, days: range, end: int,
                 precision: float = 0.3) -> dict:
    """Why alarms in time miss, on the item-days ``alarms_without_new_orders`` judges: how many of
    the needed ones run out on or the day after a planted one-day demand spike of their restaurant
    (``spike_share``: nothing a lead time ahead shows it), and what the model's own P(out by h)
    promises if it is calibrated (``calibrated_frontier``): alarming where P >= tau, the expected
    precision is the mean P of the alarms and the expected recall their share of the summed P --
    ``best_recall_at_precision``: the most recall any threshold gives at ``precision`` by the
    model's own account; beside it the realised precision and recall at the same thresholds."""
    spikes = {(int(r["restaurant_id"]), (pd.Timestamp(a["date"]) - world.start).days)
              for r in truth.get("restaurants", []) for a in r.get("anomalies", []) if a.get("kind") == "spike"}
    rows = []
    for (d, i), (L, h) in notice.items():
        if d not in days or d + h >= end or watch.cf[(d, i)] < L:
            continue
        p = watch.model.p_out[(d, i)]
        x = d + watch.cf[(d, i)]
        rows.append((float(p[min(h, len(p) - 1)]), watch.cf[(d, i)] <= h,
                     (int(world.restaurant_id[i]), x) in spikes or (int(world.restaurant_id[i]), x - 1) in spikes))
    if not rows:
        return {}
    p, hit, spike = (np.array(c) for c in zip(*rows))
    frontier, best = [], 0.0
    for tau in (0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7):
        a = p >= tau
        if not a.any():
            continue
        exp_prec, exp_rec = float(p[a].mean()), float(p[a].sum() / p.sum())
        frontier.append({"threshold": tau, "expected_precision": round(exp_prec, 4), "expected_recall": round(exp_rec, 4),
                         "precision": round(float(hit[a].mean()), 4), "recall": round(float(hit[a].sum() / max(hit.sum(), 1)), 4)})
        if exp_prec >= precision:
            best = max(best, exp_rec)
    return {"needed": int(hit.sum()), "spike_share": round(float(spike[hit].mean()), 4) if hit.any() else None,
            "expected_needed": round(float(p.sum()), 2), "calibrated_frontier": frontier,
            "best_recall_at_precision": {"precision": precision, "expected_recall": round(best, 4)}}


def _pr(x: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in x.items()}


def choose_default(model: dict, historical: ReplayResult, first: slice) -> tuple[float, str]:
    """The service level the advice defaults to, chosen on the first half: of the levels with no
    more waste and no more average stock value than the chain's own ordering, the one with the
    fewest stockout item-days (then the lower level); when no level keeps both, the one with the
    fewest stockout item-days at no more stock value; else the fewest stockout item-days."""
    h = historical.summary(first)
    figs = {sl: r.summary(first) for sl, r in model.items()}

    def pick(levels: list) -> float:
        return min(levels, key=lambda sl: (figs[sl]["stockout_item_days"], sl))

    keep = [sl for sl, f in figs.items() if f["waste_units"] <= h["waste_units"] and f["avg_stock_value"] <= h["avg_stock_value"]]
    if keep:
        return pick(keep), "fewest stockout item-days at no more waste and stock value than the chain's own"
    keep = [sl for sl, f in figs.items() if f["avg_stock_value"] <= h["avg_stock_value"]]
    if keep:
        return pick(keep), "no level kept both waste and stock at the chain's: fewest stockouts at no more stock value"
    return pick(list(figs)), "no level kept stock at the chain's: fewest stockouts"


def curve_check(model: list[dict], other: list[dict], y: str = "avg_stock_value") -> dict:
    """The model's curve against another policy's at matched stockout levels (second half): at each
    knob point of either curve inside both curves' range of stockout item-days, ``y`` of the model
    and of the other, each linearly interpolated along its curve (sorted by stockout item-days).
    ``at_or_below``: the model's ``y`` is at most the other's at every matched level (None when the
    curves share no stockout level: ``model_stockouts`` and ``other_stockouts`` give their ranges)."""
    def line(c):
        pts = sorted((p["second_half"]["stockout_item_days"], p["second_half"][y]) for p in c)
        xs = np.array([x for x, _ in pts], float)
        ys = np.array([v for _, v in pts], float)
        return xs, ys

    mx, my = line(model)
    ox, oy = line(other)
    lo, hi = max(mx.min(), ox.min()), min(mx.max(), ox.max())
    levels = sorted({x for x in np.concatenate([mx, ox]) if lo <= x <= hi})
    matched = [{"stockout_item_days": float(x), "model": round(float(np.interp(x, mx, my)), 2),
                "other": round(float(np.interp(x, ox, oy)), 2)} for x in levels]
    return {"matched": matched,
            "at_or_below": all(m["model"] <= m["other"] + 1e-6 for m in matched) if matched else None,
            "overlap": [float(lo), float(hi)] if lo <= hi else None,
            "model_stockouts": [float(mx.min()), float(mx.max())], "other_stockouts": [float(ox.min()), float(ox.max())]}


def half_figures(r: ReplayResult, days: slice, settings) -> dict:
    """``ReplayResult.summary`` over ``days`` and the ``operating_cost``: holding + ordering + waste
    value (``item_costs`` without the priced shortage), what a policy spends to get its stockouts."""
    return {**r.summary(days), "operating_cost": round(float(item_costs(r, days, settings, 0.0).sum()), 2)}


def _curve(runs: dict, first: slice, second: slice, settings, knob: str) -> list[dict]:
    return [{knob: sl, "first_half": half_figures(r, first, settings), "second_half": half_figures(r, second, settings)}
            for sl, r in sorted(runs.items())]


def _alarm_half(watch: AlarmWatch, world: World, settings, days: range) -> dict:
    """Alarms against run-outs without new orders on the mornings ``days``: the model at its
    threshold and at ``ALARM_THRESHOLDS``, days of cover at the same horizon."""
    D = world.demand.shape[0]
    m_alarm, c_alarm, notice = alarm_days(watch, world, settings)
    return {
        "model": alarms_without_new_orders(m_alarm, notice, watch, days, D),
        "days_of_cover": alarms_without_new_orders(c_alarm, notice, watch, days, D),
        "model_thresholds": {str(t): alarms_without_new_orders(alarm_days(watch, world, settings, t)[0], notice, watch, days, D)
                             for t in ALARM_THRESHOLDS},
    }


def _alarm_figures(watch: AlarmWatch, world: World, settings, truth: dict, historical: ReplayResult,
                   second: range) -> dict:
    """``alarms_in_time``: judged against run-outs without new orders on the second half (model at
    its threshold and at others, days of cover at the same horizon; ``first_half``: the same on
    the first half, where the alarm's threshold is chosen), and, as before, against the chain's
    own run-outs over the whole replay (``chain_runouts``)."""
    D = world.demand.shape[0]
    m_alarm, c_alarm, notice = alarm_days(watch, world, settings)
    runs = historical.runouts()
    labels = label_runouts(world, truth, runs)
    out: dict = {**_alarm_half(watch, world, settings, second),
                 "first_half": _alarm_half(watch, world, settings, range(0, second.start))}
    need_p = [float(watch.model.p_out[k][min(h, len(watch.model.p_out[k]) - 1)]) for k, (L, h) in notice.items()
              if k[0] in second and k[0] + h < D and L <= watch.cf[k] <= h]
    out["needed_p_out_quartiles"] = [round(float(q), 4) for q in np.quantile(need_p, (0.25, 0.5, 0.75))] if need_p else None
    out["why"] = alarm_limits(watch, world, truth, notice, second, D)
    chain = {}
    for name, alarms in (("model", m_alarm), ("days_of_cover", c_alarm)):
        chain[name] = {
            **_pr(alarms_in_time(alarms, notice, runs, D)),
            "no_spike": _pr(alarms_in_time(alarms, notice, [k for k in runs if labels[k] != "spike"], D)),
            "planted": _pr(alarms_in_time(alarms, notice, [k for k in runs if labels[k] == "planted"], D)),
        }
    chain["runout_causes"] = pd.Series(list(labels.values()), dtype=object).value_counts().to_dict()
    out["chain_runouts"] = chain
    return out


def evaluate_replay(reader, truth: dict, restaurants: pd.DataFrame, settings, weeks: int,
                    service_levels: tuple = SERVICE_LEVELS, lead_learning: str = "world", keep: dict | None = None) -> dict:
    """Every replay figure of ``python -m bench.inventory`` over the last ``weeks`` weeks, tuned on
    their first half and reported on their second (docs/inventory.md, issue 26).

    Policies, each at every knob of ``service_levels``: the model (its service level), the fair
    par rule (R, P per item of least first-half cost at that level, ``fit_par_rule``), the
    order-up-to policy (its z); the chain's own ordering once. ``replay``: the full-window figures
    at the default, ``first_half``, ``second_half``, ``curves`` (per policy and knob, both halves),
    ``curve_check`` (the model's curve against the others' at matched stockout levels, second
    half), ``default_service_level`` (chosen on the first half, ``choose_default``). The model
    learns the suppliers' lead times from the world's own deliveries (``lead_learning`` "world",
    ``WorldLeadHistory``) or, "replica", from the replica's (the generator's lognormal).
    ``alarms_in_time`` and ``calibration``: the historical replay watched by the daily run.
    """
    import time

    t0 = time.perf_counter()
    end = pd.Timestamp(truth["end"])
    days = weeks * 7
    half = days // 2
    first, second = slice(0, half), slice(half, days)
    start = end - pd.Timedelta(days=days)
    world, items, ordered_at0 = build_world(reader, truth, restaurants, start, days)
    pairs = sorted({(int(r), int(s)) for r, s in zip(world.restaurant_id, world.supplier_id) if s >= 0})
    inputs = model_inputs(reader, restaurants, settings, start, days,
                          WorldLeadHistory(world.arrive, pairs, days) if lead_learning == "world" else None)
    t_inputs = time.perf_counter() - t0
    moq = items["min_order_quantity"].fillna(0).to_numpy(float)
    from models.inventory import supplier_lead

    lead0 = np.array([supplier_lead(inputs.lead[0], s if s >= 0 else None)[0] for s in world.supplier_id])
    watch = AlarmWatch(ModelPolicy(inputs, settings, ordered_at0, alarms=True, order=False))
    historical = replay(world, historical_policy(world, items, truth), observers=(watch,))
    t_hist = time.perf_counter() - t0
    levels = sorted(set(service_levels) | {settings.service_level})
    model = {sl: replay(world, ModelPolicy(inputs, settings.model_copy(update={"service_level": sl}), ordered_at0))
             for sl in levels}
    t_model = time.perf_counter() - t0
    default, why = choose_default(model, historical, first)
    par_fit = fit_par_rule(world, half, settings, moq, lead0)
    others = sorted(set(OTHER_LEVELS) | {default})  # the others at the model's default too, for the tables
    par = {sl: replay(world, par_fit.rule(sl)) for sl in others}
    out = {sl: replay(world, OrderUpTo(inputs, sl, moq, settings.review_period_days)) for sl in others}
    curves = {"model": _curve(model, first, second, settings, "service_level"),
              "par_rule": _curve(par, first, second, settings, "service_level"),
              "order_up_to": _curve(out, first, second, settings, "service_level"),
              "historical": {"first_half": half_figures(historical, first, settings),
                             "second_half": half_figures(historical, second, settings)}}
    runs = {"model": model[default], "historical": historical, "par_rule": par[default], "order_up_to": out[default]}
    if keep is not None:  # for a diagnosis: every replay and what the model saw
        keep.update(world=world, items=items, inputs=inputs, model=model, par=par, out=out, historical=historical)
    figures: dict = {"replay": {
        **{k: r.summary() for k, r in runs.items()},
        "first_half": {k: half_figures(r, first, settings) for k, r in runs.items()},
        "second_half": {k: half_figures(r, second, settings) for k, r in runs.items()},
        "second_half_by_kind": {kind: {k: r.summary(second, m) for k, r in runs.items()}
                                for kind, m in (("perishable", world.shelf > 0), ("other", world.shelf == 0))},
        "default_service_level": default, "default_rule": why,
        "curves": curves,
        "curve_check": {y: {o: curve_check(curves["model"], curves[o], y) for o in ("par_rule", "order_up_to")}
                        for y in ("avg_stock_value", "waste_units", "operating_cost")},
    }}
    figures["alarms_in_time"] = _alarm_figures(watch, world, settings, truth, historical, range(half, days))
    buckets = calibration_buckets(watch, world, range(half, days))
    first_buckets = calibration_buckets(watch, world, range(0, half))
    figures["calibration"] = {"second_half": buckets, "holds": calibration_holds(buckets),
                              "first_half": first_buckets, "holds_first_half": calibration_holds(first_buckets),
                              "sums": calibration(watch, world, historical)}
    figures["service_level_curve"] = [{"service_level": p["service_level"], **p["second_half"]} for p in curves["model"]]
    figures["replay_info"] = {
        "start": str(start.date()), "days": days, "first_half_days": half, "items": world.n,
        "lead_learning": lead_learning,
        "lead_time_world": lead_time_world(world.arrive, truth),
        "truth_stockout_episodes": int(sum(1 for s in truth.get("stockouts", []) if pd.Timestamp(s["end_date"]) >= start)),
        "seconds_inputs": round(t_inputs, 1), "seconds_historical": round(t_hist - t_inputs, 1),
        "seconds_model": round(t_model - t_hist, 1), "seconds": round(time.perf_counter() - t0, 1),
    }
    return figures
