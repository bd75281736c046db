"""The pipeline on a replica holding what real RMS installations hold and the contract allows.

Quality is judged on restaurant data we never see, so a small synthetic chain is seeded and then
mutated through an admin connection into the shapes real replicas take: restaurants without
orders or history, NULLs in every nullable column, zero prices, cancelled-only items, duplicate
and boundary timestamps, unknown holiday countries, unfinished kitchen tickets and purchase
orders, empty or expired stock, and one absurd (but well-formed) order. The daily, weekly and
monthly schedules then run on it; none may fail, every failed unit must be explained in the run
record, and the untouched control restaurant must get its full set of rows.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import psycopg2
import pytest
from sqlalchemy import text

from tests.conftest import DB_SUFFIX, drop_database, empty_predictions_database, recreate_database, use_replica
from worker import db, runs

END = dt.date(2026, 11, 1)
AS_OF = "2026-11-01T04:15:00Z"
CONTROL = 1        # America/New_York, untouched
INACTIVE = 2       # America/Los_Angeles, predicted once, then deactivated
QUIRKY = 3         # Europe/London: nullable NULLs, odd items, boundary timestamps, kitchen and stock quirks
NO_ORDERS = 5      # a restaurant with a menu, a station and stock but not one order; country 'XX'
TWO_DAYS = 6       # a restaurant whose only orders are the last two days' (copied from CONTROL)
HOUSE_ACCOUNT = 900_000  # the quirky restaurant's catch-all profile for anonymous orders
# the quirky restaurant's busiest non-perishable ingredient with a recipe (not the one driven below zero)
GRAMS_ITEM = f"""
    SELECT m.inventory_item_id FROM inventory_stockmovement m
    JOIN inventory_inventoryitem i ON i.id = m.inventory_item_id
    WHERE i.restaurant_id = {QUIRKY} AND NOT i.is_perishable AND m.movement_type = 'consumption'
      AND EXISTS (SELECT 1 FROM menu_recipeingredient r WHERE r.inventory_item_id = i.id)
      AND i.id <> (SELECT id FROM inventory_inventoryitem WHERE restaurant_id = {QUIRKY} AND NOT is_perishable
                   ORDER BY id OFFSET 8 LIMIT 1)
    GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"""
LOCAL_MIDNIGHT = "2026-10-19T23:00:00Z"   # 00:00 Europe/London (BST)
DST_INSTANT = "2026-10-25T01:00:00Z"      # Europe/London falls back from 02:00 BST to 01:00 GMT
BEFORE_DST = "2026-10-25T00:30:00Z"       # 01:30 BST, the first of that night's two 01:30s
HUGE_QUANTITY = 10_000

MUTATIONS = f"""
-- Restaurants: lowercase country and unknown opening date on the quirky one; two new ones.
UPDATE restaurants_restaurant SET country_code = 'gb', opened_on = NULL WHERE id = {QUIRKY};
INSERT INTO restaurants_restaurant (id, organization_id, name, timezone, country_code, seats, opened_on, is_active)
VALUES ({NO_ORDERS}, 1, 'No Orders Yet', 'Asia/Kolkata', 'XX', NULL, NULL, true),
       ({TWO_DAYS}, 1, 'Two Days Old', 'America/New_York', 'US', 40, DATE '2027-01-01', true);

-- The no-orders restaurant has a menu, a station and stock, just no orders or movements.
INSERT INTO kitchen_station (id, restaurant_id, name, station_type) VALUES (500, {NO_ORDERS}, 'Grill', 'grill');
INSERT INTO menu_menuitem (id, restaurant_id, name, category, price, cost, station_id, is_active, created_at)
VALUES (500, {NO_ORDERS}, 'Dal', 'mains', 9.50, NULL, 500, true, TIMESTAMPTZ '2026-09-01 00:00Z'),
       (501, {NO_ORDERS}, 'Naan', 'sides', 2.00, 0.40, NULL, true, TIMESTAMPTZ '2026-09-01 00:00Z');
INSERT INTO inventory_inventoryitem (id, restaurant_id, name, unit, unit_cost, supplier_id, par_level,
    reorder_point, min_order_quantity, is_perishable, shelf_life_days)
VALUES (500, {NO_ORDERS}, 'Lentils', 'kg', 2.5, 5, 20, 5, 10, false, NULL);
INSERT INTO menu_recipeingredient (id, menu_item_id, inventory_item_id, quantity_per_unit) VALUES (500, 500, 500, 0.15);

