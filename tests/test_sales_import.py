"""Bring your own sales (issue 17): a POS line export imported into a real PostgreSQL replica, then forecast.

The exports are written here (small, seeded); the public bakery file is used only when ../shared
has it.
"""

from __future__ import annotations

import csv
import hashlib
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from sales_import import SalesImportError, import_sales, read_sales
from sales_import import loader as sales_loader
from tests.conftest import DB_SUFFIX, drop_database, recreate_database, use_replica
from worker.cli import app

SALES_DB = f"rmsml_test_sales{DB_SUFFIX}"
PUBLIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "public" / "bread_basket.csv"
TZ = "Europe/London"
FIRST_DAY, LAST_DAY = date(2026, 2, 2), date(2026, 4, 12)  # 10 weeks, clocks go forward on 2026-03-29
MENU = {"Coffee": 2.40, "Tea": 1.90, "Bread": 3.10, "Cake": 3.50, "Soup": 4.80}
JUNK = [  # (item, time, quantity): one line per skip reason the export below holds
    ("NONE", "10:00:00", "1"),
    ("", "10:00:00", "1"),
    ("Coffee", "25:99", "1"),
    ("Coffee", "11:00:00", "-1"),
]


def _lines(first: date = FIRST_DAY, last: date = LAST_DAY, seed: int = 3) -> list[dict]:
    """Sale lines of a small café: busier at lunch and on Saturdays, Coffee on most tickets."""
    rng = np.random.default_rng(seed)
    rows, ticket = [], 1000
    day = first
    while day <= last:
        n = rng.poisson(40 if day.weekday() == 5 else 25)
        for _ in range(n):
            ticket += 1
            minute = int(np.clip(rng.normal(12.5 * 60, 150), 8 * 60, 19 * 60))
            clock = f"{minute // 60:02d}:{minute % 60:02d}:{int(rng.integers(60)):02d}"
            customer = f"C{int(rng.integers(40))}" if rng.random() < 0.3 else ""
            items = ["Coffee"] + list(rng.choice(list(MENU)[1:], size=int(rng.integers(0, 3)), replace=False))
            for item in items:
                rows.append({"Date": day.strftime("%d/%m/%Y"), "Time": clock, "Receipt No": str(ticket),
                             "Product": item, "Qty": str(int(rng.integers(1, 3))), "Unit price": f"£{MENU[item]:.2f}",
                             "Customer": customer})
        day += timedelta(days=1)
    for i, (item, clock, qty) in enumerate(JUNK):
        rows.append({"Date": last.strftime("%d/%m/%Y"), "Time": clock, "Receipt No": str(900 + i), "Product": item,
                     "Qty": qty, "Unit price": "£1.00", "Customer": ""})
    return rows


def _write(path: Path, rows: list[dict], fields: list[str] | None = None) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture()
def sales_db():
    url = recreate_database(SALES_DB)
    yield url
    drop_database(SALES_DB)


def _count(url: str, sql: str, **params):
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql), params).scalar_one()
    finally:
        engine.dispose()


def _tables(url: str) -> dict[str, int]:
    out = {}
    for t in ("restaurants_restaurant", "menu_menuitem", "orders_order", "orders_orderitem", "customers_customerprofile"):
        out[t] = _count(url, f"SELECT count(*) FROM {t}")
    return out


