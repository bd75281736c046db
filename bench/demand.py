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
LightGBM (1 thread) against Prophet per series (1 process), side by side in this process, and
the whole pipeline (backtest of 3 candidates x 3 folds, refit, intervals) against the same Prophet,
and the pipeline of the following nights (the shard's selection and intervals reused within
``forecast.reselect_days``, only the chosen model refit).
The public block (``"public"``): the real Edinburgh bakery of ../shared/data/public, imported
with ``sales_import`` into its own scratch database, its last 28 days held out and scored the same
way; skipped with a message when ../shared is absent. Every block also scores the anchors from the
field's libraries (``bench.baselines``): the four-week mean (``four_week_mean``, statsforecast's
SeasonalWindowAverage), a plain global LightGBM Poisson with lags no shorter than the horizon
(``lgbm_plain``, mlforecast), AutoETS (``autoets``, statsforecast, daily types) and Prophet with the
country's holidays (``prophet``); ``seasonal_average`` is the pipeline's own four-week mean. ``bias`` = forecast total /
actual total per method. ``--only synthetic|public`` runs one block.
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

import numpy as np
import pandas as pd

from features.demand import daily_demand_features, hourly_demand_features
from features.model_frames import DemandHistory, idle_slots
from features.items import item_demand_features
from features.restaurants import load_restaurants
from models.demand import DAILY, HOURLY, ITEMS
from models.forecasting import forecast, make_candidate, restaurant_context
from models.demand import reconcile_hourly, reconcile_items
from models.intervals import coverage, wape
from worker.db import make_replica_engine
from core.replica import ReplicaReader
from core.settings import ForecastSettings
from core.units import Scope

DB = "rmsml_bench_demand" + os.environ.get("RMSML_TEST_DB_SUFFIX", "")
PUBLIC_DB = "rmsml_bench_demand_public" + os.environ.get("RMSML_TEST_DB_SUFFIX", "")
# the real bakery (read ../shared/data/public/README.md); a user's clone has no ../shared
PUBLIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "public" / "bread_basket.csv"
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


def day_gap(hourly: pd.DataFrame, daily: pd.DataFrame) -> float:
    """Largest |sum of a whole local day's hourly forecasts / its daily forecast - 1|."""
    day = hourly["ds"].dt.normalize()
    per = hourly.groupby([hourly["series_id"], day.rename("ds")])["yhat"].agg(["sum", "size"]).reset_index()
    per = per[per["size"] >= 23].merge(daily[["series_id", "ds", "yhat"]], on=["series_id", "ds"])
    per = per[per["yhat"] > 0]
    return round(float((per["sum"] / per["yhat"] - 1).abs().max()), 4) if len(per) else float("nan")


def item_gap(raw: pd.DataFrame, scaled: pd.DataFrame, restaurant_of: pd.Series) -> dict:
    """Largest |a restaurant-day's item forecasts / its orders forecast x units per order - 1|,
    before and after ``reconcile_items`` (its target is orders_factor x the raw items' sum)."""
    key = [scaled["series_id"].map(restaurant_of).rename("rid"), scaled["ds"]]
    per = pd.DataFrame({"raw": raw["yhat"].to_numpy(float), "scaled": scaled["yhat"].to_numpy(float),
                        "factor": scaled["orders_factor"].to_numpy(float)}, index=scaled.index)
    per = per[np.isfinite(per["factor"])]
    if per.empty:
        return {"before": float("nan"), "after": float("nan")}
    day = per.groupby([k[per.index] for k in key]).agg(raw=("raw", "sum"), scaled=("scaled", "sum"),
                                                       factor=("factor", "first"))
    target = day["factor"] * day["raw"]
    ok = target > 0
    return {"before": round(float((1 / day.loc[ok, "factor"] - 1).abs().max()), 4),
            "after": round(float((day.loc[ok, "scaled"] / target[ok] - 1).abs().max()), 4)}


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a small chain (4 restaurants, 300 days)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--only", choices=("synthetic", "public", "chain"), help="run one block only")
    args = parser.parse_args(argv)
    restaurants, days = (4, 300) if args.quick else (20, 450)
    result = {"bench": "demand", "quick": args.quick, "restaurants": restaurants, "days": days}
    timings: dict = {}
    store = Path(tempfile.mkdtemp(prefix="bench-demand-"))
    if args.only in (None, "synthetic"):
        url = seed(restaurants, days)
        try:
            reader = ReplicaReader(make_replica_engine(url))
            result["types"] = score_types(reader, pd.Timestamp(END, tz="UTC"), store, timings, speed=True,
                                          result=result)
        finally:
            if not args.keep:
                from synthetic.scratch import drop_database

                drop_database(DB)
    if args.only in (None, "public"):
        result["public"] = public_block(store, timings)
    if args.only in (None, "chain"):
        from bench.chain import chain_block

        result["chain"] = chain_block(args.quick, timings)
    # end to end per night (features, backtest amortised over reselect_days, fit, predict, rows)
    # against Prophet per series, all three demand types together, per block
    result["speedup_vs_prophet_end_to_end"] = {
        name: block["end_to_end"]["all"]["speedup"]
        for name, block in (("synthetic", result), ("public", result.get("public") or {})) if "end_to_end" in block}
    result["timings"] = timings
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    # the machine is shared: the 1-minute load at the end says how contended the timings were
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)
    result["cpus"] = os.cpu_count()
    print(json.dumps(result))
    return result


