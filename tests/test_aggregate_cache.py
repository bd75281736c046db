"""Kept demand aggregates (issue 28): the frames the models get are those of a full read.

On the synthetic chain (zones on both sides of UTC, closures, malformed rows) and the real predictions database: nights one after another, an
``--as-of`` replay before the watermark, a zone change, and, on a replica of its own, orders added
to and removed from days long kept.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pandas.testing as pdt
import pytest
from sqlalchemy import text

from core.replica import ReplicaReader
from core.settings import ForecastSettings
from core.units import Scope
from features.aggregate_cache import _due, trusted_days
from features.demand import checked_zones, daily_demand_features, hourly_demand_features
from features.items import item_demand_features
from features.restaurants import load_restaurants
from worker.aggregates import AggregateKeeper


AS_OF = pd.Timestamp("2026-10-31T04:15:00Z")
STORE = Path(tempfile.mkdtemp(prefix="agg-cache-"))


def _scope(reader: ReplicaReader, as_of: pd.Timestamp, keeper: AggregateKeeper | None, **forecast) -> Scope:
    return Scope(run_id="00000000-0000-0000-0000-0000000000c8", schedule="daily", as_of=as_of,
                 restaurants=load_restaurants(reader).restaurants, forecast=ForecastSettings(**forecast),
                 model_store=STORE, valid_until=pd.Timestamp.now(tz="UTC").to_pydatetime(), aggregates=keeper)


def _features(reader: ReplicaReader, scope: Scope) -> dict:
    daily = daily_demand_features(reader, scope)
    return {"daily": daily, "hourly": hourly_demand_features(reader, scope, daily=daily),
            "items": item_demand_features(reader, scope, daily=daily)}


def _same(got: dict, want: dict) -> None:
    for kind in want:
        g, w = got[kind], want[kind]
        for part in ("history", "future", "series", "context"):
            if getattr(w, part) is None:
                assert getattr(g, part) is None, (kind, part)
            else:
                pdt.assert_frame_equal(getattr(g, part), getattr(w, part), obj=f"{kind}.{part}")
        assert (g.messages, g.retired_ids, g.granularity) == (w.messages, w.retired_ids, w.granularity), kind


def _night(reader, as_of, keeper, **forecast) -> None:
    """A night with kept aggregates compared with a full read of the same instant."""
    full = _features(reader, _scope(reader, as_of, None, **forecast))
    kept = _features(reader, _scope(reader, as_of, keeper, **forecast))
    _same(kept, full)


def _kept_days(keeper: AggregateKeeper, reader: ReplicaReader, kind: str, as_of: pd.Timestamp, reread: int = 7) -> int:
    zones, _ = checked_zones(load_restaurants(reader).restaurants)
    return len(trusted_days(kind, reader, keeper, zones, as_of - pd.Timedelta(days=400), as_of, reread))


@pytest.fixture()
def reader(replica_engine):
    return ReplicaReader(replica_engine)


@pytest.fixture()
def keeper(aggregate_keeper):
    return aggregate_keeper


def test_nights_with_kept_aggregates_give_the_frames_of_a_full_read(reader, keeper):
    zones, _ = checked_zones(load_restaurants(reader).restaurants)
    assert len(set(zones.values())) >= 3
    for night in (AS_OF - pd.Timedelta(days=2), AS_OF - pd.Timedelta(days=1), AS_OF):
        _night(reader, night, keeper)
    # the third night took nearly all of its history from the kept days, not from the replica
    for kind in ("daily", "hourly", "items"):
        assert _kept_days(keeper, reader, kind, AS_OF) > 150 * len(zones), kind
    marks = keeper.watermarks()
    assert set(marks["kind"]) == {"daily", "hourly", "items"}
    assert len(marks) == 3 * len(zones)
    # the partial as-of day is never kept: the watermark is the last whole local day before it
    for m in marks.itertuples():
        assert pd.Timestamp(m.through) == AS_OF.tz_convert(zones[m.restaurant_id]).tz_localize(None).normalize() \
            - pd.Timedelta(days=1)


def test_a_short_reread_window_and_a_later_hour_of_the_same_day(reader, keeper):
    _night(reader, AS_OF, keeper, aggregates_reread_days=1)
    _night(reader, AS_OF + pd.Timedelta(hours=13), keeper, aggregates_reread_days=1)
    _night(reader, AS_OF + pd.Timedelta(days=1, hours=3), keeper, aggregates_reread_days=1)


def test_a_replay_before_the_watermark_sees_what_a_full_read_sees_and_keeps_newer_days(reader, keeper, predictions_engine):
    _night(reader, AS_OF, keeper)
    with predictions_engine.connect() as conn:
        before = dict(conn.execute(text(
            "SELECT kind || restaurant_id || local_date, read_at FROM ml_demand_aggregate_day")).all())
    marks = keeper.watermarks()
    for days in (40, 3):
        _night(reader, AS_OF - pd.Timedelta(days=days, hours=5), keeper)
    with predictions_engine.connect() as conn:
        after = dict(conn.execute(text(
            "SELECT kind || restaurant_id || local_date, read_at FROM ml_demand_aggregate_day")).all())
    assert set(before) <= set(after)
    assert all(after[k] >= t for k, t in before.items())  # re-read days were read later, never earlier
    pdt.assert_frame_equal(keeper.watermarks()[["restaurant_id", "kind", "through"]],
                           marks[["restaurant_id", "kind", "through"]])
    # and the night after the replays still gets the full read's frames
    _night(reader, AS_OF + pd.Timedelta(days=1), keeper)


def test_days_kept_from_another_zone_are_read_again(reader, keeper, predictions_engine):
    _night(reader, AS_OF, keeper)
    zones, _ = checked_zones(load_restaurants(reader).restaurants)
    rid = next(r for r, tz in zones.items() if tz != "UTC")
    with predictions_engine.begin() as conn:
        conn.execute(text("UPDATE ml_demand_aggregate_day SET zone = 'UTC' WHERE restaurant_id = :r"), {"r": rid})
    kept = _kept_days(keeper, reader, "daily", AS_OF)
    _night(reader, AS_OF, keeper)
    assert _kept_days(keeper, reader, "daily", AS_OF) > kept


@pytest.fixture()
def own_replica(own_chain):
    """A small chain in a replica of its own, which this test edits behind the kept aggregates."""
    return own_chain("rmsml_test_replica_agg", restaurants=2, days=90, seed=11, end=AS_OF.date())


def test_orders_added_to_or_removed_from_old_kept_days_are_read_again(own_replica, keeper):
    reader, writer = own_replica
    _night(reader, AS_OF, keeper)
    kept = _kept_days(keeper, reader, "daily", AS_OF)
    assert kept > 0
    cols = ("restaurant_id, customer_id, order_type, status, guest_count, subtotal, discount_total, tax_total, "
            "total, created_at, completed_at")
    with writer.begin() as conn:
        # a late import: a copy of an order 40 days back; a back-dated edit: an order 50 days back
        # moved 10 days earlier (one day loses it, another gains it)
        copied = conn.execute(text("SELECT id FROM orders_order WHERE created_at < :t ORDER BY created_at DESC LIMIT 1"),
                              {"t": (AS_OF - pd.Timedelta(days=40)).to_pydatetime()}).scalar()
        conn.execute(text(f"INSERT INTO orders_order (id, {cols}) SELECT id + 900000000, {cols} FROM orders_order "
                          "WHERE id = :i"), {"i": copied})
        moved = conn.execute(text("SELECT id FROM orders_order WHERE created_at < :t ORDER BY created_at DESC LIMIT 1"),
                             {"t": (AS_OF - pd.Timedelta(days=50)).to_pydatetime()}).scalar()
        conn.execute(text("UPDATE orders_order SET created_at = created_at - interval '10 days' WHERE id = :i"),
                     {"i": moved})
    assert _kept_days(keeper, reader, "daily", AS_OF) == kept - 3  # the three days are no longer trusted
    _night(reader, AS_OF, keeper, aggregates_check_cycle_days=1)  # recounting every kept day tonight
    assert _kept_days(keeper, reader, "daily", AS_OF) == kept


def test_each_kept_day_is_recounted_once_in_a_cycle_of_nights():
    zones = {1: "America/Los_Angeles", 2: "Asia/Kolkata"}
    days = pd.DataFrame({"restaurant_id": [1] * 100 + [2] * 100,
                         "local_date": list(pd.date_range("2026-03-01", periods=100)) * 2})
    times = pd.Series(0, index=days.index)
    for night in range(7):
        due = _due(days, zones, AS_OF + pd.Timedelta(days=night), 7)
        assert 0.1 < due.mean() < 0.2
        times += due
    assert (times == 1).all()
    assert _due(days, zones, AS_OF, 1).all()


def test_a_change_long_ago_reaches_the_frames_within_a_cycle(own_replica, keeper):
    reader, writer = own_replica
    _night(reader, AS_OF, keeper)
    with writer.begin() as conn:
        conn.execute(text("UPDATE orders_order SET created_at = created_at - interval '9 days' WHERE id IN "
                          "(SELECT id FROM orders_order WHERE created_at < :t ORDER BY created_at DESC LIMIT 1)"),
                     {"t": (AS_OF - pd.Timedelta(days=30)).to_pydatetime()})
    for night in range(1, 8):  # the default cycle: a seventh of the kept days recounted a night
        _features(reader, _scope(reader, AS_OF + pd.Timedelta(days=night), keeper))
    _night(reader, AS_OF + pd.Timedelta(days=8), keeper)


@pytest.fixture()
def demand_units(monkeypatch):
    """The three demand units only: the run loop is generic, the other units slow."""
    from worker import catalog

    real = catalog.units_for
    monkeypatch.setattr(catalog, "units_for", lambda schedule: [
        u for u in real(schedule) if u.prediction_type in ("demand_daily", "demand_hourly", "item_demand_daily")])


def test_the_daily_run_keeps_the_aggregates_and_a_warm_night_reads_only_what_is_new(
        reader, keeper, clean_predictions, demand_units):
    from worker import runs
    from worker.aggregates import replica_source
    from worker.settings import get_settings

    cold = runs.execute_run("daily", (AS_OF - pd.Timedelta(days=1)).isoformat())
    warm = runs.execute_run("daily", AS_OF.isoformat())
    for record in (cold, warm):
        assert record["status"] == "succeeded", record
    # the malformed rows the run record counts do not depend on where the aggregates came from
    assert warm["rows_skipped"] == cold["rows_skipped"] and warm["rows_skipped"]["orders_order"] > 0
    zones, _ = checked_zones(load_restaurants(reader).restaurants)
    marks = keeper.watermarks()
    assert len(marks) == 3 * len(zones)
    for m in marks.itertuples():
        assert pd.Timestamp(m.through) == AS_OF.tz_convert(zones[m.restaurant_id]).tz_localize(None).normalize() \
            - pd.Timedelta(days=1)
    source = replica_source(get_settings().replica.url.get_secret_value())
    assert len(AggregateKeeper(keeper.engine, source).covered("daily", list(zones), AS_OF - pd.Timedelta(days=400),
                                                              AS_OF)) > 150 * len(zones)
    assert AggregateKeeper(keeper.engine, "elsewhere:5432/rms").covered("daily", list(zones), AS_OF - pd.Timedelta(days=400),
                                                                      AS_OF).empty


def test_rebuild_aggregates_reads_them_again_and_refuses_unknown_restaurants(reader, keeper):
    from typer.testing import CliRunner

    from worker.cli import app

    runner = CliRunner()
    done = runner.invoke(app, ["rebuild-aggregates", "--restaurant", "1"])
    assert done.exit_code == 0, done.output
    assert "rebuilt the kept demand aggregates of 1 restaurant(s)" in done.output
    marks = keeper.watermarks()
    assert set(marks["restaurant_id"]) == {1} and set(marks["kind"]) == {"daily", "hourly", "items"}
    assert (marks["days"] > 150).all()
    wrong = runner.invoke(app, ["rebuild-aggregates", "--restaurant", "1", "--restaurant", "999999"])
    assert wrong.exit_code == 2 and "no restaurant 999999 on the replica" in wrong.output
    assert len(keeper.watermarks()) == 3  # nothing dropped on a mistake
    dropped = runner.invoke(app, ["rebuild-aggregates", "--restaurant", "1", "--forget-only"])
    assert dropped.exit_code == 0 and "the next run reads their whole history" in dropped.output
    assert keeper.watermarks().empty
