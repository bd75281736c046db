"""Price elasticity against the planted one, and anomaly flags against the planted anomalies."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd

from bench.inventory_common import _scope, _truth


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
