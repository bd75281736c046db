"""Planted errors are caught: a chain whose demand halves after a date at one restaurant.

One small chain of its own (3 restaurants, no optional RMS modules, so stock_daily is skipped for
a missing module), changed after seeding the way a real RMS could change:
- restaurant 1's orders halve from ``SHIFT`` on (every other order removed);
- restaurant 2 has one whole local day without orders inside the scoring window (closed);
- restaurant 3's orders stop two days before the scoring run (its data has not arrived);
- an earlier run predicted item demand with a model version the registry no longer has.
Run A predicts at ``SHIFT`` (before any shifted data), run B a week later scores A. Runs C and D
then show the retrain: C with a broken model step does not fall back to a pre-drift model, D
registers a fresh one.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import uuid
from datetime import date

import pandas as pd
import psycopg2
import pytest
from sqlalchemy import text

from tests.conftest import DB_SUFFIX, _BASE, drop_database, empty_predictions_database, recreate_database, use_replica
from worker import catalog, db, runs

SHIFT = pd.Timestamp("2026-10-15T04:15:00Z")
RUN_B = SHIFT + pd.Timedelta(days=7)
CLOSED_DAY = date(2026, 10, 18)  # restaurant 2, local
UNITS = ("demand_daily", "stock_daily")
NAME = "rmsml_test_drift" + DB_SUFFIX


def q(sql, **params):
    with db.predictions_engine().connect() as conn:
        return conn.execute(text(sql), params).all()


def _plant(url: str) -> dict:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT id, timezone, name FROM restaurants_restaurant ORDER BY id")
        rest = {int(i): (tz, name) for i, tz, name in cur.fetchall()}
        drop = [
            # restaurant 1: every other order from SHIFT on
            ("o.restaurant_id = 1 AND o.created_at >= %(shift)s AND o.id %% 2 = 0", {"shift": SHIFT.to_pydatetime()}),
            # restaurant 2: one local day closed
            ("o.restaurant_id = 2 AND (o.created_at AT TIME ZONE %(tz2)s)::date = %(day)s",
             {"tz2": rest[2][0], "day": CLOSED_DAY}),
            # restaurant 3: nothing in the last two days before run B
            ("o.restaurant_id = 3 AND o.created_at >= %(stop)s AND o.created_at < %(b)s",
             {"stop": (RUN_B - pd.Timedelta(days=2)).to_pydatetime(), "b": RUN_B.to_pydatetime()}),
        ]
        for where, params in drop:
            cur.execute(f"DELETE FROM orders_orderitem i USING orders_order o WHERE i.order_id = o.id AND {where}", params)
            cur.execute(f"DELETE FROM orders_order o WHERE {where}", params)
        cur.execute("SELECT id FROM menu_menuitem WHERE restaurant_id = 1 AND is_active ORDER BY id LIMIT 1")
        item = int(cur.fetchone()[0])
        cur.execute("SELECT name FROM menu_menuitem")
        item_names = [r[0] for r in cur.fetchall()]
    conn.close()
    return {"restaurants": rest, "item": item, "names": [n for _, n in rest.values()] + item_names}


@pytest.fixture(scope="module")
def drift_chain(predictions_url):
    """The planted chain as the replica, runs A and B done; yields what the tests look at."""
    from synthetic import ChainConfig, seed_database

    url = recreate_database(NAME)
    seed_database(url, ChainConfig(restaurants=3, days=120, seed=11, end=date(2026, 11, 1), modules=()))
    planted = _plant(url)
    previous = use_replica(f"{_BASE}/{NAME}")
    empty_predictions_database()
    mp = pytest.MonkeyPatch()
    real = catalog.units_for
    mp.setattr(catalog, "units_for", lambda s: [u for u in real(s) if u.prediction_type in UNITS])
    try:
        a = runs.execute_run("daily", SHIFT.isoformat(), restaurant_ids=[1, 2, 3])
        _plant_unregistered_prediction(planted["item"])
        b = runs.execute_run("daily", RUN_B.isoformat(), restaurant_ids=[1, 2, 3])
        yield {"a": a, "b": b, "planted": planted, "monkeypatch": mp}
    finally:
        mp.undo()
        use_replica(previous)
        drop_database(NAME)


def _plant_unregistered_prediction(item_id: int) -> None:
    """An earlier run's item forecasts from a model version no registry row describes."""
    from worker.records import RunRecords
    from worker.writer import PredictionWriter

    writer = PredictionWriter(db.predictions_engine())
    rid = uuid.uuid4()
    as_of = SHIFT + pd.Timedelta(days=1)
    RunRecords(db.predictions_engine()).create_run(rid, "daily", as_of.to_pydatetime(), trigger="test", restaurant_ids=[1], prediction_types=[])
    days = pd.date_range("2026-10-17", periods=3, freq="D").tz_localize("America/New_York").tz_convert("UTC")
    rows = pd.DataFrame({"entity_id": item_id, "restaurant_id": 1, "target_start": days, "granularity": "day",
                         "value": 5.0, "lower": 2.0, "upper": 9.0, "model_name": "lightgbm",
                         "model_version": "item_demand_daily.gone", "method": "model"})
    writer.replace_predictions(rid, "item_demand_daily", "menu_item", rows, generated_at=as_of.to_pydatetime(),
                               expires_at=as_of.to_pydatetime(), keep_history=True)
    RunRecords(db.predictions_engine()).finish_run(rid)