def test_guessed_columns_skip_table_and_a_daily_run_writes_every_demand_type(tmp_path, sales_db, clean_predictions):
    rows = _lines()
    path = _write(tmp_path / "till.csv", rows)
    rep = import_sales(path, sales_db, timezone=TZ, restaurant_name="Café Test", currency="gbp")

    assert rep.columns == {"date": "Date", "time": "Time", "ticket": "Receipt No", "item": "Product",
                           "quantity": "Qty", "price": "Unit price", "customer": "Customer"}
    assert rep.skipped == {"no_item": 2, "unparseable_time": 1, "negative_quantity": 1}
    good = [r for r in rows if r["Receipt No"] not in {"900", "901", "902", "903"}]
    assert rep.lines_read == len(rows) and rep.lines_imported == len(good)
    assert rep.country == "GB" and rep.currency == "GBP" and rep.last_local_day == str(LAST_DAY)
    rid = rep.restaurants["Café Test"]
    assert _count(sales_db, "SELECT count(*) FROM orders_orderitem") == len(good)
    assert _count(sales_db, "SELECT count(*) FROM orders_order") == len({r["Receipt No"] for r in good})
    assert _count(sales_db, "SELECT count(*) FROM menu_menuitem") == len(MENU)
    assert _count(sales_db, "SELECT count(DISTINCT customer_id) FROM orders_order") == \
        len({r["Customer"] for r in good if r["Customer"]})
    # Prices were '£2.40': totals are price x quantity; every order is completed and in UTC.
    expected = sum(MENU[r["Product"]] * int(r["Qty"]) for r in good)
    assert float(_count(sales_db, "SELECT sum(total) FROM orders_order")) == pytest.approx(expected, abs=0.01)
    assert _count(sales_db, "SELECT count(*) FROM orders_order WHERE status <> 'completed'") == 0
    first_time = min(r["Time"] for r in good if r["Date"] == "02/02/2026")  # February: GMT, = UTC
    assert _count(sales_db, "SELECT min(created_at) FROM orders_order") == pd.Timestamp(f"2026-02-02 {first_time}", tz="UTC")
    assert _count(sales_db, "SELECT opened_on FROM restaurants_restaurant WHERE id = :r", r=rid) == FIRST_DAY

    from worker.runs import execute_run

    previous = use_replica(sales_db.replace("postgresql://", "postgresql+psycopg2://", 1))
    try:
        record = execute_run("daily", rep.next_as_of, trigger="cli")
    finally:
        use_replica(previous)
    assert record["status"] in ("succeeded", "partial"), record
    for ptype in ("demand_daily", "demand_hourly", "item_demand_daily"):
        assert record["rows_written"].get(ptype, 0) > 0, (ptype, record)
    from worker import db

    with db.predictions_engine().connect() as conn:
        written = dict(conn.execute(text(
            "SELECT prediction_type, count(*) FROM m_l_predictions WHERE restaurant_id = :r GROUP BY 1"), {"r": rid}).all())
    assert written["demand_daily"] == 28 and written["demand_hourly"] == 168
    assert written["item_demand_daily"] == 14 * len(MENU)


def test_explicit_flags_sites_and_duplicate_line_ids_through_the_cli(tmp_path, sales_db):
    rows = [
        {"Wann": "2026-05-04T09:15:00+01:00", "Bon": "1", "Artikel": "Brezel", "Menge": "2", "Filiale": "Nord", "Pos": "a1"},
        {"Wann": "2026-05-04T09:15:00+01:00", "Bon": "1", "Artikel": "Kaffee", "Menge": "1", "Filiale": "Nord", "Pos": "a2"},
        {"Wann": "2026-05-04T09:15:00+01:00", "Bon": "1", "Artikel": "Kaffee", "Menge": "1", "Filiale": "Nord", "Pos": "a2"},
        {"Wann": "2026-05-04 10:00:00", "Bon": "1", "Artikel": "Kaffee", "Menge": "", "Filiale": "Süd", "Pos": "b1"},
        {"Wann": "2026-05-04 10:05:00", "Bon": "2", "Artikel": "Tee", "Menge": "1", "Filiale": "", "Pos": "b2"},
        {"Wann": "2026-05-04 10:06:00", "Bon": "3", "Artikel": "Tee", "Menge": "1.5", "Filiale": "Süd", "Pos": "b3"},
    ]
    path = tmp_path / "export.csv"
    with path.open("w", newline="") as fh:  # semicolons, as a German till writes them
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter=";")
        writer.writeheader()
        writer.writerows(rows)
    result = CliRunner().invoke(app, [
        "import-sales", str(path), "--dsn", sales_db, "--timezone", "Europe/Berlin", "--restaurant-name", "Bäckerei",
        "--timestamp-col", "Wann", "--ticket-col", "Bon", "--item-col", "Artikel", "--quantity-col", "Menge",
        "--site-col", "Filiale", "--line-col", "Pos",
    ])
    assert result.exit_code == 0, result.output
    assert "line id seen before in the file" in result.output and "no site" in result.output
    assert "quantity not a whole number" in result.output
    assert _count(sales_db, "SELECT count(*) FROM restaurants_organization") == 1
    assert _count(sales_db, "SELECT string_agg(name || ':' || country_code, ',' ORDER BY name) FROM restaurants_restaurant") \
        == "Nord:DE,Süd:DE"
    # Ticket 1 at two sites is two orders; the empty quantity is 1; the line with an offset keeps it.
    assert _count(sales_db, "SELECT count(*) FROM orders_order") == 2
    assert _count(sales_db, "SELECT sum(quantity) FROM orders_orderitem") == 4
    assert _count(sales_db, "SELECT min(created_at) FROM orders_order") == pd.Timestamp("2026-05-04 08:00", tz="UTC")
    assert _count(sales_db, "SELECT max(created_at) FROM orders_order") == pd.Timestamp("2026-05-04 08:15", tz="UTC")


