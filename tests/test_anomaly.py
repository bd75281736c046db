"""Anomalies: the robust z-score on a known series, planted anomalies on the chain, the daily rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from worker import catalog, db, runs


def _series(values, holiday_day=None):
    ds = pd.date_range("2026-01-05", periods=len(values), freq="D")
    return pd.DataFrame({"entity_id": 1, "restaurant_id": 1, "ds": ds, "y": values, "open": np.asarray(values) > 0,
                         "holiday": ds == holiday_day if holiday_day is not None else False})


def test_spike_and_drop_are_flagged_closures_and_holidays_are_not():
    from models.anomaly import RobustWeekdayZ

    rng = np.random.default_rng(0)
    y = rng.poisson(100 * np.tile([0.9, 0.9, 1.0, 1.0, 1.2, 1.4, 1.1], 20)).astype(float)
    y[100] *= 3.0
    y[110] *= 0.3
    y[120] = 0.0  # closed
    y[125] *= 1.6  # public holiday
    scored = RobustWeekdayZ(threshold=4.0).score(_series(y, pd.Timestamp("2026-01-05") + pd.Timedelta(days=125)))
    flagged = scored[scored["anomaly"]]
    days = [(d - pd.Timestamp("2026-01-05")).days for d in flagged["ds"]]
    assert days == [100, 110]
    assert list(flagged["kind"]) == ["spike", "drop"]


@pytest.mark.slow
def test_planted_restaurant_anomalies_precision_and_recall(seeded_replica):
    from bench.inventory import anomaly_scores
    from features.restaurants import load_restaurants
    from core.replica import ReplicaReader

    truth = seeded_replica["ground_truth"]
    reader = ReplicaReader(db.replica_engine())
    end = pd.Timestamp(str(truth["end"])).tz_localize("UTC")
    scores = anomaly_scores(reader, load_restaurants(reader).restaurants, truth, end - pd.Timedelta(days=100), end)
    assert scores["planted"] >= 3
    assert scores["precision"] >= 0.7 and scores["recall"] >= 0.7, scores


def test_daily_run_writes_anomaly_rows_for_a_planted_day(seeded_replica, clean_predictions, monkeypatch):
    truth = seeded_replica["ground_truth"]
    rest = truth["restaurants"][0]
    planted = pd.Timestamp(str(rest["anomalies"][-1]["date"]))
    real = catalog.units_for
    monkeypatch.setattr(catalog, "units_for", lambda s: [u for u in real(s) if u.prediction_type == "anomaly"])
    # the run the morning after the planted day (local): its last complete day is the planted one
    as_of = (planted + pd.Timedelta(days=1, hours=12)).tz_localize(rest["timezone"]).tz_convert("UTC")
    record = runs.execute_run("daily", as_of.isoformat(), [rest["restaurant_id"]])
    assert record["status"] == "succeeded", record
    with db.predictions_engine().connect() as conn:
        rows = conn.execute(text(
            "SELECT entity_type, entity_id, value, details FROM m_l_predictions WHERE prediction_type = 'anomaly'"
        )).all()
    mine = [r for r in rows if r[0] == "restaurant" and r[1] == rest["restaurant_id"]]
    assert len(mine) == 1
    kind = rest["anomalies"][-1]["kind"]
    assert mine[0][3]["kind"] == kind and (mine[0][2] > 0) == (kind == "spike")
    assert {"expected", "actual"} <= set(mine[0][3])
    assert any(r[0] == "menu_item" for r in rows) and any(r[0] == "inventory_item" for r in rows)
