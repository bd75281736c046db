"""Demand v3 (issue 29): the chain decides, not the shard. The pooled backtest of every shard picks
a type's method (models.chain_decision); a shard applies it whatever its own few origins say, and
a thin pool keeps the default."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from models.chain_decision import chain_decision, decide, latest_backtests, pool
from models.demand import DAILY
from models.forecasting import forecast
from tests.demand_planted import as_history, planted_daily
from tests.test_demand_models import CUT, make_scope

pytestmark = pytest.mark.pure


def _scores(**wapes) -> dict:
    """A shard's backtest scores: candidate -> (wape, series); y_sum 1000 per shard."""
    return {n: {"wape": w, "abs_err": w * 1000.0, "y_sum": 1000.0, "series": s, "folds": 3}
            for n, (w, s) in wapes.items()}


def _record(version: str, scores: dict, selected_in: str | None = None) -> dict:
    return {"name": "ensemble", "version": version, "prediction_type": "demand_daily", "status": "active",
            "metrics": {"backtest": scores, "selected_in": selected_in or version}}


def test_pooled_wape_is_the_chains_not_the_mean_of_shards():
    shards = [_scores(ensemble=(0.30, 10), lightgbm=(0.20, 10)), _scores(ensemble=(0.30, 10), lightgbm=(0.50, 10))]
    shards[1]["ensemble"]["y_sum"] = shards[1]["lightgbm"]["y_sum"] = 3000.0  # a shard three times busier
    shards[1]["ensemble"]["abs_err"], shards[1]["lightgbm"]["abs_err"] = 900.0, 1500.0
    pooled = pool(shards)
    assert pooled["ensemble"]["wape"] == pytest.approx(0.30) and pooled["ensemble"]["series"] == 20
    assert pooled["lightgbm"]["wape"] == pytest.approx((200 + 1500) / 4000)  # not (0.2 + 0.5) / 2
    assert pooled["lightgbm"]["shards"] == 2


def test_the_default_stands_on_thin_evidence_and_within_the_margin():
    candidates = ("seasonal_average", "lightgbm", "lightgbm_plain", "prophet", "ensemble")
    assert decide({}, "ensemble", candidates).name == "ensemble"  # a first night
    thin = pool([_scores(ensemble=(0.40, 5), seasonal_average=(0.20, 5))])  # one small shard, 50 % better
    d = decide(thin, "ensemble", candidates)
    assert d.name == "ensemble" and "too thin" in d.reason
    close = pool([_scores(ensemble=(0.300, 15), lightgbm=(0.295, 15))] * 2)  # 1.7 % better over 30 series
    d = decide(close, "ensemble", candidates)
    assert d.name == "ensemble" and "under the 3% margin" in d.reason
    clear = pool([_scores(ensemble=(0.30, 15), lightgbm=(0.27, 15))] * 2)  # 10 % better over 30 series
    d = decide(clear, "ensemble", candidates)
    assert d.name == "lightgbm" and "10.0%" in d.reason
    # a rival only some shards scored is another pool of restaurants: not compared
    partial = pool([_scores(ensemble=(0.30, 15), lightgbm=(0.20, 15)), _scores(ensemble=(0.30, 15))])
    assert decide(partial, "ensemble", candidates).name == "ensemble"


def test_latest_backtests_take_each_shards_newest_fresh_verdict_and_skip_this_run():
    reg = pd.DataFrame([
        _record("demand_daily.20170127T1915.bbbbbbbb.s1", _scores(ensemble=(0.3, 10))),
        _record("demand_daily.20170126T1915.aaaaaaaa.s1", _scores(ensemble=(0.9, 10))),  # older, same shard
        _record("demand_daily.20170127T1915.bbbbbbbb.s2", _scores(ensemble=(0.5, 10)),
                selected_in="demand_daily.20170120T1915.cccccccc.s2"),  # a refit: not a verdict of its own
        _record("demand_daily.20170127T1915.dddddddd.s3", _scores(ensemble=(0.1, 10))),  # this run's own
    ])
    got = latest_backtests(reg, "demand_daily", exclude_run="dddddddd")
    assert [s["ensemble"]["wape"] for s in got] == [0.3]


@pytest.fixture(scope="module")
def shard():
    frame, series = planted_daily(n_series=4, days=150, seed=5)
    feats, _ = as_history(frame, series, CUT, 14)
    spec = replace(DAILY, horizon_days=14, lgbm=(("origins", 6),), candidates=("seasonal_average", "lightgbm",
                   "ensemble"), ensemble=("seasonal_average", "lightgbm"), default="ensemble")
    return feats, spec


def test_a_shard_applies_the_chains_decision_whatever_its_own_backtest_says(shard):
    feats, spec = shard
    ids = feats.series["series_id"]
    first = forecast(feats, spec, make_scope(ids))  # no pooled evidence: the default
    assert set(first.frame.loc[first.frame["method"] == "model", "model_name"]) == {"ensemble"}
    assert any("chain's decision ensemble" in m and "first night" in m for m in first.messages)
    assert first.models[0].metrics["chain_decision"]["name"] == "ensemble"
    own = first.backtest.scores
    # the other shards' pooled verdict: seasonal_average 20 % ahead over 40 series; this shard's own
    # backtest does not matter, it applies the chain's choice
    others = pd.DataFrame([_record(f"demand_daily.20260827T0000.eeeeeeee.s{k}",
                                   _scores(ensemble=(0.30, 10), seasonal_average=(0.24, 10), lightgbm=(0.31, 10)))
                           for k in range(4)])
    applied = forecast(feats, spec, make_scope(ids, others, run="88888888-0000"))
    assert applied.backtest is not None and set(applied.backtest.scores) == set(own)
    assert set(applied.frame.loc[applied.frame["method"] == "model", "model_name"]) == {"seasonal_average"}
    assert applied.models[0].metrics["chain_decision"]["pooled"]["seasonal_average"]["series"] == 40
    decision = chain_decision(others, "demand_daily", "ensemble", spec.candidates)
    assert decision.name == "seasonal_average" and decision.shards == 4


def test_a_nightly_refit_of_the_combination_keeps_prophet_from_the_reselection(monkeypatch):
    """Prophet, a member of the default combination, is fitted at the weekly reselection only."""
    from models.blend import MeanEnsemble
    from models.prophet_model import ProphetPerSeries

    frame, series = planted_daily(n_series=2, days=120, seed=8)
    feats, _ = as_history(frame, series, CUT, 14)
    parts = {"seasonal_average": lambda: __import__("models.seasonal", fromlist=["x"]).SeasonalAverage(),
             "prophet": lambda: ProphetPerSeries()}
    fitted = MeanEnsemble(("seasonal_average", "prophet"), factory=lambda n: parts[n]()).fit(feats.history)

    def no_fit(self, history):
        raise AssertionError("Prophet refit nightly")

    monkeypatch.setattr(ProphetPerSeries, "fit", no_fit)
    refit = MeanEnsemble(("seasonal_average", "prophet"), factory=lambda n: parts[n]()).refit(feats.history, fitted)
    assert refit.models_["prophet"] is fitted.models_["prophet"]
    a = refit.predict(feats.future, history=feats.history)["yhat"].to_numpy()
    b = fitted.predict(feats.future, history=feats.history)["yhat"].to_numpy()
    assert np.allclose(a, b)
