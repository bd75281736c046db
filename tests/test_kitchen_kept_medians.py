"""A night that reuses the prep-time model takes the item and station medians from the model's
artifact instead of reading 365 days of tickets (issue 28): it never runs the medians query and
predicts what the night that fitted did, and what a full read predicts; medians the model does not
have, lacks a key of, or a refit, still get the query."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from core.replica import ReplicaReader
from features.kitchen import kitchen_unit_features
from models.artifacts import load_model, saved_record
from models.prep_time import MODEL_NAME, REFERENCES_FILE, PrepTimeModel
from prediction_types.kitchen import kitchen_features, predict_prep_time
from tests.conftest import CHAIN_END
from tests.test_kitchen import kitchen_scope

AS_OF = pd.Timestamp(CHAIN_END, tz="UTC")
pytestmark = pytest.mark.slow


class RecordingReader(ReplicaReader):
    """The replica reader, keeping every statement it ran."""

    def __init__(self, engine):
        super().__init__(engine)
        self.statements: list[str] = []

    def frame(self, sql, params=None):
        self.statements.append(sql)
        return super().frame(sql, params)

    def medians_read(self) -> int:
        return sum("percentile_cont" in s for s in self.statements)


def _registry(record) -> pd.DataFrame:
    return pd.DataFrame([{"name": record.name, "version": record.version, "prediction_type": "prep_time",
                          "artifact_path": record.artifact_path, "sha256": record.sha256,
                          "training_end": record.training_end, "metrics": record.metrics, "status": "active",
                          "created_at": pd.Timestamp.now(tz="UTC")}])


@pytest.fixture(scope="module")
def nights(seeded_replica, tmp_path_factory):
    """(engine, the night that fitted: scope, data, result; the next night's scope with its model registered)."""
    from worker import db

    engine = db.replica_engine()
    store = tmp_path_factory.mktemp("kitchen-kept")
    first = kitchen_scope(ReplicaReader(engine), "00000000-0000-0000-0000-0000000000m1", store)
    data = kitchen_features(ReplicaReader(engine), first)
    cold = predict_prep_time(data, first)
    warm = replace(first, run_id="33333333-0000-0000-0000-0000000000m2", registry=_registry(cold.models[0]),
                   as_of=AS_OF + pd.Timedelta(hours=20), model_store=store / "warm")
    return engine, first, data, cold, warm


def _edited(nights, tag: str, edit) -> tuple:
    """The warm scope with the fitted model, edited by ``edit(model)``, registered in its place."""
    engine, first, _, cold, warm = nights
    record = cold.models[0]
    model = load_model(PrepTimeModel, Path(record.artifact_path), record.sha256)
    edit(model)
    version = f"prep_time_test_{tag}." + record.version.rsplit(".", 1)[1]  # same shard
    edited = saved_record(model, Path(first.model_store) / "edited" / tag, name=MODEL_NAME, version=version,
                          training_start=None, training_end=record.training_end, metrics={})
    return replace(warm, registry=_registry(edited), model_store=Path(first.model_store) / tag), model


def test_the_fitted_model_keeps_the_medians_it_was_fitted_on(nights):
    _, _, data, cold, _ = nights
    record = cold.models[0]
    assert (Path(record.artifact_path) / REFERENCES_FILE).is_file()  # inside the checksummed artifact
    model = load_model(PrepTimeModel, Path(record.artifact_path), record.sha256)
    pd.testing.assert_frame_equal(model.references_, data.medians, check_exact=True)


def test_a_reusing_night_does_not_read_the_medians_and_predicts_the_same(nights):
    engine, _, _, cold, warm = nights
    reader = RecordingReader(engine)
    lean = kitchen_features(reader, warm)
    reused = predict_prep_time(lean, warm)
    assert reader.statements and reader.medians_read() == 0
    assert lean.medians is None and reused.models == [] and any("reused" in m for m in reused.messages)
    assert (reused.rows["method"] == "model").sum() > 20
    pd.testing.assert_frame_equal(reused.rows, cold.rows, check_exact=True)  # the night that fitted
    full = predict_prep_time(kitchen_unit_features(ReplicaReader(engine), warm), warm)
    pd.testing.assert_frame_equal(reused.rows, full.rows, check_exact=True)  # every ticket and the medians read


def test_a_model_saved_without_medians_reads_them(nights):
    engine, *_ = nights
    scope, _ = _edited(nights, "older", lambda m: setattr(m, "references_", None))
    reader = RecordingReader(engine)
    result = predict_prep_time(kitchen_features(reader, scope), scope)
    assert reader.medians_read() == 1 and result.models == []
    expected = predict_prep_time(kitchen_unit_features(ReplicaReader(engine), scope), scope)
    pd.testing.assert_frame_equal(result.rows, expected.rows, check_exact=True)


def _doubled(model: PrepTimeModel, drop_item: float | None = None) -> None:
    ref = model.references_.assign(median_minutes=model.references_["median_minutes"] * 2)
    model.references_ = ref[ref["menu_item_id"] != drop_item].reset_index(drop=True) if drop_item else ref


def test_medians_lacking_an_item_sold_tonight_are_read_again(nights):
    """Kept medians without an item the night's tickets sold singly: the night reads the medians."""
    engine, _, data, cold, _ = nights
    item = float(cold.rows.loc[cold.rows["method"] == "model", "entity_id"].iloc[0])
    scope, _ = _edited(nights, "lacking", lambda m: _doubled(m, drop_item=item))
    reader = RecordingReader(engine)
    result = predict_prep_time(kitchen_features(reader, scope), scope)
    assert reader.medians_read() == 1 and result.models == []
    rows = result.rows.set_index("entity_id")
    fresh = data.medians[(data.medians["level"] == "item") & (data.medians["menu_item_id"] == item)]
    assert rows.loc[int(item), "details"]["tickets"] == int(fresh["tickets"].iloc[0])  # fresh, not the kept ones
    expected = predict_prep_time(kitchen_unit_features(ReplicaReader(engine), scope), scope)
    pd.testing.assert_frame_equal(result.rows, expected.rows, check_exact=True)


def test_a_refit_fits_on_fresh_medians_not_the_kept_ones(nights):
    """A model that does not know a station type of the tickets is refitted, on medians read tonight."""
    engine, *_ = nights

    def blind(model: PrepTimeModel) -> None:
        _doubled(model)
        model.station_types_ = model.station_types_[:-1]

    scope, stale = _edited(nights, "blind", blind)
    reader = RecordingReader(engine)
    data = kitchen_features(reader, scope)
    result = predict_prep_time(data, scope)
    assert len(result.models) == 1 and reader.medians_read() == 1
    record = result.models[0]
    refit = load_model(PrepTimeModel, Path(record.artifact_path), record.sha256)
    fresh = data.read_medians()
    pd.testing.assert_frame_equal(refit.references_, fresh, check_exact=True)
    assert not refit.references_["median_minutes"].equals(stale.references_["median_minutes"])
