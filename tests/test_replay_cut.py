"""An --as-of replay sees the replica as it was at that instant (issue 25, item 8).

A replay on the full replica must read what a replica holding only the rows before the as-of
holds, wherever the replica dates a row: menu items (``created_at``), customers
(``date_joined``), orders and their lines. Before, a bakery replay forecast six menu items put on
the menu after the as-of, and since items are reconciled to the orders forecast every other item
moved too. Equal inputs give equal forecasts (the models are deterministic), so the inputs are
compared, on restaurant 3, whose menu grew after the as-of.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pandas.testing as pdt
import psycopg2
import pytest

from core.replica import ReplicaReader
from core.settings import ForecastSettings
from core.units import Scope
from features.customers import customer_rfm
from features.items import item_demand_features
from features.kitchen import kitchen_menu
from features.prices import menu_items as priced_items
from features.restaurants import load_restaurants
from tests.conftest import ADMIN_URL, DB_SUFFIX, REPLICA_DB, REPLICA_URL, drop_database

AS_OF = pd.Timestamp("2026-09-01 04:15", tz="UTC")
RESTAURANT = 3
CUT_DB = "rmsml_test_cut" + DB_SUFFIX

# Rows dated at or after the as-of, children first (foreign keys are not checked meanwhile anyway).
_CUT = [
    "DELETE FROM kitchen_orderitemstation WHERE order_item_id IN "
    "(SELECT id FROM orders_orderitem WHERE created_at >= %(t)s)",
    "DELETE FROM orders_orderitem WHERE created_at >= %(t)s",
    "DELETE FROM payments_payment WHERE order_id IN (SELECT id FROM orders_order WHERE created_at >= %(t)s)",
    "DELETE FROM orders_order WHERE created_at >= %(t)s",
    "DELETE FROM menu_recipeingredient WHERE menu_item_id IN (SELECT id FROM menu_menuitem WHERE created_at >= %(t)s)",
    "DELETE FROM menu_menuitem WHERE created_at >= %(t)s",
    "DELETE FROM customers_customerprofile WHERE date_joined >= %(t)s",
]


@pytest.fixture(scope="module")
def cut_replica(seeded_replica):
    """A copy of the test replica holding only what existed before ``AS_OF``."""
    from worker import db

    db.reset_engines()  # CREATE DATABASE ... TEMPLATE needs the template to have no sessions
    admin = psycopg2.connect(ADMIN_URL.replace("postgresql+psycopg2://", "postgresql://"))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {CUT_DB}")
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                    "AND pid <> pg_backend_pid()", (REPLICA_DB,))
        cur.execute(f"CREATE DATABASE {CUT_DB} TEMPLATE {REPLICA_DB}")
    admin.close()
    url = REPLICA_URL.rsplit("/", 1)[0] + "/" + CUT_DB
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")
        for sql in _CUT:
            cur.execute(sql, {"t": AS_OF.to_pydatetime()})
        cur.execute("SELECT count(*) FROM menu_menuitem WHERE restaurant_id = %s", (RESTAURANT,))
        assert cur.fetchone()[0] > 0
    conn.close()
    try:
        yield url
    finally:
        drop_database(CUT_DB)


def _readers(cut_url):
    from worker.db import make_replica_engine

    return {"full": make_replica_engine(REPLICA_URL), "cut": make_replica_engine(cut_url)}


def _scope(reader: ReplicaReader) -> Scope:
    found = load_restaurants(reader, [RESTAURANT]).restaurants
    return Scope(run_id="00000000-0000-0000-0000-0000000000c8", schedule="daily", as_of=AS_OF, restaurants=found,
                 forecast=ForecastSettings(), model_store=Path(tempfile.mkdtemp(prefix="replay-cut-")),
                 valid_until=pd.Timestamp.now(tz="UTC").to_pydatetime(), registry=pd.DataFrame())


def test_the_full_replica_holds_items_added_after_the_as_of(seeded_replica):
    """The premise: otherwise the comparison below proves nothing."""
    with psycopg2.connect(REPLICA_URL) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM menu_menuitem WHERE restaurant_id = %s AND created_at >= %s",
                    (RESTAURANT, AS_OF.to_pydatetime()))
        assert cur.fetchone()[0] >= 1


def test_a_replay_on_the_full_replica_reads_what_a_replica_cut_at_the_as_of_holds(cut_replica):
    engines = _readers(cut_replica)
    try:
        readers = {k: ReplicaReader(e) for k, e in engines.items()}
        items = {k: item_demand_features(r, _scope(r)) for k, r in readers.items()}
        pdt.assert_frame_equal(items["full"].series, items["cut"].series)
        pdt.assert_frame_equal(items["full"].history, items["cut"].history)
        pdt.assert_frame_equal(items["full"].future, items["cut"].future)
        for read in (lambda r: kitchen_menu(r, [RESTAURANT], AS_OF), lambda r: priced_items(r, [RESTAURANT], AS_OF)):
            pdt.assert_frame_equal(read(readers["full"]), read(readers["cut"]))
        org = int(_scope(readers["full"]).restaurants["organization_id"].iloc[0])
        rfm = {k: customer_rfm(r, [RESTAURANT], [org], AS_OF, AS_OF, pd.Timestamp.now(tz="UTC").to_pydatetime())
               for k, r in readers.items()}
        assert len(rfm["full"]) > 0
        pdt.assert_frame_equal(rfm["full"], rfm["cut"])
    finally:
        for engine in engines.values():
            engine.dispose()