def score_types(reader: ReplicaReader, end: pd.Timestamp, store: Path, timings: dict, *, speed: bool,
                result: dict, prefix: str = "") -> dict:
    """Per type: the pipeline's chosen model and the baselines on the last ``TAIL_DAYS`` before ``end``."""
    cut = end - pd.Timedelta(days=TAIL_DAYS)
    types = {}
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
        if ptype == "demand_daily":
            daily_frame = chosen.frame
        raw_rows = None
        if spec.hourly:  # as the run writes them: each day's hours scaled to its demand_daily forecast
            raw_rows = chosen.frame.merge(truth, on=["series_id", "ds"])
            raw_frame = chosen.frame
            chosen.frame = reconcile_hourly(chosen.frame, daily_frame, feats.history)
        if ptype == "item_demand_daily":  # the items of a day scaled to orders x units per order
            raw_rows = chosen.frame.merge(truth, on=["series_id", "ds"])
            raw_frame = chosen.frame
            chosen.frame = reconcile_items(chosen.frame, daily_frame, feats.history, feats.context,
                                           feats.series.set_index("series_id")["restaurant_id"])
        rows = chosen.frame.merge(truth, on=["series_id", "ds"])
        wapes, bias = _baselines(feats, truth.merge(future[["series_id", "ds"]], on=["series_id", "ds"]), spec, scope,
                                 timings, f"{prefix}{ptype}")
        wapes["chosen"] = round(wape(rows["y"], rows["yhat"]), 4)
        if raw_rows is not None:
            wapes["chosen_unscaled"] = round(wape(raw_rows["y"], raw_rows["yhat"]), 4)
            coherence = ({"before": day_gap(raw_frame, daily_frame), "after": day_gap(chosen.frame, daily_frame)}
                         if spec.hourly else None)
        bias["chosen"] = round(float(rows["yhat"].sum() / max(rows["y"].sum(), 1e-9)), 4)
        types[ptype] = _type_scores(rows, chosen, feats, wapes, bias)
        if ptype == "item_demand_daily":
            by_method = rows.groupby("method")[["y", "yhat"]].sum().round(1)
            types[ptype]["totals_by_method"] = {m: {"actual": float(r.y), "forecast": float(r.yhat)}
                                                for m, r in by_method.iterrows()}
        if raw_rows is not None and spec.hourly:
            types[ptype]["hourly_vs_daily_max_gap"] = coherence
        if raw_rows is not None and not spec.hourly:
            types[ptype]["items_vs_daily_max_gap"] = item_gap(
                raw_frame, chosen.frame, feats.series.set_index("series_id")["restaurant_id"])
            types[ptype]["bias_unscaled"] = round(float(raw_rows["yhat"].sum() / max(raw_rows["y"].sum(), 1e-9)), 4)
            types[ptype]["coverage80_unscaled"] = round(coverage(raw_rows["y"], raw_rows["lower"], raw_rows["upper"]), 4)
        if all_hours is not None:
            every = chosen.frame.merge(all_hours, on=["series_id", "ds"])
            types[ptype]["coverage80_all_hours"] = round(
                coverage(every["y"], every["lower"], every["upper"]), 4)
        timings[f"{prefix}{ptype}.pipeline_s"] = round(t_chosen, 2)
        if speed:
            _speed(ptype, feats, future, spec, scope, chosen, t_chosen, timings, result, prefix)
        print(prefix + ptype, json.dumps(types[ptype]), file=sys.stderr, flush=True)
    result["end_to_end"] = end_to_end(reader, cut, store, timings, prefix)
    # coherence (issue 16): the largest gap of a restaurant-day's hourly / item forecasts to its
    # daily forecast (items: x units per order), before and after the scaling
    result["coherence"] = {k: types[p][k] for p, k in (("demand_hourly", "hourly_vs_daily_max_gap"),
                                                       ("item_demand_daily", "items_vs_daily_max_gap"))
                           if k in types.get(p, {})}
    return types


