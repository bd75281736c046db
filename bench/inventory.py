"""Benchmark: inventory, lead time, pricing and anomaly quality on the synthetic chain's planted truth.

    python -m bench.inventory [--quick] [--keep]

--quick is 4 restaurants x 200 days (a few minutes); the default 8 x 365. All figures come from one
run on one chain. The last line printed is one JSON object:
{"bench": "inventory", "stockout_within_1d", "stockout_items", "stockout_within_1d_all",
"stockout_items_all", "stockout_within_1d_forecastable", "stockout_alarms", "stockout_calibration",
"lead_time_mae": {"model", "promised"}, "lead_time_mae_asof": {"model_asof", "long_run_asof"}, "elasticity_abs_error", "elasticity_abs_error_prior", "anomaly": {"precision",
"recall"}, "replay": {"model", "par_rule", "historical"}, "alarms_in_time": {"model", "days_of_cover", ...},
"replay_calibration", "service_level_curve", "replay_info", "peak_rss_mb", "seconds"}.

* replay (``bench.inventory_replay``): the last weeks (the second half of the history) replayed
  day by day under three ordering policies -- the model's reorder advice, a par rule fitted on the
  weeks before, the chain's own (planted) ordering -- with true demand and the suppliers' true
  lead times: stockout item-days, units short, average stock value, waste, orders. alarms_in_time:
  stockout alarms that came at least the supplier's expected lead time before a run-out of the
  historical replay; replay_calibration: P(out by day k) against run-outs with and without the
  orders placed after the prediction.

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
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import create_engine

STOCKOUT_NOTICE_DAYS = 2
LEAD_HOLDOUT_DAYS = 60
# a suffix keeps two engineers' benchmark runs on one server from dropping each other's database
SCRATCH_DB = "rmsml_bench_inventory" + os.environ.get("RMSML_TEST_DB_SUFFIX", "")


def _scope(restaurants: pd.DataFrame, as_of: pd.Timestamp):
    from core.units import Scope
    from worker.settings import get_settings

    return Scope("bench", "daily", as_of, restaurants.reset_index(drop=True), get_settings().forecast,
                 Path("/tmp/rmsml-bench-models"), datetime.now(timezone.utc))


def _truth(ground_truth) -> dict:
    return ground_truth if isinstance(ground_truth, dict) else ground_truth.to_dict()


def runouts_from_replica(reader, restaurants: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Days on which an item ran out, read from the replica like an auditor would.

    An item runs out on the local day a consumption movement takes its balance (the running sum
    of every valid stock movement, in time order) from above zero to zero -- the kitchen used the
    last of it -- and at least one portion could not be served: what the day's sales needed
    (units sold x recipe quantity x the item's observed portioning, as in the model) minus what
    was consumed, that day and the next, is at least the item's smallest recipe quantity. A
    balance brought to zero by an expiry write-off is not a run-out, nor is a last dish served
    a few grams short. Returns restaurant_id, inventory_item_id, date (naive local day), unmet
    (item units), for days in [start, end).
    """
    from features.demand import checked_zones
    from features.inventory import recipe_lines
    from features.items import item_daily_units
    from features.quality import valid

    frame = reader.frame(
        f"""
        WITH m AS (
            SELECT i.restaurant_id, m.inventory_item_id, m.movement_type, m.quantity::float8 AS quantity,
                   (m.occurred_at AT TIME ZONE r.timezone)::date AS day,
                   sum(m.quantity) OVER (PARTITION BY m.inventory_item_id ORDER BY m.occurred_at, m.id)::float8 AS balance
            FROM inventory_stockmovement m
            JOIN inventory_inventoryitem i ON i.id = m.inventory_item_id
            JOIN restaurants_restaurant r ON r.id = i.restaurant_id
            WHERE {valid('inventory_stockmovement', 'm')}
        )
        SELECT restaurant_id, inventory_item_id, day AS date FROM m
        WHERE movement_type = 'consumption' AND balance <= 1e-9 AND balance - quantity > 1e-9
          AND day >= :start AND day < :end
        GROUP BY 1, 2, 3
        ORDER BY 3
        """,
        {"start": start.date(), "end": end.date(), "valid_until": end},
    )
    frame["date"] = pd.to_datetime(frame["date"])
    rids = [int(r) for r in restaurants["id"]]
    used = reader.frame(
        f"""
        SELECT m.inventory_item_id, (m.occurred_at AT TIME ZONE r.timezone)::date AS ds, sum(-m.quantity)::float8 AS used
        FROM inventory_stockmovement m JOIN inventory_inventoryitem i ON i.id = m.inventory_item_id
        JOIN restaurants_restaurant r ON r.id = i.restaurant_id
        WHERE m.movement_type = 'consumption' AND i.restaurant_id = ANY(:rids) AND {valid('inventory_stockmovement', 'm')}
        GROUP BY 1, 2
        """,
        {"rids": rids, "valid_until": end},
    )
    used["ds"] = pd.to_datetime(used["ds"])
    zones, _ = checked_zones(restaurants)
    sold = item_daily_units(reader, zones, pd.Timestamp("1970-01-01", tz="UTC"), end, end)
    recipes = recipe_lines(reader, rids)
    need = sold.rename(columns={"local_date": "ds"}).merge(recipes, on="menu_item_id")
    need["need"] = need["units"] * need["quantity_per_unit"]
    need = need.groupby(["inventory_item_id", "ds"], as_index=False)["need"].sum()
    daily = need.merge(used, on=["inventory_item_id", "ds"], how="outer").fillna(0.0)
    ok = daily[(daily["used"] > 0) & (daily["need"] > 0)]
    tot = ok.groupby("inventory_item_id")[["used", "need"]].sum()
    portioning = (tot["used"] / tot["need"]).clip(0.5, 2.0)
    daily["unmet"] = (daily["need"] * daily["inventory_item_id"].map(portioning).fillna(1.0) - daily["used"]).clip(lower=0)
    unmet = daily.set_index(["inventory_item_id", "ds"])["unmet"]
    portion = recipes.groupby("inventory_item_id")["quantity_per_unit"].min() * portioning.reindex(
        recipes.groupby("inventory_item_id")["quantity_per_unit"].min().index).fillna(1.0)
    frame["unmet"] = [
        float(unmet.get((i, d), 0.0) + unmet.get((i, d + pd.Timedelta(days=1)), 0.0))
        for i, d in zip(frame["inventory_item_id"], frame["date"])
    ]
    keep = frame["unmet"] >= frame["inventory_item_id"].map(portion).fillna(0.0) - 1e-9
    return frame[keep].reset_index(drop=True)


