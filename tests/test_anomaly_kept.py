"""The anomaly units' restaurant and menu-item series through the kept aggregates (issue 28): the
same series as a full read of the replica, night after night, with far fewer rows read from it.

On the synthetic chain (zones on both sides of UTC, closures, malformed rows) and the real
predictions database.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pandas.testing as pdt
import pytest

from core.replica import ReplicaReader
from core.settings import ForecastSettings
from core.units import Scope
from features.anomalies import anomaly_series
from features.restaurants import load_restaurants
from worker.aggregates import AggregateKeeper

AS_OF = pd.Timestamp("2026-10-31T04:15:00Z")
DAYS = 56 + 7 * 8 + 2  # the anomaly units' window (prediction_types.anomaly)
KINDS = ("restaurant", "menu_item")


class CountingReader(ReplicaReader):
    """A replica reader that counts the rows its frames hand back."""

    rows = 0

    def frame(self, *args, **kwargs):
        out = super().frame(*args, **kwargs)
        self.rows += len(out)
        return out


@pytest.fixture()
def keeper(aggregate_keeper):
    return aggregate_keeper


def _series(reader: ReplicaReader, as_of: pd.Timestamp, keeper: AggregateKeeper | None) -> dict:
    restaurants = load_restaurants(reader).restaurants
    scope = Scope(run_id="00000000-0000-0000-0000-0000000000c9", schedule="daily", as_of=as_of,
                  restaurants=restaurants, forecast=ForecastSettings(),
                  model_store=Path(tempfile.mkdtemp(prefix="anomaly-kept-")),
                  valid_until=pd.Timestamp.now(tz="UTC").to_pydatetime(), aggregates=keeper)
    return anomaly_series(reader, restaurants, as_of - pd.Timedelta(days=DAYS), as_of, scope.valid_until, KINDS,
                          kept=scope)


def test_kept_series_are_those_of_a_full_read_and_read_less(replica_engine, keeper):
    for night in (AS_OF - pd.Timedelta(days=2), AS_OF - pd.Timedelta(days=1), AS_OF):
        full_reader, kept_reader = CountingReader(replica_engine), CountingReader(replica_engine)
        full = _series(full_reader, night, None)
        kept = _series(kept_reader, night, keeper)
        for kind in KINDS:
            assert len(full[kind]) > 400, kind
            assert full[kind]["y"].sum() > 0 and (~full[kind]["open"]).any(), kind  # closures are in the window
            pdt.assert_frame_equal(kept[kind], full[kind], obj=kind)
    # the last night took its old days from the predictions database: a fraction of the replica rows
    assert kept_reader.rows < full_reader.rows / 3, (kept_reader.rows, full_reader.rows)


def test_without_the_run_s_as_of_the_series_are_read_directly(replica_engine, keeper):
    reader = CountingReader(replica_engine)
    restaurants = load_restaurants(reader).restaurants
    scope = Scope(run_id="00000000-0000-0000-0000-0000000000ca", schedule="daily", as_of=AS_OF,
                  restaurants=restaurants, forecast=ForecastSettings(),
                  model_store=Path(tempfile.mkdtemp(prefix="anomaly-kept-")),
                  valid_until=pd.Timestamp.now(tz="UTC").to_pydatetime(), aggregates=keeper)
    end = AS_OF - pd.Timedelta(days=3)  # a window that does not end at the run's as-of
    anomaly_series(reader, restaurants, end - pd.Timedelta(days=DAYS), end, scope.valid_until, KINDS, kept=scope)
    assert keeper.watermarks().empty  # nothing kept: the direct reads ran
