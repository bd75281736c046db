"""Demand models on planted series (no database): quality against baselines, holidays, intervals,
artifacts, the fallback chain and bad input. Small data, single-threaded LightGBM."""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.demand import checked_zones, gap_messages, mark_closed_days, mark_outliers
from features.model_frames import DemandHistory, idle_slots, known_closures
from models.artifacts import ArtifactChecksumError, load_artifact, save_artifact
from models.demand import DAILY
from models.forecasting import forecast
from models.intervals import ConformalIntervals, coverage, wape
from models.lgbm import GlobalLGBM
from models.seasonal import SeasonalAverage, SeasonalNaive
from tests.demand_planted import HOLIDAY_MULT, as_history, planted_daily
from core.settings import ForecastSettings
from core.units import Scope

pytestmark = pytest.mark.pure

CUT = "2026-09-03"
SPEC = replace(DAILY, candidates=("seasonal_naive", "seasonal_average", "lightgbm"))


def make_scope(ids, registry=None, run="00000000-0000-0000-0000-00000000000a") -> Scope:
    return Scope(
        run_id=run, schedule="daily", as_of=pd.Timestamp(CUT, tz="UTC"),
        restaurants=pd.DataFrame({"id": list(ids)}), forecast=ForecastSettings(),
        model_store=Path(tempfile.mkdtemp(prefix="demand-test-")),
        valid_until=pd.Timestamp.now(tz="UTC").to_pydatetime(),
        registry=registry if registry is not None else pd.DataFrame(),
    )


@pytest.fixture(scope="module")
def planted():
    frame, series = planted_daily(n_series=12, days=240, seed=3, dispersion=200.0)
    feats, held = as_history(frame, series, CUT, 28)
    scope = make_scope(series["series_id"])
    return feats, held, scope, forecast(feats, SPEC, scope)


def test_chosen_model_beats_seasonal_naive_on_held_out_planted_seasonality(planted):
    feats, held, scope, outcome = planted
    out = outcome.frame.merge(held[["series_id", "ds", "y"]], on=["series_id", "ds"])
    naive = SeasonalNaive().fit(feats.history).predict(feats.future).merge(held[["series_id", "ds", "y"]])
    assert (out["method"] == "model").all()
    assert wape(out["y"], out["yhat"]) < 0.9 * wape(naive["y"], naive["yhat"])


def test_intervals_cover_about_80_percent_of_held_out_actuals(planted):
    _, held, _, outcome = planted
    out = outcome.frame.merge(held[["series_id", "ds", "y"]], on=["series_id", "ds"])
    assert 0.65 <= coverage(out["y"], out["lower"], out["upper"]) <= 0.93
    assert (out["lower"] <= out["yhat"]).all() and (out["yhat"] <= out["upper"]).all() and (out["lower"] >= 0).all()


def test_backtest_scores_every_candidate_and_registers_the_chosen_one(planted):
    _, _, scope, outcome = planted
    (record,) = outcome.models
    assert record.name == outcome.backtest.chosen
    assert set(record.metrics["backtest"]) == set(SPEC.candidates)
    assert all({"wape", "mae", "coverage80"} <= set(s) for s in record.metrics["backtest"].values())
    assert Path(record.artifact_path).is_relative_to(scope.model_store / "demand_daily")


def test_holidays_move_the_lightgbm_forecast():
    frame, series = planted_daily(n_series=6, days=420, seed=5)
    feats, _ = as_history(frame, series, CUT, 28)
    model = GlobalLGBM(origins=45, horizon_days=14).fit(feats.history)
    fut = feats.future[feats.future["ds"].dt.day_of_week == 2].copy()  # ordinary Wednesdays
    fut["is_holiday"] = 0
    plain = model.predict(fut, history=feats.history)["yhat"].to_numpy()
    fut["is_holiday"] = 1
    holiday = model.predict(fut, history=feats.history)["yhat"].to_numpy()
    ratio = np.median(holiday / plain)
    assert ratio > 1 + 0.4 * (HOLIDAY_MULT - 1), ratio


