"""The synthetic chain, loaded into a real PostgreSQL: schema per contract, planted patterns
recoverable with SQL, malformed rows exactly as documented.

Uses a scratch database (rmsml_test_synth) on the server of RMSML_TEST_ADMIN_URL (default
postgresql://postgres@127.0.0.1:5432/postgres), dropped at the end.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import os
import re
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2
import pytest

from synthetic import ChainConfig, generate, seed_database
from synthetic.scratch import admin_url, drop_database, recreate_database

ADMIN_URL = admin_url()
DB = "rmsml_test_synth" + os.environ.get("RMSML_TEST_DB_SUFFIX", "")
DB_MIN = "rmsml_test_synth_min" + os.environ.get("RMSML_TEST_DB_SUFFIX", "")
CONTRACT = Path(__file__).resolve().parents[1] / "contracts" / "rms_replica.sql"

# 4 restaurants: New York (closed Christmas + New Year, carries the malformed rows), Los Angeles
# (refurbishment closure), London (opens late), Berlin (quiet on holidays). The window holds a
# Christmas, both DST changes in the US and Europe, and the southern DST change in April.
END = dt.date(2026, 4, 20)
CFG = ChainConfig(restaurants=4, days=300, seed=int(os.environ.get("RMSML_SYNTH_TEST_SEED", "7")), end=END)
END_TS = pd.Timestamp(END, tz="UTC")


@pytest.fixture(scope="module")
def chain():
    return generate(CFG)


@pytest.fixture(scope="module")
def seeded():
    url = recreate_database(DB, ADMIN_URL)
    summary = seed_database(url.replace("postgresql://", "postgresql+psycopg2://", 1), CFG)
    conn = psycopg2.connect(url)
    conn.autocommit = True
    yield summary, conn
    conn.close()
    drop_database(DB, ADMIN_URL)


@pytest.fixture(scope="module")
def db(seeded):
    return seeded[1]


@pytest.fixture(scope="module")
def gt(chain):
    return chain.ground_truth


def q(conn, sql: str, params=None) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        cols = [c.name for c in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=cols)


def scalar(conn, sql: str, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()[0]


def daily_counts(conn, rid: int) -> pd.Series:
    """Orders per LOCAL date of one restaurant (inside the window), zero-filled."""
    df = q(
        conn,
        """
        SELECT (o.created_at AT TIME ZONE r.timezone)::date AS d, count(*) AS n
        FROM orders_order o JOIN restaurants_restaurant r ON r.id = o.restaurant_id
        WHERE o.restaurant_id = %s AND o.created_at < %s AND o.total >= 0
        GROUP BY 1 ORDER BY 1
        """,
        (rid, END),
    )
    s = pd.Series(df.n.to_numpy(dtype=float), index=pd.to_datetime(df.d))
    full = pd.date_range(s.index.min(), s.index.max(), freq="D")
    return s.reindex(full, fill_value=0.0)


def contract_columns() -> dict[str, list[str]]:
    """Parsed here independently of core.contract, so a bug there cannot hide itself."""
    text = re.sub(r"--[^\n]*", "", CONTRACT.read_text())
    out = {}
    for name, body in re.findall(r"CREATE TABLE (\w+) \((.*?)\n\);", text, re.S):
        out[name] = [ln.split()[0] for ln in body.strip().splitlines() if ln.strip()]
    return out


# ---------------------------------------------------------------------------------------------
# determinism and shape


def test_same_config_same_frames_other_seed_other_frames():
    cfg = ChainConfig(restaurants=3, days=90, seed=11, end=dt.date(2026, 1, 15))
    a, b = generate(cfg), generate(cfg)
    assert a.tables.keys() == b.tables.keys()
    for name in a.tables:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name], check_exact=True)
    assert a.ground_truth.to_dict() == b.ground_truth.to_dict()
    c = generate(ChainConfig(restaurants=3, days=90, seed=12, end=dt.date(2026, 1, 15)))
    assert not a.tables["orders_order"].equals(c.tables["orders_order"])
    assert a.ground_truth.to_dict()["restaurants"] != c.ground_truth.to_dict()["restaurants"]


def test_frames_have_contract_columns_in_order(chain):
    cols = contract_columns()
    assert set(chain.tables) == set(cols)
    for name, frame in chain.tables.items():
        assert list(frame.columns) == cols[name], name
    assert chain.tables["orders_order"].created_at.dt.tz is not None


def test_demand_level_is_the_documented_default(chain, gt):
    for r in gt.restaurants:
        assert 80 <= r.base_level <= 200
    orders = chain.tables["orders_order"]
    per_day = orders[orders.restaurant_id == 1].shape[0] / CFG.days
    assert 60 < per_day < 300


def test_loaded_rows_match_generated_frames(seeded, chain):
    summary, conn = seeded
    for name, frame in chain.tables.items():
        assert summary[name] == len(frame), name
        assert scalar(conn, f"SELECT count(*) FROM {name}") == len(frame), name
    assert summary["ground_truth"] == json.loads(json.dumps(chain.ground_truth.to_dict()))


def test_every_contract_table_with_exact_columns(db):
    df = q(
        db,
        """
        SELECT table_name, column_name, data_type FROM information_schema.columns
        WHERE table_schema = 'public' ORDER BY table_name, ordinal_position
        """,
    )
    cols = contract_columns()
    got = {t: list(g.column_name) for t, g in df.groupby("table_name", sort=False)}
    assert got == cols
    ids = df[df.column_name.str.fullmatch(r"id|.*_id")]
    assert set(ids.data_type) == {"bigint"}
    fks = scalar(db, "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace")
    assert fks == len(re.findall(r"REFERENCES", CONTRACT.read_text()))
    idx = set(q(db, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'").indexname)
    assert {"orders_order_restaurant_created", "kitchen_orderitemstation_station_queued"} <= idx


def test_omitted_modules_have_no_tables_and_cli_prints_json():
    from synthetic.__main__ import main

    min_url = recreate_database(DB_MIN, ADMIN_URL)
    try:
        out = io.StringIO()
        with redirect_stdout(out):
            main(["seed", "--dsn", min_url, "--restaurants", "2", "--days", "45", "--seed", "3",
                  "--end", "2026-02-01", "--no-kitchen", "--no-inventory", "--no-payments", "--no-customers"])
        summary = json.loads(out.getvalue().strip().splitlines()[-1])
        conn = psycopg2.connect(min_url)
        try:
            tables = set(q(conn, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'").table_name)
            assert tables == {
                "restaurants_organization", "restaurants_restaurant", "menu_menuitem",
                "customers_customerprofile", "orders_order", "orders_orderitem",
            }
            assert scalar(conn, "SELECT count(*) FROM customers_customerprofile") == 0
            assert scalar(conn, "SELECT count(*) FROM orders_order WHERE customer_id IS NOT NULL") == 0
            assert scalar(conn, "SELECT count(*) FROM menu_menuitem WHERE station_id IS NOT NULL") == 0
            assert summary["orders_order"] == scalar(conn, "SELECT count(*) FROM orders_order") > 0
            assert set(summary["ground_truth"]["malformed"]) == {"restaurants_restaurant", "orders_order", "orders_orderitem"}
        finally:
            conn.close()
    finally:
        drop_database(DB_MIN, ADMIN_URL)


# ---------------------------------------------------------------------------------------------
# demand patterns, recovered with SQL


def _clean_days(gt, r, counts: pd.Series) -> pd.Series:
    """Full, open, ordinary days: no holiday, anomaly, closure, or partial first/last day."""
    drop = {pd.Timestamp(h["date"]) for h in r.holidays} | {pd.Timestamp(a["date"]) for a in r.anomalies}
    drop |= {pd.Timestamp(d) for d in r.closed_dates}
    for p in r.closed_periods:
        drop |= set(pd.date_range(p["start"], p["end"], inclusive="left"))
    s = counts[counts.index >= pd.Timestamp(r.first_local_date)].iloc[1:-1]
    return s[~s.index.isin(list(drop))]


def test_weekend_to_weekday_ratio_is_planted(db, gt):
    for r in gt.restaurants:
        s = _clean_days(gt, r, daily_counts(db, r.restaurant_id))
        wd = s.index.day_of_week
        observed = s[wd >= 5].mean() / s[wd < 5].mean()
        assert observed == pytest.approx(r.weekend_ratio, rel=0.08), r.name


def test_hour_of_day_peak_in_local_time_across_dst(db, gt):
    ny = gt.restaurants[0]
    assert ny.timezone == "America/New_York"
    # the local day of the spring-forward change has 23 hours, and the restaurant traded that day
    hours = scalar(db, "SELECT extract(epoch FROM (timestamp '2026-03-09' AT TIME ZONE %s) - (timestamp '2026-03-08' AT TIME ZONE %s)) / 3600", (ny.timezone, ny.timezone))
    assert hours == 23
    assert scalar(db, "SELECT count(*) FROM orders_order WHERE restaurant_id = %s AND (created_at AT TIME ZONE %s)::date = '2026-03-08'", (ny.restaurant_id, ny.timezone)) > 20
    sql = """
        SELECT extract(hour FROM created_at AT TIME ZONE %(tz)s)::int AS local_h, extract(hour FROM created_at AT TIME ZONE 'UTC')::int AS utc_h
        FROM orders_order WHERE restaurant_id = %(rid)s AND created_at >= %(a)s AND created_at < %(b)s
    """
    winter = q(db, sql, {"tz": ny.timezone, "rid": ny.restaurant_id, "a": dt.date(2026, 1, 5), "b": dt.date(2026, 3, 8)})
    summer = q(db, sql, {"tz": ny.timezone, "rid": ny.restaurant_id, "a": dt.date(2026, 3, 9), "b": dt.date(2026, 4, 19)})
    for part in (winter, summer):
        assert part.local_h.value_counts().idxmax() == ny.peak_hour == ny.dinner_peak_hour
    # in UTC the peak moves by the DST hour: only local time keeps it still
    assert (winter.utc_h.value_counts().idxmax() - summer.utc_h.value_counts().idxmax()) % 24 == 1
    # nothing outside opening hours, for every restaurant, in local time
    df = q(db, """
        SELECT o.restaurant_id, min(extract(hour FROM o.created_at AT TIME ZONE r.timezone)) AS lo,
               max(extract(hour FROM o.created_at AT TIME ZONE r.timezone)) AS hi
        FROM orders_order o JOIN restaurants_restaurant r ON r.id = o.restaurant_id
        WHERE o.created_at < %s AND r.timezone <> 'Mars/Olympus_Mons' AND o.total >= 0 GROUP BY 1
    """, (END,))
    for row in df.itertuples():
        r = gt.restaurant(row.restaurant_id)
        assert row.lo >= r.open_hour and row.hi < r.close_hour


def test_half_hour_offset_zone_keeps_local_opening_hours():
    c = generate(ChainConfig(restaurants=7, days=30, seed=5, end=dt.date(2026, 2, 1), modules=(), malformed=False))
    r = c.ground_truth.restaurants[6]
    assert r.timezone == "Asia/Kolkata"
    o = c.tables["orders_order"]
    local = o[o.restaurant_id == r.restaurant_id].created_at.dt.tz_convert(r.timezone)
    assert local.dt.hour.min() >= r.open_hour and local.dt.hour.max() < r.close_hour
    # the first and last open quarter-hours are used: slots align with the :30 offset
    assert ((local.dt.hour == r.open_hour) & (local.dt.minute < 15)).any()
    assert local.dt.hour.value_counts().idxmax() == r.peak_hour


def test_holidays_move_demand_and_closed_days_have_no_orders(db, gt):
    checked = 0
    for r in gt.restaurants:
        s = daily_counts(db, r.restaurant_id)
        closed = {pd.Timestamp(d) for d in r.closed_dates}
        for d in closed:
            assert s.get(d, 0) == 0
        for p in r.closed_periods:
            closed |= set(pd.date_range(p["start"], p["end"], inclusive="left"))
        clean = _clean_days(gt, r, s)
        ratios = []
        for h in r.holidays:
            d = pd.Timestamp(h["date"])
            if d in closed or d < pd.Timestamp(r.first_local_date) or d not in s.index:
                continue
            same = clean[(clean.index.day_of_week == d.day_of_week) & (abs((clean.index - d).days) <= 28)]
            if len(same) >= 3:
                ratios.append(s[d] / same.mean())
        if len(ratios) >= 3:
            observed = float(np.exp(np.mean(np.log(ratios))))
            assert observed == pytest.approx(r.holiday_multiplier, rel=0.2), r.name
            checked += 1
    assert checked >= 3
    assert any(r.closed_dates for r in gt.restaurants)


def test_closed_period_and_late_opening(db, gt):
    closures = [(r, p) for r in gt.restaurants for p in r.closed_periods]
    assert closures
    for r, p in closures:
        s = daily_counts(db, r.restaurant_id)
        inside = s[(s.index >= pd.Timestamp(p["start"])) & (s.index < pd.Timestamp(p["end"]))]
        assert (p["end"] - p["start"]).days >= 10
        assert len(inside) == (p["end"] - p["start"]).days and inside.sum() == 0
        assert s[pd.Timestamp(p["start"]) - pd.Timedelta(days=1)] > 0 and s[pd.Timestamp(p["end"])] > 0
    late = [r for r in gt.restaurants if r.opens_late]
    assert late
    for r in late:
        first = scalar(db, "SELECT min((created_at AT TIME ZONE %s)::date) FROM orders_order WHERE restaurant_id = %s", (r.timezone, r.restaurant_id))
        assert first >= r.opened_on and (first - r.opened_on).days <= 1
        assert scalar(db, "SELECT opened_on FROM restaurants_restaurant WHERE id = %s", (r.restaurant_id,)) == r.opened_on
        assert gt.window_start.date() < r.opened_on < END


def test_anomaly_days_stand_out(db, gt):
    for r in gt.restaurants:
        s = daily_counts(db, r.restaurant_id)
        clean = _clean_days(gt, r, s)
        assert r.anomalies
        for a in r.anomalies:
            d = pd.Timestamp(a["date"])
            ref = clean[(clean.index.day_of_week == d.day_of_week) & (abs((clean.index - d).days) <= 35)].mean()
            # spikes are x2.5-4 and drops x0.2-0.4: margins leave room for Poisson tails
            if a["kind"] == "spike":
                assert s[d] / ref > 1.8, (r.name, a)
            else:
                assert s[d] / ref < 0.6, (r.name, a)


# ---------------------------------------------------------------------------------------------
# menu, prices, kitchen, customers, suppliers


def test_unit_price_follows_price_history_and_availability(db, gt):
    lo, hi = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc)
    for m in gt.menu_items:
        edges = [lo] + [dt.datetime.fromisoformat(str(c["at"])) if isinstance(c["at"], str) else c["at"] for c in m.price_changes] + [hi]
        prices = [m.initial_price] + [c["new_price"] for c in m.price_changes]
        for a, b, price in zip(edges[:-1], edges[1:], prices):
            seen = q(db, "SELECT DISTINCT unit_price::float AS p FROM orders_orderitem WHERE menu_item_id = %s AND created_at >= %s AND created_at < %s",
                     (m.menu_item_id, a, b)).p.tolist()
            assert seen in ([], [price]), (m.name, a, seen, price)
        if m.introduced_at:
            assert scalar(db, "SELECT count(*) FROM orders_orderitem WHERE menu_item_id = %s AND created_at < %s", (m.menu_item_id, m.introduced_at)) == 0
            assert scalar(db, "SELECT created_at FROM menu_menuitem WHERE id = %s", (m.menu_item_id,)) <= m.introduced_at
        if m.discontinued_at:
            assert scalar(db, "SELECT count(*) FROM orders_orderitem WHERE menu_item_id = %s AND created_at >= %s", (m.menu_item_id, m.discontinued_at)) == 0
            assert scalar(db, "SELECT is_active FROM menu_menuitem WHERE id = %s", (m.menu_item_id,)) is False
    price_now = dict(q(db, "SELECT id, price FROM menu_menuitem").itertuples(index=False))
    for m in gt.menu_items:
        current = m.price_changes[-1]["new_price"] if m.price_changes else m.initial_price
        assert float(price_now[m.menu_item_id]) == current
    assert any(m.introduced_at for m in gt.menu_items) and any(m.discontinued_at for m in gt.menu_items)


def test_price_changes_move_units_by_elasticity(db, gt):
    """Lines of the item per order of its restaurant, 8 weeks before vs after each change."""
    window = pd.Timedelta(days=56)
    planted, observed = [], []
    for m in gt.menu_items:
        for ch in m.price_changes:
            at = pd.Timestamp(ch["at"])
            if any(o is not ch and abs(pd.Timestamp(o["at"]) - at) < window for o in m.price_changes):
                continue  # another change of the same item inside the window
            params = {"item": m.menu_item_id, "at": at.to_pydatetime(), "rid": m.restaurant_id,
                      "lo": (at - window).to_pydatetime(), "hi": (at + window).to_pydatetime()}
            row = q(db, """
                SELECT count(*) FILTER (WHERE o.created_at < %(at)s) AS orders_before,
                       count(*) FILTER (WHERE o.created_at >= %(at)s) AS orders_after,
                       sum(n) FILTER (WHERE o.created_at < %(at)s) AS item_before,
                       sum(n) FILTER (WHERE o.created_at >= %(at)s) AS item_after
                FROM orders_order o
                LEFT JOIN LATERAL (SELECT count(*) AS n FROM orders_orderitem i
                                   WHERE i.order_id = o.id AND i.menu_item_id = %(item)s AND i.quantity > 0) i ON true
                WHERE o.restaurant_id = %(rid)s AND o.created_at >= %(lo)s AND o.created_at < %(hi)s
            """, params).iloc[0]
            if min(row.item_before, row.item_after) < 100 or abs(math.log(ch["units_multiplier"])) < 0.08:
                continue
            planted.append(math.log(ch["units_multiplier"]))
            observed.append(math.log((row.item_after / row.orders_after) / (row.item_before / row.orders_before)))
    assert len(planted) >= 5
    planted, observed = np.array(planted), np.array(observed)
    assert (np.sign(planted) == np.sign(observed)).mean() >= 0.8
    slope = np.polyfit(planted, observed, 1)[0]
    assert 0.5 < slope < 1.5


def test_most_items_are_intermittent(chain):
    items = chain.tables["orders_orderitem"]
    daily = items.assign(d=items.created_at.dt.floor("D")).groupby(["menu_item_id", "d"]).size().unstack(fill_value=0)
    zero_share = (daily == 0).mean(axis=1)
    assert zero_share.median() >= 0.2
    assert (zero_share < 0.05).sum() >= 4  # and a few best sellers


def test_prep_time_grows_with_queue_as_planted(db, gt):
    base = pd.DataFrame([(m.menu_item_id, m.base_minutes) for m in gt.menu_items], columns=["menu_item_id", "base"])
    k = q(db, """
        SELECT k.station_id, k.queue_size_at_start AS queue, k.prep_time_minutes::float AS prep, i.menu_item_id
        FROM kitchen_orderitemstation k JOIN orders_orderitem i ON i.id = k.order_item_id
        WHERE k.status = 'completed' AND i.quantity = 1 AND k.prep_time_minutes >= 0
    """).merge(base, on="menu_item_id")
    k["ratio"] = k.prep / k.base
    fitted = {}
    for sid, g in k.groupby("station_id"):
        if (g.queue >= 3).sum() >= 300:  # enough busy moments to see the slope
            fitted[sid] = np.polyfit(g.queue, g.ratio, 1)[0]
    assert len(fitted) >= 5
    for st in gt.stations:
        if st.station_id in fitted:
            assert fitted[st.station_id] == pytest.approx(st.queue_slope, rel=0.3, abs=0.005), st
    # consistency: completed_at - started_at is prep_time_minutes
    bad = scalar(db, """
        SELECT count(*) FROM kitchen_orderitemstation WHERE status = 'completed'
          AND abs(extract(epoch FROM completed_at - started_at) / 60 - prep_time_minutes) > 0.001
    """)
    assert bad == 0


def test_churned_customers_stop_ordering(db, gt):
    churned = gt.churned_customers
    assert len(churned) >= 20
    df = q(db, "SELECT customer_id, max(created_at) AS last, count(*) AS n FROM orders_order WHERE customer_id = ANY(%s) GROUP BY 1",
           ([c["customer_id"] for c in churned],))
    last = dict(zip(df.customer_id, df["last"]))
    for c in churned:
        if c["customer_id"] in last:
            assert last[c["customer_id"]] < c["churned_at"]
    assert sum(c["orders_before_churn"] > 0 for c in churned) >= 0.8 * len(churned)
    walk_in = scalar(db, "SELECT avg((customer_id IS NULL)::int) FROM orders_order")
    assert 0.7 < walk_in < 0.95
    regular = scalar(db, "SELECT count(*) FROM (SELECT customer_id FROM orders_order WHERE customer_id IS NOT NULL GROUP BY 1 HAVING count(*) >= 8) x")
    assert regular >= 50
    pii_filled = scalar(db, "SELECT count(*) FROM customers_customerprofile WHERE first_name IS NOT NULL AND email LIKE '%%@example.%%'")
    assert pii_filled == scalar(db, "SELECT count(*) FROM customers_customerprofile") > 0


def test_customers_return_more_often_when_engaged_but_never_surely(db):
    """Whether a guest comes back covaries with what the replica records (opt-in, a profile made
    ahead of the first order, a failed first order), modestly: no flag decides it."""
    df = q(db, """
        WITH first AS (
            SELECT DISTINCT ON (customer_id) customer_id, created_at, status
            FROM orders_order WHERE customer_id IS NOT NULL ORDER BY customer_id, created_at, id)
        SELECT c.id, c.marketing_opt_in AS opt_in,
               extract(epoch FROM f.created_at - c.date_joined) / 86400 AS lead_days,
               f.status IN ('cancelled', 'refunded') AS failed_first,
               (SELECT count(*) FROM orders_order o WHERE o.customer_id = c.id) >= 2 AS came_back
        FROM customers_customerprofile c JOIN first f ON f.customer_id = c.id
        WHERE f.created_at < %s AND c.date_joined >= (SELECT min(created_at) FROM orders_order)
    """, (END_TS.to_pydatetime() - dt.timedelta(days=120),))
    assert len(df) > 1000
    back = df.groupby("opt_in")["came_back"].mean()
    assert 1.2 < back[True] / back[False] < 3.0, back
    ahead = df["lead_days"] >= 7
    assert 1.3 < df.loc[ahead, "came_back"].mean() / df.loc[~ahead, "came_back"].mean() < 4.0
    assert df.loc[df["failed_first"], "came_back"].mean() < df.loc[~df["failed_first"], "came_back"].mean()
    # modest: most engaged one-off guests still never return
    assert df.loc[ahead & df["opt_in"], "came_back"].mean() < 0.7


def test_supplier_lead_times_close_to_planted(db, gt):
    df = q(db, """
        SELECT supplier_id, avg(extract(epoch FROM received_at - ordered_at) / 86400) AS mean_days, count(*) AS n
        FROM inventory_purchaseorder WHERE status = 'received' GROUP BY 1
    """)
    got = dict(zip(df.supplier_id, df.mean_days))
    assert len(gt.suppliers) == 6 and not all(s.reliable for s in gt.suppliers)
    for s in gt.suppliers:
        assert float(got[s.supplier_id]) == pytest.approx(s.true_lead_mean_days, rel=0.15), s
    promised = dict(q(db, "SELECT id, default_lead_time_days FROM inventory_supplier").itertuples(index=False))
    for s in gt.suppliers:
        assert float(promised[s.supplier_id]) == s.promised_lead_days
    assert scalar(db, "SELECT count(*) FROM inventory_purchaseorder WHERE (status = 'received') <> (received_at IS NOT NULL)") == 0


def test_stock_is_consistent_and_planted_stockouts_happen(db, gt):
    bad = gt.malformed_detail["inventory_stockmovement"]["absurd_quantity"]
    df = q(db, """
        WITH mv AS (SELECT inventory_item_id, sum(quantity) AS q FROM inventory_stockmovement WHERE NOT id = ANY(%s) GROUP BY 1),
             bt AS (SELECT inventory_item_id, sum(quantity_remaining) AS q, min(quantity_remaining) AS lo,
                           bool_and(quantity_remaining <= quantity_received) AS within FROM inventory_batch GROUP BY 1)
        SELECT mv.inventory_item_id, mv.q AS moved, bt.q AS remaining, bt.lo, bt.within FROM mv JOIN bt USING (inventory_item_id)
    """, (bad,))
    assert len(df) == scalar(db, "SELECT count(*) FROM inventory_inventoryitem")
    assert (df.moved == df.remaining).all()
    assert (df.lo >= 0).all() and df.within.all()
    # running stock never goes negative (ordinary movements)
    neg = scalar(db, """
        SELECT count(*) FROM (SELECT sum(quantity) OVER (PARTITION BY inventory_item_id ORDER BY occurred_at, id) AS s
                              FROM inventory_stockmovement WHERE NOT id = ANY(%s)) x WHERE s < -0.001
    """, (bad,))
    assert neg == 0
    planted = [s for s in gt.stockouts if s["planted"]]
    assert len(planted) >= len(gt.restaurants) - 1
    # perishables expire now, so fresh items do run out now and then (a couple a month), not daily
    assert len(gt.stockouts) <= 0.2 * CFG.days * len(gt.restaurants)
    for s in planted:
        # the stock hit zero: that day's consumption took everything that was left
        left = scalar(db, """
            SELECT sum(m.quantity) FROM inventory_stockmovement m
            WHERE m.inventory_item_id = %s AND NOT m.id = ANY(%s) AND (m.occurred_at AT TIME ZONE %s)::date <= %s
        """, (s["inventory_item_id"], bad, gt.restaurant(s["restaurant_id"]).timezone, s["start_date"]))
        assert float(left) == 0.0


def test_consumption_matches_units_sold_times_recipe(db, gt):
    r = gt.restaurants[1]
    df = q(db, """
        WITH sold AS (
            SELECT ri.inventory_item_id, sum(i.quantity * ri.quantity_per_unit) AS need
            FROM orders_orderitem i JOIN orders_order o ON o.id = i.order_id
            JOIN menu_recipeingredient ri ON ri.menu_item_id = i.menu_item_id
            WHERE o.restaurant_id = %(rid)s AND o.status IN ('completed', 'refunded') AND i.quantity > 0
            GROUP BY 1),
        used AS (
            SELECT inventory_item_id, -sum(quantity) AS used FROM inventory_stockmovement
            WHERE movement_type = 'consumption' GROUP BY 1)
        SELECT sold.inventory_item_id, need, coalesce(used, 0) AS used FROM sold LEFT JOIN used USING (inventory_item_id)
    """, {"rid": r.restaurant_id})
    assert len(df) > 5
    portioning = {i["inventory_item_id"]: i["portioning"] for i in gt.inventory_items}
    assert all(1.0 <= f <= 1.12 for f in portioning.values())
    short = {}
    for s in gt.stockouts:
        short[s["inventory_item_id"]] = short.get(s["inventory_item_id"], 0.0) + s["shortfall"]
    for row in df.itertuples():
        # consumption is what was sold x the kitchen's portioning, less what a stockout left
        # unserved (per-day rounding, to whole units for items counted 'each', aside)
        expected = float(row.need) * portioning[row.inventory_item_id] - short.get(row.inventory_item_id, 0.0)
        assert float(row.used) == pytest.approx(expected, rel=0.01, abs=0.001 * CFG.days + 0.01), row


# ---------------------------------------------------------------------------------------------
# orders, payments, malformed rows


def test_orders_are_internally_consistent(db, gt):
    bad_orders = gt.malformed_detail["orders_order"]["future_created_at"] + gt.malformed_detail["orders_order"]["negative_total"]
    assert scalar(db, """
        SELECT count(*) FROM orders_order o JOIN (
            SELECT order_id, sum(quantity * unit_price) AS s FROM orders_orderitem WHERE quantity > 0 GROUP BY 1) i ON i.id = o.id
        WHERE i.s <> o.subtotal
    """.replace("i.id = o.id", "i.order_id = o.id")) == 0
    assert scalar(db, "SELECT count(*) FROM orders_order WHERE total <> subtotal - discount_total + tax_total") == 0
    assert scalar(db, "SELECT count(*) FROM orders_order WHERE created_at >= %s AND NOT id = ANY(%s)", (END, bad_orders)) == 0
    assert scalar(db, "SELECT count(*) FROM orders_order WHERE created_at < %s - interval '%s days'", (END, CFG.days)) == 0
    assert scalar(db, "SELECT count(*) FROM orders_order WHERE completed_at < created_at OR completed_at >= %s", (END,)) == 0
    assert scalar(db, "SELECT count(*) FROM orders_order WHERE (status IN ('completed', 'refunded')) <> (completed_at IS NOT NULL)") == 0
    assert scalar(db, """
        SELECT count(*) FROM orders_order o JOIN (
            SELECT order_id, sum(amount) AS paid FROM payments_payment WHERE status <> 'failed' GROUP BY 1) p ON p.order_id = o.id
        WHERE p.paid <> o.total
    """) == 0
    unpaid = scalar(db, """
        SELECT count(*) FROM orders_order o WHERE o.status IN ('completed', 'refunded') AND o.total >= 0
          AND NOT EXISTS (SELECT 1 FROM payments_payment p WHERE p.order_id = o.id AND p.status <> 'failed')
    """)
    assert unpaid == 0
    mix = q(db, "SELECT status, count(*) AS n FROM orders_order GROUP BY 1").set_index("status").n
    assert mix["completed"] / mix.sum() > 0.9 and mix["cancelled"] > 0 and mix["refunded"] > 0
    lines = q(db, "SELECT count(*) AS n, avg(quantity) AS q FROM orders_orderitem WHERE quantity > 0 GROUP BY order_id")
    assert lines.n.between(1, 5).all()


def test_malformed_counts_match_ground_truth(db, gt):
    m = gt.malformed
    assert m == {
        "inventory_stockmovement": 3,
        "kitchen_orderitemstation": 3,
        "orders_order": 5,
        "orders_orderitem": 4,
        "restaurants_restaurant": 1,
    }
    assert scalar(db, "SELECT count(*) FROM restaurants_restaurant WHERE timezone NOT IN (SELECT name FROM pg_timezone_names)") == 1
    mars = gt.unknown_timezone_restaurant_id
    assert scalar(db, "SELECT timezone FROM restaurants_restaurant WHERE id = %s", (mars,)) == "Mars/Olympus_Mons"
    assert scalar(db, "SELECT count(*) FROM orders_order WHERE restaurant_id = %s", (mars,)) == gt.malformed_detail["restaurants_restaurant"]["unknown_timezone"]["orders"] > 0
    future = scalar(db, "SELECT count(*) FROM orders_order WHERE created_at >= %s", (END,))
    negative = scalar(db, "SELECT count(*) FROM orders_order WHERE total < 0")
    assert (future, negative) == (3, 2) and future + negative == m["orders_order"]
    assert scalar(db, "SELECT array_agg(id ORDER BY id) FROM orders_order WHERE created_at >= %s OR total < 0", (END,)) == sorted(
        gt.malformed_detail["orders_order"]["future_created_at"] + gt.malformed_detail["orders_order"]["negative_total"])
    assert scalar(db, "SELECT count(*) FROM orders_orderitem WHERE quantity <= 0") == m["orders_orderitem"]
    assert scalar(db, "SELECT count(*) FROM kitchen_orderitemstation WHERE prep_time_minutes < 0") == m["kitchen_orderitemstation"]
    assert scalar(db, "SELECT count(*) FROM inventory_stockmovement WHERE abs(quantity) >= 1000000") == m["inventory_stockmovement"]
    assert scalar(db, "SELECT array_agg(id ORDER BY id) FROM inventory_stockmovement WHERE abs(quantity) >= 1000000") == \
        gt.malformed_detail["inventory_stockmovement"]["absurd_quantity"]


def test_no_malformed_rows_when_disabled():
    c = generate(ChainConfig(restaurants=2, days=60, seed=9, end=dt.date(2026, 3, 1), malformed=False))
    assert c.ground_truth.malformed == {} and c.ground_truth.unknown_timezone_restaurant_id is None
    o = c.tables["orders_order"]
    assert (o.created_at < pd.Timestamp("2026-03-01", tz="UTC")).all() and (o.total >= 0).all()
    assert (c.tables["orders_orderitem"].quantity > 0).all()
    assert (c.tables["kitchen_orderitemstation"].prep_time_minutes.dropna() >= 0).all()
    assert len(c.tables["restaurants_restaurant"]) == 2


def test_ground_truth_is_json_and_complete(gt):
    d = json.loads(json.dumps(gt.to_dict()))
    r = d["restaurants"][0]
    for key in ("timezone", "country_code", "base_level", "trend_per_day", "weekly_profile", "hourly_profile",
                "annual_amplitude", "holiday_multiplier", "closed_dates", "closed_periods", "anomalies", "opened_on"):
        assert key in r
    item = d["menu_items"][0]
    for key in ("elasticity", "price_changes", "introduced_at", "discontinued_at", "base_minutes"):
        assert key in item
    for key in ("churned_customers", "stations", "suppliers", "stockouts", "malformed", "reorder_gaps"):
        assert d[key] is not None
    assert {s["station_type"] for s in d["stations"]} <= set(d["queue_slope_by_type"])
