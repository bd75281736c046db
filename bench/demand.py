"""Demand forecasting benchmark: accuracy on a held-out tail and speed against Prophet.

    python -m bench.demand [--quick]

Baselines: seasonal naive (same slot last week), the seasonal average a spreadsheet would use
(mean of the same slot over recent weeks) and Prophet fitted series by series.

Seeds a synthetic chain into its own database (--quick: 4 restaurants x 300 days; default: the
issue's 20 restaurants x 450 days), reads features as of (end - 28 days) through the same SQL the
run uses, and compares on the held-out tail, per prediction type: seasonal naive, Prophet fitted
series by series, and the model the pipeline chooses (backtest + selection + conformal intervals).
Hourly rows are scored on the hours each restaurant serves (``features.model_frames.idle_slots``: an
hour without an order in the last 4 weeks is not demand, as a closed day is not); the coverage
over every hour is reported too. Speed: fitting and forecasting every item series with the global
LightGBM (1 thread) against Prophet per series (2 processes), side by side in this process, and
the whole pipeline (backtest of 3 candidates x 3 folds, refit, intervals) against the same Prophet,
and the pipeline of the following nights (the shard's selection and intervals reused within
``forecast.reselect_days``, only the chosen model refit).
Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd

from features.demand import DemandHistory, daily_demand_features, hourly_demand_features
from features.model_frames import idle_slots
from features.items import item_demand_features
from features.restaurants import load_restaurants
from models.demand import DAILY, HOURLY, ITEMS
from models.forecasting import forecast, make_candidate, restaurant_context
from models.intervals import coverage, wape
from worker.db import make_replica_engine
from core.replica import ReplicaReader
from core.settings import ForecastSettings
from core.units import Scope

DB = "rmsml_bench_demand" + os.environ.get("RMSML_TEST_DB_SUFFIX", "")
END = date(2026, 11, 1)
TAIL_DAYS = 28
TYPES = {
    "demand_daily": (daily_demand_features, DAILY, TAIL_DAYS),
    "demand_hourly": (hourly_demand_features, HOURLY, 7),
    "item_demand_daily": (item_demand_features, ITEMS, 14),
}


def seed(restaurants: int, days: int) -> str:
    from synthetic import ChainConfig, seed_database
    from synthetic.scratch import recreate_database

    url = recreate_database(DB)
    seed_database(url, ChainConfig(restaurants=restaurants, days=days, seed=11, end=END))
    return url


def scope_for(reader: ReplicaReader, as_of: pd.Timestamp, store: Path) -> Scope:
    found = load_restaurants(reader)
    return Scope(
        run_id="bench0000-demand", schedule="daily", as_of=as_of, restaurants=found.restaurants,
        forecast=ForecastSettings(), model_store=store, valid_until=datetime.now(timezone.utc),
    )


def held_out(full: DemandHistory, cut: DemandHistory, days: int) -> pd.DataFrame:
    """Actuals of the tail: periods of the cut's future that the full history has (open ones)."""
    fut = cut.future[["series_id", "ds"]]
    first = fut.groupby("series_id")["ds"].min()
    fut = fut[fut["ds"] < fut["series_id"].map(first) + pd.Timedelta(days=days)]
    actual = full.history[~full.history["closed"]][["series_id", "ds", "y"]]
    return fut.merge(actual, on=["series_id", "ds"])


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a small chain (4 restaurants, 300 days)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args(argv)
    restaurants, days = (4, 300) if args.quick else (20, 450)
    url = seed(restaurants, days)
    try:
        return _evaluate(url, args.quick, restaurants, days)
    finally:
        if not args.keep:
            from synthetic.scratch import drop_database

            drop_database(DB)