def _baselines(feats, truth: pd.DataFrame, spec, scope: Scope, timings: dict, key: str) -> tuple[dict, dict]:
    """WAPE and bias of the anchors on the held-out rows; their times in ``timings``.

    ``seasonal_naive`` and ``seasonal_average`` are the pipeline's own candidates (what the chain
    falls back to); the anchors come from the field's libraries (``bench.baselines``):
    ``four_week_mean`` (statsforecast), ``lgbm_plain`` (mlforecast, lags no shorter than the
    horizon), ``autoets`` (statsforecast, daily types) and ``prophet`` (country holidays, closed and
    outlier periods out)."""
    from bench.baselines import field_forecasts, prophet_forecasts

    country = scope.restaurants.set_index("id").get("country_code", pd.Series(dtype=str))
    countries = {int(s): str(country.get(r, "") or "") for s, r in
                 feats.series.set_index("series_id")["restaurant_id"].items()}
    preds = {}
    for name in ("seasonal_naive", "seasonal_average"):
        model = make_candidate(name, spec)
        preds[name], timings[f"{key}.{name}_s"] = timed(
            lambda: model.fit(feats.history).predict(truth, history=feats.history)["yhat"].to_numpy(float))
    freq, periods = ("h", spec.horizon_days * 24) if spec.hourly else ("D", spec.horizon_days)
    field, timings[f"{key}.field_s"] = field_forecasts(feats.history, truth["ds"].max(), countries,
                                                       int(periods), freq)
    prophet, timings[f"{key}.prophet_s"] = prophet_forecasts(feats.history, truth[["series_id", "ds"]], countries,
                                                             hourly=spec.hourly)
    rows = truth.merge(field, on=["series_id", "ds"], how="left").merge(prophet, on=["series_id", "ds"], how="left")
    for name in ("four_week_mean", "lgbm_plain", "autoets", "prophet"):
        if name in rows:
            preds[name] = rows[name].to_numpy(float)
    wapes, bias = {}, {}
    y = truth["y"].to_numpy(float)
    for name, yhat in preds.items():
        yhat = np.nan_to_num(yhat, nan=0.0)
        wapes[name] = round(wape(y, yhat), 4)
        bias[name] = round(float(yhat.sum() / max(y.sum(), 1e-9)), 4)
    return wapes, bias


def _type_scores(rows: pd.DataFrame, chosen, feats, wapes: dict, bias: dict) -> dict:
    """One type's figures: the chosen model's against the baselines, its coverage, its chain's steps."""
    return {
        "wape": wapes,
        "bias": bias,
        "coverage80": round(coverage(rows["y"], rows["lower"], rows["upper"]), 4),
        # per step of the chain: a dormant item's 0 (rule) is a certain interval [0, 0], new
        # items borrow their category's (average); the model's own coverage is under "model"
        "coverage80_by_method": {m: round(coverage(g["y"], g["lower"], g["upper"]), 4)
                                 for m, g in rows.groupby("method")},
        # the model the rows came from: the chain's decision where the type has a default
        "chosen_model": (chosen.models[0].name if chosen.models else
                         chosen.backtest.chosen if chosen.backtest else None),
        "backtest": ({n: round(s["wape"], 4) for n, s in chosen.backtest.scores.items()}
                     if chosen.backtest else None),
        "methods": rows["method"].value_counts().to_dict(),
        "series": int(feats.series["series_id"].nunique()),
        "held_out_rows": int(len(rows)),
        "vs_naive": round(1 - wapes["chosen"] / wapes["seasonal_naive"], 4),
        "vs_seasonal_average": round(1 - wapes["chosen"] / wapes["seasonal_average"], 4),
        "vs_prophet": round(1 - wapes["chosen"] / wapes["prophet"], 4),
        "vs_lgbm_plain": round(1 - wapes["chosen"] / wapes["lgbm_plain"], 4),
    }


