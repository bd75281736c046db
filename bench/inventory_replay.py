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

from bench.replay_alarms import AlarmWatch, alarm_days, alarms_in_time, calibration
from bench.replay_chain import build_world, historical_policy
from bench.replay_model import ModelInputs, ModelPolicy, model_inputs
from bench.replay_policies import HistoricalPolicy, ParRule, fit_par_rule, trailing_use
from bench.replay_world import NEVER, ReplayResult, State, World, replay, without_new_orders

__all__ = ["NEVER", "AlarmWatch", "HistoricalPolicy", "ModelInputs", "ModelPolicy", "ParRule", "ReplayResult",
           "State", "World", "alarm_days", "alarms_in_time", "build_world", "calibration", "evaluate_replay",
           "fit_par_rule", "historical_policy", "model_inputs", "replay", "trailing_use", "without_new_orders"]

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