def test_demand_shift_fires_degradation_and_volume_alerts_and_retrains(drift_chain):
    a, b = drift_chain["a"], drift_chain["b"]
    assert a["status"] == "succeeded" and a["alerts"] == [], a["alerts"]
    kinds = {(x["kind"], x["signal"], x["restaurant_id"]) for x in b["alerts"]}
    assert ("degradation", "wape", 1) in kinds, b["alerts"]
    assert ("input_drift", "order_volume", 1) in kinds, b["alerts"]
    # the planted shift is at restaurant 1 only: the others raise nothing
    assert {rid for _, _, rid in kinds} == {1}, b["alerts"]
    assert "demand_daily" in b["retrain"]
    deg = next(x for x in b["alerts"] if x["signal"] == "wape")
    assert deg["observed"] > 0.6 and deg["observed"] > 3 * deg["reference"]
    # stored: the alert rows, the run record, and every registered demand model retired
    assert q("SELECT count(*) FROM ml_drift_alert WHERE run_id = :id", id=str(b["id"]))[0][0] == len(b["alerts"])
    # run A's model (fitted before the shift) is retired; run B's, fitted through it, stays usable
    statuses = dict(q("SELECT run_id::text, status FROM ml_model_registry WHERE prediction_type = 'demand_daily'"))
    assert statuses == {str(a["id"]): "retired", str(b["id"]): "active"}


def test_webhook_body_carries_alerts_and_accuracy_without_renaming(drift_chain):
    from webhooks.payload import build_body

    data = json.loads(build_body(drift_chain["b"]))["data"]
    for field in ("run_id", "schedule", "status", "started_at", "finished_at", "prediction_types", "restaurant_ids", "failed"):
        assert field in data
    assert any(x["signal"] == "order_volume" and x["restaurant_id"] == 1 for x in data["alerts"])
    assert "demand_daily" in data["retrain"]
    assert data["accuracy"]["types"]["demand_daily"]["n"] > 0