def _speed(ptype: str, feats, future: pd.DataFrame, spec, scope, chosen, t_chosen: float, timings: dict,
           result: dict, prefix: str) -> None:
    """The next nights' cost (a refit under the reused selection) and, for items, the speed-ups
    against Prophet."""
    # the next nights: the shard's selection is reused (forecast.reselect_days), only a refit
    registry = pd.DataFrame([{**vars(m), "prediction_type": ptype, "status": "active"} for m in chosen.models])
    later = replace(scope, run_id="bench1111-demand", registry=registry)
    refit, t_refit = timed(lambda: forecast(replace(feats, future=future), spec, later, save=False))
    timings[f"{prefix}{ptype}.pipeline_refit_s"] = round(t_refit, 2)
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


def end_to_end(reader: ReplicaReader, as_of: pd.Timestamp, store: Path, timings: dict, prefix: str) -> dict:
    """The nightly demand steps as the run loop does them, per type: features (SQL aggregates and
    transforms), forecast (fit, predict, intervals, artifact), coherence and ``m_l_predictions``
    rows, through the units of ``prediction_types.demand``. Twice: a night that backtests (empty
    registry) and the next night, which reuses that selection (``forecast.reselect_days``) and
    refits only the chosen candidates. A night costs the refit night plus the backtest night's
    extra amortised over ``reselect_days``. Against: Prophet fitted and forecast per series
    (2 processes) on the same data and periods (``<type>.prophet_s`` above; Prophet's features
    and rows not counted, in its favour)."""
    from prediction_types.demand import (DemandInputs, predict_demand_daily, predict_demand_hourly,
                                         predict_item_demand_daily)

    units = {"demand_daily": predict_demand_daily, "demand_hourly": predict_demand_hourly,
             "item_demand_daily": predict_item_demand_daily}

    def night(scope: Scope) -> tuple[dict, list]:
        inputs, seconds, models = DemandInputs(reader, scope), {}, []
        for ptype, unit in units.items():
            res, seconds[ptype] = timed(lambda: unit(inputs, scope))
            models += [{**vars(m), "prediction_type": ptype, "status": "active"} for m in res.models]
        return seconds, models

    scope = replace(scope_for(reader, as_of, store), run_id="bench2222-demand-e2e")
    first, models = night(scope)
    later = replace(scope, run_id="bench3333-demand-e2e", registry=pd.DataFrame(models))
    refit, _ = night(later)
    days = max(scope.forecast.reselect_days, 1)
    out = {"reselect_days": days}
    for ptype in units:
        per_night = refit[ptype] + max(first[ptype] - refit[ptype], 0.0) / days
        prophet = timings[f"{prefix}{ptype}.prophet_s"]
        timings[f"{prefix}{ptype}.e2e_backtest_night_s"] = round(first[ptype], 2)
        timings[f"{prefix}{ptype}.e2e_refit_night_s"] = round(refit[ptype], 2)
        out[ptype] = {"night_s": round(per_night, 3), "prophet_s": prophet,
                      "speedup": round(prophet / per_night, 2)}
    total = sum(out[p]["night_s"] for p in units)
    prophet_total = sum(out[p]["prophet_s"] for p in units)
    out["all"] = {"night_s": round(total, 3), "prophet_s": round(prophet_total, 2),
                  "speedup": round(prophet_total / total, 2)}
    print(prefix + "end_to_end", json.dumps(out), file=sys.stderr, flush=True)
    return out


def public_block(store: Path, timings: dict) -> dict:
    """The real bakery (../shared/data/public): imported with the importer into a scratch database,
    its last ``TAIL_DAYS`` held out; skipped with a message when ../shared is absent."""
    if not PUBLIC.exists():
        print(f"public block skipped: {PUBLIC} not found", file=sys.stderr, flush=True)
        return {"skipped": f"{PUBLIC.name} not found (../shared absent)"}
    from sales_import import import_sales
    from synthetic.scratch import drop_database, recreate_database

    url = recreate_database(PUBLIC_DB)
    try:
        (rep, t_import) = timed(lambda: import_sales(PUBLIC, url, timezone="Europe/London",
                                                     restaurant_name="The Bread Basket"))
        timings["public.import_s"] = round(t_import, 2)
        end = pd.Timestamp(rep.next_as_of)
        reader = ReplicaReader(make_replica_engine(url))
        block = {"data": PUBLIC.name, "as_of": str(end), "held_out_from": str(end - pd.Timedelta(days=TAIL_DAYS)),
                 "order_items": rep.inserted.get("orders_orderitem")}
        block["types"] = score_types(reader, end, store, timings, speed=False, result=block, prefix="public.")
        return block
    finally:
        drop_database(PUBLIC_DB)


if __name__ == "__main__":
    main()
