"""Windows anchored on local dates: the same replica gives the same daily and item histories and
forecasts whatever hour of one local day the run starts (history windows start at a local date,
not at as_of minus N days). On the synthetic chain, whose restaurants are on both sides of UTC."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pandas.testing as pdt
import pytest

from core.replica import ReplicaReader
from core.settings import ForecastSettings
from core.units import Scope
from features.demand import daily_demand_features
from features.items import item_demand_features
from features.restaurants import load_restaurants
from models.demand import DAILY, ITEMS
from models.forecasting import forecast

# the day US clocks go back: as_of - 182 x 24 h lands in summer time, an hour later on the clock,
# so a run at 23:30 used to start the item window a day later than one at 00:10
DAY = "2026-11-01"


def _scope(reader: ReplicaReader, rid: int, as_of: pd.Timestamp, store: Path) -> Scope:
    found = load_restaurants(reader).restaurants
    return Scope(run_id="00000000-0000-0000-0000-0000000000a1", schedule="daily", as_of=as_of,
                 restaurants=found[found["id"] == rid].reset_index(drop=True), forecast=ForecastSettings(),
                 model_store=store, valid_until=pd.Timestamp.now(tz="UTC").to_pydatetime(),
                 registry=pd.DataFrame())


@pytest.fixture()
def reader(replica_engine):
    return ReplicaReader(replica_engine)


@pytest.mark.parametrize("kind", ["daily", "items"])
def test_same_local_day_same_histories_and_forecasts_whatever_the_hour(reader, kind):
    found = load_restaurants(reader).restaurants
    west = found[found["timezone"].str.startswith("America/")]
    rid, tz = int(west.iloc[0]["id"]), str(west.iloc[0]["timezone"])
    # 00:10 and 23:30 on one local day (a different UTC date for a restaurant west of UTC)
    early = pd.Timestamp(f"{DAY} 00:10").tz_localize(tz).tz_convert("UTC")
    late = pd.Timestamp(f"{DAY} 23:30").tz_localize(tz).tz_convert("UTC")
    assert early.date() != late.date()
    features, spec = (daily_demand_features, DAILY) if kind == "daily" else (item_demand_features, ITEMS)
    spec = replace(spec, candidates=("seasonal_average", "lightgbm"))
    store = Path(tempfile.mkdtemp(prefix="demand-anchor-"))
    runs = []
    for as_of in (early, late):
        scope = _scope(reader, rid, as_of, store)
        feats = features(reader, scope)
        runs.append((feats, forecast(feats, spec, scope, save=False).frame))
    (fa, oa), (fb, ob) = runs
    cols = ["series_id", "ds", "y", "closed"]
    pdt.assert_frame_equal(fa.history[cols].reset_index(drop=True), fb.history[cols].reset_index(drop=True))
    if fa.context is not None:
        pdt.assert_frame_equal(fa.context[cols].reset_index(drop=True), fb.context[cols].reset_index(drop=True))
    keep = ["series_id", "ds", "target_start", "yhat", "lower", "upper", "method"]
    pdt.assert_frame_equal(oa[keep].reset_index(drop=True), ob[keep].reset_index(drop=True))
    assert oa["yhat"].sum() > 0


def test_registry_training_window_is_instants(reader):
    """training_end is the as-of instant (history is strictly before it) and training_start the
    local midnight the history begins at, as UTC instants: not a local date written as UTC midnight."""
    found = load_restaurants(reader).restaurants
    west = found[found["timezone"].str.startswith("America/")]
    rid, tz = int(west.iloc[0]["id"]), str(west.iloc[0]["timezone"])
    as_of = pd.Timestamp(f"{DAY} 09:15").tz_localize(tz).tz_convert("UTC")
    scope = _scope(reader, rid, as_of, Path(tempfile.mkdtemp(prefix="demand-window-")))
    spec = replace(DAILY, candidates=("seasonal_average",))
    feats = daily_demand_features(reader, scope)
    (record,) = forecast(feats, spec, scope).models
    assert pd.Timestamp(record.training_end) == as_of
    start = pd.Timestamp(record.training_start)
    assert start.tzinfo is not None
    local = start.tz_convert(tz)
    assert (local.hour, local.minute) == (0, 0)
    assert local.tz_localize(None) == pd.Timestamp(feats.history["ds"].min())


def test_hourly_and_item_features_from_the_shards_daily_features_are_the_ones_they_read(reader):
    """The run hands the hourly and item features the shard's daily features (DemandInputs)
    instead of their reading the daily orders again: the same frames either way."""
    from features.demand import hourly_demand_features

    found = load_restaurants(reader).restaurants
    scope = Scope(run_id="00000000-0000-0000-0000-0000000000a2", schedule="daily",
                  as_of=pd.Timestamp(f"{DAY} 04:15", tz="UTC"), restaurants=found, forecast=ForecastSettings(),
                  model_store=Path(tempfile.mkdtemp(prefix="demand-anchor-")),
                  valid_until=pd.Timestamp.now(tz="UTC").to_pydatetime(), registry=pd.DataFrame())
    daily = daily_demand_features(reader, scope)
    for features in (hourly_demand_features, item_demand_features):
        own, given = features(reader, scope), features(reader, scope, daily=daily)
        pdt.assert_frame_equal(own.history, given.history)
        pdt.assert_frame_equal(own.future, given.future)
        pdt.assert_frame_equal(own.daily.history, given.daily.history)
