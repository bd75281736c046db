"""The churn and LTV units through the real run loop: one row per customer, shards, replays, registry."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import text

from worker import catalog, db, run_finish, runs
from worker.settings import get_settings

AS_OF = "2026-11-01T00:00:00Z"
MINE = ("churn", "ltv")

pytestmark = pytest.mark.slow


def q(sql, **params):
    with db.predictions_engine().connect() as conn:
        return conn.execute(text(sql), params).all()


@pytest.fixture()
def only_customer_units(monkeypatch):
    """Run just these units (the weekly schedule also holds other teams' types)."""
    real = catalog.units_for
    monkeypatch.setattr(catalog, "units_for", lambda schedule: [u for u in real(schedule) if u.prediction_type in MINE])


def test_weekly_run_writes_each_customer_once_and_replays_cleanly(seeded_replica, clean_predictions,
                                                                  only_customer_units):
    settings = get_settings().model_copy(deep=True)
    settings.schedules.shard_size = 1  # restaurants 3 and 4 in two shards
    record = runs.execute_run("weekly", AS_OF, [3, 4], run_id="00000000-0000-0000-0000-0000000c0001",
                              settings=settings)
    assert record["status"] == "succeeded", record
    counts = q("SELECT prediction_type, count(*), count(DISTINCT entity_id) FROM m_l_predictions GROUP BY 1")
    assert {c[0] for c in counts} == set(MINE)
    for ptype, n, distinct in counts:
        assert n == distinct > 100
    # Every row belongs to a customer anchored at the restaurant it names.
    with db.replica_engine().connect() as conn:
        homes = dict(conn.execute(text("SELECT id, home_restaurant_id FROM customers_customerprofile")).all())
    rows = q("SELECT entity_id, restaurant_id, value, details, method, model_name FROM m_l_predictions "
             "WHERE prediction_type = 'churn'")
    assert all(homes[e] == r for e, r, *_ in rows)
    assert all(0 <= v <= 1 and d["risk_level"] in ("low", "medium", "high") for _, _, v, d, *_ in rows)
    assert {m for *_, m, _ in rows} == {"model"}
    # Skipped customers are recorded in the run, not silently dropped.
    assert any("without a purchase" in m for m in record["messages"])
    # The registry holds one checksummed model per type and shard.
    reg = q("SELECT name, sha256, artifact_path FROM ml_model_registry WHERE prediction_type IN ('churn', 'ltv')")
    assert len(reg) == 4 and all(len(sha) == 64 for _, sha, _ in reg)
    # A replay of the same run (a redelivered message) leaves exactly the same rows.
    before = q("SELECT prediction_type, entity_id, value FROM m_l_predictions ORDER BY 1, 2")
    runs.run_shard("00000000-0000-0000-0000-0000000c0001", 0, settings=settings)
    run_finish.finish_run("00000000-0000-0000-0000-0000000c0001", settings=settings)
    after = q("SELECT prediction_type, entity_id, value FROM m_l_predictions ORDER BY 1, 2")
    assert before == after


def test_a_failed_fit_in_a_later_run_scores_with_the_shards_registered_model(seeded_replica, clean_predictions,
                                                                          only_customer_units, monkeypatch,
                                                                          tmp_path):
    """Through the run loop and the real registry: a later weekly run whose churn and LTV fits fail
    writes previous_model rows from the first run's checksummed artifacts and says so."""
    from models.churn import ChurnClassifier
    from models.ltv import LtvRegressor

    settings = get_settings().model_copy(deep=True)
    settings.model_store.path = tmp_path
    first = runs.execute_run("weekly", AS_OF, [3], run_id="aaaaaaaa-0000-0000-0000-0000000c0002", settings=settings)
    assert first["status"] == "succeeded", first
    versions = dict(q("SELECT prediction_type, version FROM ml_model_registry"))

    def broken_fit(self, *args, **kwargs):
        raise MemoryError("worker ran out of memory")

    monkeypatch.setattr(ChurnClassifier, "fit", broken_fit)
    monkeypatch.setattr(LtvRegressor, "fit", broken_fit)
    later = runs.execute_run("weekly", AS_OF, [3], run_id="bbbbbbbb-0000-0000-0000-0000000c0003", settings=settings)
    assert later["status"] == "succeeded", later
    rows = q("SELECT prediction_type, method, model_version, count(*) FROM m_l_predictions GROUP BY 1, 2, 3")
    assert {(t, m, v) for t, m, v, _ in rows} == {(t, "previous_model", versions[t]) for t in MINE}, rows
    for ptype in MINE:
        assert any(f"{ptype}: scored with previous model" in m and versions[ptype] in m for m in later["messages"])
        assert any(f"{ptype}:" in m and "fit failed (MemoryError" in m for m in later["messages"])


def test_training_rows_above_the_cap_are_sampled_and_everyone_is_still_scored(seeded_replica, clean_predictions,
                                                                             only_customer_units, monkeypatch):
    import features.customers as fc

    sample = fc.capped_training(pd.DataFrame({"x": range(1000)}), max_rows=300)
    assert len(sample) == 300 and sample["x"].is_unique
    assert sample.equals(fc.capped_training(pd.DataFrame({"x": range(1000)}), max_rows=300))  # seeded: reruns agree
    monkeypatch.setattr(fc, "MAX_TRAIN_ROWS", 220)  # above the models' 200-customer minimum
    record = runs.execute_run("weekly", AS_OF, [3], run_id="00000000-0000-0000-0000-0000000c0003")
    assert record["status"] == "succeeded", record
    for ptype in ("churn", "ltv"):
        # the read takes a sample of people (~1.2 x the cap's rows), the fit exactly the cap
        assert any(m.startswith(f"{ptype}: training read ") and "of the shard's customers" in m
                   for m in record["messages"]), record["messages"]
        assert any(m.startswith(f"{ptype}: trained on a sample of 220 of ") for m in record["messages"]), record["messages"]
    rows = q("SELECT prediction_type, method, count(*) FROM m_l_predictions GROUP BY 1, 2")
    with db.replica_engine().connect() as conn:
        buyers = conn.execute(text(
            "SELECT count(DISTINCT c.id) FROM customers_customerprofile c JOIN orders_order o ON o.customer_id = c.id "
            "WHERE c.home_restaurant_id = 3 AND o.created_at < :t AND o.status NOT IN ('cancelled', 'refunded')"),
            {"t": AS_OF}).scalar_one()
    assert {(p, m) for p, m, _ in rows} == {("churn", "model"), ("ltv", "model")}
    assert all(n >= 0.95 * buyers for *_, n in rows)  # the sample is for fitting; scoring covers everyone
