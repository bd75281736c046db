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
