"""Pricing: elasticity recovery on planted price changes, the bounded recommendation, the monthly run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from worker import catalog, db, runs


def test_recommendation_stays_in_the_bound_and_follows_the_elasticity():
    from models.pricing import recommend_price

    elastic = recommend_price(10.0, None, -2.0, 0.2, 10.0)
    inelastic = recommend_price(10.0, None, -0.5, 0.2, 10.0)
    assert elastic["price"] == pytest.approx(9.0) and elastic["expected_revenue_change_pct"] > 0
    assert inelastic["price"] == pytest.approx(11.0) and inelastic["expected_revenue_change_pct"] > 0
    assert inelastic["expected_revenue_change_pct"] == pytest.approx(((1.1) ** 0.5 - 1) * 100)
    # with a food cost the optimum is cost * e / (1 + e) = 4 * -3 / -2 = 6, inside the bound of 6.5
    with_cost = recommend_price(6.5, 4.0, -3.0, 0.1, 10.0)
    assert 5.85 <= with_cost["price"] <= 7.15 and with_cost["price"] == pytest.approx(6.0, abs=0.03)
    assert with_cost["confidence"] > 0.99  # e* = -6.5 / 2.5 = -2.6, ten standard errors away
    assert recommend_price(10.0, None, -1.0, 10.0, 10.0)["confidence"] == pytest.approx(0.5)


def test_noisy_items_are_pulled_towards_their_category_and_unchanged_items_borrow_it():
    from models.pricing import ElasticityEstimator

    rng = np.random.default_rng(3)
    rows = []
    for cat, true in (("drinks", -1.6), ("sides", -0.6)):
        for k in range(12):
            rows.append({"menu_item_id": len(rows) + 1, "restaurant_id": 1, "category": cat,
                         "raw": true + rng.normal(0, 0.15), "raw_se": 0.15, "n_changes": 1, "true": true})
    rows.append({"menu_item_id": 99, "restaurant_id": 1, "category": "drinks", "raw": 0.5, "raw_se": 1.5,
                 "n_changes": 1, "true": -1.6})  # one tiny, noisy change that even looks upward-sloping
    rows.append({"menu_item_id": 100, "restaurant_id": 1, "category": "sides", "raw": np.nan, "raw_se": np.nan,
                 "n_changes": 0, "true": -0.6})
    rows.append({"menu_item_id": 101, "restaurant_id": 1, "category": "soups", "raw": np.nan, "raw_se": np.nan,
                 "n_changes": 0, "true": -1.0})
    est = ElasticityEstimator()._shrink(pd.DataFrame(rows)).set_index("menu_item_id")
    assert est.loc[99, "elasticity"] == pytest.approx(-1.6, abs=0.2) and est.loc[99, "source"] == "own"
    assert est.loc[100, "elasticity"] == pytest.approx(-0.6, abs=0.15) and est.loc[100, "source"] == "category"
    assert est.loc[101, "elasticity"] == -1.0 and est.loc[101, "source"] == "prior"
    # well-measured items keep most of their own signal: the categories stay apart
    assert est.loc[1:12, "elasticity"].mean() < -1.4 and est.loc[13:24, "elasticity"].mean() > -0.8
    assert (est["se"] > 0).all()


@pytest.mark.slow
def test_elasticities_recover_the_planted_ones_better_than_a_naive_estimate(seeded_replica):
    from bench.inventory import elasticity_error
    from features.restaurants import load_restaurants
    from core.replica import ReplicaReader

    truth = seeded_replica["ground_truth"]
    reader = ReplicaReader(db.replica_engine())
    end = pd.Timestamp(str(truth["end"])).tz_localize("UTC")
    err = elasticity_error(reader, load_restaurants(reader).restaurants, truth, end)
    assert err["items"] >= 10
    # documented tolerance (docs/pricing.md): mean absolute error at most 0.25, well below the raw
    # per-change estimates the shrinkage starts from
    assert err["abs_error"] <= 0.25, err
    assert err["abs_error"] < 0.6 * err["abs_error_raw"], err
    # and clearly better than knowing nothing (a unit-elastic guess for every item)
    assert err["abs_error"] < 0.85 * err["abs_error_prior"], err


def test_monthly_run_recommends_prices_within_the_bound(seeded_replica, clean_predictions, monkeypatch):
    real = catalog.units_for
    monkeypatch.setattr(catalog, "units_for", lambda s: [u for u in real(s) if u.prediction_type == "price_recommendation"])
    record = runs.execute_run("monthly", "2026-11-01T05:15:00Z")
    assert record["status"] == "succeeded", record
    with db.predictions_engine().connect() as conn:
        rows = conn.execute(text("SELECT value, details, method, target_start FROM m_l_predictions")).all()
    assert len(rows) == record["rows_written"]["price_recommendation"] > 20
    for value, d, method, target in rows:
        assert target is None
        assert abs(value / d["current_price"] - 1) <= d["bound_pct"] / 100 + 0.01
        assert d["elasticity"] < 0 and 0 <= d["confidence"] <= 1
        assert method in ("model", "average", "rule")
        assert {"current_price", "elasticity", "expected_revenue_change_pct", "confidence"} <= set(d)
    assert any(m == "model" for *_, m, _ in [(r[0], r[1], r[2], r[3]) for r in rows])


def test_every_shard_registers_its_own_model(seeded_replica, clean_predictions, monkeypatch):
    from worker.settings import get_settings

    real = catalog.units_for
    monkeypatch.setattr(catalog, "units_for", lambda s: [u for u in real(s) if u.prediction_type == "price_recommendation"])
    monkeypatch.setenv("RMSML_SCHEDULES__SHARD_SIZE", "2")
    get_settings.cache_clear()
    try:
        record = runs.execute_run("monthly", "2026-11-01T05:15:00Z")
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert record["status"] == "succeeded", record
    with db.predictions_engine().connect() as conn:
        shards = conn.execute(text("SELECT count(*) FROM ml_run_shard WHERE run_id = :r"), {"r": str(record["id"])}).scalar_one()
        versions = conn.execute(text(
            "SELECT version, sha256 FROM ml_model_registry WHERE prediction_type = 'price_recommendation'")).all()
    assert shards >= 2 and len(versions) == shards and len({v for v, _ in versions}) == shards
