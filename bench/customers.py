"""Benchmark: churn, LTV and prep-time models against their baselines on held-out time.

    python -m bench.customers [--quick] [--keep]

Seeds a synthetic chain into a scratch database (--quick: 6 restaurants x 300 days; default:
12 restaurants x 800 days, long enough for a true 12-month LTV label), then, all in one run:

- churn: features at E-120 d (and two earlier cutoffs, as the unit trains), labels up to E-60 d;
  scored at E-60 d against labels in [E-60 d, E): ROC AUC and Brier of the calibrated model, of
  BG/NBD's P(no purchase in 60 d) and of recency alone, and the model's calibration table;
- LTV: the same with a W-day window (365 when the chain allows, else the longest multiple of 30
  days that fits twice after 60 days of history): MAE and aggregate error of the model, of
  BG/NBD x Gamma-Gamma and of trailing spend over an equal window;
- prep time: the last 90 days of completed tickets, newest 14 days held out: MAE of the model
  and of the per-item median.

The last line printed is one JSON object:
{"bench": "customers", "churn_auc": {...}, "churn_brier": {...}, "ltv_mae": {...},
 "prep_mae": {...}, "ratios": {...}, ..., "peak_rss_mb": ...} (peak RSS of this process).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import sys
import time

import pandas as pd

from core.replica import ReplicaReader
from features.customers import CHURN_WINDOW_DAYS, labelled_frame, training_frame
from features.kitchen import TICKET_HISTORY_DAYS, prep_tickets
from features.restaurants import load_restaurants
from models.churn import evaluate_churn
from models.ltv import evaluate_ltv
from models.prep_time import evaluate_prep
from synthetic import ChainConfig, seed_database
from synthetic.scratch import drop_database, recreate_database
from worker.db import make_replica_engine

SCRATCH_DB = "rmsml_bench_customers"
END = dt.date(2026, 11, 1)


def ltv_window(days: int) -> int:
    """Longest label window (multiple of 30, at most 365) with train and test windows after 60 d."""
    return min(365, max(30, ((days - 60) // 2) // 30 * 30))


def _r(x: float) -> float:
    return round(float(x), 4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.customers")
    parser.add_argument("--quick", action="store_true", help="6 restaurants x 300 days")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args(argv)
    restaurants, days = (6, 300) if args.quick else (12, 800)
    url = recreate_database(SCRATCH_DB)
    started = time.monotonic()
    try:
        seed_database(url, ChainConfig(restaurants=restaurants, days=days, seed=11, end=END))
        seeded = time.monotonic()
        reader = ReplicaReader(make_replica_engine(url))
        found = load_restaurants(reader).restaurants
        rids = [int(i) for i in found["id"]]
        orgs = sorted({int(o) for o in found["organization_id"]})
        end = pd.Timestamp(END, tz="UTC")
        valid_until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)

        w = CHURN_WINDOW_DAYS
        train = training_frame(reader, rids, orgs, end - pd.Timedelta(days=2 * w), w, end, valid_until)
        test = labelled_frame(reader, rids, orgs, end - pd.Timedelta(days=w), w, end, valid_until)
        for f in (train, test):
            f["churned"] = (f["future_orders"] == 0).astype(int)
        churn = evaluate_churn(train, test, w)
        churn_done = time.monotonic()

        lw = ltv_window(days)
        ltrain = training_frame(reader, rids, orgs, end - pd.Timedelta(days=2 * lw), lw, end, valid_until)
        ltest = labelled_frame(reader, rids, orgs, end - pd.Timedelta(days=lw), lw, end, valid_until)
        ltv = evaluate_ltv(ltrain, ltest, lw)
        ltv_done = time.monotonic()

        tickets = prep_tickets(reader, rids, end - pd.Timedelta(days=TICKET_HISTORY_DAYS), end, valid_until)
        prep = evaluate_prep(tickets, test_days=14)
        prep_done = time.monotonic()
    finally:
        if not args.keep:
            drop_database(SCRATCH_DB)

    auc, brier, mae, pmae = churn["auc"], churn["brier"], ltv["mae"], prep["mae"]
    print("churn calibration (model, held-out):", file=sys.stderr)
    for row in churn["calibration"]:
        print(f"  {row['bin']:>8}  n={row['n']:>6}  predicted={row['predicted']:.3f}  observed={row['observed']:.3f}",
              file=sys.stderr)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "bench": "customers",
        "restaurants": restaurants,
        "days": days,
        "churn_auc": {k: _r(v) for k, v in auc.items()},
        "churn_auc_repeat": {k: _r(v) for k, v in churn["auc_repeat"].items()},
        "churn_brier": {k: _r(v) for k, v in brier.items()},
        "churn_calibration": churn["calibration"],
        "churn_test_customers": churn["n_test"],
        "churn_base_rate": _r(churn["base_rate"]),
        "churn_test_repeat_customers": churn["n_test_repeat"],
        "churn_base_rate_repeat": _r(churn["base_rate_repeat"]),
        "ltv_mae": {k: _r(v) for k, v in mae.items()},
        "ltv_aggregate_error_pct": {k: _r(v) for k, v in ltv["aggregate_error_pct"].items()},
        "ltv_window_days": lw,
        "ltv_test_customers": ltv["n_test"],
        "prep_mae": {k: _r(v) for k, v in pmae.items()},
        "prep_test_tickets": prep["n_test"],
        "ratios": {
            "churn_auc_minus_bgnbd": _r(auc["model"] - auc["bgnbd"]),
            "churn_auc_minus_recency": _r(auc["model"] - auc["recency"]),
            "churn_auc_repeat_minus_bgnbd": _r(churn["auc_repeat"]["model"] - churn["auc_repeat"]["bgnbd"]),
            "churn_auc_repeat_minus_recency": _r(churn["auc_repeat"]["model"] - churn["auc_repeat"]["recency"]),
            # near the AUC ceiling a difference says little: misranked pairs, model over BG/NBD
            "churn_1_minus_auc_model_over_bgnbd": _r((1 - auc["model"]) / max(1 - auc["bgnbd"], 1e-9)),
            "ltv_mae_model_over_trailing": _r(mae["model"] / mae["trailing"]),
            "ltv_mae_model_over_bgnbd_gg": _r(mae["model"] / mae["bgnbd_gg"]),
            "prep_mae_model_over_item_median": _r(pmae["model"] / pmae["item_median"]),
        },
        "seconds": {"seed": round(seeded - started, 1), "churn": round(churn_done - seeded, 1),
                    "ltv": round(ltv_done - churn_done, 1), "prep": round(prep_done - ltv_done, 1)},
        "peak_rss_mb": round(peak_mb, 1),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