def test_artifact_checksum_mismatch_is_refused(tmp_path, planted):
    feats, _, _, _ = planted
    model = SeasonalNaive().fit(feats.history)
    intervals = ConformalIntervals().fit(np.arange(100.0), np.arange(100.0) + 1)
    sha = save_artifact(model, intervals, tmp_path / "a")
    loaded, loaded_iv = load_artifact(tmp_path / "a", sha)
    assert loaded.predict(feats.future)["yhat"].equals(model.predict(feats.future)["yhat"])
    with open(tmp_path / "a" / "profile.csv", "a") as fh:
        fh.write("\n")
    with pytest.raises(ArtifactChecksumError):
        load_artifact(tmp_path / "a", sha)


def _registry(record, status="active"):
    return pd.DataFrame([{
        "name": record.name, "version": record.version, "prediction_type": "demand_daily",
        "artifact_path": record.artifact_path, "sha256": record.sha256, "status": status,
        "metrics": record.metrics,
    }])


def test_a_recent_selection_is_refit_without_a_new_backtest(planted):
    feats, held, scope, outcome = planted
    first = outcome.models[0]
    assert first.metrics["selected_in"] == first.version
    again = forecast(feats, SPEC, make_scope(feats.series["series_id"], _registry(first), run="33333333-0000"))
    assert again.backtest is None and any("refit on today's history" in m for m in again.messages)
    assert set(again.frame["method"]) == {"model"} and set(again.frame["model_name"]) == {first.name}
    # the same choice and intervals, refit on the same history: the same forecast
    assert np.allclose(again.frame["yhat"], outcome.frame["yhat"]) and np.allclose(again.frame["upper"], outcome.frame["upper"])
    reused = again.models[0]
    assert reused.version != first.version and reused.metrics["selected_in"] == first.version
    assert reused.metrics["backtest"] == first.metrics["backtest"]  # realised accuracy is judged against these
    # a retired model (drift alert), a verdict older than reselect_days, or reselect_days=0: backtest again
    retired = forecast(feats, SPEC, make_scope(feats.series["series_id"], _registry(first, "retired"), run="44444444-0000"))
    assert retired.backtest is not None
    stale = replace(first, metrics={**first.metrics, "selected_at": "2026-08-01T00:00:00"})
    assert forecast(feats, SPEC, make_scope(feats.series["series_id"], _registry(stale), run="55555555-0000")).backtest is not None
    never = replace(make_scope(feats.series["series_id"], _registry(first), run="66666666-0000"),
                    forecast=ForecastSettings(reselect_days=0))
    assert forecast(feats, SPEC, never).backtest is not None
    # another shard's verdict is not this shard's
    other = make_scope([*feats.series["series_id"], 999], _registry(first), run="77777777-0000")
    assert forecast(feats, SPEC, other).backtest is not None


def test_fallback_chain_previous_model_then_rule(planted):
    feats, _, _, outcome = planted
    broken = replace(SPEC, candidates=("no_such_model",))
    registry = _registry(outcome.models[0])
    prev = forecast(feats, broken, make_scope(feats.series["series_id"], registry, run="11111111-0000"))
    assert set(prev.frame["method"]) == {"previous_model"}
    assert set(prev.frame["model_version"]) == {outcome.models[0].version}
    assert not prev.models
    # the previous artifact tampered with: refused, and the rule takes over
    params = Path(outcome.models[0].artifact_path) / "params.json"
    original = params.read_text()
    params.write_text(original + " ")
    try:
        rule = forecast(feats, broken, make_scope(feats.series["series_id"], registry, run="22222222-0000"))
    finally:
        params.write_text(original)
    assert set(rule.frame["method"]) == {"rule"}
    assert any("does not match" in m for m in rule.messages)


