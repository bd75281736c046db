"""The replica is read-only by construction, and the reader reports missing RMS modules."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.conftest import CHAIN, DB_SUFFIX, drop_database, recreate_database
from worker.db import make_replica_engine
from core.replica import ReplicaReader, Requirement


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO restaurants_organization (id, name) VALUES (999999, 'x')",
        "UPDATE restaurants_restaurant SET name = 'x'",
        "DELETE FROM orders_orderitem",
        "CREATE TABLE ml_sneaky (id int)",
    ],
)
def test_write_through_the_reader_engine_fails(replica_engine, statement):
    with pytest.raises(DBAPIError, match="read-only transaction"):
        with replica_engine.begin() as conn:
            conn.execute(text(statement))


def test_read_write_cannot_be_switched_back_on(replica_engine):
    """Even a caller that asks for a read-write transaction cannot write."""
    with pytest.raises(DBAPIError):
        with replica_engine.connect() as conn:
            conn.exec_driver_sql("SET default_transaction_read_only = off")
            conn.exec_driver_sql("INSERT INTO restaurants_organization (id, name) VALUES (999998, 'x')")
            conn.commit()
    with replica_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM restaurants_organization WHERE id >= 999998")).scalar() == 0


def test_reader_reads_and_reports_nothing_missing_on_full_replica(replica_engine):
    reader = ReplicaReader(replica_engine)
    assert reader.scalar("SELECT count(*) FROM restaurants_restaurant") >= CHAIN["restaurants"]
    assert all(reader.modules().values())
    assert reader.missing([Requirement("orders_order", ("created_at", "total"))]) == []


def test_missing_tables_and_columns_are_reported_by_module():
    from synthetic import ChainConfig, seed_database

    name = "rmsml_test_partial" + DB_SUFFIX
    url = recreate_database(name)
    try:
        seed_database(url, ChainConfig(restaurants=2, days=30, seed=3, end=CHAIN["end"], modules=("customers",)))
        engine = make_replica_engine(url)
        reader = ReplicaReader(engine)
        modules = reader.modules()
        assert modules["core"] and modules["customers"]
        assert not modules["inventory"] and not modules["kitchen"]
        reasons = reader.missing(
            [Requirement("inventory_stockmovement"), Requirement("orders_order", ("created_at", "no_such_column"))]
        )
        assert reasons == [
            "table inventory_stockmovement is missing (RMS module 'inventory' not installed)",
            "table orders_order lacks column(s) no_such_column",
        ]
        engine.dispose()
    finally:
        drop_database(name)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; COMMIT; SET TRANSACTION READ WRITE; CREATE TABLE ml_sneaky (id int)",
        "SET TRANSACTION READ WRITE",
        "WITH gone AS (DELETE FROM orders_orderitem RETURNING 1) SELECT count(*) FROM gone",
        "SELECT set_config('transaction_read_only', 'off', true)",
        "SELECT id FROM restaurants_restaurant FOR UPDATE",
        "INSERT INTO restaurants_organization (id, name) VALUES (999997, 'x')",
    ],
)
def test_the_reader_refuses_anything_but_one_select_before_reaching_the_server(sql):
    """The first layer: the reader itself. Its engine points nowhere, so a statement that reached
    the server would fail with a connection error instead of NotAQuery."""
    from sqlalchemy import create_engine

    from core.replica import NotAQuery

    nowhere = ReplicaReader(create_engine("postgresql+psycopg2://nobody@127.0.0.1:1/none"))
    with pytest.raises(NotAQuery):
        nowhere.frame(sql)
    with pytest.raises(NotAQuery):
        nowhere.scalar(sql)


def test_reads_with_literals_that_look_like_writes_pass_the_guard(replica_engine):
    reader = ReplicaReader(replica_engine)
    assert reader.scalar("SELECT 'delete; commit' -- update\n") == "delete; commit"
    assert reader.scalar("WITH n AS (SELECT count(*) AS c FROM restaurants_restaurant) SELECT c FROM n") >= 1


def test_a_select_only_role_cannot_write_even_in_a_read_write_transaction(replica_engine):
    """The second layer, as docs/replica.md recommends: a role holding SELECT only. Reached past the
    reader and the engine's read-only settings (a raw connection that asks for read-write), the
    statements of the fault drill still create nothing."""
    import psycopg2

    from tests.conftest import ADMIN_URL, REPLICA_DB, REPLICA_URL

    role, password = "rmsml_test_select_only" + DB_SUFFIX, "select-only"
    admin = psycopg2.connect(ADMIN_URL.replace("postgresql+psycopg2://", "postgresql://"))
    admin.autocommit = True
    replica_admin = psycopg2.connect(REPLICA_URL)
    replica_admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            if cur.fetchone() is None:
                cur.execute(f"CREATE ROLE {role} LOGIN PASSWORD %s", (password,))
            cur.execute(f"GRANT CONNECT ON DATABASE {REPLICA_DB} TO {role}")
        with replica_admin.cursor() as cur:
            cur.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
            cur.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        host = REPLICA_URL.split("@", 1)[1]
        conn = psycopg2.connect(f"postgresql://{role}:{password}@{host}")
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM restaurants_restaurant")
                assert cur.fetchone()[0] >= 1
                with pytest.raises(psycopg2.Error, match="permission denied"):
                    cur.execute("SELECT 1; COMMIT; SET TRANSACTION READ WRITE; CREATE TABLE ml_sneaky (id int)")
            conn.rollback()
            with conn.cursor() as cur:
                with pytest.raises(psycopg2.Error, match="permission denied"):
                    cur.execute("INSERT INTO restaurants_organization (id, name) VALUES (999996, 'x')")
        finally:
            conn.close()
        with replica_admin.cursor() as cur:
            cur.execute("SELECT to_regclass('public.ml_sneaky') IS NULL, "
                        "(SELECT count(*) FROM restaurants_organization WHERE id = 999996)")
            assert cur.fetchone() == (True, 0)
    finally:
        with replica_admin.cursor() as cur:
            cur.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}")
            cur.execute(f"REVOKE ALL ON SCHEMA public FROM {role}")
        replica_admin.close()
        with admin.cursor() as cur:
            cur.execute(f"REVOKE ALL ON DATABASE {REPLICA_DB} FROM {role}")
            cur.execute(f"DROP ROLE IF EXISTS {role}")
        admin.close()
