"""Churn and LTV models on held-out time, against BTYD and naive baselines, and the planted truth."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from core.replica import ReplicaReader
from core.settings import ForecastSettings
from core.units import Scope
from features.customers import customer_unit_features, labelled_frame, training_frame
from features.restaurants import load_restaurants
from models.churn import RISK_HIGH, evaluate_churn, risk_level
from models.ltv import evaluate_ltv
from prediction_types.customers import predict_churn, predict_ltv
from tests.conftest import CHAIN_END

AS_OF = pd.Timestamp(CHAIN_END, tz="UTC")
VALID_UNTIL = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
WINDOW = 60
RIDS = [1, 2, 3, 4]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def held_out(seeded_replica):
    """Train at AS_OF - 120 d (labels up to AS_OF - 60 d), test at AS_OF - 60 d (labels up to AS_OF)."""
    from worker import db

    reader = ReplicaReader(db.replica_engine())
    # Training as the unit does it: stacked cutoffs, the newest one window before the test cutoff.
    train = training_frame(reader, RIDS, [1], AS_OF - pd.Timedelta(days=2 * WINDOW), WINDOW, AS_OF, VALID_UNTIL)
    test = labelled_frame(reader, RIDS, [1], AS_OF - pd.Timedelta(days=WINDOW), WINDOW, AS_OF, VALID_UNTIL)
    assert train["cutoff"].max() + pd.Timedelta(days=WINDOW) <= AS_OF - pd.Timedelta(days=WINDOW)
    for f in (train, test):
        f["churned"] = (f["future_orders"] == 0).astype(int)
    return train, test


def test_churn_beats_bgnbd_and_recency_on_held_out_time(held_out):
    train, test = held_out
    assert test["last_order_at"].max() < AS_OF - pd.Timedelta(days=WINDOW)  # test features precede its labels
    result = evaluate_churn(train, test, WINDOW)
    auc, repeat, brier = result["auc"], result["auc_repeat"], result["brier"]
    # Among repeat customers drift and service failures show (measured +0.026 over BG/NBD on this
    # chain); over everyone, one-time guests are most of the chain and only engagement BG/NBD
    # ignores (opt-in, a profile made ahead, delivery, a party, a failed first order) tells whose
    # return is likelier (measured +0.049 over BG/NBD, +0.15 over recency).
    assert repeat["model"] >= repeat["bgnbd"] + 0.02, repeat
    assert repeat["model"] >= repeat["recency"] + 0.03, repeat
    assert auc["model"] >= auc["bgnbd"] + 0.03, auc
    assert auc["model"] >= auc["recency"] + 0.03, auc
    assert brier["model"] <= brier["bgnbd"], brier
    assert abs(result["mean_predicted"] - result["base_rate"]) < 0.03, result
    assert result["calibration"][-1]["observed"] > 0.85  # the top bin is churners


def test_ltv_beats_trailing_spend_on_held_out_time(held_out):
    train, test = held_out
    result = evaluate_ltv(train, test, WINDOW)
    mae, agg = result["mae"], result["aggregate_error_pct"]
    assert mae["model"] <= 0.9 * mae["trailing"], mae
    assert mae["model"] <= mae["bgnbd_gg"], mae
    assert abs(agg["model"]) < abs(agg["trailing"]), agg


def _scope(reader, tmp_path, rids=RIDS):
    return Scope(run_id="00000000-0000-0000-0000-0000000000c2", schedule="weekly", as_of=AS_OF,
                 restaurants=load_restaurants(reader, rids).restaurants, forecast=ForecastSettings(),
                 model_store=tmp_path, valid_until=VALID_UNTIL)


@pytest.fixture(scope="module")
def unit_data(seeded_replica, tmp_path_factory):
    """The unit's own features for the whole chain as of the chain's end (read once)."""
    from worker import db

    reader = ReplicaReader(db.replica_engine())
    scope = _scope(reader, tmp_path_factory.mktemp("models"))
    return scope, customer_unit_features(reader, scope)


def test_planted_churners_score_high_and_get_win_back(seeded_replica, unit_data):
    scope, data = unit_data
    result = predict_churn(data, scope)
    rows = result.rows.set_index("entity_id")
    assert (rows["method"] == "model").all()
    assert rows["value"].between(0, 1).all()
    truth = seeded_replica["ground_truth"]
    churned = [c["customer_id"] for c in truth["churned_customers"]
               if pd.Timestamp(c["churned_at"]) <= AS_OF - pd.Timedelta(days=WINDOW)]
    churned = [c for c in churned if c in rows.index]
    regulars = data.current[(data.current["n_orders"] >= 4) & ~data.current["customer_id"].isin(
        [c["customer_id"] for c in truth["churned_customers"]])]["customer_id"]
    assert len(churned) >= 10 and len(regulars) >= 50
    assert rows.loc[churned, "value"].median() >= RISK_HIGH
    assert rows.loc[regulars, "value"].median() < 0.5
    details = rows.loc[churned, "details"]
    lapsing_regulars = [d for d in details if d["orders_to_date"] >= 3 and d["risk_level"] == "high"]
    assert lapsing_regulars and all("win_back_offer" in d["recommendations"] for d in lapsing_regulars)
    assert all(d["days_since_last_order"] >= 0 for d in details)
    assert result.models and result.models[0].sha256


def test_ltv_rows_and_12_month_extrapolation(unit_data):
    scope, data = unit_data
    assert data.ltv_window_days < 365  # a 200-day chain cannot hold a 12-month label
    result = predict_ltv(data, scope)
    rows = result.rows
    assert (rows["value"] >= 0).all()
    segments = rows["details"].map(lambda d: d["value_segment"])
    assert set(segments) <= {"vip", "high", "medium", "low"}
    # VIPs are worth more than the low segment, and expected orders follow value.
    by_seg = rows.assign(segment=segments).groupby("segment")["value"].median()
    assert by_seg["vip"] > by_seg["low"]
    orders = rows["details"].map(lambda d: d["expected_orders"])
    assert np.corrcoef(orders, rows["value"])[0, 1] > 0.5
    assert any("extrapolated" in m for m in result.messages)


def test_risk_levels_follow_documented_thresholds():
    assert list(risk_level([0.1, 0.4, 0.69, 0.7, 0.99])) == ["low", "medium", "medium", "high", "high"]


def test_too_few_customers_fall_back_to_btyd_rules(unit_data):
    """A shard with a handful of customers cannot train: BG/NBD (and Gamma-Gamma) answer instead,
    marked ``method='rule'`` and explained in the run messages."""
    import dataclasses

    scope, data = unit_data
    small = dataclasses.replace(data, churn_train=data.churn_train.head(50), ltv_train=data.ltv_train.head(50))
    churn = predict_churn(small, scope)
    ltv = predict_ltv(small, scope)
    assert set(churn.rows["method"]) == {"rule"} and set(ltv.rows["method"]) == {"rule"}
    assert churn.rows["value"].between(0, 1).all() and (ltv.rows["value"] >= 0).all()
    assert not churn.models and not ltv.models
    assert any("too few" in m for m in churn.messages) and any("too few" in m for m in ltv.messages)
    # The rule still ranks: long-silent regulars above those seen last week.
    rows = churn.rows.set_index("entity_id")["value"]
    cur = data.current.set_index("customer_id")
    regular = cur[cur["n_orders"] >= 4]
    silent, recent = regular[regular["recency_days"] > 90].index, regular[regular["recency_days"] < 14].index
    assert rows.loc[silent].median() > rows.loc[recent].median()


def _registered(result, prediction_type: str, artifact_path: str | None = None) -> dict:
    """The registry row the writer would have recorded for the unit's model."""
    rec = result.models[0]
    return {"name": rec.name, "version": rec.version, "prediction_type": prediction_type,
            "artifact_path": artifact_path or rec.artifact_path, "sha256": rec.sha256,
            "training_end": rec.training_end, "metrics": rec.metrics, "status": "active",
            "created_at": pd.Timestamp.now(tz="UTC")}


