"""Local-time grids across DST: a spring-forward day has 23 hours, an autumn one 25."""

from __future__ import annotations

import pandas as pd
import pytest

from features.timegrid import future_days, future_hours, hour_grid, hours_in_local_day

pytestmark = pytest.mark.pure


def test_dst_days_have_23_and_25_hours():
    assert hours_in_local_day("Europe/London", pd.Timestamp("2026-03-29")) == 23
    assert hours_in_local_day("Europe/London", pd.Timestamp("2026-10-25")) == 25
    assert hours_in_local_day("America/New_York", pd.Timestamp("2026-11-01")) == 25
    assert hours_in_local_day("Asia/Kolkata", pd.Timestamp("2026-10-25")) == 24


def test_hour_grid_repeats_the_autumn_hour_with_distinct_instants():
    end = pd.Timestamp("2026-10-26", tz="Europe/London").tz_convert("UTC")
    grid = hour_grid("Europe/London", pd.Timestamp("2026-10-25"), end)
    assert len(grid) == 25
    assert grid["target_start"].is_unique
    assert (grid["ds"].dt.hour == 1).sum() == 2  # 01:00 BST and 01:00 GMT


def test_future_hours_skip_the_missing_spring_hour():
    as_of = pd.Timestamp("2026-03-29 00:00", tz="UTC")
    fut = future_hours("Europe/London", as_of, 24)
    assert len(fut) == 24 and fut["target_start"].is_unique
    assert 1 not in set(fut["ds"].dt.hour[fut["ds"].dt.normalize() == pd.Timestamp("2026-03-29")])
    assert fut["target_start"].min() >= as_of


def test_future_days_start_at_local_midnight():
    fut = future_days("Australia/Sydney", pd.Timestamp("2026-10-31 20:00", tz="UTC"), 3)
    local = fut["target_start"].dt.tz_convert("Australia/Sydney")
    assert list(local.dt.hour) == [0, 0, 0]
    assert fut["ds"].iloc[0] == pd.Timestamp("2026-11-01")
