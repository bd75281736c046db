"""Alembic environment: the URL comes from settings, the version table is our own.

The predictions database may be shared with the RMS (a schema it can read), so our version table
is ``ml_alembic_version`` and never collides with the RMS's own ``alembic_version``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from worker.db import sqlalchemy_url
from worker.settings import get_settings

config = context.config
settings = get_settings()
url = context.get_x_argument(as_dictionary=True).get("url") or config.attributes.get("url")
if not url:
    url = settings.predictions.url.get_secret_value()
version_table = settings.predictions.alembic_version_table


def run_migrations_offline() -> None:
    context.configure(url=sqlalchemy_url(url), version_table=version_table, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, version_table=version_table)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
