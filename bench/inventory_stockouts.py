"""The stockout date judged on items that ran out: run-outs read from the replica, each item's first
replayed two days before it (``stockout_accuracy``, with a diagnosis per case), and every item
replayed every 14 days (``stockout_alarms``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.inventory_common import STOCKOUT_NOTICE_DAYS, _scope, _truth


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


def _threshold_sweep(clean: pd.DataFrame, predicted: dict) -> dict:
    """The same replays with other risk thresholds for the predicted day (diagnostic, stderr)."""
    sweep = {}
    for tau in (0.5, 0.4, 0.3, 0.2):
        errs = []
        for i, d in zip(clean["inventory_item_id"], clean["date"]):
            p = predicted[(i, d)][2]
            hit = np.flatnonzero(p >= tau) if p is not None else []
            errs.append(len(hit) and abs(int(hit[0]) - STOCKOUT_NOTICE_DAYS) <= 1)
        sweep[tau] = sum(errs) / len(errs) if errs else None
    return sweep


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
    sweep = _threshold_sweep(clean, predicted)
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
