"""Supplier lead times on held-out purchase orders: the model against the promise."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.inventory_common import LEAD_HOLDOUT_DAYS


def lead_time_mae(reader, ground_truth, end: pd.Timestamp) -> dict:
    """MAE (days) on held-out purchase orders: the model's expected lead time vs the promise.

    ``model``: one fit at the start of the held-out days (as of it, recent lateness included),
    scored on every order placed in them. ``*_asof``: refitted as of each held-out UTC day's
    midnight and scored on the orders placed that day (what a daily run sees): ``model_asof`` with
    the supplier's recent lateness, ``long_run_asof`` without it (factor 1).
    """
    from features.suppliers import (
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
