"""The embedded default: a PostgreSQL server from the ``pgserver`` package, in a local folder.

Same code path as production, only the URLs differ: the demo points the replica and predictions
settings at two databases of this server.
"""

from __future__ import annotations

from pathlib import Path

REPLICA_DB = "rms_replica"
PREDICTIONS_DB = "rms_ml"


def embedded_urls(data_dir: Path) -> tuple[str, str]:
    """Start (or reuse) the embedded server and return (replica URL, predictions URL)."""
    import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(data_dir), cleanup_mode=None)
    for name in (REPLICA_DB, PREDICTIONS_DB):
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")
        if "1 row" not in exists:
            server.psql(f"CREATE DATABASE {name};")
    return _sqlalchemy(server.get_uri(REPLICA_DB)), _sqlalchemy(server.get_uri(PREDICTIONS_DB))


def _sqlalchemy(uri: str) -> str:
    return uri.replace("postgresql://", "postgresql+psycopg2://", 1)