-- The two-days restaurant: CONTROL's menu and its orders of the last two days, under new ids.
INSERT INTO menu_menuitem (id, restaurant_id, name, category, price, cost, station_id, is_active, created_at)
SELECT id + 600, {TWO_DAYS}, name, category, price, cost, NULL, is_active, TIMESTAMPTZ '2026-10-30 00:00Z'
FROM menu_menuitem WHERE restaurant_id = {CONTROL};
INSERT INTO orders_order (id, restaurant_id, customer_id, order_type, status, guest_count, subtotal,
    discount_total, tax_total, total, created_at, completed_at)
SELECT id + 1000000, {TWO_DAYS}, NULL, order_type, status, guest_count, subtotal, discount_total, tax_total,
    total, created_at, completed_at
FROM orders_order WHERE restaurant_id = {CONTROL} AND created_at >= TIMESTAMPTZ '{END - dt.timedelta(days=2)} 00:00Z';
INSERT INTO orders_orderitem (id, order_id, menu_item_id, quantity, unit_price, has_modifiers, created_at)
SELECT i.id + 1000000, i.order_id + 1000000, i.menu_item_id + 600, i.quantity, i.unit_price, i.has_modifiers, i.created_at
FROM orders_orderitem i JOIN orders_order o ON o.id = i.order_id
WHERE o.restaurant_id = {CONTROL} AND o.created_at >= TIMESTAMPTZ '{END - dt.timedelta(days=2)} 00:00Z';

-- Nullable menu columns.
UPDATE menu_menuitem SET cost = NULL, station_id = NULL
WHERE id IN (SELECT id FROM menu_menuitem WHERE restaurant_id = {QUIRKY} ORDER BY id LIMIT 2);
UPDATE menu_menuitem SET cost = NULL
WHERE id IN (SELECT id FROM menu_menuitem WHERE restaurant_id = {QUIRKY} ORDER BY id OFFSET 2 LIMIT 3);

-- Nullable order columns.
UPDATE orders_order SET guest_count = NULL WHERE restaurant_id = {QUIRKY} AND id % 5 = 0;
UPDATE orders_order SET completed_at = NULL WHERE restaurant_id = {QUIRKY} AND id % 7 = 0;
UPDATE orders_order SET customer_id = NULL WHERE restaurant_id = {QUIRKY} AND id % 3 = 0;

-- Customers with no home restaurant and no PII at all.
UPDATE customers_customerprofile SET home_restaurant_id = NULL, first_name = NULL, last_name = NULL,
    email = NULL, phone = NULL, birth_date = NULL
WHERE home_restaurant_id = {QUIRKY} AND id % 2 = 0;

-- Inventory items with every nullable column NULL; a supplier that promises nothing.
UPDATE inventory_inventoryitem SET supplier_id = NULL, par_level = NULL, reorder_point = NULL,
    min_order_quantity = NULL, shelf_life_days = NULL
WHERE id IN (SELECT id FROM inventory_inventoryitem WHERE restaurant_id = {QUIRKY} ORDER BY id LIMIT 3);
UPDATE inventory_inventoryitem SET par_level = NULL, reorder_point = NULL, shelf_life_days = NULL
WHERE id IN (SELECT id FROM inventory_inventoryitem WHERE restaurant_id = {QUIRKY} ORDER BY id OFFSET 3 LIMIT 3);
INSERT INTO inventory_supplier (id, organization_id, name, default_lead_time_days) VALUES (500, 1, 'Vague Supplies', NULL);
UPDATE inventory_inventoryitem SET supplier_id = 500 WHERE restaurant_id = {QUIRKY} AND supplier_id = 3;
UPDATE inventory_purchaseorder SET supplier_id = 500 WHERE restaurant_id = {QUIRKY} AND supplier_id = 3;

-- Purchase orders never received, and some with no expected date.
UPDATE inventory_batch SET purchase_order_id = NULL WHERE purchase_order_id IN (
    SELECT id FROM inventory_purchaseorder WHERE restaurant_id = {QUIRKY} ORDER BY ordered_at DESC LIMIT 4);
UPDATE inventory_purchaseorderline SET quantity_received = NULL WHERE purchase_order_id IN (
    SELECT id FROM inventory_purchaseorder WHERE restaurant_id = {QUIRKY} ORDER BY ordered_at DESC LIMIT 4);
