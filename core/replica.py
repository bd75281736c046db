"""The one reader of the RMS replica.

Only ``features/`` writes SQL against the replica, and it runs it through this reader, which holds
a read-only engine (see ``worker.db``). The reader also answers which contract tables and columns
this installation lacks, so that prediction types needing a missing RMS module are skipped with a
message instead of failing mid-run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pandas as pd
import pglast
from pglast import ast as pgast
from pglast.visitors import Visitor
from sqlalchemy import Engine, text
from sqlalchemy.dialects import postgresql

from core.contract import MODULE_OF_TABLE, contract_tables


@dataclass(frozen=True)
class Requirement:
    """A contract table a prediction type needs, optionally with specific columns."""

    table: str
    columns: tuple[str, ...] = ()


class NotAQuery(ValueError):
    """SQL handed to the replica reader that is not exactly one plain read; it never reached the server."""


# Functions a read may call. An allow-list, not a list of bad words: a name is read from
# PostgreSQL's own parse tree (pglast), so quoting ("pg_read_file") or odd literals (E'\'') hide
# nothing, and anything not listed here (server files, other sessions, settings, locks, sleeps,
# dblink, large objects, sequences, functions that run a query given as text, the replica's own
# functions) is refused. The readers in ``features/`` need only these; add a name here when a new
# reader needs another built-in that only computes.
READ_FUNCTIONS = frozenset("""
    count sum avg min max stddev stddev_samp stddev_pop variance var_samp var_pop bool_or bool_and every
    array_agg string_agg json_agg jsonb_agg json_object_agg jsonb_object_agg mode percentile_cont
    percentile_disc corr covar_pop covar_samp regr_slope regr_intercept grouping
    row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
    abs ceil ceiling floor round trunc sign sqrt cbrt exp ln log log10 power pow mod div greatest least
    random width_bucket
    date_trunc date_part extract timezone make_date make_time make_timestamp make_timestamptz make_interval
    age now current_timestamp clock_timestamp statement_timestamp transaction_timestamp to_timestamp to_date
    to_char to_number justify_days justify_hours justify_interval date_bin isfinite overlaps generate_series
    length char_length octet_length lower upper initcap btrim ltrim rtrim trim substring substr position strpos
    replace split_part concat concat_ws format left right lpad rpad md5 starts_with regexp_replace
    regexp_match regexp_matches translate reverse repeat
    unnest array_length array_position array_remove array_append array_cat cardinality array_to_string
    string_to_array generate_subscripts
    coalesce nullif jsonb_build_object json_build_object to_jsonb to_json jsonb_array_elements
    jsonb_each jsonb_object_keys jsonb_typeof
    current_schemas current_database current_setting