def test_closed_days_missing_actuals_and_vanished_models_are_explained(drift_chain):
    b = drift_chain["b"]
    excluded = {r: e for r, e in q(
        "SELECT restaurant_id, excluded FROM ml_accuracy WHERE run_id = :id AND horizon = 'all' "
        "AND prediction_type = 'demand_daily' AND restaurant_id IS NOT NULL", id=str(b["id"]))}
    assert excluded[2].get("closed") == 1
    assert excluded[3].get("awaiting_actuals", 0) >= 2
    # restaurant 1 is open throughout; only its newest day may still await an order after its end
    assert "closed" not in excluded[1] and excluded[1].get("awaiting_actuals", 0) <= 1
    messages = " | ".join(b["messages"])
    assert "closed" in messages and "awaiting actuals" in messages
    assert "no longer in the registry" in messages and "item_demand_daily.gone" in messages
    item = q("SELECT n, wape, backtest_wape, excluded FROM ml_accuracy WHERE run_id = :id "
             "AND prediction_type = 'item_demand_daily' AND restaurant_id IS NULL AND horizon = 'all'", id=str(b["id"]))
    assert item and item[0][0] == 3 and item[0][1] is not None and item[0][2] is None
    assert item[0][3]["unregistered_model"] == 3
    # nothing unscored became a silent zero: scored + excluded = every prediction in the window
    rows = q("SELECT restaurant_id, n FROM ml_accuracy WHERE run_id = :id AND prediction_type = 'demand_daily' "
             "AND horizon = 'all' AND restaurant_id = 3", id=str(b["id"]))
    assert rows and rows[0][1] + excluded[3]["awaiting_actuals"] == 7  # London days 10-15 .. 10-21


def test_next_run_retrains_instead_of_reusing_a_pre_drift_model(drift_chain):
    import models.forecasting as forecasting

    a, b = drift_chain["a"], drift_chain["b"]

    def version_of(run):
        return {v for (v,) in q("SELECT version FROM ml_model_registry WHERE prediction_type = 'demand_daily' "
                                "AND run_id = :id", id=str(run["id"]))}

    def broken(name, spec):
        raise RuntimeError("planted: model step unavailable")

    # the model step breaks: the fallback may use the model fitted through the shift, never the one before
    with pytest.MonkeyPatch.context() as local:
        local.setattr(forecasting, "make_candidate", broken)
        c = runs.execute_run("daily", (RUN_B + pd.Timedelta(days=1)).isoformat(), restaurant_ids=[1, 2, 3])
    used = dict(q("SELECT model_version, method FROM m_l_predictions WHERE prediction_type = 'demand_daily' "
                  "AND run_id = :id GROUP BY 1, 2", id=str(c["id"])))
    assert not set(used) & version_of(a), used
    assert set(used) == version_of(b) and set(used.values()) == {"previous_model"}, used
    # a working run fits a fresh model on the shifted data and it stays active after its own scoring
    d = runs.execute_run("daily", (RUN_B + pd.Timedelta(days=1, hours=1)).isoformat(), restaurant_ids=[1, 2, 3])
    assert any(x["signal"] == "order_volume" for x in d["alerts"])  # the shift is still recent
    fresh = q("SELECT status, training_end FROM ml_model_registry WHERE prediction_type = 'demand_daily' "
              "AND run_id = :id", id=str(d["id"]))
    assert fresh and all(s == "active" for s, _ in fresh), fresh
    assert all(pd.Timestamp(t) >= RUN_B - pd.Timedelta(days=2) for _, t in fresh)


def _pngs(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_report_has_every_section_valid_images_the_skipped_module_and_no_pii(drift_chain):
    from PIL import Image

    from reporting.report import SECTIONS

    b = drift_chain["b"]
    path = b["report_path"]
    assert path and os.path.exists(path)
    page = open(path, encoding="utf-8").read()
    for section in SECTIONS:
        assert f"id='{section}'" in page
    images = _pngs(page)
    assert len(images) == 3
    for png in images:
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 2000
        with Image.open(io.BytesIO(png)) as im:
            im.verify()
            assert im.size[0] > 100 and im.size[1] > 100
    skipped = page.split("id='skipped'")[1].split("</section>")[0]
    assert "stock_daily" in skipped and "inventory" in skipped
    assert "orders_order" in skipped or "restaurants_restaurant" in skipped  # malformed rows counted
    alerts = page.split("id='alerts'")[1].split("</section>")[0]
    assert "order_volume" in alerts and "degradation" in alerts
    readable = re.sub(r'src="data:image/png;base64,[^"]+"', "", page)
    for name in drift_chain["planted"]["names"]:  # the page reads ids, never names
        assert not re.search(rf"\b{re.escape(name)}\b", readable), name