UPDATE inventory_purchaseorder SET status = 'sent', received_at = NULL WHERE id IN (
    SELECT id FROM inventory_purchaseorder WHERE restaurant_id = {QUIRKY} ORDER BY ordered_at DESC LIMIT 4);
UPDATE inventory_purchaseorder SET expected_at = NULL WHERE restaurant_id = {QUIRKY} AND id % 4 = 0;

-- An item with no movements at all; an empty batch and an expired one.
INSERT INTO inventory_inventoryitem (id, restaurant_id, name, unit, unit_cost, supplier_id, par_level,
    reorder_point, min_order_quantity, is_perishable, shelf_life_days)
VALUES (501, {QUIRKY}, 'Saffron', 'kg', 900, 1, 1, 0.2, 0.1, false, NULL);
UPDATE inventory_batch SET quantity_remaining = 0 WHERE id = (
    SELECT b.id FROM inventory_batch b JOIN inventory_inventoryitem i ON i.id = b.inventory_item_id
    WHERE i.restaurant_id = {QUIRKY} ORDER BY b.received_at DESC LIMIT 1);
UPDATE inventory_batch SET expires_at = TIMESTAMPTZ '{END - dt.timedelta(days=3)} 00:00Z',
    quantity_remaining = greatest(quantity_remaining, 1) WHERE id = (
    SELECT b.id FROM inventory_batch b JOIN inventory_inventoryitem i ON i.id = b.inventory_item_id
    WHERE i.restaurant_id = {QUIRKY} AND i.is_perishable ORDER BY b.received_at DESC OFFSET 1 LIMIT 1);

-- Books the way real kitchens keep them: a till's catch-all profile holding the anonymous orders,
-- the oldest purchase order never closed, an item whose batches were driven below zero, tickets
-- nobody bumped, and one item's recipes in grams for stock counted in kilograms.
INSERT INTO customers_customerprofile (id, organization_id, home_restaurant_id, date_joined, loyalty_tier,
    loyalty_points, marketing_opt_in) VALUES ({HOUSE_ACCOUNT}, 1, {QUIRKY}, TIMESTAMPTZ '2026-01-01 00:00Z', 'none', 0, false);
UPDATE orders_order SET customer_id = {HOUSE_ACCOUNT} WHERE restaurant_id = {QUIRKY} AND customer_id IS NULL;
UPDATE inventory_purchaseorder SET status = 'sent', received_at = NULL WHERE id = (
    SELECT id FROM inventory_purchaseorder WHERE restaurant_id = {QUIRKY} ORDER BY ordered_at LIMIT 1);
UPDATE inventory_batch SET quantity_remaining = 0 WHERE inventory_item_id = (
    SELECT id FROM inventory_inventoryitem WHERE restaurant_id = {QUIRKY} AND NOT is_perishable ORDER BY id OFFSET 8 LIMIT 1);
UPDATE inventory_batch SET quantity_remaining = -4 WHERE id = (
    SELECT max(b.id) FROM inventory_batch b WHERE b.inventory_item_id = (
        SELECT id FROM inventory_inventoryitem WHERE restaurant_id = {QUIRKY} AND NOT is_perishable ORDER BY id OFFSET 8 LIMIT 1));
UPDATE kitchen_orderitemstation SET prep_time_minutes = 400 WHERE status = 'completed' AND id % 40 = 0
    AND station_id IN (SELECT id FROM kitchen_station WHERE restaurant_id = {QUIRKY});
UPDATE menu_recipeingredient SET quantity_per_unit = quantity_per_unit * 1000 WHERE inventory_item_id = ({GRAMS_ITEM});

-- A menu item sold at price 0, and one whose every order was cancelled.
UPDATE menu_menuitem SET price = 0 WHERE id = (SELECT id FROM menu_menuitem WHERE restaurant_id = {QUIRKY} ORDER BY id OFFSET 5 LIMIT 1);
UPDATE orders_orderitem SET unit_price = 0 WHERE menu_item_id = (
    SELECT id FROM menu_menuitem WHERE restaurant_id = {QUIRKY} ORDER BY id OFFSET 5 LIMIT 1);
