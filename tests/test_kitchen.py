"""Prep time: held-out accuracy against the item median, queue effect, planted truth, fallbacks."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from features.kitchen import KitchenData, kitchen_unit_features
from features.restaurants import load_restaurants
from models.prep_time import QUEUE_SIZES, PrepTimeModel, evaluate_prep
from prediction_types.kitchen import predict_prep_time
from tests.conftest import CHAIN_END
from core.replica import ReplicaReader
from core.settings import ForecastSettings
from core.units import Scope

AS_OF = pd.Timestamp(CHAIN_END, tz="UTC")
pytestmark = pytest.mark.slow


def kitchen_scope(reader: ReplicaReader, run_id: str, store) -> Scope:
    """A daily scope of the seeded chain's four restaurants as of the chain's end."""
    return Scope(run_id=run_id, schedule="daily", as_of=AS_OF,
                 restaurants=load_restaurants(reader, [1, 2, 3, 4]).restaurants, forecast=ForecastSettings(),
                 model_store=store, valid_until=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))


@pytest.fixture(scope="module")
def kitchen(seeded_replica, tmp_path_factory):
    from worker import db

    reader = ReplicaReader(db.replica_engine())
    scope = kitchen_scope(reader, "00000000-0000-0000-0000-0000000000k1", tmp_path_factory.mktemp("kitchen"))
    data = kitchen_unit_features(reader, scope)
    return scope, data, predict_prep_time(data, scope)


def test_model_beats_item_median_on_held_out_days(kitchen):
    _, data, _ = kitchen
    result = evaluate_prep(data.tickets, test_days=14)
    mae = result["mae"]
    assert result["n_test"] > 1000
    assert mae["model"] <= 0.85 * mae["item_median"], mae


def test_queue_size_raises_prep_time(kitchen, seeded_replica):
    _, _, result = kitchen
    rows = result.rows[result.rows["method"] == "model"]
    assert len(rows) > 20
    by_queue = np.array([[d["minutes_by_queue"][str(q)] for q in QUEUE_SIZES] for d in rows["details"]])
    assert (np.diff(by_queue, axis=1) >= 0).all()  # never faster with more tickets ahead
    assert (by_queue[:, -1] > by_queue[:, 0] * 1.05).mean() > 0.9  # and clearly slower at 10 ahead
    # The slowdown per station type follows the planted slopes (prep = base x (1 + slope x queue)).
    truth = seeded_replica["ground_truth"]
    slopes = truth["queue_slope_by_type"]
    items = pd.DataFrame(truth["menu_items"]).set_index("menu_item_id")
    stretch = pd.Series(by_queue[:, -1] / by_queue[:, 0] - 1, index=rows["entity_id"].to_numpy())
    per_type = stretch.groupby(items.loc[stretch.index, "station_type"].to_numpy()).median()
    for station_type, observed in per_type.items():
        assert observed == pytest.approx(10 * slopes[station_type], abs=0.25), (station_type, observed)
    assert per_type.idxmax() in ("grill", "tandoor")


def test_idle_minutes_recover_planted_base_minutes(kitchen, seeded_replica):
    _, _, result = kitchen
    truth = pd.DataFrame(seeded_replica["ground_truth"]["menu_items"]).set_index("menu_item_id")
    rows = result.rows.set_index("entity_id")
    modelled = rows[rows["method"] == "model"]
    base = truth.loc[modelled.index, "base_minutes"]
    rel = (modelled["value"] - base).abs() / base
    assert rel.median() < 0.08
    assert ((modelled["lower"] <= modelled["value"]) & (modelled["value"] <= modelled["upper"])).all()
    extra = modelled["details"].map(lambda d: d["extra_minutes_per_unit"])
    assert (extra > 0).mean() > 0.9


def test_fallbacks_for_thin_items_and_stations_without_tickets(kitchen, tmp_path):
    """An item with a few tickets uses its median, one with none its station's median, and an item
    at a station without completed tickets is skipped and counted, never a crash."""
    import dataclasses

    scope, data, _ = kitchen
    scope = dataclasses.replace(scope, model_store=tmp_path)  # its refit keeps other medians than the fixture's model
    menu, stations, medians = data.menu.copy(), data.stations.copy(), data.medians.copy()
    some = menu[menu["is_active"] & menu["station_id"].notna()].iloc[0]
    station = int(some["station_id"])
    new_station = int(stations["station_id"].max()) + 100
    thin, unsold, orphan = (int(menu["menu_item_id"].max()) + k for k in (1, 2, 3))
    stations.loc[len(stations)] = {"station_id": new_station, "restaurant_id": int(some["restaurant_id"]),
                                   "station_type": "tandoor"}
    for item, st in ((thin, station), (unsold, station), (orphan, new_station)):
        menu.loc[len(menu)] = {"menu_item_id": item, "restaurant_id": int(some["restaurant_id"]), "station_id": float(st),
                               "station_type": None, "is_active": True}
    medians.loc[len(medians)] = {"level": "item", "menu_item_id": float(thin), "station_id": station, "tickets": 3,
                                 "median_minutes": 4.5}
    result = predict_prep_time(KitchenData(data.as_of, data.tickets, medians, menu, stations), scope)
    rows = result.rows.set_index("entity_id")
    assert rows.loc[thin, "method"] == "average" and rows.loc[thin, "details"]["fallback"] == "item_median"
    assert rows.loc[thin, "value"] == pytest.approx(4.5)
    assert rows.loc[unsold, "details"]["fallback"] == "station_median"
    assert orphan not in rows.index
    assert any(str(new_station) in m for m in result.messages)
    assert any("skipped" in m for m in result.messages)
    assert orphan in result.scope_entity_ids  # its old rows are withdrawn


def test_malformed_tickets_never_reach_the_model(kitchen):
    _, data, _ = kitchen
    assert (data.tickets["prep_minutes"] >= 0).all()
    assert (data.tickets["queue_size"].dropna() >= 0).all()


def test_artifact_is_checked_before_loading(kitchen):
    from models.artifacts import ArtifactChecksumError
    from models.artifacts import load_model

    _, data, result = kitchen
    record = result.models[0]
    model = load_model(PrepTimeModel, record.artifact_path, record.sha256)
    assert model.booster_ is not None
    with open(f"{record.artifact_path}/params.json", "a") as fh:
        fh.write(" ")
    with pytest.raises(ArtifactChecksumError):
        load_model(PrepTimeModel, record.artifact_path, record.sha256)


def test_tickets_left_unbumped_on_the_screen_do_not_teach_the_model(kitchen):
    """Real kitchen screens hold tickets nobody bumped until closing. Planting 3 % of them (3-8
    hours open) in the training days leaves the held-out error where it was, and the unit names
    how many it kept out."""
    import dataclasses

    scope, data, clean = kitchen
    tickets = data.tickets
    rng = np.random.default_rng(3)
    cut = tickets["queued_at"].max() - pd.Timedelta(days=14)
    train_rows = np.flatnonzero((tickets["queued_at"] < cut).to_numpy())
    forgotten = rng.choice(train_rows, size=int(0.03 * len(train_rows)), replace=False)
    dirty = tickets.copy()
    dirty.loc[dirty.index[forgotten], "prep_minutes"] = rng.uniform(180, 480, len(forgotten))

    honest = evaluate_prep(tickets, test_days=14)["mae"]["model"]
    assert evaluate_prep(dirty, test_days=14)["mae"]["model"] <= 1.05 * honest

    result = predict_prep_time(dataclasses.replace(data, tickets=dirty), scope)
    assert any(f"{len(forgotten)} ticket(s) open over" in m for m in result.messages), result.messages
    mine = result.rows.set_index("entity_id")["value"]
    theirs = clean.rows.set_index("entity_id")["value"].reindex(mine.index)
    assert (mine / theirs).median() == pytest.approx(1.0, abs=0.05)


def test_model_is_refitted_weekly_and_reused_between(kitchen, tmp_path):
    """Fit weekly, predict nightly: a model this shard registered less than REFIT_DAYS before the
    as-of is loaded (checksum first) instead of refitted; an older one, a tampered one, or one
    that does not know a station type of the tickets is refitted."""
    from dataclasses import replace

    from prediction_types.kitchen import REFIT_DAYS

    scope, data, _ = kitchen
    first = predict_prep_time(data, replace(scope, model_store=tmp_path))
    record = first.models[0]
    registry = pd.DataFrame([{"name": record.name, "version": record.version, "prediction_type": "prep_time",
                              "artifact_path": record.artifact_path, "sha256": record.sha256,
                              "training_end": record.training_end, "metrics": record.metrics, "status": "active",
                              "created_at": pd.Timestamp.now(tz="UTC")}])

    def night(days: int):
        later = replace(scope, run_id=f"1111{days:04d}-0000-0000-0000-000000000000", registry=registry,
                        as_of=scope.as_of + pd.Timedelta(days=days), model_store=tmp_path / str(days))
        return predict_prep_time(replace(data, as_of=later.as_of), later)

    next_night = night(1)
    assert next_night.models == []  # nothing fitted, nothing new registered
    assert any("reused" in m for m in next_night.messages)
    modelled = next_night.rows[next_night.rows["method"] == "model"]
    assert len(modelled) and (modelled["model_version"] == record.version).all()
    pd.testing.assert_frame_equal(next_night.rows.reset_index(drop=True), first.rows.reset_index(drop=True))

    assert len(night(REFIT_DAYS).models) == 1  # a week old: refitted

    with open(f"{record.artifact_path}/params.json", "a") as fh:
        fh.write(" ")
    tampered = night(1)
    assert len(tampered.models) == 1 and any("unusable" in m for m in tampered.messages)
