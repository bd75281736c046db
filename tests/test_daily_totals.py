"""A chain's own export (issue 24): daily totals per restaurant imported into a real PostgreSQL
replica, re-imported, corrected, refused when bad, and forecast daily without made-up hours or items.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from sales_import.chain import import_daily_totals
from tests.conftest import use_replica
from tests.test_sales_import import _refused, sales_db  # noqa: F401 - sales_db is a fixture
from worker.cli import app

TZ = "Asia/Tokyo"
FIRST, DAYS = date(2025, 1, 6), 84
COLS = {"site": "store", "date": "day", "count": "visitors"}


def _totals(seed: int = 5, stores: tuple[str, ...] = ("s1", "s2", "s3")) -> list[tuple[str, str, int]]:
    """Three stores, 12 weeks: weekly pattern, one store closed on Tuesdays (missing rows)."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, store in enumerate(stores):
        for d in range(DAYS):
            day = FIRST + timedelta(days=d)
            if store == "s3" and day.weekday() == 1:
                continue  # a closed day is a missing row, not a zero
            rows.append((store, day.isoformat(), int(rng.poisson((20 + 10 * k) * (1.6 if day.weekday() >= 4 else 1.0)))))
    return rows


def _write(path: Path, rows, header: str = "store,day,visitors") -> Path:
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def _q(url: str, sql: str, **params):
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    with engine.connect() as conn:
        rows = conn.execute(text(sql), params).all()
    engine.dispose()
    return rows


def _replica_totals(url: str) -> dict[tuple[str, str], int]:
    rows = _q(url, """SELECT r.name, (o.created_at AT TIME ZONE r.timezone)::date, count(*)
                      FROM orders_order o JOIN restaurants_restaurant r ON r.id = o.restaurant_id GROUP BY 1, 2""")
    return {(name, d.isoformat()): n for name, d, n in rows}


def _import(path: Path, url: str, **kw):
    return import_daily_totals(path, url, timezone=TZ, organization_name="chain", country="JP", columns=COLS, **kw)


def test_import_twice_adds_nothing_and_a_later_export_corrects_and_appends(tmp_path, sales_db):
    rows = _totals()
    first = _import(_write(tmp_path / "chain.csv", rows), sales_db)
    expected = {(s, d): n for s, d, n in rows if n > 0}
    assert _replica_totals(sales_db) == expected
    assert first.change.days_new == len(expected) and first.change.orders_inserted == sum(expected.values())
    assert len(first.restaurants) == 3 and first.new_restaurants == 3
    # one restaurant per site, named by it; local noon in the restaurant's zone
    assert {r[0] for r in _q(sales_db, "SELECT name FROM restaurants_restaurant")} == {"s1", "s2", "s3"}
    hours = _q(sales_db, "SELECT DISTINCT extract(hour FROM created_at AT TIME ZONE 'Asia/Tokyo') FROM orders_order")
    assert hours == [(12,)]

    again = _import(_write(tmp_path / "chain.csv", rows), sales_db)
    assert again.change.orders_inserted == 0 and again.change.orders_removed == 0
    assert again.change.days_unchanged == len(expected) and again.change.days_new == 0
    assert _replica_totals(sales_db) == expected

    # a later export: the last two weeks only, two days corrected (one up, one down), a week added
    later = [r for r in rows if r[1] >= (FIRST + timedelta(days=DAYS - 14)).isoformat()]
    up_day, down_day = later[0][1], later[1][1]
    later = [(s, d, n + 7 if (s, d) == ("s1", up_day) else (n - 5 if (s, d) == ("s1", down_day) else n))
             for s, d, n in later]
    new_week = [("s1", (FIRST + timedelta(days=DAYS + i)).isoformat(), 30) for i in range(7)]
    rep = _import(_write(tmp_path / "chain2.csv", later + new_week), sales_db)
    assert rep.change.days_corrected == 2 and rep.change.days_new == 7
    assert rep.change.orders_inserted == 7 + 7 * 30 and rep.change.orders_removed == 5
    assert any(f"s1 {up_day}:" in line for line in rep.change.examples)
    after = _replica_totals(sales_db)
    assert after[("s1", up_day)] == expected[("s1", up_day)] + 7
    assert after[("s1", down_day)] == expected[("s1", down_day)] - 5
    # days the later file does not mention keep their totals: a missing day is not a zero day
    untouched = {k: v for k, v in expected.items() if k[1] < later[0][1]}
    assert all(after[k] == v for k, v in untouched.items())
    assert ("s3", (FIRST + timedelta(days=1)).isoformat()) not in after


