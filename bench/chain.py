"""The public chain (``chain`` block of ``bench.demand``): 200 real restaurants' daily visits,
imported and forecast the way a user does it, against baselines from the field's libraries.

    python -m bench.demand --only chain [--quick]

Path of the pipeline ("chosen"): ``import-sales --count-col`` into a scratch replica, then
``worker run --schedule daily --as-of <cutoff 04:15 Tokyo>`` in a subprocess with an empty
predictions database (a first night: backtest, the chain's decision, fit), and the next morning's
run (a warm night: the decision and intervals reused, Prophet kept, the rest refit). Its
``demand_daily`` rows are scored on every store-day present in the 28 days after the cutoff.
``first_night_s`` / ``warm_night_s``: the ``demand_daily`` unit's seconds summed over the shards
(``ml_run_shard.step_seconds``), i.e. the work of one process.

Baselines on the same history and store-days: ``four_week_mean`` (statsforecast's
``SeasonalWindowAverage(7, 4)``, closed days filled by the weekday median), ``autoets`` (statsforecast ``AutoETS(season_length=7)``),
``lgbm_plain`` (mlforecast, LightGBM Poisson, lags >= 28 days, calendar, holiday flag) — both
libraries in their own venv (``bench/field_baselines.py``: they pin pandas < 3) — and ``prophet``
(the Prophet library per store with ``add_country_holidays('JP')``, outlier days removed, fitted and
forecast store by store in this process: ``prophet_s``).

Windows, as ``../shared/data/public/README.md`` asks: ``tuning`` (28-day windows from 2016-12-03
and 2016-12-31, ending before 2017-01-28; --quick: the second only) is where choices were made;
``final`` (2017-01-28 to 2017-02-24) is scored once, never used to choose.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "public"
VISITS, STORES = DATA / "recruit_daily_visits.csv", DATA / "recruit_stores.csv"
TZ, COUNTRY = "Asia/Tokyo", "JP"
TUNING = ("2016-12-03", "2016-12-31")
FINAL = "2017-01-28"
HORIZON = 28
SUFFIX = os.environ.get("RMSML_TEST_DB_SUFFIX", "")
REPLICA_DB, PRED_DB = f"rmsml_bench_chain{SUFFIX}", f"rmsml_bench_chain_pred{SUFFIX}"


def as_of(cutoff: str) -> str:
    """04:15 in Tokyo on the cutoff day, as UTC (the issue's run time)."""
    return (pd.Timestamp(cutoff) + pd.Timedelta(hours=4, minutes=15)).tz_localize(TZ).tz_convert("UTC").strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def scores(frame: pd.DataFrame, col: str) -> dict:
    y, f = frame["y"].to_numpy(float), frame[col].to_numpy(float)
    return {"wape": round(float(np.abs(y - f).sum() / y.sum()), 4), "bias": round(float(f.sum() / y.sum() - 1), 4)}


def _run(replica: str, predictions: str, at: str, store: Path) -> dict:
    env = {**os.environ, "RMSML_REPLICA__URL": replica, "RMSML_PREDICTIONS__URL": predictions,
           "RMSML_MODEL_STORE__PATH": str(store), "RMSML_LOG_LEVEL": "WARNING"}
    out = subprocess.run([sys.executable, "-m", "worker", "run", "--schedule", "daily", "--as-of", at, "--no-lock",
                          "--json"], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _unit_seconds(engine, run_id: str) -> float:
    from sqlalchemy import text

    with engine.connect() as conn:
        steps = conn.execute(text("SELECT step_seconds FROM ml_run_shard WHERE run_id = :r"), {"r": run_id}).all()
    return round(sum(float((s or {}).get("demand_daily", 0.0)) for (s,) in steps), 2)


def pipeline(replica: str, cutoff: str, names: pd.Series) -> tuple[pd.DataFrame, dict]:
    """The pipeline's rows for the window (site, ds, value, lower, upper) and its night timings."""
    from sqlalchemy import create_engine, text

    from synthetic.scratch import drop_database, recreate_database

    predictions = recreate_database(PRED_DB).replace("postgresql://", "postgresql+psycopg2://", 1)
    store = Path(tempfile.mkdtemp(prefix="bench-chain-"))
    env = {**os.environ, "RMSML_PREDICTIONS__URL": predictions}
    subprocess.run([sys.executable, "-m", "worker", "migrate"], cwd=ROOT, env=env, capture_output=True, check=True)
    engine = create_engine(predictions)
    try:
        first = _run(replica, predictions, as_of(cutoff), store)
        with engine.connect() as conn:
            rows = pd.DataFrame(conn.execute(text(
                "SELECT restaurant_id, target_start, value, lower, upper FROM m_l_predictions "
                "WHERE prediction_type = 'demand_daily'")).all(), columns=["rid", "target_start", "value", "lower", "upper"])
        timing = {"first_night_s": _unit_seconds(engine, first["id"]), "status": first["status"]}
        decision = [m for m in first.get("messages", []) if "chain's decision" in m]
        next_morning = as_of(str((pd.Timestamp(cutoff) + pd.Timedelta(days=1)).date()))
        warm = _run(replica, predictions, next_morning, store)
        timing["warm_night_s"] = _unit_seconds(engine, warm["id"])
        timing["decision"] = decision[0] if decision else None
    finally:
        engine.dispose()
        drop_database(PRED_DB)
    rows["site"] = rows["rid"].map({v: k for k, v in names.items()})
    rows["ds"] = pd.to_datetime(rows["target_start"], utc=True).dt.tz_convert(TZ).dt.tz_localize(None).dt.normalize()
    return rows[["site", "ds", "value", "lower", "upper"]], timing


def baselines(hist: pd.DataFrame, cutoff: pd.Timestamp) -> tuple[pd.DataFrame, float]:
    """The anchors (``bench.baselines``) on the chain's history: Prophet per store with JP holidays
    and outlier days (``features.demand.mark_outliers``) removed, statsforecast and mlforecast;
    columns site, ds, prophet, four_week_mean, autoets, lgbm_plain, and Prophet's seconds."""
    from bench.baselines import field_forecasts, prophet_forecasts
    from features.demand import mark_outliers

    flagged = mark_outliers(hist.rename(columns={"site": "series_id"}).assign(closed=False))
    countries = {s: COUNTRY for s in flagged["series_id"].unique()}
    days = pd.date_range(cutoff, periods=HORIZON, freq="D")
    future = pd.DataFrame({"series_id": np.repeat(list(countries), len(days)), "ds": np.tile(days, len(countries))})
    prophet, prophet_s = prophet_forecasts(flagged, future, countries)
    field, _ = field_forecasts(flagged, days[-1], countries, HORIZON)
    both = prophet.merge(field, on=["series_id", "ds"], how="outer")
    return both.rename(columns={"series_id": "site"}), prophet_s


def window(replica: str, visits: pd.DataFrame, names: pd.Series, cutoff: str) -> dict:
    c = pd.Timestamp(cutoff)
    hist = visits[visits["ds"] < c]
    actual = visits[(visits["ds"] >= c) & (visits["ds"] < c + pd.Timedelta(days=HORIZON))]
    rows, timing = pipeline(replica, cutoff, names)
    anchors, prophet_s = baselines(hist, c)
    scored = actual.merge(rows, on=["site", "ds"], how="left").merge(anchors, on=["site", "ds"], how="left")
    present = len(scored)
    with_row = int(scored["value"].notna().sum())
    methods = {"chosen": "value", "four_week_mean": "four_week_mean", "lgbm_plain": "lgbm_plain",
               "prophet": "prophet", "autoets": "autoets"}
    scored = scored.dropna(subset=list(methods.values()))
    block = {"window": f"{cutoff} + {HORIZON} d", "store_days": present, "with_row": with_row,
             "scored": len(scored),
             "wape": {k: scores(scored, c)["wape"] for k, c in methods.items()},
             "bias": {k: scores(scored, c)["bias"] for k, c in methods.items()},
             "coverage80": round(float(((scored["y"] >= scored["lower"]) & (scored["y"] <= scored["upper"])).mean()), 4),
             "prophet_s": prophet_s, **timing}
    anchors = [block["wape"][k] for k in ("four_week_mean", "lgbm_plain", "prophet", "autoets")]
    block["vs_best_anchor"] = round(block["wape"]["chosen"] / min(anchors) - 1, 4)
    block["first_night_vs_prophet"] = round(timing["first_night_s"] / prophet_s, 3) if prophet_s else None
    block["warm_night_vs_prophet"] = round(timing["warm_night_s"] / prophet_s, 3) if prophet_s else None
    print("chain", cutoff, json.dumps(block), file=sys.stderr, flush=True)
    return block


def chain_block(quick: bool, timings: dict) -> dict:
    """Import the public chain, score the tuning windows and the final one; skipped without ../shared."""
    if not VISITS.exists():
        print(f"chain block skipped: {VISITS} not found", file=sys.stderr, flush=True)
        return {"skipped": f"{VISITS.name} not found (../shared absent)"}
    from sales_import.chain import import_daily_totals
    from synthetic.scratch import drop_database, recreate_database

    replica = recreate_database(REPLICA_DB)
    try:
        start = time.perf_counter()
        rep = import_daily_totals(VISITS, replica, timezone=TZ, organization_name="recruit", country=COUNTRY,
                                  columns={"site": "air_store_id", "date": "visit_date", "count": "visitors"},
                                  sites=STORES)
        timings["chain.import_s"] = round(time.perf_counter() - start, 2)
        names = pd.Series(rep.restaurants)
        visits = pd.read_csv(VISITS, parse_dates=["visit_date"]).rename(
            columns={"air_store_id": "site", "visit_date": "ds", "visitors": "y"})
        url = replica.replace("postgresql://", "postgresql+psycopg2://", 1)
        tuning = {c: window(url, visits, names, c) for c in (TUNING[-1:] if quick else TUNING)}
        final = window(url, visits, names, FINAL)
    finally:
        drop_database(REPLICA_DB)
    mean = {k: round(float(np.mean([w["wape"][k] for w in tuning.values()])), 4) for k in final["wape"]}
    return {"data": VISITS.name, "stores": len(names), "import_s": timings["chain.import_s"],
            "tuning": {"windows": tuning, "mean_wape": mean}, "final": final}
