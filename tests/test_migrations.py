"""Alembic round trip on a scratch database, with our own version table."""

from __future__ import annotations

from sqlalchemy import create_engine as _create_engine, inspect, text

from worker.db import sqlalchemy_url

from tests.conftest import DB_SUFFIX, drop_database, recreate_database
from worker.migrations import alembic_config, downgrade, upgrade

OUR_TABLES = {
    "m_l_predictions", "ml_run", "ml_run_shard", "ml_model_registry", "ml_webhook_delivery", "ml_webhook_attempt",
    "ml_prediction_history", "ml_accuracy", "ml_drift_alert",
    "ml_demand_aggregate_day", "ml_demand_daily_aggregate", "ml_demand_hourly_aggregate", "ml_demand_item_aggregate",
    "ml_demand_watermark",
}


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(alembic_config("unused")).get_heads()
    assert len(heads) == 1, f"migrations must form one line, found heads {heads}"
    return heads[0]


def test_upgrade_downgrade_upgrade():
    url = recreate_database("rmsml_test_migrations" + DB_SUFFIX)
    engine = _create_engine(sqlalchemy_url(url))
    try:
        # An RMS's own alembic_version table in the same database must survive untouched.
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)"))
            conn.execute(text("INSERT INTO alembic_version VALUES ('rms_0042')"))
        upgrade(url)
        tables = set(inspect(engine).get_table_names())
        assert OUR_TABLES <= tables
        assert "ml_alembic_version" in tables
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM ml_alembic_version")).scalar() == head_revision()
        downgrade(url, "base")
        engine.dispose()
        tables = set(inspect(engine).get_table_names())
        assert not (OUR_TABLES & tables)
        upgrade(url)
        engine.dispose()
        assert OUR_TABLES <= set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "rms_0042"
    finally:
        engine.dispose()
        drop_database("rmsml_test_migrations" + DB_SUFFIX)


def test_history_partitioning_keeps_the_rows_both_ways():
    """0004 turns a filled ml_prediction_history into monthly partitions of as_of without losing a
    row, and its downgrade turns them back into one table (issue 28)."""
    url = recreate_database("rmsml_test_migrations_h" + DB_SUFFIX)
    engine = _create_engine(sqlalchemy_url(url))

    def state():
        with engine.connect() as conn:
            kind = conn.execute(text("SELECT relkind FROM pg_class WHERE relname = 'ml_prediction_history'")).scalar()
            rows = conn.execute(text(
                "SELECT run_id::text, as_of, entity_id, target_start, value FROM ml_prediction_history "
                "ORDER BY 1, 3, 4")).all()
            parts = conn.execute(text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'ml_prediction_history'::regclass ORDER BY 1")).scalars().all()
            indexes = {r for (r,) in conn.execute(text(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'ml_prediction_history'"))}
        return kind, rows, parts, indexes

    try:
        upgrade(url, "0003_accuracy")
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO ml_prediction_history (run_id, as_of, prediction_type, entity_id, restaurant_id, "
                "target_start, value, model_name, model_version, method) "
                "SELECT md5(m::text)::uuid, timestamptz '2025-10-15 04:00Z' + make_interval(months => m), "
                "'demand_daily', e, e, timestamptz '2025-10-16 00:00Z' + make_interval(months => m, days => d), "
                "m * 100 + d, 'test', '1', 'model' "
                "FROM generate_series(0, 3) m, generate_series(1, 5) e, generate_series(0, 6) d"))
        kind, before, _, indexes_before = state()
        assert kind == "r" and len(before) == 4 * 5 * 7
        upgrade(url)
        kind, after, parts, indexes = state()
        assert kind == "p" and after == before
        assert {"ml_prediction_history_p202510", "ml_prediction_history_p202601"} <= set(parts)
        assert indexes == indexes_before == {"ml_prediction_history_key", "ml_prediction_history_target",
                                             "ml_prediction_history_as_of"}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM ml_prediction_history_p202511")).scalar() == 35
        downgrade(url, "0003_accuracy")
        kind, back, parts, indexes = state()
        assert kind == "r" and back == before and parts == [] and indexes == indexes_before
        with engine.connect() as conn:
            assert conn.execute(text("SELECT to_regclass('ml_prediction_history_p202511')")).scalar() is None
    finally:
        engine.dispose()
        drop_database("rmsml_test_migrations_h" + DB_SUFFIX)