def test_bad_series_get_fallbacks_and_messages_without_affecting_others(planted):
    feats, _, _, outcome = planted
    hist = feats.history.copy()
    # series 1: all-zero history; series 2: three weeks closed (a gap); series 99: new, 3 days old
    hist.loc[hist["series_id"] == 1, "y"] = 0.0
    gap = (hist["series_id"] == 2) & hist["ds"].between("2026-07-01", "2026-07-21")
    hist.loc[gap, "y"] = 0.0
    new = hist[(hist["series_id"] == 3) & (hist["ds"] >= "2026-08-31")].assign(series_id=99)
    hist = mark_closed_days(pd.concat([hist, new], ignore_index=True).drop(columns=["closed"]))
    series = pd.concat([feats.series, feats.series.iloc[[0]].assign(series_id=99, restaurant_id=99)], ignore_index=True)
    future = pd.concat([feats.future, feats.future[feats.future["series_id"] == 3].assign(series_id=99)], ignore_index=True)
    messages = gap_messages(hist, "restaurant")
    bad = DemandHistory(hist, future, series, "day", messages)
    result = forecast(bad, SPEC, make_scope(series["series_id"]))
    method = result.frame.groupby("series_id")["method"].agg(set)
    assert method[1] == {"average"} and method[99] == {"average"}
    assert method[2] == {"model"}
    assert all(method[s] == {"model"} for s in range(3, 13))
    assert any("restaurant 2" in m and "closure" in m for m in result.messages)
    assert result.frame["yhat"].notna().all()
    # a closed stretch is excluded, not learnt: series 2's forecast stays near its pre-gap level
    s2 = result.frame[result.frame["series_id"] == 2]["yhat"].mean()
    orig = outcome.frame[outcome.frame["series_id"] == 2]["yhat"].mean()
    assert abs(s2 / orig - 1) < 0.15


def test_unknown_timezone_is_bucketed_in_utc_with_a_message():
    zones, messages = checked_zones(pd.DataFrame({"id": [1, 2], "timezone": ["Europe/Paris", "Mars/Olympus_Mons"]}))
    assert zones == {1: "Europe/Paris", 2: "UTC"}
    assert len(messages) == 1 and "restaurant 2" in messages[0]


def test_known_weekly_closure_is_forecast_as_zero(planted):
    feats, _, _, _ = planted
    hist = feats.history.drop(columns=["closed"]).copy()
    mondays = (hist["series_id"] == 4) & (hist["ds"].dt.day_of_week == 0) & (hist["ds"] >= "2026-07-01")
    hist.loc[mondays, "y"] = 0.0
    hist = mark_closed_days(hist)
    flags = known_closures(hist, feats.future)
    fut = feats.future[flags]
    assert set(fut["series_id"]) == {4} and set(fut["ds"].dt.day_of_week) == {0}
    result = forecast(DemandHistory(hist, feats.future, feats.series, "day"), SPEC, make_scope(feats.series["series_id"]))
    closed = result.frame[flags.to_numpy()]
    assert (closed["yhat"] == 0).all() and set(closed["method"]) == {"rule"}
    open_rows = result.frame[(result.frame["series_id"] == 4) & ~flags.to_numpy()]
    assert (open_rows["yhat"] > 0).all()


def test_restaurant_not_open_yet_is_forecast_zero_until_its_opening_day(planted):
    feats, _, _, _ = planted
    opening = pd.Timestamp(CUT) + pd.Timedelta(days=10)
    # restaurant 99 is in the RMS but opens ten days into the horizon: no history at all
    series = pd.concat([feats.series, feats.series.iloc[[0]].assign(series_id=99, restaurant_id=99)], ignore_index=True)
    future = pd.concat([feats.future, feats.future[feats.future["series_id"] == 3].assign(series_id=99)], ignore_index=True)
    scope = make_scope(series["series_id"])
    scope.restaurants["opened_on"] = [opening.date() if i == 99 else (None if i == 5 else dt.date(2020, 1, 1))
                                      for i in scope.restaurants["id"]]
    result = forecast(DemandHistory(feats.history, future, series, "day"), SPEC, scope)
    new = result.frame[result.frame["series_id"] == 99]
    before, after = new[new["ds"] < opening], new[new["ds"] >= opening]
    assert len(before) == 10 and (before[["yhat", "lower", "upper"]] == 0).all().all()
    assert set(before["model_name"]) == {"not_open_rule"} and set(before["method"]) == {"rule"}
    assert (after["yhat"] > 0).all() and set(after["method"]) == {"average"}
    assert any("not open yet" in m and "99" in m for m in result.messages)
    # restaurants that opened long ago, or whose opening date is unknown, are untouched
    assert (result.frame.loc[result.frame["series_id"] != 99, "model_name"] != "not_open_rule").all()
    # orders outweigh a typed date: a restaurant already selling before its opened_on is trading
    scope.restaurants.loc[scope.restaurants["id"] == 4, "opened_on"] = opening.date()
    early = forecast(DemandHistory(feats.history, future, series, "day"), SPEC, scope)
    assert (early.frame.loc[early.frame["series_id"] == 4, "method"] == "model").all()
    assert any("orders before their opened_on" in m and "4 (opened_on" in m for m in early.messages)


