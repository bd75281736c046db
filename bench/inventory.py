"""Benchmark: inventory, lead time, pricing and anomaly quality on the synthetic chain's planted truth.

    python -m bench.inventory [--quick] [--keep]

--quick is 4 restaurants x 200 days (a few minutes); the default 8 x 365. All figures come from one
run on one chain. The last line printed is one JSON object:
{"bench": "inventory", "stockout_within_1d", "stockout_items", "stockout_within_1d_all",
"stockout_items_all", "stockout_within_1d_forecastable", "stockout_alarms", "stockout_calibration",
"lead_time_mae": {"model", "promised"}, "lead_time_mae_asof": {"model_asof", "long_run_asof"}, "elasticity_abs_error", "elasticity_abs_error_prior", "anomaly": {"precision",
"recall"}, "replay": {"model", "par_rule", "order_up_to", "historical", "first_half", "second_half",
"default_service_level", "curves", "curve_check"}, "alarms_in_time": {"model", "days_of_cover", "why", ...},
"calibration": {"second_half", "first_half", "holds", "sums"}, "service_level_curve", "replay_info", "peak_rss_mb", "seconds"}.

* replay (``bench.inventory_replay``): the last weeks (the second half of the history) replayed
  day by day under four ordering policies -- the model's reorder advice, a fair par rule and a
  textbook order-up-to policy, each over its safety knob, and the chain's own (planted) ordering --
  with true demand and lead times from a family the model does not assume
  (``bench.replay_leadtimes``): stockout item-days, units short, average stock value, waste, orders;
  tuned on the replay's first half, reported on its second (``second_half``, ``curves``).
  alarms_in_time: alarms judged against run-outs without new orders; calibration: P(out by day k)
  per probability bucket against run-outs without new orders.

How each figure is measured (docs/inventory.md, pricing.md, anomalies.md):
* stockout_within_1d: for the first stockout of every item in the second half of the history,
  replay the daily run at the local midnight ``STOCKOUT_NOTICE_DAYS`` days before it and compare the
  predicted stockout date; the share within +/- 1 day over the *planted* stockouts (reordering
  forgotten). ``stockout_within_1d_all`` adds the incidental ones, most of which a planted demand
  spike or a late delivery causes on the day itself, which no forecast made two days before can see.
  Every replayed case is printed to stderr with its diagnosis (``runout_diagnosis``).
* stockout_calibration: summed P(out by day k) against the items that ran out by then, over the
  alarm replays: the within-a-day figures select items that did run out, so only this tells a
  biased forecast from tail events.
* lead_time_mae: fit on purchase orders placed before the last ``LEAD_HOLDOUT_DAYS`` days; mean
  absolute error on the orders placed after, of the model's expected lead time and of the
  supplier's promise. ``lead_time_mae_asof``: the same orders, the model refitted as of the
  midnight (UTC) of the day each was placed, with and without the supplier's recent lateness.
* elasticity_abs_error: mean |estimated - planted| over items with an own price change
  (``..._prior``: the same for the unit-elastic guess -1, for scale).
* anomaly: restaurant-days scored in the second half of the history; precision and recall of
  flagged days against the planted anomalies (closed days and holidays are never flagged).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import sys
import time

import pandas as pd
from sqlalchemy import create_engine

from bench.inventory_common import LEAD_HOLDOUT_DAYS, STOCKOUT_NOTICE_DAYS, _scope, _truth
from bench.inventory_lead_time import lead_time_mae
from bench.inventory_signals import anomaly_scores, elasticity_error
from bench.inventory_stockouts import runout_diagnosis, runouts_from_replica, stockout_accuracy, stockout_alarms

__all__ = ["LEAD_HOLDOUT_DAYS", "STOCKOUT_NOTICE_DAYS", "_scope", "_truth", "anomaly_scores", "elasticity_error",
           "evaluate", "lead_time_mae", "main", "runout_diagnosis", "runouts_from_replica", "stockout_accuracy",
           "stockout_alarms"]

# a suffix keeps two engineers' benchmark runs on one server from dropping each other's database
SCRATCH_DB = "rmsml_bench_inventory" + os.environ.get("RMSML_TEST_DB_SUFFIX", "")


def evaluate(replica_url: str, ground_truth, replay_weeks: int | None = None) -> dict:
    """Every figure of the benchmark on an already seeded replica (``replay_weeks``: the decision
    replay's weeks, default the second half of the history; 0 skips it)."""
    from core.replica import ReplicaReader
    from features.restaurants import load_restaurants

    truth = _truth(ground_truth)
    reader = ReplicaReader(create_engine(replica_url))
    restaurants = load_restaurants(reader).restaurants
    end = pd.Timestamp(truth["end"]).tz_localize("UTC")
    start = pd.Timestamp(truth["window_start"])
    start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
    middle = start + (end - start) / 2
    middle = middle.floor("D")
    from bench.inventory_replay import evaluate_replay
    from worker.settings import get_settings

    weeks = int((end - start).days // 14) if replay_weeks is None else replay_weeks
    replayed = evaluate_replay(reader, truth, restaurants, get_settings().inventory, weeks) if weeks > 0 else {}
    return {
        "decisions": replayed,
        "stockout": stockout_accuracy(reader, restaurants, truth, middle),
        "stockout_alarms": stockout_alarms(reader, restaurants, middle, end),
        "lead_time": lead_time_mae(reader, truth, end),
        "elasticity": elasticity_error(reader, restaurants, truth, end),
        "anomaly": anomaly_scores(reader, restaurants, truth, middle, end),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inventory")
    parser.add_argument("--quick", action="store_true", help="4 restaurants x 200 days")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args(argv)
    from synthetic import ChainConfig, seed_database
    from synthetic.scratch import drop_database, recreate_database
    from worker.db import sqlalchemy_url

    restaurants, days = (4, 200) if args.quick else (8, 365)
    began = time.perf_counter()
    url = recreate_database(SCRATCH_DB)
    try:
        summary = seed_database(url, ChainConfig(restaurants=restaurants, days=days, seed=7, end=dt.date(2026, 11, 1)))
        sa_url = sqlalchemy_url(url)
        os.environ["RMSML_REPLICA__URL"] = sa_url
        figures = evaluate(sa_url, summary["ground_truth"])
    finally:
        if not args.keep:
            drop_database(SCRATCH_DB)
    cases = figures["stockout"].pop("cases", None)
    if cases is not None:
        with pd.option_context("display.width", 200, "display.max_rows", 200):
            print("run-outs replayed (error = predicted - actual day; spike = a planted demand spike in the notice window):",
                  file=sys.stderr)
            print(cases.to_string(index=False), file=sys.stderr)
    print(json.dumps({k: v for k, v in figures.items()}, default=str), file=sys.stderr)
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    line = {
        "bench": "inventory",
        "restaurants": restaurants,
        "days": days,
        "stockout_within_1d": figures["stockout"]["within_1d"],
        "stockout_items": figures["stockout"]["items"],
        "stockout_within_1d_all": figures["stockout"]["within_1d_all"],
        "stockout_items_all": figures["stockout"]["items_all"],
        "stockout_within_1d_forecastable": figures["stockout"].get("within_1d_forecastable"),
        "stockout_items_forecastable": figures["stockout"].get("items_forecastable"),
        "stockout_within_1d_all_naive": figures["stockout"].get("within_1d_all_naive"),
        "stockout_within_1d_forecastable_naive": figures["stockout"].get("within_1d_forecastable_naive"),
        "stockout_alarms": {k: {m: (round(x, 4) if isinstance(x, float) else x) for m, x in v.items()}
                            for k, v in figures["stockout_alarms"].items() if k != "calibration"},
        "stockout_calibration": figures["stockout_alarms"]["calibration"],
        "lead_time_mae": {"model": round(figures["lead_time"]["model"], 4), "promised": round(figures["lead_time"]["promised"], 4)},
        "lead_time_mae_asof": {k: (None if figures["lead_time"][k] is None else round(figures["lead_time"][k], 4))
                               for k in ("model_asof", "long_run_asof")},
        "elasticity_abs_error": figures["elasticity"]["abs_error"],
        "elasticity_abs_error_prior": figures["elasticity"]["abs_error_prior"],
        "anomaly": {"precision": figures["anomaly"]["precision"], "recall": figures["anomaly"]["recall"]},
        "replay": figures["decisions"].get("replay"),
        "alarms_in_time": figures["decisions"].get("alarms_in_time"),
        "calibration": figures["decisions"].get("calibration"),
        "service_level_curve": figures["decisions"].get("service_level_curve"),
        "replay_info": figures["decisions"].get("replay_info"),
        "peak_rss_mb": round(rss_kb / 1024, 1),
        "seconds": round(time.perf_counter() - began, 1),
    }
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