def _evaluate(url: str, quick: bool, restaurants: int, days: int) -> dict:
    reader = ReplicaReader(make_replica_engine(url))
    store = Path(tempfile.mkdtemp(prefix="bench-demand-"))
    end = pd.Timestamp(END, tz="UTC")
    cut = end - pd.Timedelta(days=TAIL_DAYS)
    result = {"bench": "demand", "quick": quick, "restaurants": restaurants, "days": days, "types": {}}
    timings = {}
    for ptype, (features, spec, days_ahead) in TYPES.items():
        scope = scope_for(reader, cut, store)
        feats = features(reader, scope)
        full = features(reader, scope_for(reader, end, store))
        truth = held_out(full, feats, days_ahead)
        all_hours = None
        if spec.hourly:
            idle = idle_slots(feats.history, truth)
            all_hours, truth = truth, truth[~idle]
        spec = replace(spec, horizon_days=min(spec.horizon_days, days_ahead))
        future = feats.future.merge((all_hours if all_hours is not None else truth)[["series_id", "ds"]],
                                    on=["series_id", "ds"])
        chosen, t_chosen = timed(lambda: forecast(
            replace(feats, future=future), spec, scope, save=True))
        # the next nights: the shard's selection is reused (forecast.reselect_days), only a refit
        registry = pd.DataFrame([{**vars(m), "prediction_type": ptype, "status": "active"} for m in chosen.models])
        later = replace(scope, run_id="bench1111-demand", registry=registry)
        refit, t_refit = timed(lambda: forecast(replace(feats, future=future), spec, later, save=False))
        timings[f"{ptype}.pipeline_refit_s"] = round(t_refit, 2)
        rows = chosen.frame.merge(truth, on=["series_id", "ds"])
        wapes = {}
        for name in ("seasonal_naive", "seasonal_average", "prophet"):
            cand = replace(spec, prophet_jobs=2)
            model = make_candidate(name, cand)
            pred, t = timed(lambda: model.fit(feats.history).predict(future, history=feats.history))
            timings[f"{ptype}.{name}_s"] = round(t, 2)
            p = pred.merge(truth, on=["series_id", "ds"])
            wapes[name] = round(wape(p["y"], p["yhat"].fillna(0.0)), 4)
        wapes["chosen"] = round(wape(rows["y"], rows["yhat"]), 4)
        result["types"][ptype] = {
            "wape": wapes,
            "coverage80": round(coverage(rows["y"], rows["lower"], rows["upper"]), 4),
            "chosen_model": chosen.backtest.chosen if chosen.backtest else None,
            "methods": rows["method"].value_counts().to_dict(),
            "series": int(feats.series["series_id"].nunique()),
            "held_out_rows": int(len(rows)),
            "vs_naive": round(1 - wapes["chosen"] / wapes["seasonal_naive"], 4),
            "vs_seasonal_average": round(1 - wapes["chosen"] / wapes["seasonal_average"], 4),
            "vs_prophet": round(1 - wapes["chosen"] / wapes["prophet"], 4),
        }
        if all_hours is not None:
            every = chosen.frame.merge(all_hours, on=["series_id", "ds"])
            result["types"][ptype]["coverage80_all_hours"] = round(
                coverage(every["y"], every["lower"], every["upper"]), 4)
        timings[f"{ptype}.pipeline_s"] = round(t_chosen, 2)
        if ptype == "item_demand_daily":
            lgbm = make_candidate("lightgbm", spec)
            _, t_lgbm = timed(lambda: lgbm.fit(feats.history).predict(future, history=feats.history))
            timings["items.lightgbm_fit_predict_s"] = round(t_lgbm, 2)
            prophet_s = timings["item_demand_daily.prophet_s"]
            # the chosen candidate alone (a top-down one fits the restaurant model too)
            best = make_candidate(chosen.backtest.chosen, spec, restaurant_context(feats))
            _, t_best = timed(lambda: best.fit(feats.history).predict(future, history=feats.history))
            timings["items.chosen_fit_predict_s"] = round(t_best, 2)
            result["speedup_vs_prophet_chosen"] = round(prophet_s / t_best, 2)
            result["speedup_vs_prophet"] = round(prophet_s / t_lgbm, 2)
            result["speedup_vs_prophet_incl_backtest"] = round(prophet_s / t_chosen, 2)
            result["speedup_vs_prophet_daily_refit"] = round(prophet_s / t_refit, 2)
            result["refit_reused_selection"] = refit.backtest is None
        print(ptype, json.dumps(result["types"][ptype]), file=sys.stderr, flush=True)
    result["timings"] = timings
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    # the machine is shared: the 1-minute load at the end says how contended the timings were
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)
    result["cpus"] = os.cpu_count()
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