UPDATE orders_order SET status = 'cancelled', completed_at = NULL WHERE id IN (
    SELECT order_id FROM orders_orderitem WHERE menu_item_id = (
        SELECT id FROM menu_menuitem WHERE restaurant_id = {QUIRKY} ORDER BY id OFFSET 6 LIMIT 1));

-- Duplicate timestamps: every 13th order shares its predecessor's instant.
UPDATE orders_order o SET created_at = p.created_at FROM orders_order p
WHERE o.restaurant_id = {QUIRKY} AND o.id % 13 = 0 AND p.id = o.id - 1 AND p.restaurant_id = {QUIRKY};
UPDATE orders_orderitem i SET created_at = o.created_at FROM orders_order o
WHERE o.id = i.order_id AND o.restaurant_id = {QUIRKY} AND o.id % 13 = 0;

-- Orders exactly at local midnight and at the DST change instant.
UPDATE orders_order SET created_at = TIMESTAMPTZ '{LOCAL_MIDNIGHT}', completed_at = TIMESTAMPTZ '{LOCAL_MIDNIGHT}' + interval '20 minutes'
WHERE id = (SELECT min(id) FROM orders_order WHERE restaurant_id = {QUIRKY} AND created_at::date = DATE '2026-10-19');
UPDATE orders_order SET created_at = TIMESTAMPTZ '{DST_INSTANT}', completed_at = TIMESTAMPTZ '{DST_INSTANT}' + interval '20 minutes'
WHERE id = (SELECT min(id) FROM orders_order WHERE restaurant_id = {QUIRKY} AND created_at::date = DATE '2026-10-24');
UPDATE orders_order SET created_at = TIMESTAMPTZ '{BEFORE_DST}', completed_at = TIMESTAMPTZ '{BEFORE_DST}' + interval '20 minutes'
WHERE id = (SELECT min(id) + 1 FROM orders_order WHERE restaurant_id = {QUIRKY} AND created_at::date = DATE '2026-10-24');
UPDATE orders_orderitem i SET created_at = o.created_at FROM orders_order o
WHERE o.id = i.order_id AND o.created_at IN (TIMESTAMPTZ '{LOCAL_MIDNIGHT}', TIMESTAMPTZ '{DST_INSTANT}', TIMESTAMPTZ '{BEFORE_DST}');

-- A station none of whose tickets ever completed.
UPDATE kitchen_orderitemstation SET status = 'queued', started_at = NULL, completed_at = NULL, prep_time_minutes = NULL
WHERE station_id = (SELECT max(id) FROM kitchen_station WHERE restaurant_id = {QUIRKY});

-- One well-formed outlier: a 10,000-item order on an ordinary day.
UPDATE orders_orderitem SET quantity = {HUGE_QUANTITY} WHERE id = (
    SELECT min(i.id) FROM orders_orderitem i JOIN orders_order o ON o.id = i.order_id
    WHERE o.restaurant_id = {QUIRKY} AND o.created_at::date = DATE '2026-10-20' AND o.status = 'completed');
UPDATE orders_order o SET subtotal = o.subtotal + s.extra, total = o.total + s.extra FROM (
    SELECT order_id, quantity * unit_price AS extra FROM orders_orderitem WHERE quantity = {HUGE_QUANTITY}) s
