"""Engines for the two databases. The replica engine is read-only by construction.

Three independent guards make a write through the replica engine impossible, not merely absent:
the session starts with ``default_transaction_read_only=on`` (set as a libpq startup option, so it
is in force before any statement runs), SQLAlchemy marks every transaction READ ONLY, and every
statement goes over the extended query protocol (psycopg 3 in pipeline mode), in which the server
itself refuses a string holding more than one statement: ``SELECT 1; COMMIT; ...`` cannot end the
read-only transaction. In production the role should also hold nothing but SELECT (see
docs/replica.md); ``core.replica.ReplicaReader.role_risks`` says when it does not.
"""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Engine, create_engine, event

from worker.settings import get_settings


def sqlalchemy_url(url: str) -> str:
    """Pin the psycopg2 driver (SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def replica_url(url: str) -> str:
    """The replica's URL on psycopg 3, whichever driver it names: psycopg2 has only the simple
    query protocol, which runs every statement of a string."""
    for prefix in ("postgresql+psycopg2://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _one_statement(cursor, statement, parameters, context) -> bool:
    """Send the statement over the extended query protocol (Parse/Bind/Execute), where the server
    refuses more than one statement ("cannot insert multiple commands into a prepared statement").
    psycopg 3 uses the simple protocol for a statement without parameters; its pipeline mode never
    does."""
    with cursor.connection.pipeline():
        cursor.execute(statement, parameters or None)
    return True


def make_replica_engine(url: str, statement_timeout_s: int = 900) -> Engine:
    """An engine on the RMS replica through which no statement can write."""
    engine = create_engine(
        replica_url(url),
        pool_pre_ping=True,
        connect_args={
            "options": (
                "-c default_transaction_read_only=on "
                f"-c statement_timeout={int(statement_timeout_s) * 1000} "
                "-c application_name=rms-ml-reader"
            )
        },
    )

    @event.listens_for(engine, "begin")
    def _read_only_transaction(conn) -> None:  # pragma: no cover - exercised via tests
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")

    event.listen(engine, "do_execute", _one_statement)
    event.listen(engine, "do_execute_no_params", lambda cursor, statement, context: _one_statement(
        cursor, statement, None, context))
    return engine


def make_predictions_engine(url: str) -> Engine:
    return create_engine(
        sqlalchemy_url(url),
        pool_pre_ping=True,
        connect_args={"options": "-c application_name=rms-ml-writer"},
    )


@lru_cache
def replica_engine() -> Engine:
    s = get_settings().replica
    return make_replica_engine(s.url.get_secret_value(), s.statement_timeout_s)


@lru_cache
def predictions_engine() -> Engine:
    return make_predictions_engine(get_settings().predictions.url.get_secret_value())


def reset_engines() -> None:
    """Forget cached engines (after settings change, in tests and the demo)."""
    for cached in (replica_engine, predictions_engine):
        try:
            cached().dispose()
        except Exception:
            pass
        cached.cache_clear()