def test_dst_days_local_times_and_the_gap_and_overlap(tmp_path):
    rows = [
        {"Date": "2026-03-29", "Time": "00:30", "Ticket": "1", "Item": "Tea"},  # GMT
        {"Date": "2026-03-29", "Time": "01:30", "Ticket": "2", "Item": "Tea"},  # does not exist: read as GMT
        {"Date": "2026-03-29", "Time": "12:00", "Ticket": "3", "Item": "Tea"},  # BST
        {"Date": "2026-10-25", "Time": "00:30", "Ticket": "4", "Item": "Tea"},  # BST
        {"Date": "2026-10-25", "Time": "01:30", "Ticket": "5", "Item": "Tea"},  # twice: the first (BST)
        {"Date": "2026-10-25", "Time": "02:30", "Ticket": "6", "Item": "Tea"},  # GMT
    ]
    sales = read_sales(_write(tmp_path / "dst.csv", rows), TZ)
    at = dict(zip(sales.lines["ticket"], sales.lines["at"].dt.strftime("%m-%d %H:%M")))
    assert at == {"1": "03-29 00:30", "2": "03-29 01:30", "3": "03-29 11:00",
                  "4": "10-24 23:30", "5": "10-25 00:30", "6": "10-25 02:30"}
    assert sales.notes == {"nonexistent_local_time": 1, "ambiguous_local_time": 1}
    assert list(sales.lines["local"].dt.strftime("%H:%M")) == ["00:30", "01:30", "12:00", "00:30", "01:30", "02:30"]


def test_reimport_is_idempotent_and_a_newer_export_appends_only_what_is_new(tmp_path, sales_db):
    rows = _lines(FIRST_DAY, FIRST_DAY + timedelta(days=13))
    rows = [r for r in rows if r["Receipt No"] not in {"900", "901", "902", "903"}]
    day8 = next(i for i, r in enumerate(rows) if r["Date"] == "09/02/2026")
    # The older export stops inside a ticket of several lines: its last line comes with the newer one.
    cut = max(i for i in range(1, day8) if rows[i]["Receipt No"] == rows[i - 1]["Receipt No"])
    older = _write(tmp_path / "older.csv", rows[:cut])
    newer = _write(tmp_path / "newer.csv", list(reversed(rows)))  # another export order: same ids
    first = import_sales(older, sales_db, timezone=TZ, restaurant_name="Café")
    before = _tables(sales_db)
    again = import_sales(older, sales_db, timezone=TZ, restaurant_name="Café")
    assert set(again.inserted.values()) == {0} and _tables(sales_db) == before
    assert first.inserted["orders_orderitem"] == cut
    total_before = _count(sales_db, "SELECT sum(total) FROM orders_order")

    appended = import_sales(newer, sales_db, timezone=TZ, restaurant_name="Café")
    assert appended.inserted["orders_orderitem"] == len(rows) - cut
    assert appended.inserted["orders_order"] == len({r["Receipt No"] for r in rows[cut:]}) - 1
    assert appended.orders_updated == 1  # the cut ticket got its last line and its total follows
    assert _count(sales_db, "SELECT count(*) FROM orders_orderitem") == len(rows)
    assert float(_count(sales_db, "SELECT sum(total) FROM orders_order")) == pytest.approx(
        sum(MENU[r["Product"]] * int(r["Qty"]) for r in rows), abs=0.01)
    assert float(total_before) < sum(MENU[r["Product"]] * int(r["Qty"]) for r in rows)
    assert set(import_sales(newer, sales_db, timezone=TZ, restaurant_name="Café").inserted.values()) == {0}


def _refused(args: list[str]) -> str:
    result = CliRunner().invoke(app, ["import-sales", *args])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


def test_bad_input_is_one_clear_line_exit_2_and_nothing_written(tmp_path, sales_db):
    good = _write(tmp_path / "good.csv", _lines(FIRST_DAY, FIRST_DAY + timedelta(days=2)))
    import_sales(good, sales_db, timezone=TZ, restaurant_name="Café")
    before = _tables(sales_db)
    common = ["--dsn", sales_db, "--timezone", TZ]

    sheet = tmp_path / "sales.xlsx"
    sheet.write_bytes(b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)) * 8)
    assert "not a CSV or Parquet file" in _refused([str(sheet), *common])
    fake = tmp_path / "sales.parquet"
    fake.write_text("Date,Time\n")
    assert "not a Parquet file" in _refused([str(fake), *common])
    no_item = _write(tmp_path / "no_item.csv", [{"Date": "2026-02-02", "Time": "10:00", "Ticket": "1", "Thing": "Tea"}])
    message = _refused([str(no_item), *common])
    assert "no item column" in message and "Date, Time, Ticket, Thing" in message
    assert "'Artikel' (--item-col) not in the file" in _refused([str(no_item), *common, "--item-col", "Artikel"])
    assert "unknown timezone 'Mars/Olympus'" in _refused([str(good), "--dsn", sales_db, "--timezone", "Mars/Olympus"])
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert "empty" in _refused([str(empty), *common])
    header = tmp_path / "header.csv"
    header.write_text("Date,Time,Ticket,Item\n")
    assert "no lines" in _refused([str(header), *common])
    assert "already in the database with timezone Europe/London" in _refused(
        [str(good), "--dsn", sales_db, "--timezone", "Europe/Paris", "--restaurant-name", "Café"])
    assert _tables(sales_db) == before


