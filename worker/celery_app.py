"""The Celery app: ``celery -A worker.celery_app worker|beat|flower``.

Configuration lives in ``celeryconfig`` (read from settings); tasks live in ``tasks/`` and are
thin wrappers over ``worker.runs`` and ``webhooks``, named here by module (the app must not import
them: tasks sit above the worker).
"""

from __future__ import annotations

from pathlib import Path

from celery import Celery
from celery.signals import setup_logging, worker_process_init

from worker.settings import Settings, get_settings

TASK_MODULES = ["tasks.runs", "tasks.webhooks"]

app = Celery("rmsml", include=TASK_MODULES)
app.config_from_object("celeryconfig")


@setup_logging.connect
def _one_logging_setup(loglevel: str | int | None = None, **_: object) -> None:
    """Workers and beat log as the CLI does (``worker.logs``: RMSML_LOG_FORMAT=json gives one JSON
    line per event), at the level given on their command line (``-l INFO``)."""
    from worker.logs import setup_logging as configure

    configure(level=loglevel or None)


@worker_process_init.connect
def _fresh_engines_per_child(**_: object) -> None:
    """A forked pool child must not reuse the parent's pooled database connections.

    Caches are cleared without ``dispose()``: closing inherited sockets from a child would cut
    the parent's connections too.
    """
    from worker import db

    db.replica_engine.cache_clear()
    db.predictions_engine.cache_clear()


def flower_command(
    settings: Settings | None = None, *, port: int | None = None, address: str = "0.0.0.0"
) -> tuple[list[str], dict[str, str]]:
    """The argv and extra environment that start Flower on this app, behind basic auth from settings.

    Flower 2 answers 401 to API calls unless auth is configured; basic auth is what machine
    clients (curl, the test, an admin script) can use. The credentials go through Flower's
    ``FLOWER_BASIC_AUTH`` variable, not argv, so ``ps`` does not show the password. ``-A`` makes
    Flower load our tasks, which ``/api/task/async-apply/<name>`` needs.
    """
    settings = settings or get_settings()
    flower = settings.flower
    argv = [
        "celery",
        "-A",
        "worker.celery_app",
        "flower",
        f"--port={port or flower.port}",
        f"--address={address}",
        "--persistent=False",
        # answers a caller's argument mistake with 400 and its text, not an empty 500 (flower_api.py)
        f"--conf={Path(__file__).with_name('flower_conf.py')}",
    ]
    return argv, {"FLOWER_BASIC_AUTH": f"{flower.user}:{flower.password.get_secret_value()}"}


celery_app = app
__all__ = ["app", "celery_app", "flower_command"]