WHERE o.id = s.order_id;
"""


def _admin(url: str, sql: str) -> None:
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def q(sql: str, **params):
    with db.predictions_engine().connect() as conn:
        return conn.execute(text(sql), params).all()


def _per_type_and_method(restaurant_id: int) -> dict[tuple[str, str], int]:
    return {
        (t, m): n
        for t, m, n in q(
            "SELECT prediction_type, method, count(*) FROM m_l_predictions WHERE restaurant_id = :r GROUP BY 1, 2",
            r=restaurant_id,
        )
    }


@pytest.fixture(scope="module")
def quirky_runs(predictions_url):
    """Every schedule on the pristine chain, then on its quirky copy; returns both sets of facts.

    The pristine pass gives the control restaurant's expected rows; on the quirky copy the
    inactive restaurant is predicted once (restricted run) before it is deactivated, so the
    schedules that follow show whether it keeps stale rows.
    """
    from synthetic import ChainConfig, seed_database

    chain = ChainConfig(restaurants=3, days=120, seed=11, end=END, malformed=False)
    name = "rmsml_test_quirks" + DB_SUFFIX
    url = recreate_database(name)
    seed_database(url, chain)
    # The pristine pass covers the same restaurants (pricing pools categories per shard).
    _admin(url, f"UPDATE restaurants_restaurant SET is_active = false WHERE id = {INACTIVE}")
    previous_url = use_replica(url)
    try:
        empty_predictions_database()
        pristine = {s: runs.execute_run(s, AS_OF) for s in ("daily", "weekly", "monthly")}
        control = _per_type_and_method(CONTROL)
        control_demand = dict(q(
            "SELECT target_start, value FROM m_l_predictions WHERE restaurant_id = :r AND prediction_type = 'demand_daily'",
            r=CONTROL,
        ))
        empty_predictions_database()
        seed_database(url, chain)
        _admin(url, MUTATIONS)
        before = runs.execute_run("daily", AS_OF, [INACTIVE])
        _admin(url, f"UPDATE restaurants_restaurant SET is_active = false WHERE id = {INACTIVE}")
        records = {s: runs.execute_run(s, AS_OF) for s in ("daily", "weekly", "monthly")}
        yield {
            "pristine": pristine, "control": control, "control_demand": control_demand,
            "before": before, "records": records, "url": url,
        }
    finally:
        use_replica(previous_url)
        drop_database(name)


def replica(url: str, sql: str):
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def details(prediction_type: str, **where):
    cond = " AND ".join(f"{k} = :{k}" for k in where)
    return q(f"SELECT entity_id, method, value, details FROM m_l_predictions WHERE prediction_type = :t AND {cond}",
             t=prediction_type, **where)


def test_no_schedule_fails_and_every_failed_unit_is_explained(quirky_runs):
    for schedule, record in [("before", quirky_runs["before"]), *quirky_runs["records"].items()]:
        assert record["status"] != "failed", (schedule, record["error"])
        for failure in record["failed"]:
            # a failed unit names itself and its exception in the run record
            assert failure["error"] and ":" in failure["error"], (schedule, failure)
        # every quirk here is allowed by the contract: none may cost a unit
        assert record["status"] == "succeeded", (schedule, record["failed"])


def test_control_restaurant_rows_are_unaffected(quirky_runs):
    assert _per_type_and_method(CONTROL) == quirky_runs["control"]
    demand = dict(q(
        "SELECT target_start, value FROM m_l_predictions WHERE restaurant_id = :r AND prediction_type = 'demand_daily'",
        r=CONTROL,
    ))
    assert demand.keys() == quirky_runs["control_demand"].keys()
    for day, value in quirky_runs["control_demand"].items():
        assert demand[day] == pytest.approx(value, rel=0.05), day


def test_restaurant_without_orders_gets_the_chain_average_and_says_so(quirky_runs):
    daily = quirky_runs["records"]["daily"]
    assert f"restaurant {NO_ORDERS}: no orders in its history; forecast from the chain average" in daily["messages"]
    rows = details("demand_daily", restaurant_id=NO_ORDERS)
    assert len(rows) == 28 and {m for _, m, _, _ in rows} == {"average"}
    assert len(details("demand_hourly", restaurant_id=NO_ORDERS)) == 168
    assert details("anomaly", restaurant_id=NO_ORDERS) == []
    # its stock item, never moved nor received, is at zero with no usage: a rule row, no stockout date
    (_, method, _, d), = details("stockout", restaurant_id=NO_ORDERS)
    assert method == "rule" and d["current_stock"] == 0 and d["predicted_stockout_date"] is None
    assert any("500" in m and "no completed tickets" in m for m in daily["messages"])


def test_restaurant_with_two_days_of_orders_falls_back_and_flags_its_new_menu(quirky_runs):
    daily = quirky_runs["records"]["daily"]
    rows = details("demand_daily", restaurant_id=TWO_DAYS)
    assert len(rows) == 28 and {m for _, m, _, _ in rows} == {"average"}
    items = details("item_demand_daily", restaurant_id=TWO_DAYS)
    assert items and {m for _, m, _, _ in items} == {"average"}
    assert any(a.get("restaurant_id") == TWO_DAYS and a["signal"] == "menu_change" for a in daily["alerts"])
    # its opened_on (2027-01-01) is contradicted by its orders: forecast as trading, and said
    assert any("orders before their opened_on" in m and f"{TWO_DAYS} (opened_on 2027-01-01)" in m for m in daily["messages"])


def test_inactive_restaurant_gets_no_new_predictions(quirky_runs):
    before = str(quirky_runs["before"]["id"])
    assert quirky_runs["before"]["rows_written"]["demand_daily"] == 28
    assert q("SELECT count(*) FROM m_l_predictions WHERE restaurant_id = :r AND run_id <> :b",
             r=INACTIVE, b=before) == [(0,)]
    for record in quirky_runs["records"].values():
        assert INACTIVE not in record["restaurant_ids"]


def test_inactive_restaurant_loses_its_old_rows(quirky_runs):
    assert q("SELECT count(*) FROM m_l_predictions WHERE restaurant_id = :r", r=INACTIVE) == [(0,)]
    assert any(str([INACTIVE]) in m and "deactivated" in m for m in quirky_runs["records"]["daily"]["messages"])


def test_holiday_country_codes_are_normalised_or_ignored():
    from features.calendar import holiday_table

    gb = holiday_table("GB", [2026])
    assert len(gb) > 0
    assert holiday_table("gb", [2026]).equals(gb)
    assert holiday_table("XX", [2026]).empty


def test_quirky_restaurant_is_forecast_by_its_models(quirky_runs):
    assert {m for _, m, _, _ in details("demand_daily", restaurant_id=QUIRKY)} == {"model"}
    hourly = q("SELECT count(DISTINCT target_start) FROM m_l_predictions "
               "WHERE restaurant_id = :r AND prediction_type = 'demand_hourly'", r=QUIRKY)
    assert hourly == [(168,)]


def test_outlier_order_does_not_drive_the_item_forecast(quirky_runs):
    (item,), = replica(quirky_runs["url"], f"SELECT menu_item_id FROM orders_orderitem WHERE quantity = {HUGE_QUANTITY}")
    (typical,), = replica(quirky_runs["url"], f"""
        SELECT sum(i.quantity)::float8 / 28 FROM orders_orderitem i JOIN orders_order o ON o.id = i.order_id
        WHERE i.menu_item_id = {item} AND o.status = 'completed' AND i.quantity < {HUGE_QUANTITY}
          AND o.created_at >= TIMESTAMPTZ '{END - dt.timedelta(days=28)} 00:00Z'""")
    rows = q("SELECT value, upper FROM m_l_predictions WHERE prediction_type = 'item_demand_daily' AND entity_id = :i",
             i=item)
    assert rows
    # one 10,000-unit day in 120 would lift a plain mean by ~80 a day; the forecast stays near the usual level
    assert max(v for v, _ in rows) < 3 * typical + 5
    assert max(u for _, u in rows) < 10 * typical + 10


def test_the_outlier_order_is_flagged_as_a_menu_item_spike_the_morning_after(quirky_runs):
    """The forecast ignores the 10,000-unit order; the anomaly report must not: it counts units."""
    from prediction_types.anomaly import UNITS
    from core.replica import ReplicaReader
    from worker.settings import get_settings
    from core.units import Scope

    (item,), = replica(quirky_runs["url"], f"SELECT menu_item_id FROM orders_orderitem WHERE quantity = {HUGE_QUANTITY}")
    reader = ReplicaReader(db.replica_engine())
    restaurants = reader.frame(
        "SELECT id, organization_id, timezone, country_code, opened_on FROM restaurants_restaurant WHERE id = :r", {"r": QUIRKY})
    as_of = pd.Timestamp("2026-10-21 06:00", tz="Europe/London").tz_convert("UTC")
    scope = Scope(run_id="t", schedule="daily", as_of=as_of, restaurants=restaurants, forecast=get_settings().forecast,
                  model_store=Path(get_settings().model_store.path), valid_until=dt.datetime.now(dt.timezone.utc))
    unit = next(u for u in UNITS if u.entity_type == "menu_item")
    rows = unit.predict(unit.features(reader, scope), scope).rows
    flagged = rows[rows["entity_id"] == item]
    assert len(flagged) == 1, rows
    details = flagged.iloc[0]["details"]
    assert details["kind"] == "spike" and details["actual"] >= HUGE_QUANTITY and details["expected"] < 100


def test_price_zero_and_cancelled_only_items(quirky_runs):
    free, cancelled = (r[0] for r in replica(quirky_runs["url"], f"""
        SELECT id FROM menu_menuitem WHERE restaurant_id = {QUIRKY} ORDER BY id OFFSET 5 LIMIT 2"""))
    assert details("price_recommendation", entity_id=free) == []
    item_rows = details("item_demand_daily", entity_id=cancelled)
    # no completed sale ever: not a fitted model's forecast
    assert item_rows and {m for _, m, _, _ in item_rows} != {"model"}


def test_menu_items_without_cost_or_station(quirky_runs):
    no_cost = [r[0] for r in replica(quirky_runs["url"], f"""
        SELECT id FROM menu_menuitem WHERE restaurant_id = {QUIRKY} AND cost IS NULL AND price > 0""")]
    priced = [d for iid in no_cost for _, _, _, d in details("price_recommendation", entity_id=iid)]
    assert priced and {d["objective"] for d in priced} == {"revenue"}
    assert any("without a station skipped" in m for m in quirky_runs["records"]["daily"]["messages"])


def test_station_without_completed_tickets_is_named(quirky_runs):
    (station,), = replica(quirky_runs["url"], f"SELECT max(id) FROM kitchen_station WHERE restaurant_id = {QUIRKY}")
    assert any(str(station) in m and "no completed tickets" in m for m in quirky_runs["records"]["daily"]["messages"])


def test_inventory_nulls_unreceived_orders_and_odd_batches(quirky_runs):
    url = quirky_runs["url"]
    bare = [r[0] for r in replica(url, f"""
        SELECT id FROM inventory_inventoryitem WHERE restaurant_id = {QUIRKY} AND supplier_id IS NULL""")]
    assert len(bare) == 3
    for iid in bare:
        (_, method, qty, d), = details("reorder", entity_id=iid)
        assert d["supplier_id"] is None and d["manual_reorder_point"] is None
        assert d["expected_lead_time_days"] > 0 and qty >= 0
    # the item with no movements and no batches is at zero, and still gets a reorder line
    (_, _, _, d), = details("stockout", entity_id=501)
    assert d["current_stock"] == 0
    assert len(details("reorder", entity_id=501)) == 1
    # the supplier that promises no lead time still gets an estimate from its deliveries
    (_, method, lead, d), = details("lead_time", entity_id=500)
    assert method == "model" and lead > 0 and d["promised_days"] is None and d["observed_orders"] > 0
    items = replica(url, f"SELECT count(*) FROM inventory_inventoryitem WHERE restaurant_id = {QUIRKY}")[0][0]
    assert len(q("SELECT 1 FROM m_l_predictions WHERE prediction_type = 'stockout' AND restaurant_id = :r",
                 r=QUIRKY)) == items


def test_customers_without_home_or_pii_are_anchored_and_scored(quirky_runs):
    homeless = {r[0] for r in replica(quirky_runs["url"], f"""
        SELECT c.id FROM customers_customerprofile c
        WHERE c.home_restaurant_id IS NULL AND EXISTS (
            SELECT 1 FROM orders_order o WHERE o.customer_id = c.id AND o.status = 'completed'
              AND o.created_at < TIMESTAMPTZ '{AS_OF}')""")}
    assert homeless
    scored = q("SELECT entity_id, restaurant_id FROM m_l_predictions WHERE prediction_type = 'churn' "
               "AND entity_id = ANY(:ids)", ids=sorted(homeless))
    assert {e for e, _ in scored} == homeless
    assert all(r is not None for _, r in scored)


def test_days_sold_at_price_zero_are_not_price_changes():
    import pandas as pd

    from models.pricing import ElasticityEstimator

    days = pd.date_range("2026-09-01", periods=30, freq="D")
    # comped for ten days, then on sale at 5.00 for twenty: no change *from* a price of 0
    sales = pd.DataFrame({"menu_item_id": 7, "restaurant_id": 1, "local_date": days,
                          "price": [0.0] * 10 + [5.0] * 20, "lines": 10.0})
    assert ElasticityEstimator().price_changes(sales).empty
    # a real move between two positive prices around the comped days is still found
    sales["price"] = [4.0] * 10 + [0.0] * 5 + [5.0] * 15
    (change,) = ElasticityEstimator().price_changes(sales).itertuples(index=False)
    assert (change.old_price, change.new_price) == (4.0, 5.0)


def test_midnight_and_dst_orders_land_in_their_local_day_and_hour(quirky_runs):
    import pandas as pd

    from features.demand import daily_orders, hourly_orders
    from core.replica import ReplicaReader

    reader = ReplicaReader(db.replica_engine())
    zones = {QUIRKY: "Europe/London"}
    args = (reader, zones, pd.Timestamp("2026-10-19T12:00Z"), pd.Timestamp("2026-10-26T12:00Z"),
            pd.Timestamp("2026-11-02T00:00Z"))
    hourly = hourly_orders(*args)
    # the order at 00:00 BST opens 20 October's first hour, not 19 October's last
    midnight = hourly[hourly["hour_start"] == pd.Timestamp(LOCAL_MIDNIGHT)]
    assert list(midnight["local_hour_start"]) == [pd.Timestamp("2026-10-20 00:00")]
    # 01:00 local happens twice on 25 October: the two hours stay apart, one UTC start each
    twice = hourly[hourly["local_hour_start"] == pd.Timestamp("2026-10-25 01:00")]
    assert sorted(twice["hour_start"]) == [pd.Timestamp("2026-10-25T00:00Z"), pd.Timestamp(DST_INSTANT)]
    assert hourly["hour_start"].is_unique
    daily = daily_orders(*args).set_index("local_date")["orders"]
    per_day = hourly.assign(day=hourly["local_hour_start"].dt.normalize()).groupby("day")["orders"].sum()
    assert (daily.loc[per_day.index] == per_day).all()



def test_outlier_order_does_not_inflate_the_revenue_forecast(quirky_runs):
    (typical,), = replica(quirky_runs["url"], f"""
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY total)::float8 FROM (
            SELECT sum(total) / count(*) AS total FROM orders_order
            WHERE restaurant_id = {QUIRKY} AND status = 'completed'
              AND created_at >= TIMESTAMPTZ '{END - dt.timedelta(days=28)} 00:00Z'
            GROUP BY created_at::date) per_day""")
    tickets = [d["revenue"] / v for _, _, v, d in details("demand_daily", restaurant_id=QUIRKY) if v > 0]
    # one order worth weeks of takings must not double every day's revenue
    assert tickets and max(tickets) < 1.25 * typical


def test_restaurants_without_their_own_history_are_named_and_priced(quirky_runs):
    messages = quirky_runs["records"]["daily"]["messages"]
    assert any(f"restaurant {TWO_DAYS}" in m or f"[{TWO_DAYS}]" in m for m in messages), messages
    for rid in (NO_ORDERS, TWO_DAYS):
        assert all(d["revenue"] > 0 for _, _, _, d in details("demand_daily", restaurant_id=rid)), rid


def test_books_kept_the_real_way_are_read_the_right_way(quirky_runs):
    """The catch-all profile is not scored, the never-closed order is not stock on its way, the
    item driven below zero says so, unbumped tickets stay out of the prep model, and the recipe in
    grams does not make its kilogram stock run out today."""
    url, records = quirky_runs["url"], quirky_runs["records"]
    daily, weekly = records["daily"]["messages"], records["weekly"]["messages"]
    for ptype in ("churn", "ltv"):
        assert any(m.startswith(f"{ptype}: 1 house account(s)") for m in weekly), weekly
        assert details(ptype, entity_id=HOUSE_ACCOUNT) == []
    assert any(m.startswith("stockout: 1 open purchase-order line") or "open purchase-order line(s) placed over" in m
               for m in daily), daily
    (below,), = replica(url, f"""
        SELECT id FROM inventory_inventoryitem WHERE restaurant_id = {QUIRKY} AND NOT is_perishable ORDER BY id OFFSET 8 LIMIT 1""")
    (_, _, _, d), = details("stockout", entity_id=below)
    assert d["recorded_stock_below_zero"] is True and d["current_stock"] == 0
    assert any("recorded stock below zero" in m for m in daily), daily
    assert any(m.startswith("prep_time: ") and "left unbumped on the screen" in m for m in daily), daily
    (grams,), = replica(url, GRAMS_ITEM)
    (_, _, _, d), = details("stockout", entity_id=grams)
    (used,), = replica(url, f"""
        SELECT coalesce(sum(-quantity), 0) / 28.0 FROM inventory_stockmovement
        WHERE inventory_item_id = {grams} AND movement_type = 'consumption'
          AND occurred_at >= TIMESTAMPTZ '{AS_OF}' - interval '28 days' AND occurred_at < TIMESTAMPTZ '{AS_OF}'""")
    assert float(used) > 0 and d["daily_usage_forecast"] < 3 * float(used), (d, used)  # not 1000x its use