# --------------------------------------------------------------------------- second pass
def drifting_daily(n_series=8, days=300, seed=21, end="2026-10-01"):
    """Planted restaurants whose level drifts: a linear trend (up or down) and an annual swing
    sliding through the held-out month, Poisson noise: the case a recent-weeks average lags."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range(end=pd.Timestamp(end) - pd.Timedelta(days=1), periods=days, freq="D")
    frames = []
    for sid in range(1, n_series + 1):
        t = np.arange(days)
        trend = 1 + rng.choice([-1, 1]) * rng.uniform(0.0005, 0.001) * t
        # summer peak early June: the held-out September is on the steepest part of the decline
        annual = 1 + rng.uniform(0.15, 0.25) * np.cos(2 * np.pi * (ds.day_of_year.to_numpy() - 155) / 365.25)
        frames.append(pd.DataFrame({"series_id": sid, "ds": ds, "level": rng.uniform(300, 600) * trend * annual}))
    frame = pd.concat(frames, ignore_index=True)
    from tests.demand_planted import _draw

    return _draw(frame, rng, "GB", (), dispersion=1e6)


def test_daily_model_follows_a_drifting_level_better_than_seasonal_averages():
    frame, series = drifting_daily()
    feats, held = as_history(frame, series, CUT, 28)
    outcome = forecast(feats, SPEC, make_scope(series["series_id"]), save=False)
    out = outcome.frame.merge(held[["series_id", "ds", "y"]], on=["series_id", "ds"])
    truth = held[["series_id", "ds", "y"]]
    avg = SeasonalAverage().fit(feats.history).predict(feats.future).merge(truth)
    assert outcome.backtest.chosen == "lightgbm"
    assert wape(out["y"], out["yhat"]) < 0.9 * wape(avg["y"], avg["yhat"])


def test_intervals_widen_with_the_horizon_and_cover_each_horizon_bucket():
    rng = np.random.default_rng(4)
    n = 4000
    h = rng.uniform(0, 28, n)
    yhat = rng.uniform(20, 200, n)
    # forecast error grows with the horizon: sd = (0.5 + h / 10) sqrt(yhat)
    draw = lambda: np.maximum(yhat + rng.normal(0, 1, n) * (0.5 + h / 10) * np.sqrt(yhat), 0)
    iv = ConformalIntervals(0.8).fit(draw(), yhat, h)
    lower, upper = iv.apply(yhat, h)
    width = (upper - lower) / np.sqrt(yhat)
    assert np.median(width[h > 21]) > 2 * np.median(width[h < 7])
    y = draw()
    for lo_h, hi_h in ((0, 7), (7, 14), (14, 21), (21, 28)):
        m = (h >= lo_h) & (h < hi_h)
        assert 0.74 <= coverage(y[m], lower[m], upper[m]) <= 0.86, (lo_h, coverage(y[m], lower[m], upper[m]))


def test_a_bias_seen_in_the_backtest_does_not_shift_the_interval():
    """Calibrated on folds that all over-forecast by 1 sd, the interval still covers unbiased actuals."""
    rng = np.random.default_rng(8)
    yhat = rng.uniform(50, 150, 2000)
    biased = yhat + rng.normal(-1, 1, 2000) * np.sqrt(yhat)
    lower, upper = ConformalIntervals(0.8).fit(biased, yhat).apply(yhat)
    fair = yhat + rng.normal(0, 1, 2000) * np.sqrt(yhat)
    assert coverage(fair, lower, upper) >= 0.8
    assert np.allclose(upper - yhat, yhat - lower)


def test_intervals_saved_by_the_first_pass_still_load_and_apply():
    old = {"level": 0.8, "bins": 5, "min_per_bin": 30, "edges": [10.0], "lower_q": [-1.0, -2.0], "upper_q": [1.0, 2.0]}
    iv = ConformalIntervals.from_dict(old)
    lower, upper = iv.apply(np.array([3.0, 24.0]), np.array([0.0, 5.0]))
    assert np.allclose(lower, [3 - 2, 24 - 2 * 5]) and np.allclose(upper, [3 + 2, 24 + 2 * 5])
    again = ConformalIntervals.from_dict(iv.to_dict())
    assert np.allclose(again.apply(np.array([24.0]))[1], [34.0])


def test_idle_hours_are_the_hours_without_orders_in_the_last_weeks():
    ds = pd.date_range("2026-08-01", periods=24 * 35, freq="h")
    y = np.where((ds.hour >= 11) & (ds.hour < 22), 5.0, 0.0)
    y[(ds.hour == 3) & (ds >= "2026-08-20")] = 1.0  # a late event at 3 am in the last weeks
    hist = pd.DataFrame({"series_id": 7, "ds": ds, "y": y})
    rows = pd.DataFrame({"series_id": 7, "ds": pd.date_range("2026-09-05", periods=48, freq="h")})
    idle = idle_slots(hist, rows)
    hours = rows["ds"].dt.hour
    expected = ~(((hours >= 11) & (hours < 22)) | (hours == 3))
    assert idle.tolist() == expected.tolist()
    unknown = idle_slots(hist, rows.assign(series_id=8))
    assert unknown.all()


def test_year_on_year_momentum_is_last_years_change_per_series():
    ds = pd.date_range("2025-01-01", "2026-06-30", freq="D")
    frames = []
    for sid, jump in ((1, 2.0), (2, 1.0)):
        y = np.where(ds >= pd.Timestamp("2025-06-01"), 10.0 * jump, 10.0)  # last June: x jump
        frames.append(pd.DataFrame({"series_id": sid, "ds": ds, "y": y, "closed": False, "outlier": False}))
    hist = pd.concat(frames, ignore_index=True)
    origin = pd.Timestamp("2026-05-18")  # a year (364 days) earlier: 2025-05-19
    targets = pd.DataFrame({"series_id": [1, 2, 1], "ds": pd.to_datetime(["2026-06-20", "2026-06-20", "2026-05-20"]),
                            "origin": origin})
    from features.model_frames import OriginFeatures

    ratio = OriginFeatures()._yoy(hist, targets)
    assert np.allclose(ratio, [2.0, 1.0, 1.0])
    short = hist[hist["ds"] >= "2026-01-01"]
    assert np.isnan(OriginFeatures()._yoy(short, targets)).all()


def test_blend_is_the_weighted_mean_of_its_parts_and_reloads_through_the_checksum(tmp_path):
    from models.artifacts import MODEL_CLASSES
    from models.blend import LGBMProphetBlend
    from models.prophet_model import ProphetPerSeries

    frame, series = planted_daily(n_series=3, days=150, seed=9)
    feats, held = as_history(frame, series, CUT, 14)
    lgbm_args = {"horizon_days": 14, "origins": 10}
    blend = LGBMProphetBlend(lgbm=lgbm_args, weight=0.25).fit(feats.history)
    got = blend.predict(feats.future, history=feats.history)["yhat"].to_numpy()
    a = GlobalLGBM(**lgbm_args).fit(feats.history).predict(feats.future, history=feats.history)["yhat"].to_numpy()
    b = ProphetPerSeries().fit(feats.history).predict(feats.future)["yhat"].to_numpy()
    assert np.allclose(got, 0.25 * a + 0.75 * b)
    assert MODEL_CLASSES["lightgbm+prophet"] is LGBMProphetBlend
    sha = save_artifact(blend, None, tmp_path / "blend")
    loaded, _ = load_artifact(tmp_path / "blend", sha)
    assert np.allclose(loaded.predict(feats.future, history=feats.history)["yhat"].to_numpy(), got)
    # a series Prophet cannot fit (too short) falls back to the LightGBM part alone
    short = feats.future.assign(series_id=4)
    hist = pd.concat([feats.history, feats.history[feats.history["series_id"] == 1].tail(5).assign(series_id=4)])
    part = LGBMProphetBlend(lgbm=lgbm_args).fit(hist).predict(short, history=hist)
    assert part["yhat"].notna().all()


def test_origin_features_are_window_means_of_usable_history_known_before_the_origin():
    from features.model_frames import OriginFeatures

    ds = pd.date_range("2026-06-01", periods=70, freq="D")  # a Monday
    y = np.where(ds.day_of_week == 5, 20.0, 10.0)  # Saturdays double
    y[-7:] = 30.0  # the last week jumps
    hist = pd.DataFrame({"series_id": 1, "ds": ds, "y": y, "closed": False, "outlier": False})
    hist.loc[hist.index[-10], ["y", "closed"]] = [0.0, True]  # a closed day is not a zero
    hist.loc[hist.index[-20], ["y", "outlier"]] = [500.0, True]  # nor is an outlier a level
    origin = ds[-1] + pd.Timedelta(days=1)
    targets = pd.DataFrame({"series_id": [1, 1, 2], "ds": [origin + pd.Timedelta(days=5)] * 2 + [origin],
                            "origin": [origin, ds[3], origin]})
    f = OriginFeatures(yoy=False).transform(hist, targets)
    usable = hist[~(hist["closed"] | hist["outlier"])]
    last28 = usable[usable["ds"] >= origin - pd.Timedelta(days=28)]["y"]
    assert f.loc[0, "level_d28"] == pytest.approx(last28.mean())
    assert f.loc[0, "level_ratio_d7_d28"] == pytest.approx(30.0 / last28.mean())
    sats = usable[(usable["ds"] >= origin - pd.Timedelta(days=28)) & (usable["ds"].dt.day_of_week == 5)]["y"]
    assert f.loc[0, "slot_share_w4"] == pytest.approx(sats.mean() / last28.mean())  # target is a Saturday
    assert f.loc[0, "zero_share_d28"] == 0.0 and f.loc[0, "h_days"] == 5.0
    # an origin three days into the history sees three days; a series without history sees nothing
    assert f.loc[1, "level_d28"] == pytest.approx(10.0) and f.loc[1, "age_days"] == 3.0
    assert np.isnan(f.loc[1, "trend_d28"])
    assert f.loc[2, ["level_d28", "slot_share_w4", "age_days"]].isna().all()


def _planted_items(seed=0, **kw):
    """Item DemandHistory (restaurants' daily orders as its context) and the restaurant frame."""
    from tests.demand_planted import planted_items

    rest, items, series = planted_items(seed=seed, **kw)
    feats, held = as_history(items, series, CUT, 14)
    context = mark_outliers(mark_closed_days(rest.drop(columns=["level", "mu"])))  # every day, after CUT too
    return replace(feats, context=context), held, rest


def test_topdown_forecasts_only_from_days_before_its_origin():
    from models.backtest import rolling_origin
    from models.demand import ITEMS
    from models.forecasting import make_candidate, restaurant_context

    feats, _, _ = _planted_items(seed=5, n_restaurants=3, items=2, days=200, item_days=90)
    hist = feats.history
    cut = pd.Timestamp(CUT)

    def run(context: pd.DataFrame, history: pd.DataFrame) -> dict[str, np.ndarray]:
        f = replace(feats, context=context, history=history)
        ctx = restaurant_context(f)
        got = {}
        for name in ("topdown", "lightgbm+topdown"):
            model = make_candidate(name, ITEMS, ctx).fit(history)
            got[name] = model.predict(feats.future, history=history)["yhat"].to_numpy()
        bt = rolling_origin(history, {n: (lambda n=n: make_candidate(n, ITEMS, ctx)) for n in ("topdown",)},
                            pd.Timedelta(days=14), folds=2, step=pd.Timedelta(days=7))
        res = bt.residuals["topdown"]
        got["oldest_fold"] = res.loc[res["fold"] == 1, "yhat"].to_numpy()
        return got

    base = run(feats.context, hist)
    assert np.isfinite(base["topdown"]).all() and (base["topdown"] > 0).all()
    # orders after the origin move (a busy fortnight, one day emptied): no forecast changes
    moved = feats.context.copy()
    after = moved["ds"] >= cut
    moved.loc[after, "y"] = moved.loc[after, "y"] * 3
    moved.loc[moved.index[after][0], "y"] = 0.0
    for name, values in run(moved, hist).items():
        np.testing.assert_allclose(values, base[name], err_msg=name)
    # nor does a restaurant history that stops at the origin
    for name, values in run(feats.context[~after], hist).items():
        np.testing.assert_allclose(values, base[name], err_msg=name)
    # the oldest backtest fold (origin 21 days before CUT) does not see the last three weeks of
    # either history: orders and item units moved in them leave its forecasts alone
    fold_origin = cut - pd.Timedelta(days=21)
    late_items = hist.copy()
    late = late_items["ds"] >= fold_origin
    late_items.loc[late, "y"] = late_items.loc[late, "y"][::-1].to_numpy()
    late_orders = feats.context.copy()
    late_orders.loc[late_orders["ds"] >= fold_origin, "y"] *= 0.5
    np.testing.assert_allclose(run(late_orders, late_items)["oldest_fold"], base["oldest_fold"])


def test_topdown_is_offered_to_the_item_backtest_and_wins_where_items_follow_their_restaurant(tmp_path):
    from models.demand import ITEMS
    from models.forecasting import restaurant_context
    from models.topdown import with_context

    feats, held, _ = _planted_items(seed=1, n_restaurants=4, items=3, days=300, item_days=120)
    outcome = forecast(feats, ITEMS, make_scope(feats.series["series_id"]))
    scores = outcome.backtest.scores
    assert {"lightgbm", "topdown", "lightgbm+topdown"} <= set(scores)
    # units are Poisson(share x the restaurant's orders): the restaurant's long history knows more
    assert outcome.backtest.chosen in ("topdown", "lightgbm+topdown")
    assert min(scores["topdown"]["wape"], scores["lightgbm+topdown"]["wape"]) < scores["lightgbm"]["wape"]
    out = outcome.frame
    assert (out["method"] == "model").all() and (out["model_name"] == outcome.backtest.chosen).all()
    assert (out["lower"] <= out["yhat"]).all() and (out["yhat"] <= out["upper"]).all()
    # the artifact carries no history: the previous-model fallback hands it the run's restaurant days
    (record,) = outcome.models
    model, _ = load_artifact(Path(record.artifact_path), record.sha256)
    again = with_context(model, restaurant_context(feats)).predict(feats.future, history=feats.history)
    np.testing.assert_allclose(again["yhat"].to_numpy(), out["yhat"].to_numpy(), rtol=1e-9)


def test_plain_lagged_model_reads_only_lags_past_the_horizon_and_reloads_through_the_checksum(tmp_path):
    from features.model_frames import LagFeatures
    from models.artifacts import MODEL_CLASSES
    from models.lgbm import PlainLagLGBM

    lags = LagFeatures(min_lag_days=14)
    assert lags.lag_weeks == [2, 3, 4, 5, 6] and LagFeatures(min_lag_days=28).lag_weeks[0] == 4
    frame, series = planted_daily(n_series=3, days=150, seed=9)
    feats, held = as_history(frame, series, CUT, 14)
    # a lag never reaches into the horizon: every one of the 14 future days has all its lags known
    x = lags.transform(feats.history, feats.future)
    assert x.notna().all().all()
    model = PlainLagLGBM(horizon_days=14, num_boost_round=50).fit(feats.history)
    got = model.predict(feats.future, history=feats.history)["yhat"].to_numpy()
    assert np.isfinite(got).all() and (got >= 0).all()
    assert MODEL_CLASSES["lightgbm_plain"] is PlainLagLGBM
    sha = save_artifact(model, None, tmp_path / "plain")
    loaded, _ = load_artifact(tmp_path / "plain", sha)
    assert np.allclose(loaded.predict(feats.future, history=feats.history)["yhat"].to_numpy(), got)


def test_ensemble_is_scored_from_its_parts_fold_forecasts_and_reloads_through_the_checksum(tmp_path):
    from models.backtest import rolling_origin
    from models.blend import MeanEnsemble
    from models.forecasting import make_candidate

    frame, series = planted_daily(n_series=3, days=150, seed=9)
    feats, held = as_history(frame, series, CUT, 14)
    spec = replace(DAILY, horizon_days=14, lgbm=(("origins", 6),), plain_lgbm=(("num_boost_round", 30),),
                   candidates=("seasonal_average", "lightgbm", "lightgbm_plain", "ensemble"),
                   ensemble=("seasonal_average", "lightgbm", "lightgbm_plain"))
    factories = {n: (lambda n=n: make_candidate(n, spec)) for n in spec.ensemble}
    bt = rolling_origin(feats.history, factories, pd.Timedelta(days=14), 2, combinations={"ensemble": spec.ensemble})
    mean = np.mean([bt.residuals[n]["yhat"].to_numpy() for n in spec.ensemble], axis=0)
    assert np.allclose(bt.residuals["ensemble"]["yhat"].to_numpy(), mean) and "ensemble" in bt.scores
    model = make_candidate("ensemble", spec).fit(feats.history)
    got = model.predict(feats.future, history=feats.history)["yhat"].to_numpy()
    parts = [m.predict(feats.future, history=feats.history)["yhat"].to_numpy() for m in model.models_.values()]
    assert np.allclose(got, np.mean(parts, axis=0))
    sha = save_artifact(model, None, tmp_path / "ens")
    loaded, _ = load_artifact(tmp_path / "ens", sha)
    assert isinstance(loaded, MeanEnsemble)
    assert np.allclose(loaded.predict(feats.future, history=feats.history)["yhat"].to_numpy(), got)


def test_blend_is_scored_from_the_lightgbm_and_prophet_fold_forecasts_and_refit_keeps_its_prophet(monkeypatch):
    """The backtest scores the LightGBM+Prophet blend as the mean of the lightgbm candidate's and
    Prophet's fold forecasts (one LightGBM fit per fold for both; Prophet is no candidate of its
    own), the same scores as fitting the blend per fold; a nightly refit under that selection
    refits the LightGBM only and keeps the Prophet fits of the selection's artifact."""
    from models.backtest import rolling_origin
    from models.forecasting import make_candidate

    frame, series = planted_daily(n_series=3, days=150, seed=9)
    feats, _ = as_history(frame, series, CUT, 14)
    spec = replace(DAILY, horizon_days=14, lgbm=(("origins", 6),),
                   candidates=("seasonal_average", "lightgbm", "lightgbm+prophet"))
    scope = make_scope(series["series_id"])
    short = forecast(feats, spec, scope)  # 150 days: no yearly curve for Prophet, no blend offered
    assert set(short.backtest.scores) == {"seasonal_average", "lightgbm"}
    assert any("lightgbm+prophet not offered" in m for m in short.messages)
    monkeypatch.setattr("models.forecasting.yearly_history", lambda history, spec: True)
    first = forecast(feats, spec, scope)
    assert set(first.backtest.scores) == {"seasonal_average", "lightgbm", "lightgbm+prophet"}
    direct = rolling_origin(feats.history, {n: (lambda n=n: make_candidate(n, spec)) for n in spec.candidates},
                            pd.Timedelta(days=14), spec.backtest_folds)
    for name in spec.candidates:
        assert first.backtest.scores[name]["wape"] == pytest.approx(direct.scores[name]["wape"], rel=1e-9)
    # a later night under a selection of the blend: LightGBM refit, Prophet kept
    chosen = replace(spec, candidates=("lightgbm+prophet",))
    blend = forecast(feats, chosen, scope)
    reg = pd.DataFrame([{**vars(m), "prediction_type": "demand_daily", "status": "active"} for m in blend.models])
    from models.prophet_model import ProphetPerSeries

    def no_fit(self, history):
        raise AssertionError("Prophet refit nightly")

    monkeypatch.setattr(ProphetPerSeries, "fit", no_fit)
    later = forecast(feats, chosen, make_scope(series["series_id"], registry=reg,
                                               run="11111111-0000-0000-0000-00000000000b"))
    assert later.backtest is None and (later.frame["method"] == "model").all()
    assert np.allclose(later.frame["yhat"].to_numpy(), blend.frame["yhat"].to_numpy())
    saved, _ = load_artifact(Path(later.models[0].artifact_path), later.models[0].sha256)
    first_saved, _ = load_artifact(Path(blend.models[0].artifact_path), blend.models[0].sha256)
    assert saved.prophet_.models_ == first_saved.prophet_.models_