def runout_diagnosis(reader, feats, plan, item_id: int, date: pd.Timestamp, as_of: pd.Timestamp, tz: str) -> dict:
    """Why a replayed run-out was or was not foreseen: what the replay saw against what happened.

    Over the gap (local days from the replay's day through the run-out day): the usage forecast
    against realised use (consumption + waste other than expiry write-offs) and its place in the
    forecast's distribution (``use_pit``: Normal with the summed daily variances), the stock and
    its expiring part, open purchase orders with the day the replay expected them and the day they
    came (``late``: after the expected day), and the replay's P(out by the actual day).
    """
    from scipy.stats import norm

    from models.lead_time import SupplierLeadTime
    from models.stock_projection import arrival_days

    gap = STOCKOUT_NOTICE_DAYS + 1
    today = as_of.tz_convert(tz).tz_localize(None).normalize()
    item = feats.items.set_index("inventory_item_id").loc[item_id]
    end = as_of + pd.Timedelta(days=gap + 1)
    mv = reader.frame(
        """
        SELECT m.movement_type, m.quantity::float8 AS q, (m.occurred_at AT TIME ZONE :tz)::date AS day,
               b.expires_at IS NOT NULL AND b.expires_at <= m.occurred_at + interval '1 day' AS expiry
        FROM inventory_stockmovement m LEFT JOIN inventory_batch b ON b.id = m.batch_id
        WHERE m.inventory_item_id = :i AND m.occurred_at >= :a AND m.occurred_at < :e
        """,
        {"i": int(item_id), "a": as_of.to_pydatetime(), "e": end.to_pydatetime(), "tz": tz},
    )
    mv["day"] = pd.to_datetime(mv["day"])
    mv = mv[mv["day"] <= date]
    used = -mv.loc[mv["movement_type"].isin(["consumption", "waste"]) & ~mv["expiry"].astype(bool), "q"].sum()
    expired = -mv.loc[(mv["movement_type"] == "waste") & mv["expiry"].astype(bool), "q"].sum()
    row = plan.items.set_index("inventory_item_id").loc[item_id] if len(plan.items) else None
    daily = plan.daily[plan.daily["inventory_item_id"] == item_id] if len(plan.daily) else plan.daily
    from models.usage import usage_forecast

    use, _ = usage_forecast(feats)
    u = use[use["inventory_item_id"] == item_id].head(gap)
    fc, fc_sd = float(u["mean"].sum()), float(np.sqrt((u["sd"] ** 2).sum()))
    lots = feats.lots[feats.lots["inventory_item_id"] == item_id]
    lot_day = np.array([(pd.Timestamp(t).tz_convert(tz).tz_localize(None).normalize() - today).days
                        for t in lots["expires_at"]], dtype=int)
    oo = feats.open_orders[feats.open_orders["inventory_item_id"] == item_id]
    lead = SupplierLeadTime().fit(feats.suppliers, feats.lead_times, feats.recent_orders).estimates_
    rest = pd.DataFrame({"id": [int(item["restaurant_id"])], "timezone": [tz]})
    exp_day = arrival_days(oo, lead, rest, feats.items, as_of)
    got = reader.frame("SELECT id, received_at FROM inventory_purchaseorder WHERE id = ANY(:ids)",
                       {"ids": [int(x) for x in oo["purchase_order_id"]]}).set_index("id")["received_at"]
    pos, late = [], False
    for (po, qty), ds in zip(oo[["purchase_order_id", "quantity"]].itertuples(index=False), exp_day["ds"]):
        r = got.get(po)
        came = None if r is None or pd.isna(r) else (pd.Timestamp(r).tz_convert(tz).tz_localize(None).normalize() - today).days
        late |= came is None or came > (ds - today).days
        pos.append(f"{qty:g}@d{(ds - today).days}->{'never' if came is None else f'd{came}'}")
    p_out = row["p_out"] if row is not None else None
    k = int((date - today).days)
    return {
        "perishable": bool(item["is_perishable"]),
        "stock": round(float(feats.on_hand.set_index("inventory_item_id")["on_hand"].get(item_id, 0.0)), 2),
        "expiring_in_gap": round(float(lots["quantity"].to_numpy()[lot_day <= k].sum()), 2),
        "proj_expired": round(float(daily["expired"].head(k + 1).sum()), 2) if len(daily) else None,
        "expired": round(float(expired), 2),
        "use_fc": round(fc, 2),
        "use_real": round(float(used), 2),
        "use_pit": round(float(norm.cdf((used - fc) / fc_sd)), 2) if fc_sd > 0 else None,
        "open_pos": " ".join(pos) or "-",
        "po_late": bool(late) if len(oo) else None,
        "p_out_actual_day": round(float(p_out[k]), 3) if p_out is not None and k < len(p_out) else None,
    }


