"""Test databases on the real PostgreSQL and Redis that scripts/services.sh guarantees.

Settings come from the environment, so the URLs are set here before any project module reads
them. Each session builds its predictions database with ``alembic upgrade head`` and a small
synthetic replica with the generator.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from datetime import date
from pathlib import Path

import pytest

from synthetic import scratch as _scratch

ADMIN_URL = os.environ.get("RMSML_TEST_ADMIN_URL", "postgresql://postgres:postgres@127.0.0.1:5432/postgres")
_BASE = ADMIN_URL.rsplit("/", 1)[0]
# A suffix lets two test sessions share one PostgreSQL server without clobbering each other.
DB_SUFFIX = os.environ.get("RMSML_TEST_DB_SUFFIX", "")
REPLICA_DB = f"rmsml_test_replica{DB_SUFFIX}"
PREDICTIONS_DB = f"rmsml_test_ml{DB_SUFFIX}"
REPLICA_URL = f"{_BASE}/{REPLICA_DB}"
PREDICTIONS_URL = f"{_BASE}/{PREDICTIONS_DB}"
REDIS_URL = os.environ.get("RMSML_TEST_REDIS_URL", "redis://127.0.0.1:6379")

os.environ["RMSML_REPLICA__URL"] = REPLICA_URL
os.environ["RMSML_PREDICTIONS__URL"] = PREDICTIONS_URL
REDIS_DB_BASE = int(os.environ.get("RMSML_TEST_REDIS_DB_BASE", "14"))
os.environ["RMSML_BROKER__URL"] = f"{REDIS_URL}/{REDIS_DB_BASE}"
os.environ["RMSML_BROKER__RESULT_BACKEND"] = f"{REDIS_URL}/{REDIS_DB_BASE + 1}"
os.environ["RMSML_MODEL_STORE__PATH"] = tempfile.mkdtemp(prefix="rmsml-models-")
os.environ.setdefault("RMSML_LOG_LEVEL", "WARNING")

def recreate_database(name: str) -> str:
    return _scratch.recreate_database(name, ADMIN_URL)


def drop_database(name: str) -> None:
    _scratch.drop_database(name, ADMIN_URL)


def use_replica(url: str) -> str:
    """Point the pipeline at another replica database (settings and engines reset); returns the
    URL it pointed at before, to hand back to ``use_replica`` when done."""
    from worker import db
    from worker.settings import get_settings

    previous = os.environ["RMSML_REPLICA__URL"]
    os.environ["RMSML_REPLICA__URL"] = url
    get_settings.cache_clear()
    db.reset_engines()
    return previous


@contextlib.contextmanager
def cleared_run_lock(schedule: str):
    """The Redis run lock (``worker.locks.RunLock``) with ``schedule``'s key removed before and after."""
    from worker.locks import RunLock

    lock = RunLock.from_settings()
    lock.client.delete(lock.key(schedule))
    try:
        yield lock
    finally:
        lock.client.delete(lock.key(schedule))


# The small chain most tests run on: fixed end date, so every session sees the same data.
CHAIN_END = date(2026, 11, 1)
CHAIN = dict(restaurants=4, days=200, seed=7, end=CHAIN_END)


@pytest.fixture(scope="session")
def predictions_url() -> str:
    from worker import db
    from worker.migrations import upgrade

    recreate_database(PREDICTIONS_DB)
    upgrade(PREDICTIONS_URL)
    db.reset_engines()
    return PREDICTIONS_URL


@pytest.fixture(scope="session")
def seeded_replica() -> dict:
    """A synthetic chain in the replica schema; returns the seed summary with its ground truth."""
    from synthetic import ChainConfig, seed_database

    recreate_database(REPLICA_DB)
    return seed_database(REPLICA_URL, ChainConfig(**CHAIN))


def empty_predictions_database() -> None:
    """Every table of the predictions database emptied (schema kept)."""
    from sqlalchemy import text

    from worker import db

    with db.predictions_engine().begin() as conn:
        conn.execute(
            text(
                "TRUNCATE m_l_predictions, ml_run_shard, ml_run, ml_model_registry, "
                "ml_webhook_attempt, ml_webhook_delivery, ml_prediction_history, ml_accuracy, ml_drift_alert, "
                "ml_demand_aggregate_day, ml_demand_daily_aggregate, ml_demand_hourly_aggregate, "
                "ml_demand_item_aggregate, ml_demand_watermark"
            )
        )


@pytest.fixture()
def clean_predictions(predictions_url):
    """An empty predictions database (schema kept) for tests that count rows."""
    empty_predictions_database()
    return predictions_url


@pytest.fixture()
def predictions_engine(predictions_url):
    from worker import db

    return db.predictions_engine()


@pytest.fixture()
def replica_engine(seeded_replica):
    from worker import db

    return db.replica_engine()


@pytest.fixture(scope="session")
def project_root() -> Path:
    return Path(__file__).resolve().parents[1]


@pytest.fixture()
def aggregate_keeper(predictions_engine):
    """The kept demand aggregates, empty before and after the test."""
    from worker.aggregates import AggregateKeeper

    keeper = AggregateKeeper(predictions_engine)
    keeper.forget()
    yield keeper
    keeper.forget()


@pytest.fixture()
def own_chain():
    """A small synthetic chain in a replica of the test's own, which the test may edit:
    ``own_chain(name, restaurants=..., days=..., seed=..., end=...)`` returns (reader, writer engine)."""
    from sqlalchemy import create_engine

    from core.replica import ReplicaReader
    from synthetic import ChainConfig, seed_database
    from worker.db import make_replica_engine, sqlalchemy_url

    made = []

    def make(name: str, **config):
        url = recreate_database(name + DB_SUFFIX)
        seed_database(url, ChainConfig(**config))
        engines = (make_replica_engine(url), create_engine(sqlalchemy_url(url)))
        made.append((name + DB_SUFFIX, engines))
        return ReplicaReader(engines[0]), engines[1]

    yield make
    for name, engines in made:
        for engine in engines:
            engine.dispose()
        drop_database(name)