""".split())
_CATALOG = "pg_catalog"


class _Inspector(Visitor):
    """Collects the first reason a parsed SELECT is more than a read."""

    def __init__(self) -> None:
        super().__init__()
        self.problem: str | None = None

    def _refuse(self, reason: str) -> None:
        self.problem = self.problem or reason

    def visit_FuncCall(self, ancestors, node) -> None:
        parts = [p.sval.lower() for p in node.funcname]
        name = parts[-1]
        if (len(parts) > 1 and parts[0] != _CATALOG) or len(parts) > 2 or name not in READ_FUNCTIONS:
            self._refuse(f"function {'.'.join(parts)}() is not one the reader allows")

    def visit_SelectStmt(self, ancestors, node) -> None:
        if node.lockingClause:
            self._refuse("FOR UPDATE/SHARE takes row locks")
        if node.intoClause is not None:
            self._refuse("SELECT INTO creates a table")

    def _writes(self, ancestors, node) -> None:
        self._refuse(f"{type(node).__name__.removesuffix('Stmt').upper()} writes (a data-modifying WITH)")

    visit_InsertStmt = visit_UpdateStmt = visit_DeleteStmt = visit_MergeStmt = _writes


_DOLLAR_PARAMS = postgresql.dialect(paramstyle="numeric_dollar")


def _as_sent(sql: str) -> str:
    """The SQL as the server will parse it: SQLAlchemy's ``:name`` binds as ``$n`` parameters
    (inside literals too, as ``text()`` does), ``\\:`` escapes resolved."""
    return str(text(sql).compile(dialect=_DOLLAR_PARAMS))


def checked_query(sql: str) -> str:
    """``sql`` if it is exactly one plain ``SELECT`` (or ``WITH ... SELECT``), else ``NotAQuery``.

    Why, beside the read-only transaction, the extended protocol (``worker.db``) and a SELECT-only
    role: each of those is a setting that a statement, a deployment or a role grant can undo
    (``COMMIT; BEGIN READ WRITE; ...`` created a table through a superuser role). The SQL is parsed
    with PostgreSQL's own parser (pglast: libpg_query), so literals, quoted identifiers and comments
    are read as the server reads them, not guessed at with patterns. Refused before anything reaches
    the server: several statements, anything but SELECT, data-modifying CTEs, SELECT INTO, row
    locks, and any function outside ``READ_FUNCTIONS``.
    """
    try:
        statements = pglast.parse_sql(_as_sent(sql))
    except pglast.parser.ParseError as exc:
        raise NotAQuery(f"the replica reader could not parse this SQL: {exc}") from None
    if len(statements) != 1:
        raise NotAQuery("the replica reader runs one statement per call; this SQL holds "
                        f"{len(statements) or 'no'} statement{'' if len(statements) == 1 else 's'}")
    stmt = statements[0].stmt
    if not isinstance(stmt, pgast.SelectStmt):
        kind = type(stmt).__name__.removesuffix("Stmt").upper()
        raise NotAQuery(f"the replica reader runs SELECT statements only, not {kind}")
    inspector = _Inspector()
    inspector(statements)
    if inspector.problem:
        raise NotAQuery(f"the replica reader runs plain reads only: {inspector.problem}")
    return sql


_ROLE_RISKS = """
    WITH tables AS (
        SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS name
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY (current_schemas(false))
    ), writable AS (
        SELECT name FROM tables WHERE has_table_privilege(oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
    )
    SELECT current_user AS role,
           (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
           (SELECT count(*) FROM writable) AS writable_tables,
           (SELECT min(name) FROM writable) AS example,
           (SELECT string_agg(s, ', ') FROM unnest(current_schemas(false)) s
             WHERE has_schema_privilege(s, 'CREATE')) AS create_schemas,
           (SELECT string_agg(rolname, ', ') FROM pg_roles
             WHERE rolname IN ('pg_write_server_files', 'pg_execute_server_program', 'pg_read_server_files',
                               'pg_signal_backend')
               AND pg_has_role(current_user, oid, 'MEMBER')) AS server_roles
"""


def result_frame(result: Any) -> pd.DataFrame:
    """An executed SQLAlchemy result as a DataFrame built from the driver's own tuples.

    Why not ``result.fetchall()``: pandas turns a list of SQLAlchemy Row objects into tuples one by
    one before the same column inference, which was two thirds of a large read (1 M tickets:
    12.4 s -> 6.3 s, issue 28); columns and dtypes are pandas' as before.
    """
    return pd.DataFrame(result.cursor.fetchall(), columns=list(result.keys()))


class ReplicaReader:
    def __init__(self, engine: Engine):
        self.engine = engine

    def frame(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run one SELECT (aggregating in SQL) and return its rows as a DataFrame.

        Raises ``NotAQuery`` (before connecting) for anything but one SELECT: see ``checked_query``.
        """
        checked_query(sql)
        with self.engine.connect() as conn:
            # the statement went through ``execute`` (the guard, the engine's pipeline and
            # read-only settings); only the fetch skips the Row wrappers (``result_frame``)
            return result_frame(conn.execute(text(sql), dict(params or {})))

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row of one SELECT (``NotAQuery`` otherwise)."""
        checked_query(sql)
        with self.engine.connect() as conn:
            return conn.execute(text(sql), dict(params or {})).scalar()

    def role_risks(self) -> list[str]:
        """What the replica role could do beyond reading, in words; empty for a SELECT-only role.

        The reader's own guards hold on any role, but they are code: a role that can write, or a
        superuser, turns any gap into a write on the RMS's database (or, for a superuser, a shell
        on its host). Said at every run start (run messages, the log, ``worker status``), refused
        with ``RMSML_REPLICA__REFUSE_WRITABLE_ROLE=true``. This fixed query is the reader's own,
        not a caller's, so it goes past the function allow-list.
        """
        with self.engine.connect() as conn:
            row = conn.execute(text(_ROLE_RISKS)).mappings().one()
        if row["superuser"]:
            return [f"role {row['role']} is a superuser (it can write anything, read server files, run programs)"]
        risks = []
        if row["writable_tables"]:
            risks.append(f"role {row['role']} can write {row['writable_tables']} table(s) of the replica "
                         f"(INSERT/UPDATE/DELETE/TRUNCATE, e.g. {row['example']})")
        if row["create_schemas"]:
            risks.append(f"role {row['role']} can create objects in schema(s) {row['create_schemas']}")
        if row["server_roles"]:
            risks.append(f"role {row['role']} is a member of {row['server_roles']}")
        return risks

    @cached_property
    def present_columns(self) -> dict[str, set[str]]:
        """Contract tables present in the replica's search path, with their columns."""
        rows = self.frame(
            """
            SELECT c.table_name, c.column_name
            FROM information_schema.columns c
            WHERE c.table_schema = ANY (current_schemas(false))
              AND c.table_name = ANY (:tables)
            """,
            {"tables": list(contract_tables())},
        )
        present: dict[str, set[str]] = {}
        for table, column in rows.itertuples(index=False):
            present.setdefault(table, set()).add(column)
        return present

    def missing(self, requirements: Iterable[Requirement]) -> list[str]:
        """Human-readable reasons for each unmet requirement; empty when all are met."""
        reasons = []
        for req in requirements:
            cols = self.present_columns.get(req.table)
            if cols is None:
                module = MODULE_OF_TABLE.get(req.table, "unknown")
                reasons.append(f"table {req.table} is missing (RMS module '{module}' not installed)")
                continue
            absent = [c for c in req.columns if c not in cols]
            if absent:
                reasons.append(f"table {req.table} lacks column(s) {', '.join(absent)}")
        return reasons

    def modules(self) -> dict[str, bool]:
        """Which RMS modules are complete in this replica."""
        status: dict[str, bool] = {}
        for table, module in MODULE_OF_TABLE.items():
            status[module] = status.get(module, True) and table in self.present_columns
        return status
