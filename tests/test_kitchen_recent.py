"""A night that reuses the prep-time model reads only each item's newest tickets (issue 28) and
predicts what the full read would have: same rows, same model, same ticket count; a model that
turns out unusable still gets every ticket and a refit."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from core.replica import ReplicaReader
from features.kitchen import kitchen_unit_features
from prediction_types.kitchen import kitchen_features, predict_prep_time
from tests.conftest import CHAIN_END
from tests.test_kitchen import kitchen_scope

AS_OF = pd.Timestamp(CHAIN_END, tz="UTC")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def nights(seeded_replica, tmp_path_factory):
    """(reader, the next night's scope with the first night's model registered, the first night's result)."""
    from worker import db

    reader = ReplicaReader(db.replica_engine())
    first = kitchen_scope(reader, "00000000-0000-0000-0000-0000000000r1", tmp_path_factory.mktemp("kitchen-recent"))
    cold_data = kitchen_features(reader, first)
    assert cold_data.tickets is not None and cold_data.recent is None  # nothing to reuse: every ticket
    cold = predict_prep_time(cold_data, first)
    record = cold.models[0]
    registry = pd.DataFrame([{"name": record.name, "version": record.version, "prediction_type": "prep_time",
                              "artifact_path": record.artifact_path, "sha256": record.sha256,
                              "training_end": record.training_end, "metrics": record.metrics, "status": "active",
                              "created_at": pd.Timestamp.now(tz="UTC")}])
    warm = replace(first, run_id="22222222-0000-0000-0000-0000000000r2", registry=registry,
                   as_of=AS_OF + pd.Timedelta(hours=20))
    return reader, warm, cold


def test_a_reusing_night_reads_the_newest_tickets_and_predicts_the_same(nights):
    reader, warm, _ = nights
    lean = kitchen_features(reader, warm)
    full = kitchen_unit_features(reader, warm)
    assert lean.tickets is None and lean.recent is not None
    assert lean.counts == full.counts
    assert len(lean.recent.tickets) < 0.5 * len(full.tickets)
    assert list(lean.recent.tickets.columns) == list(full.tickets.columns)
    assert lean.recent.tickets.dtypes.to_dict() == full.tickets.dtypes.to_dict()

    reused, expected = predict_prep_time(lean, warm), predict_prep_time(full, warm)
    assert reused.models == [] and expected.models == []
    assert any("reused" in m for m in reused.messages)
    assert (reused.rows["method"] == "model").sum() > 20
    pd.testing.assert_frame_equal(reused.rows, expected.rows, check_exact=True)
    assert reused.scope_entity_ids == expected.scope_entity_ids


def test_an_unusable_model_still_gets_every_ticket_and_a_refit(nights):
    reader, warm, _ = nights
    registry = warm.registry.assign(sha256="0" * 64)  # the artifact no longer matches its checksum
    tampered = replace(warm, registry=registry, model_store=warm.model_store / "refit")
    lean = kitchen_features(reader, tampered)
    assert lean.tickets is None
    refit, expected = predict_prep_time(lean, tampered), predict_prep_time(kitchen_unit_features(reader, tampered), tampered)
    assert len(refit.models) == 1 and any("unusable" in m for m in refit.messages)
    pd.testing.assert_frame_equal(refit.rows, expected.rows, check_exact=True)


def test_when_the_newest_tickets_cannot_stand_in_every_ticket_is_read(nights):
    """A station type whose every ticket is long enough to be filtered: the full read decides."""
    reader, warm, _ = nights
    lean = kitchen_features(reader, warm)
    unsure = replace(lean, recent=replace(lean.recent, station_types_sure=False))
    result = predict_prep_time(unsure, warm)
    expected = predict_prep_time(kitchen_unit_features(reader, warm), warm)
    pd.testing.assert_frame_equal(result.rows, expected.rows, check_exact=True)