def test_bad_totals_are_one_clear_line_exit_2_and_nothing_written(tmp_path, sales_db):
    good = _totals()[:20]
    _import(_write(tmp_path / "good.csv", good), sales_db)
    before = _replica_totals(sales_db)
    flags = ["--dsn", sales_db, "--timezone", TZ, "--country", "JP", "--restaurant-name", "chain",
             "--site-col", "store", "--date-col", "day", "--count-col", "visitors"]

    def bad(name: str, rows) -> str:
        return _refused([str(_write(tmp_path / name, rows)), *flags])

    assert "negative" in bad("neg.csv", good + [("s1", "2025-05-01", -3)])
    assert "not a number" in bad("nan.csv", good + [("s1", "2025-05-01", "many")])
    assert "not a whole number" in bad("frac.csv", good + [("s1", "2025-05-01", "2.5")])
    message = bad("date.csv", good + [("s1", "2025-13-45", 3)])
    assert "date that does not parse" in message and "'2025-13-45'" in message
    assert "empty site" in bad("site.csv", good + [("", "2025-05-01", 3)])
    assert "repeat a site and date" in bad("dup.csv", good + [good[0]])
    mixed = _refused([str(_write(tmp_path / "mixed.csv", good)), *flags, "--item-col", "visitors"])
    assert "count column and line columns mixed" in mixed
    no_count = _write(tmp_path / "x.csv", good, "store,day,amount")
    assert "'visitors' (--count-col) not in the file" in _refused([str(no_count), *flags])
    assert _replica_totals(sales_db) == before


def test_days_after_today_are_counted_and_skipped(tmp_path, sales_db):
    rows = [("s1", "2025-03-01", 10), ("s1", "2025-03-02", 12), ("s1", "2031-09-20", 99)]
    rep = _import(_write(tmp_path / "f.csv", rows), sales_db, today=datetime(2025, 3, 3, tzinfo=timezone.utc))
    assert rep.future_days == 1 and rep.last_local_day == "2025-03-02"
    assert _replica_totals(sales_db) == {("s1", "2025-03-01"): 10, ("s1", "2025-03-02"): 12}


def test_sites_file_fills_what_the_replica_has_a_place_for(tmp_path, sales_db):
    rows = [r for r in _totals() if r[1] < (FIRST + timedelta(days=10)).isoformat()]
    sites = tmp_path / "stores.csv"
    sites.write_text("store,genre,area,seats\ns1,Izakaya,Tokyo,40\ns2,Cafe,Osaka,\n")
    rep = _import(_write(tmp_path / "f.csv", rows), sales_db, sites=sites)
    assert rep.sites_matched == 2 and rep.sites_missing == 1  # s3 is not in the sites file
    assert set(rep.site_columns_not_stored) == {"genre", "area"}
    seats = dict(_q(sales_db, "SELECT name, seats FROM restaurants_restaurant"))
    assert seats["s1"] == 40


def test_a_daily_run_forecasts_days_and_says_why_not_hours_or_items(tmp_path, sales_db, clean_predictions):
    rep = _import(_write(tmp_path / "chain.csv", _totals()), sales_db)
    from worker import db
    from worker.runs import execute_run

    previous = use_replica(sales_db.replace("postgresql://", "postgresql+psycopg2://", 1))
    try:
        record = execute_run("daily", rep.next_as_of, trigger="cli")
    finally:
        use_replica(previous)
    assert record["status"] == "succeeded", record
    assert record["rows_written"].get("demand_daily") == 3 * 28
    assert not record["rows_written"].get("demand_hourly") and not record["rows_written"].get("item_demand_daily")
    messages = " ".join(record["messages"])
    assert "no times of day in the history of 3 restaurants" in messages
    assert "no items in the history of 3 restaurants" in messages
    with db.predictions_engine().connect() as conn:
        details = [d for (d,) in conn.execute(text(
            "SELECT details FROM m_l_predictions WHERE prediction_type = 'demand_daily'"))]
    assert details and all("revenue" not in d for d in details)  # no prices: no revenue, rather than 0
    # the chain's decision, the same in every shard, is what an admin reads from `worker models`
    shown = CliRunner().invoke(app, ["models", "--no-verify"])
    assert shown.exit_code == 0 and "demand_daily: the chain uses ensemble (default: no pooled backtest" in shown.output
