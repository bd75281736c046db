"""The replica reader's guard against the second fault drill's strings (issue 25), on a superuser.

The test replica's role is ``postgres``, a superuser: the worst first install. Every string the
drill used to write, run a program, read a server file, kill a session, turn the pooled session's
read-only default off, leave a lock or sleep is refused by the reader (before the server) or by
the server (the extended protocol), and afterwards nothing is left behind: no table, row, file,
lock or killed session, and the pooled session is still read-only.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core.replica import NotAQuery, ReplicaReader
from tests.conftest import ADMIN_URL, DB_SUFFIX, REPLICA_DB, REPLICA_URL

PROGRAM_FILE = Path(tempfile.gettempdir()) / f"rmsml_drill_program{DB_SUFFIX}"
READ_FILE = "/etc/passwd"
ADVISORY_KEY = 250025


def _drill_strings(victim_pid: int) -> dict[str, str]:
    return {
        "E-literal hides a ';' (create, insert)": (
            "SELECT E'\\''; COMMIT; BEGIN READ WRITE; CREATE TABLE ml_drill_sneaky (id int); "
            "INSERT INTO ml_drill_sneaky VALUES (1); COMMIT; SELECT '1'"),
        "E-literal hides a ';' (COPY TO PROGRAM)": (
            f"SELECT E'\\''; COMMIT; BEGIN READ WRITE; COPY (SELECT 1) TO PROGRAM 'touch {PROGRAM_FILE}'; "
            "COMMIT; SELECT '1'"),
        "dollar quote hides a ';'": "SELECT $x$'$x$; COMMIT; BEGIN READ WRITE; CREATE TABLE ml_drill_sneaky (id int)",
        "quoted pg_terminate_backend": f'SELECT "pg_terminate_backend"({victim_pid})',
        "schema-qualified pg_terminate_backend": f"SELECT pg_catalog.pg_terminate_backend({victim_pid})",
        "quoted pg_read_file": f"SELECT \"pg_read_file\"('{READ_FILE}')",
        "quoted dblink_exec": ("SELECT * FROM \"dblink_exec\"('dbname=postgres', "
                               "'CREATE TABLE ml_drill_sneaky (id int)') AS t(x text)"),
        "quoted set_config": "SELECT \"set_config\"('default_transaction_read_only', 'off', false)",
        "quoted pg_advisory_lock": f'SELECT "pg_advisory_lock"({ADVISORY_KEY})',
        "pg_ls_dir": "SELECT pg_ls_dir('.')",
        "pg_sleep": "SELECT pg_sleep(30)",
        "query_to_xml runs a query given as text": "SELECT query_to_xml('SELECT 1', true, true, '')",
        "SELECT INTO creates a table": "SELECT 1 AS id INTO ml_drill_sneaky",
        "data-modifying CTE": "WITH x AS (DELETE FROM restaurants_organization RETURNING 1) SELECT count(*) FROM x",
        "row locks": "SELECT id FROM restaurants_restaurant FOR NO KEY UPDATE",
        "COPY TO PROGRAM alone": f"COPY (SELECT 1) TO PROGRAM 'touch {PROGRAM_FILE}'",
    }


@pytest.fixture()
def victim():
    """Another session on the replica, which a pg_terminate_backend would kill."""
    conn = psycopg2.connect(REPLICA_URL)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


def _left_behind(victim) -> dict:
    with victim.cursor() as cur:
        cur.execute("SELECT to_regclass('public.ml_drill_sneaky') IS NOT NULL, "
                    "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s), "
                    "(SELECT count(*) FROM restaurants_organization)", (ADVISORY_KEY,))
        table, locks, organisations = cur.fetchone()
    return {"table": table, "advisory_locks": locks, "organisations": organisations,
            "program_file": PROGRAM_FILE.exists()}


def test_every_drill_string_is_refused_on_a_superuser_and_nothing_is_left_behind(replica_engine, victim):
    PROGRAM_FILE.unlink(missing_ok=True)
    reader = ReplicaReader(replica_engine)
    assert any("superuser" in r for r in reader.role_risks())
    before = _left_behind(victim)
    with victim.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        victim_pid = cur.fetchone()[0]
    refused = {}
    for name, sql in _drill_strings(victim_pid).items():
        for call in (reader.frame, reader.scalar):
            with pytest.raises((NotAQuery, DBAPIError)) as caught:
                call(sql)
            refused[name] = type(caught.value).__name__
    assert refused and all(kind == "NotAQuery" for kind in refused.values()), refused
    # The victim lives, the pooled sessions are still read-only, nothing was created or locked.
    with victim.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    assert _left_behind(victim) == {**before, "table": False, "advisory_locks": 0, "program_file": False}
    for _ in range(3):
        assert reader.scalar("SELECT current_setting('default_transaction_read_only')") == "on"


def test_the_server_refuses_several_statements_even_past_the_reader(replica_engine, victim):
    """The second layer alone: the drill's first strings sent through the engine itself, past the
    reader's parser. The extended protocol makes the server refuse the string as a whole, so the
    COMMIT never ends the read-only transaction."""
    PROGRAM_FILE.unlink(missing_ok=True)
    strings = _drill_strings(0)
    for name in ("E-literal hides a ';' (create, insert)", "E-literal hides a ';' (COPY TO PROGRAM)"):
        with pytest.raises(DBAPIError, match="multiple commands"):
            with replica_engine.connect() as conn:
                conn.exec_driver_sql(strings[name])
        with pytest.raises(DBAPIError, match="multiple commands"):
            with replica_engine.connect() as conn:
                conn.execute(text(strings[name].replace(":", "\\:")))
    assert _left_behind(victim)["table"] is False
    assert not PROGRAM_FILE.exists()


def test_plain_reads_pass_the_guard(replica_engine):
    reader = ReplicaReader(replica_engine)
    assert reader.scalar("SELECT E'it''s; COMMIT' -- DELETE\n") == "it's; COMMIT"
    frame = reader.frame(
        "SELECT r.id, (now() AT TIME ZONE r.timezone)::date AS local_day, extract(hour FROM now()) AS h, "
        "count(*) OVER (PARTITION BY r.timezone) AS n, "
        "(SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY id) FROM restaurants_restaurant) AS median "
        "FROM restaurants_restaurant r WHERE r.id = ANY(:ids) AND r.name <> '\\:not_a_bind'",
        {"ids": [1, 2]})
    assert len(frame) == 2


def test_a_writable_role_is_reported_and_refused_when_the_setting_says_so(replica_engine):
    from worker.run_start import RunInputError, replica_role_risks
    from worker.settings import Settings

    reader = ReplicaReader(replica_engine)
    risks = replica_role_risks(reader, Settings())
    assert risks and "superuser" in risks[0]
    refusing = Settings(replica={"url": REPLICA_URL, "refuse_writable_role": True})
    with pytest.raises(RunInputError, match="REFUSE_WRITABLE_ROLE"):
        replica_role_risks(reader, refusing)


@pytest.fixture()
def roles(seeded_replica):
    """A SELECT-only role and a role with write grants on one table, as a first install might have."""
    admin = psycopg2.connect(ADMIN_URL.replace("postgresql+psycopg2://", "postgresql://"))
    admin.autocommit = True
    replica_admin = psycopg2.connect(REPLICA_URL)
    replica_admin.autocommit = True
    names = {"reader": "rmsml_test_guard_reader" + DB_SUFFIX, "writer": "rmsml_test_guard_writer" + DB_SUFFIX}
    host = REPLICA_URL.split("@", 1)[1]
    try:
        for role in names.values():
            with admin.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                if cur.fetchone() is None:
                    cur.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'guard'")
                cur.execute(f"GRANT CONNECT ON DATABASE {REPLICA_DB} TO {role}")
            with replica_admin.cursor() as cur:
                cur.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
                cur.execute(f"REVOKE CREATE ON SCHEMA public FROM {role}")
                cur.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        with replica_admin.cursor() as cur:
            cur.execute(f"GRANT INSERT, UPDATE ON restaurants_organization TO {names['writer']}")
        yield {k: f"postgresql://{v}:guard@{host}" for k, v in names.items()}
    finally:
        for role in names.values():
            with replica_admin.cursor() as cur:
                cur.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}")
                cur.execute(f"REVOKE ALL ON SCHEMA public FROM {role}")
            with admin.cursor() as cur:
                cur.execute(f"REVOKE ALL ON DATABASE {REPLICA_DB} FROM {role}")
                cur.execute(f"DROP ROLE IF EXISTS {role}")
        replica_admin.close()
        admin.close()


def test_role_risks_name_write_grants_and_are_empty_for_a_select_only_role(roles):
    from worker.db import make_replica_engine

    for kind, expected in (("reader", []), ("writer", ["can write 1 table(s)"])):
        engine = make_replica_engine(roles[kind])
        try:
            risks = ReplicaReader(engine).role_risks()
        finally:
            engine.dispose()
        assert len(risks) == len(expected) and all(e in r for e, r in zip(expected, risks)), (kind, risks)


def test_status_says_loudly_when_the_replica_role_can_write_and_is_critical_when_refused(roles, clean_predictions,
                                                                                         monkeypatch):
    """``worker status`` checks the replica's role: nothing for a SELECT-only role; a role with write
    grants (or a superuser) is a WARNING naming it (exit 1, in the text output too); with
    RMSML_REPLICA__REFUSE_WRITABLE_ROLE set it is CRITICAL (exit 2: every run will be refused)."""
    from typer.testing import CliRunner

    from worker import db
    from worker.cli import app
    from worker.db import make_replica_engine
    from worker.settings import get_settings
    from worker.status import CRITICAL, WARNING, read_status, replica_role_problems

    predictions = db.predictions_engine()
    for kind in ("reader", "writer"):
        engine = make_replica_engine(roles[kind])
        try:
            found = read_status(predictions, (), replica=engine)
            refused = replica_role_problems(engine, refuse_writable_role=True)
        finally:
            engine.dispose()
        if kind == "reader":
            assert found.replica_role_risks == [] and found.problems == [] and found.code == 0
            assert refused == ([], [])
        else:
            assert found.code == WARNING and len(found.problems) == 1, found.problems
            assert "replica role can write: role rmsml_test_guard_writer" in found.problems[0][1]
            assert "can write 1 table(s)" in found.problems[0][1]
            assert [level for level, _ in refused[1]] == [CRITICAL] and "will be refused" in refused[1][0][1]

    runner = CliRunner()  # the test replica's own role, a superuser, through the command
    shown = runner.invoke(app, ["status", "--schedule", "daily"])
    assert "WARNING: replica role can write: role" in shown.stdout and "superuser" in shown.stdout, shown.stdout
    assert shown.exit_code == 1  # no run yet (a warning) and the role (a warning)
    monkeypatch.setenv("RMSML_REPLICA__REFUSE_WRITABLE_ROLE", "true")
    get_settings.cache_clear()
    try:
        refused_run = runner.invoke(app, ["status", "--json", "--schedule", "daily"])
    finally:
        monkeypatch.delenv("RMSML_REPLICA__REFUSE_WRITABLE_ROLE")
        get_settings.cache_clear()
    assert refused_run.exit_code == 2 and json.loads(refused_run.stdout)["verdict"] == "CRITICAL"
