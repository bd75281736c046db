"""Alembic round trip on a scratch database, with our own version table."""

from __future__ import annotations

from sqlalchemy import create_engine as _create_engine, inspect, text

from worker.db import sqlalchemy_url

from tests.conftest import DB_SUFFIX, drop_database, recreate_database
from worker.migrations import alembic_config, downgrade, upgrade

OUR_TABLES = {
    "m_l_predictions", "ml_run", "ml_run_shard", "ml_model_registry", "ml_webhook_delivery", "ml_webhook_attempt",
    "ml_prediction_history", "ml_accuracy", "ml_drift_alert",
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
