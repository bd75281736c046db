"""The embedded default: a PostgreSQL server from the ``pgserver`` package, in a local folder.

Same code path as production, only the URLs differ: the demo points the replica and predictions
settings at two databases of this server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPLICA_DB = "rms_replica"
PREDICTIONS_DB = "rms_ml"


def embedded_urls(data_dir: Path) -> tuple[str, str]:
    """Start (or reuse) the embedded server and return (replica URL, predictions URL).

    The server keeps running after this process exits, for the commands that follow (see
    ``embedded_server`` for one that is stopped)."""
    return _urls(_server(data_dir, cleanup_mode=None))


@contextmanager
def embedded_server(data_dir: Path) -> Iterator[tuple[str, str]]:
    """(replica URL, predictions URL) of the embedded server for the length of a ``with`` block.

    A server this block started is stopped when it ends, on an error too, so nothing is left
    running (the demo). One that was already running (another command left it for later ones)
    is left as it was."""
    was_running = bool(server_pids(data_dir))
    server = _server(data_dir, cleanup_mode=None if was_running else "stop")
    try:
        yield _urls(server)
    finally:
        if not was_running:
            server.cleanup()  # pg_ctl stop (fast: open connections are closed), unless another handle holds it


def server_pids(data_dir: Path) -> list[int]:
    """The postmaster of the server in ``data_dir`` and its children, if it runs; else []."""
    import psutil

    try:
        pid = int((Path(data_dir) / "postmaster.pid").read_text().split("\n", 1)[0])
        postmaster = psutil.Process(pid)
        if "postgres" not in postmaster.name():
            return []  # a stale file whose pid now belongs to something else
        return [pid, *(child.pid for child in postmaster.children(recursive=True))]
    except (FileNotFoundError, ValueError, psutil.Error):
        return []


def _server(data_dir: Path, cleanup_mode: str | None):
    import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(data_dir), cleanup_mode=cleanup_mode)
    for name in (REPLICA_DB, PREDICTIONS_DB):
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")
        if "1 row" not in exists:
            server.psql(f"CREATE DATABASE {name};")
    return server


def _urls(server) -> tuple[str, str]:
    return _sqlalchemy(server.get_uri(REPLICA_DB)), _sqlalchemy(server.get_uri(PREDICTIONS_DB))


def _sqlalchemy(uri: str) -> str:
    return uri.replace("postgresql://", "postgresql+psycopg2://", 1)