def test_a_failure_mid_import_leaves_nothing_half_imported(tmp_path, sales_db, monkeypatch):
    path = _write(tmp_path / "till.csv", _lines(FIRST_DAY, FIRST_DAY + timedelta(days=2)))
    real = sales_loader.copy_insert

    def failing(cur, table, frame):
        if table == "orders_orderitem":
            raise RuntimeError("connection lost")
        return real(cur, table, frame)

    monkeypatch.setattr(sales_loader, "copy_insert", failing)
    with pytest.raises(RuntimeError):
        import_sales(path, sales_db, timezone=TZ)
    tables = _count(sales_db, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'orders_order'")
    assert tables == 0  # not even the schema: it was created in the import's transaction
    monkeypatch.setattr(sales_loader, "copy_insert", real)
    assert import_sales(path, sales_db, timezone=TZ).inserted["restaurants_restaurant"] == 1


def test_parquet_export_with_typed_columns(tmp_path):
    rows = _lines(FIRST_DAY, FIRST_DAY + timedelta(days=1))[:-len(JUNK)]
    frame = pd.DataFrame(rows)
    frame["Timestamp"] = pd.to_datetime(frame["Date"] + " " + frame["Time"], dayfirst=True)
    frame["Receipt No"] = frame["Receipt No"].astype(float)  # a float ticket id reads as its integer
    frame["Qty"] = frame["Qty"].astype(int)
    frame = frame.drop(columns=["Date", "Time"])
    path = tmp_path / "till.parquet"
    frame.to_parquet(path)
    sales = read_sales(path, TZ)
    assert sales.columns["timestamp"] == "Timestamp" and not sales.skipped
    assert set(sales.lines["ticket"]) == {r["Receipt No"] for r in rows}
    assert sales.lines["quantity"].sum() == sum(int(r["Qty"]) for r in rows)


@pytest.mark.skipif(not PUBLIC.is_file(), reason="../shared/data/public/bread_basket.csv is not here (a user's clone)")
def test_the_public_bakery_imports_with_its_documented_counts(sales_db):
    assert hashlib.md5(PUBLIC.read_bytes()).hexdigest() == "e7b15b10c254d373ffbf1c1659122a55"
    rep = import_sales(PUBLIC, sales_db, timezone=TZ, restaurant_name="The Bread Basket")
    assert (rep.lines_read, rep.tickets_in_file, rep.items_in_file) == (21293, 9531, 95)
    assert rep.skipped == {"no_item": 786} and rep.lines_imported == 21293 - 786
    assert rep.country == "GB" and (rep.first_local_day, rep.last_local_day) == ("2016-10-30", "2017-04-09")
    assert _tables(sales_db) == {"restaurants_restaurant": 1, "menu_menuitem": 94, "orders_order": 9465,
                                 "orders_orderitem": 20507, "customers_customerprofile": 0}
    # 01:21 on New Year's Day is GMT: the same instant in UTC, and last night's business day keys it.
    assert _count(sales_db, "SELECT count(*) FROM orders_order WHERE created_at = '2017-01-01 01:21:05+00'") == 1


def test_lines_after_the_imports_clock_are_counted_and_skipped(tmp_path, sales_db):
    """Issue 25 (4): half an export dated 2031 imported silently and suggested --as-of 2031."""
    rows = _lines(FIRST_DAY, FIRST_DAY + timedelta(days=6))
    future = [{**r, "Date": r["Date"][:6] + "2031"} for r in rows[: len(rows) // 2]]
    path = _write(tmp_path / "till.csv", rows[len(rows) // 2:] + future)
    rep = import_sales(path, sales_db, timezone=TZ, now=datetime(2026, 3, 1, tzinfo=timezone.utc))
    assert rep.skipped.get("future_time") == len(future)
    assert rep.last_local_day == str(FIRST_DAY + timedelta(days=6)) and rep.next_as_of.startswith("2026-02-09")
