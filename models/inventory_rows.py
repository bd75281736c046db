"""The inventory plan of a shard and its three row builders: ``stock_daily``, ``stockout``, ``reorder``."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

MODEL_VERSION = "1"


def empty_rows() -> pd.DataFrame:
    """No rows, but with the columns the writer requires (it rejects a frame without them)."""
    return pd.DataFrame({c: [] for c in ("entity_id", "value", "model_name", "model_version", "method")})


@dataclass
class InventoryPlan:
    """Per-item projections and decisions for one shard; the three row builders read from it."""

    daily: pd.DataFrame  # inventory_item_id, restaurant_id, ds, target_start, stock, lower, upper, method
    items: pd.DataFrame  # one row per item: stockout_* and reorder fields
    lead: pd.DataFrame  # SupplierLeadTime estimates
    stale_order_lines: int = 0  # open order lines left out as never closed (``stale_orders``)


def _base(frame: pd.DataFrame, model_name: str) -> dict:
    return {
        "entity_id": frame["inventory_item_id"].astype("int64").to_numpy(),
        "restaurant_id": frame["restaurant_id"].astype("int64").to_numpy(),
        "model_name": model_name,
        "model_version": MODEL_VERSION,
        "method": frame["method"].to_numpy(),
    }


def stock_daily_rows(plan: InventoryPlan) -> pd.DataFrame:
    """``stock_daily``: projected end-of-day stock per item and local day, item units, 80 % band."""
    d = plan.daily
    if d.empty:
        return empty_rows()
    return pd.DataFrame(
        {
            **_base(d, "stock_projection"),
            "target_start": d["target_start"].to_numpy(),
            "granularity": "day",
            "value": d["stock"].round(3).to_numpy(),
            "lower": d["lower"].round(3).to_numpy(),
            "upper": d["upper"].round(3).to_numpy(),
            "details": [
                {"arrivals": round(float(a), 3), "expired": round(float(e), 3), "interval_level": 0.8, "usage_model": m}
                for a, e, m in zip(d["arrivals"], d["expired"], d["usage_model"])
            ],
        }
    )


def stockout_rows(plan: InventoryPlan) -> pd.DataFrame:
    """``stockout``: days from today (local) to the first day usage cannot be met; 80 % band."""
    it = plan.items
    if it.empty:
        return empty_rows()
    return pd.DataFrame(
        {
            **_base(it, "stock_projection"),
            "value": it["stockout_days"].to_numpy(),
            "lower": it["stockout_lower"].to_numpy(),
            "upper": it["stockout_upper"].to_numpy(),
            "details": [
                {
                    "predicted_stockout_date": None if pd.isna(r.stockout_date) else r.stockout_date.isoformat(),
                    "confidence": round(float(r.stockout_confidence), 4),
                    "daily_usage_forecast": round(float(r.daily_usage_forecast), 4),
                    "current_stock": round(float(r.on_hand), 3),
                    "beyond_horizon": pd.isna(r.stockout_date),
                    "interval_level": 0.8,
                    "usage_model": r.usage_model,
                    "arrival_scenarios": int(r.arrival_scenarios),
                    "recorded_stock_below_zero": bool(r.recorded_stock_below_zero),
                    "alarm": bool(r.stockout_alarm),
                    "alarm_horizon_days": int(r.alarm_horizon_days),
                }
                for r in it.itertuples(index=False)
            ],
        }
    )


def reorder_rows(plan: InventoryPlan) -> pd.DataFrame:
    """``reorder``: quantity to order (item units) on ``order_by_date``; 0 when none is due."""
    it = plan.items
    if it.empty:
        return empty_rows()
    return pd.DataFrame(
        {
            **_base(it, "reorder_policy"),
            "value": it["quantity"].round(3).to_numpy(),
            "details": [
                {
                    "urgency": r.urgency,
                    "order_by_date": None if pd.isna(r.order_by_date) else r.order_by_date.isoformat(),
                    "reorder_point": round(float(r.reorder_point), 3),
                    "safety_stock": round(float(r.safety_stock), 3),
                    "eoq": round(float(r.eoq), 3),
                    "supplier_id": None if pd.isna(r.supplier_id) else int(r.supplier_id),
                    "expected_lead_time_days": round(float(r.expected_lead_time_days), 3),
                    "lead_time_sd_days": round(float(r.lead_time_sd_days), 3),
                    "inventory_position": round(float(r.position), 3),
                    "mean_daily_usage": round(float(r.mean_daily_usage), 4),
                    "manual_reorder_point": (
                        None if pd.isna(r.manual_reorder_point) else round(float(r.manual_reorder_point), 3)
                    ),
                }
                for r in it.itertuples(index=False)
            ],
        }
    )
