"""Demand types end to end on the synthetic chain: the real replica, run loop, writer and registry."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from features.timegrid import hours_in_local_day
from models.artifacts import directory_sha256
from worker import db, runs

AS_OF = "2026-10-31T04:15:00Z"
TYPES = ("demand_daily", "demand_hourly", "item_demand_daily")


def q(sql, **params):
    with db.predictions_engine().connect() as conn:
        return conn.execute(text(sql), params).all()


def r(sql, **params):
    with db.replica_engine().connect() as conn:
        return conn.execute(text(sql), params).all()


@pytest.fixture(scope="module")
def daily_run(seeded_replica, predictions_url):
    with db.predictions_engine().begin() as conn:
        conn.execute(text("TRUNCATE m_l_predictions, ml_run_shard, ml_run, ml_model_registry"))
    record = runs.execute_run("daily", AS_OF)
    return record


def test_every_demand_type_is_written_with_model_rows_and_intervals(daily_run):
    assert not daily_run["failed"], daily_run
    for ptype in TYPES:
        assert daily_run["rows_written"].get(ptype, 0) > 0, ptype
        bad = q(
            "SELECT count(*) FROM m_l_predictions WHERE prediction_type = :t AND NOT "
            "(value >= 0 AND lower <= value AND value <= upper AND lower >= 0)",
            t=ptype,
        )[0][0]
        assert bad == 0, ptype
        methods = dict(q("SELECT method, count(*) FROM m_l_predictions WHERE prediction_type = :t GROUP BY 1", t=ptype))
        assert methods.get("model", 0) > 0.5 * sum(methods.values()), (ptype, methods)
        levels = q("SELECT DISTINCT details->>'interval_level' FROM m_l_predictions WHERE prediction_type = :t", t=ptype)
        assert levels == [("0.8",)]


def test_registry_holds_backtest_scores_and_a_matching_checksum(daily_run):
    rows = q("SELECT prediction_type, name, version, artifact_path, sha256, metrics FROM ml_model_registry "
             "WHERE prediction_type = ANY(:types)", types=list(TYPES))
    assert {r[0] for r in rows} == set(TYPES)
    for ptype, name, version, path, sha, metrics in rows:
        assert metrics["chosen"] == name
        # every type backtests the four-week mean and a LightGBM (demand_daily: the plain lagged one)
        assert "seasonal_average" in metrics["backtest"] and {"lightgbm", "lightgbm_plain"} & set(metrics["backtest"])
        for cand in metrics["backtest"].values():
            assert {"wape", "mae", "coverage80"} <= set(cand)
        assert directory_sha256(Path(path)) == sha
        used = q("SELECT count(*) FROM m_l_predictions WHERE prediction_type = :t AND model_version = :v", t=ptype, v=version)
        assert used[0][0] > 0


def test_discontinued_items_get_no_rows_and_active_items_do(daily_run):
    retired = [i for (i,) in r("SELECT id FROM menu_menuitem WHERE NOT is_active")]
    active = {i for (i,) in r(
        "SELECT m.id FROM menu_menuitem m JOIN restaurants_restaurant x ON x.id = m.restaurant_id "
        "WHERE m.is_active AND x.is_active AND x.timezone NOT LIKE 'Mars/%'"
    )}
    written = {i for (i,) in q("SELECT DISTINCT entity_id FROM m_l_predictions WHERE prediction_type = 'item_demand_daily'")}
    assert retired, "the synthetic chain should discontinue some items"
    assert not written & set(retired)
    assert len(written & active) >= 0.9 * len(written)
    per_item = q(
        "SELECT count(*) FROM m_l_predictions WHERE prediction_type = 'item_demand_daily' "
        "GROUP BY entity_id"
    )
    assert {c for (c,) in per_item} == {14}
    rest = q("SELECT bool_and(restaurant_id IS NOT NULL AND entity_type = 'menu_item') FROM m_l_predictions "
             "WHERE prediction_type = 'item_demand_daily'")[0][0]
    assert rest


def test_hourly_rows_follow_local_days_across_dst(daily_run, seeded_replica):
    zones = dict(r("SELECT id, timezone FROM restaurants_restaurant"))
    rows = q("SELECT restaurant_id, target_start FROM m_l_predictions WHERE prediction_type = 'demand_hourly'")
    frame = pd.DataFrame(rows, columns=["rid", "ts"])
    checked = 0
    for rid, g in frame.groupby("rid"):
        tz = zones[rid]
        local = pd.DatetimeIndex(g["ts"]).tz_convert(tz)
        per_day = pd.Series(1, index=local.tz_localize(None).normalize()).groupby(level=0).sum()
        for day, n in per_day.iloc[1:-1].items():  # first and last local days are cut by the horizon
            assert n == hours_in_local_day(tz, day), (rid, tz, day, n)
            checked += 1
        assert len(set(g["ts"])) == len(g) == 168
    assert checked > 0


def test_hours_of_a_whole_local_day_add_up_to_its_daily_forecast(daily_run):
    """docs/demand.md, Coherence: each restaurant-day's hourly values sum to its demand_daily value."""
    from zoneinfo import available_timezones

    known = available_timezones()  # the chain holds a restaurant with a broken zone: it gets no rows
    zones = {i: tz for i, tz in r("SELECT id, timezone FROM restaurants_restaurant") if tz in known}
    hourly = pd.DataFrame(q("SELECT restaurant_id, target_start, value, lower, upper FROM m_l_predictions "
                            "WHERE prediction_type = 'demand_hourly'"),
                          columns=["rid", "start", "value", "lower", "upper"])
    daily = pd.DataFrame(q("SELECT restaurant_id, target_start, value FROM m_l_predictions "
                           "WHERE prediction_type = 'demand_daily'"), columns=["rid", "start", "value"])
    checked = 0
    for rid, tz in zones.items():
        h = hourly[hourly["rid"] == rid].copy()
        h["day"] = pd.to_datetime(h["start"], utc=True).dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()
        d = daily[daily["rid"] == rid].copy()
        d["day"] = pd.to_datetime(d["start"], utc=True).dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()
        per_day = h.groupby("day").agg(value=("value", "sum"), hours=("value", "size"))
        for day, row in per_day.iterrows():
            if row["hours"] < hours_in_local_day(tz, day):
                continue  # the window's first and last days are partial
            assert row["value"] == pytest.approx(float(d.loc[d["day"] == day, "value"].iloc[0]), abs=0.02)
            checked += 1
    assert checked >= 5 * len(zones)
    assert (hourly["lower"] <= hourly["value"] + 1e-9).all() and (hourly["value"] <= hourly["upper"] + 1e-9).all()


def test_items_of_a_restaurant_day_keep_one_units_per_order_against_its_daily_forecast(daily_run):
    """docs/demand.md, Coherence: sum of a restaurant-day's item values / its daily value is the
    restaurant's units per order, the same every day."""
    items = pd.DataFrame(q("SELECT restaurant_id, target_start, value FROM m_l_predictions "
                           "WHERE prediction_type = 'item_demand_daily'"), columns=["rid", "start", "value"])
    daily = pd.DataFrame(q("SELECT restaurant_id, target_start, value FROM m_l_predictions "
                           "WHERE prediction_type = 'demand_daily'"), columns=["rid", "start", "value"])
    both = items.groupby(["rid", "start"], as_index=False)["value"].sum().merge(
        daily, on=["rid", "start"], suffixes=("_items", "_daily"))
    both = both[both["value_daily"] > 1]
    ratio = both["value_items"] / both["value_daily"]
    spread = ratio.groupby(both["rid"]).agg(lambda v: v.max() / v.min() - 1)
    assert len(spread) >= 2 and (spread < 0.01).all(), spread