def stockout_accuracy(reader, restaurants: pd.DataFrame, ground_truth, window_start: pd.Timestamp,
                      window_end: pd.Timestamp | None = None) -> dict:
    """Share of items whose first run-out after ``window_start`` is predicted within +/- 1 day.

    The run-outs come from the replica (``runouts_from_replica``); the ground truth only labels
    them: ``planted`` (a planted reorder gap covers the day) and ``spike`` (a planted one-day demand
    spike of the restaurant falls between the replay instant and the run-out: nothing seen two days
    before can foresee it). Figures: ``within_1d`` over planted run-outs, ``within_1d_all`` over
    every item's first run-out, ``within_1d_forecastable`` over every item's first run-out that
    no spike caused.
    """
    from features.inventory import inventory_features
    from features.timegrid import local_midnight
    from models.inventory import plan_inventory
    from worker.settings import get_settings

    settings = get_settings().inventory
    truth = _truth(ground_truth)
    end = window_end if window_end is not None else pd.Timestamp(truth["end"]).tz_localize("UTC")
    runs = runouts_from_replica(reader, restaurants, window_start, end)
    runs = runs[runs["restaurant_id"].isin(restaurants["id"])]
    if runs.empty:
        return {"within_1d": None, "items": 0, "within_1d_all": None, "items_all": 0, "errors": []}
    gaps = pd.DataFrame(truth.get("reorder_gaps", []), columns=["inventory_item_id", "start_date", "end_date"])
    spikes = {(int(r["restaurant_id"]), pd.Timestamp(a["date"])) for r in truth["restaurants"]
              for a in r["anomalies"] if a.get("kind") == "spike"}
    runs["planted"] = [
        bool(((gaps["inventory_item_id"] == i) & (pd.to_datetime(gaps["start_date"]) <= d)
              & (d <= pd.to_datetime(gaps["end_date"]) + pd.Timedelta(days=30))).any())
        for i, d in zip(runs["inventory_item_id"], runs["date"])
    ]
    runs["spike"] = [any((int(r), d - pd.Timedelta(days=k)) in spikes for k in range(STOCKOUT_NOTICE_DAYS + 1))
                     for r, d in zip(runs["restaurant_id"], runs["date"])]
    first = runs.groupby("inventory_item_id").head(1)
    clean = runs[~runs["spike"]].groupby("inventory_item_id").head(1)
    cases = pd.concat([first, clean]).drop_duplicates(["inventory_item_id", "date"])
    predicted, naive, diagnosis = {}, {}, {}
    for r in cases.itertuples(index=False):
        rest = restaurants[restaurants["id"] == r.restaurant_id]
        tz = rest["timezone"].iloc[0]
        as_of = local_midnight(r.date - pd.Timedelta(days=STOCKOUT_NOTICE_DAYS), tz).tz_convert("UTC")
        scope = _scope(rest, as_of)
        feats = inventory_features(reader, scope, settings)
        feats.items = feats.items[feats.items["inventory_item_id"] == r.inventory_item_id]
        plan = plan_inventory(feats, settings, scope.restaurants)
        pred = plan.items["stockout_date"].iloc[0] if len(plan.items) else None
        # the spreadsheet answer: days of cover = stock / trailing 28-day mean daily use
        hist = feats.usage[feats.usage["inventory_item_id"] == r.inventory_item_id].tail(28)
        rate = float((hist["consumption"] + hist["waste"]).mean()) if len(hist) else 0.0
        stock = float(feats.on_hand.set_index("inventory_item_id")["on_hand"].get(r.inventory_item_id, 0.0))
        naive[(r.inventory_item_id, r.date)] = int(stock // rate) - STOCKOUT_NOTICE_DAYS if rate > 0 else None
        diagnosis[(r.inventory_item_id, r.date)] = runout_diagnosis(reader, feats, plan, int(r.inventory_item_id), r.date, as_of, tz)
        predicted[(r.inventory_item_id, r.date)] = (
            None if pred is None or pd.isna(pred) else int((pd.Timestamp(pred) - r.date).days),
            plan.items["usage_model"].iloc[0] if len(plan.items) else None,
            plan.items["p_out"].iloc[0] if len(plan.items) else None,
        )

    def share(frame, source=None):
        err = (lambda k: predicted[k][0]) if source is None else (lambda k: source[k])
        hits = [err((i, d)) is not None and abs(err((i, d))) <= 1 for i, d in zip(frame["inventory_item_id"], frame["date"])]
        return (sum(hits) / len(hits) if hits else None), len(hits)

    planted = first[first["planted"]]
    cases = cases.assign(error=[predicted[(i, d)][0] for i, d in zip(cases["inventory_item_id"], cases["date"])],
                         usage_model=[predicted[(i, d)][1] for i, d in zip(cases["inventory_item_id"], cases["date"])])
    # the same replays with other risk thresholds for the predicted day (diagnostic, stderr)
    sweep = {}
    for tau in (0.5, 0.4, 0.3, 0.2):
        errs = []
        for i, d in zip(clean["inventory_item_id"], clean["date"]):
            p = predicted[(i, d)][2]
            hit = np.flatnonzero(p >= tau) if p is not None else []
            errs.append(len(hit) and abs(int(hit[0]) - STOCKOUT_NOTICE_DAYS) <= 1)
        sweep[tau] = sum(errs) / len(errs) if errs else None
    p_share, p_n = share(planted)
    a_share, a_n = share(first)
    f_share, f_n = share(clean)
    cases["naive_error"] = [naive[(i, d)] for i, d in zip(cases["inventory_item_id"], cases["date"])]
    cases = pd.concat([cases.reset_index(drop=True), pd.DataFrame(
        [diagnosis[(i, d)] for i, d in zip(cases["inventory_item_id"], cases["date"])])], axis=1)
    return {
        "within_1d": p_share, "items": p_n,
        "within_1d_all": a_share, "items_all": a_n,
        "within_1d_forecastable": f_share, "items_forecastable": f_n,
        "within_1d_all_naive": share(first, naive)[0], "within_1d_forecastable_naive": share(clean, naive)[0],
        "errors": [predicted[(i, d)][0] for i, d in zip(first["inventory_item_id"], first["date"])],
        "planted": [bool(p) for p in first["planted"]],
        "cases": cases,
        "threshold_sweep_forecastable": sweep,
    }


def stockout_alarms(reader, restaurants: pd.DataFrame, window_start: pd.Timestamp, end: pd.Timestamp,
                    step_days: int = 14, within_days: int = STOCKOUT_NOTICE_DAYS + 1) -> dict:
    """How often a predicted stockout is real: every item replayed every ``step_days``.

    The within-a-day figures only look at items that did run out, which rewards pessimism (a rule
    that ignores open orders always predicts the stock running out in a few days). Here every item
    of every restaurant is replayed at local midnights through the window; an alarm is a predicted
    run-out within ``within_days`` days (0 = today), a hit is an item that ran out in those days
    (``runouts_from_replica``). Items already out at the replay are left out. Precision and recall
    for the model and for days of cover. Both predict without orders not yet placed, while the
    simulated manager keeps ordering: many alarms are answered by a delivery ordered after them.
    """
    from features.inventory import inventory_features
    from features.timegrid import local_midnight
    from models.inventory import plan_inventory
    from worker.settings import get_settings

    settings = get_settings().inventory
    runs = runouts_from_replica(reader, restaurants, window_start, end)
    out = {"model": [0, 0, 0], "naive": [0, 0, 0]}  # alarms, true alarms, actual run-outs
    # calibration: summed P(out by day k) against the items that did run out by then
    cal = {g: {k: [0.0, 0] for k in (1, within_days)} for g in ("perishable", "other")}
    for r in restaurants.itertuples(index=False):
        rest = restaurants[restaurants["id"] == r.id]
        day = window_start.tz_localize(None).normalize() if window_start.tzinfo else window_start.normalize()
        while day + pd.Timedelta(days=within_days) < end.tz_localize(None):
            as_of = local_midnight(day, r.timezone).tz_convert("UTC")
            scope = _scope(rest, as_of)
            feats = inventory_features(reader, scope, settings)
            plan = plan_inventory(feats, settings, scope.restaurants)
            if len(plan.items):
                mine = runs[(runs["restaurant_id"] == r.id) & (runs["date"] >= day)
                            & (runs["date"] <= day + pd.Timedelta(days=within_days))]
                actual = set(mine["inventory_item_id"])
                hist = feats.usage.groupby("inventory_item_id").tail(28)
                rate = (hist["consumption"] + hist["waste"]).groupby(hist["inventory_item_id"]).mean()
                stock = feats.on_hand.set_index("inventory_item_id")["on_hand"]
                cover = (stock / rate.reindex(stock.index)).where(lambda x: x.notna() & np.isfinite(x))
                empty = set(stock[stock <= 0].index)  # already out: nothing left to predict
                actual -= empty
                model_alarm = set(plan.items.loc[plan.items["stockout_days"] <= within_days, "inventory_item_id"]) - empty
                naive_alarm = set(cover[cover.fillna(1e9) // 1 <= within_days].index) - empty
                per = feats.items.set_index("inventory_item_id")["is_perishable"]
                for it in plan.items.itertuples(index=False):
                    if it.inventory_item_id in empty or it.inventory_item_id not in stock.index:
                        continue
                    got = mine.loc[mine["inventory_item_id"] == it.inventory_item_id, "date"]
                    first = int((got.min() - day).days) if len(got) else None
                    key = "perishable" if per.get(it.inventory_item_id, False) else "other"
                    for k in (1, within_days):
                        cal[key][k][0] += float(it.p_out[k])
                        cal[key][k][1] += int(first is not None and first <= k)
                for name, alarm in (("model", model_alarm), ("naive", naive_alarm)):
                    out[name][0] += len(alarm)
                    out[name][1] += len(alarm & actual)
                    out[name][2] += len(actual)
            day += pd.Timedelta(days=step_days)
    figures = {
        name: {"precision": (t / a if a else None), "recall": (t / n if n else None), "alarms": a, "runouts": n}
        for name, (a, t, n) in out.items()
    }
    figures["calibration"] = {g: {f"by_day_{k}": {"expected": round(e, 1), "realised": n} for k, (e, n) in v.items()}
                              for g, v in cal.items()}
    return figures


def lead_time_mae(reader, ground_truth, end: pd.Timestamp) -> dict:
    """MAE (days) on held-out purchase orders: the model's expected lead time vs the promise.

    ``model``: one fit at the start of the held-out days (as of it, recent lateness included),
    scored on every order placed in them. ``*_asof``: refitted as of each held-out UTC day's
    midnight and scored on the orders placed that day (what a daily run sees): ``model_asof`` with
    the supplier's recent lateness, ``long_run_asof`` without it (factor 1).
    """
    from features.inventory import (
        received_orders,
        shard_suppliers,
        supplier_lead_times,
        supplier_recent_orders,
    )
    from models.lead_time import SupplierLeadTime
    from worker.settings import get_settings

    recent_days = get_settings().inventory.lead_time_recent_days
    cutoff = end - pd.Timedelta(days=LEAD_HOLDOUT_DAYS)
    rids = [int(i) for i in reader.frame("SELECT id FROM restaurants_restaurant")["id"]]
    suppliers = shard_suppliers(reader, rids)
    sids = [int(s) for s in suppliers["supplier_id"]]
    hist = supplier_lead_times(reader, sids, cutoff - pd.Timedelta(days=365), cutoff)
    model = SupplierLeadTime().fit(suppliers, hist, supplier_recent_orders(reader, sids, cutoff, recent_days))
    held = received_orders(reader, sids, cutoff, end)
    test = held.merge(model.estimates_, on="supplier_id")
    test = test.merge(suppliers[["supplier_id", "promised_lead_days"]], on="supplier_id")
    err_asof, err_long = [], []
    for day in pd.date_range(cutoff.floor("D"), end, freq="D", inclusive="left"):
        placed = held[(held["ordered_at"] >= day) & (held["ordered_at"] < day + pd.Timedelta(days=1))]
        if placed.empty:
            continue
        h = supplier_lead_times(reader, sids, day - pd.Timedelta(days=365), day)
        est = SupplierLeadTime().fit(suppliers, h, supplier_recent_orders(reader, sids, day, recent_days)).estimates_
        m = placed.merge(est, on="supplier_id")
        err_asof.append((m["lead_days"] - m["expected_days"]).abs().to_numpy())
        err_long.append((m["lead_days"] - m["long_run_expected_days"]).abs().to_numpy())
    return {
        "model": float((test["lead_days"] - test["expected_days"]).abs().mean()),
        "promised": float((test["lead_days"] - test["promised_lead_days"]).abs().mean()),
        "orders": int(len(test)),
        "model_asof": float(np.concatenate(err_asof).mean()) if err_asof else None,
        "long_run_asof": float(np.concatenate(err_long).mean()) if err_long else None,
    }


def elasticity_error(reader, restaurants: pd.DataFrame, ground_truth, end: pd.Timestamp) -> dict:
    """Mean |estimated - planted| elasticity over items with their own price change."""
    from features.prices import pricing_features
    from models.pricing import ElasticityEstimator
    from worker.settings import get_settings

    feats = pricing_features(reader, _scope(restaurants, end), get_settings().inventory)
    est = ElasticityEstimator().fit(feats["items"], feats["sales"]).estimates_
    truth = pd.DataFrame([{"menu_item_id": m["menu_item_id"], "planted": m["elasticity"]} for m in _truth(ground_truth)["menu_items"]])
    own = est[est["source"] == "own"].merge(truth, on="menu_item_id")
    return {
        "abs_error": float((own["elasticity"] - own["planted"]).abs().mean()) if len(own) else None,
        "abs_error_prior": float((own["planted"] + 1.0).abs().mean()) if len(own) else None,
        "abs_error_raw": float((own["raw"] - own["planted"]).abs().mean()) if len(own) else None,
        "items": int(len(own)),
    }


def anomaly_scores(reader, restaurants: pd.DataFrame, ground_truth, start: pd.Timestamp, end: pd.Timestamp) -> dict:
    """Precision and recall of flagged restaurant-days in [start, end) against the planted anomalies."""
    from features.anomalies import anomaly_series
    from models.anomaly import RobustWeekdayZ
    from worker.settings import get_settings

    series = anomaly_series(reader, restaurants, start - pd.Timedelta(days=120), end, datetime.now(timezone.utc), ("restaurant",))
    scored = RobustWeekdayZ(threshold=get_settings().inventory.anomaly_z).score(series["restaurant"])
    scored = scored[scored["ds"] >= start.tz_localize(None)]
    planted = {
        (int(r["restaurant_id"]), pd.Timestamp(a["date"]))
        for r in _truth(ground_truth)["restaurants"]
        for a in r["anomalies"]
    }
    scoreable = set(zip(scored["entity_id"].astype(int), scored["ds"]))
    flagged = set(zip(scored.loc[scored["anomaly"], "entity_id"].astype(int), scored.loc[scored["anomaly"], "ds"]))
    planted &= scoreable
    tp = len(flagged & planted)
    return {
        "precision": tp / len(flagged) if flagged else None,
        "recall": tp / len(planted) if planted else None,
        "flagged": len(flagged),
        "planted": len(planted),
    }


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
        "replay_calibration": figures["decisions"].get("calibration"),
        "service_level_curve": figures["decisions"].get("service_level_curve"),
        "replay_info": figures["decisions"].get("replay_info"),
        "peak_rss_mb": round(rss_kb / 1024, 1),
        "seconds": round(time.perf_counter() - began, 1),
    }
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
