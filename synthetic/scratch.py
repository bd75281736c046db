"""Scratch databases for tests and benchmarks, on the server of an admin URL.

The synthetic chain stands in for the RMS, so tests and benchmarks need throwaway databases to
load it into; this is the one place that creates and drops them.
"""

from __future__ import annotations

import os

import psycopg2

from core.pg import libpq_dsn

DEFAULT_ADMIN_URL = "postgresql://postgres:postgres@127.0.0.1:5432/postgres"


def admin_url() -> str:
    """Where to create scratch databases: RMSML_BENCH_ADMIN_URL, RMSML_TEST_ADMIN_URL or localhost."""
    return libpq_dsn(
        os.environ.get("RMSML_BENCH_ADMIN_URL") or os.environ.get("RMSML_TEST_ADMIN_URL") or DEFAULT_ADMIN_URL
    )


def database_url(name: str, admin: str | None = None) -> str:
    """The libpq URL of database ``name`` on the admin URL's server (query string kept)."""
    base, sep, query = (admin or admin_url()).partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + (sep + query if sep else "")


def _execute(sql: str, admin: str | None) -> None:
    conn = psycopg2.connect(admin or admin_url())
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def recreate_database(name: str, admin: str | None = None) -> str:
    """Drop (forcing out connections) and create database ``name``; returns its libpq URL."""
    _execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', admin)
    _execute(f'CREATE DATABASE "{name}"', admin)
    return database_url(name, admin)


def drop_database(name: str, admin: str | None = None) -> None:
    _execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', admin)