def test_untrusted_or_failed_fit_falls_back_to_the_shards_previous_model(unit_data, monkeypatch, tmp_path):
    """model -> previous_model -> rule: a later run whose churn fit is no better than chance (labels
    scrambled) or whose LTV fit fails scores with the model this shard registered before, checksum
    verified; another shard's model is never borrowed, and a tampered artifact is refused."""
    import dataclasses
    import shutil

    from models.ltv import LtvRegressor

    scope, data = unit_data
    first_churn, first_ltv = predict_churn(data, scope), predict_ltv(data, scope)
    registry = pd.DataFrame([_registered(first_churn, "churn"), _registered(first_ltv, "ltv")])
    later = dataclasses.replace(scope, run_id="11111111-0000-0000-0000-0000000000c3", registry=registry)

    scrambled = data.churn_train.assign(
        churned=np.random.default_rng(0).permutation(data.churn_train["churned"].to_numpy()))
    churn = predict_churn(dataclasses.replace(data, churn_train=scrambled), later)
    assert set(churn.rows["method"]) == {"previous_model"}, churn.messages
    assert set(churn.rows["model_version"]) == {first_churn.models[0].version} and not churn.models
    assert any("not used" in m and "AUC" in m for m in churn.messages), churn.messages
    assert any(first_churn.models[0].version in m for m in churn.messages)
    np.testing.assert_allclose(churn.rows["value"], first_churn.rows["value"])

    def broken_fit(self, *args, **kwargs):
        raise MemoryError("worker ran out of memory")

    monkeypatch.setattr(LtvRegressor, "fit", broken_fit)
    ltv = predict_ltv(data, later)
    assert set(ltv.rows["method"]) == {"previous_model"} and not ltv.models, ltv.messages
    assert any("fit failed (MemoryError" in m for m in ltv.messages)
    np.testing.assert_allclose(ltv.rows["value"], first_ltv.rows["value"])

    # Another shard (other restaurants) has no model of its own: the rule, named.
    other = dataclasses.replace(later, restaurants=scope.restaurants.iloc[:2])
    assert set(predict_ltv(data, other).rows["method"]) == {"rule"}

    # A tampered copy of the churn artifact is refused by its checksum: the rule, with the reason.
    copy = tmp_path / "churn_copy"
    shutil.copytree(first_churn.models[0].artifact_path, copy)
    with open(copy / "params.json", "a") as fh:
        fh.write(" ")
    tampered = dataclasses.replace(later, registry=pd.DataFrame([_registered(first_churn, "churn", str(copy))]))
    churn = predict_churn(dataclasses.replace(data, churn_train=scrambled), tampered)
    assert set(churn.rows["method"]) == {"rule"}
    assert any("unusable (ArtifactChecksumError" in m for m in churn.messages), churn.messages


def test_churn_probabilities_stay_inside_zero_and_one():
    """A calibrated 0.99996 rounded to 4 places was published as 1.0 on real data: a certainty no
    model has. Written values stay within the documented bounds, and their risk levels follow."""
    from models.churn import P_MAX, P_MIN, churn_rows

    scored = pd.DataFrame({"customer_id": [1, 2, 3], "restaurant_id": [1, 1, 1], "recency_days": [400.0, 1.0, 30.0],
                           "n_orders": [5, 1, 2], "loyalty_tier": ["none"] * 3, "gap_mean_days": [10.0, None, 5.0]})
    rows = churn_rows(scored, np.array([0.99996, 0.0, 0.5]), model_name="m", version="v", method="model",
                      window_days=60)
    assert rows["value"].tolist() == [round(P_MAX, 4), round(P_MIN, 4), 0.5]
    assert 0 < rows["value"].min() and rows["value"].max() < 1
    assert [d["risk_level"] for d in rows["details"]] == ["high", "low", "medium"]
