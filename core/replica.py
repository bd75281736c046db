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

import re

import pandas as pd
from sqlalchemy import Engine, text

from core.contract import MODULE_OF_TABLE, contract_tables


@dataclass(frozen=True)
class Requirement:
    """A contract table a prediction type needs, optionally with specific columns."""

    table: str
    columns: tuple[str, ...] = ()


class NotAQuery(ValueError):
    """SQL handed to the replica reader that is not exactly one SELECT; it never reached the server."""


# Literals, quoted identifiers and comments: their content may say anything.
_OPAQUE = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|\$(\w*)\$.*?\$\1\$", re.S)
# Words that make a single SELECT more than a read, wherever they stand outside literals:
# data-modifying CTEs (WITH x AS (DELETE ...)), settings changed from a function (set_config), and
# functions that reach beyond the database or other sessions. Statements like COMMIT or SET cannot
# hide inside one SELECT: a second statement is refused by the ";" rule.
_FORBIDDEN = re.compile(
    r"\b(insert|update|delete|merge|truncate|set_config|dblink\w*|lo_\w+|pg_read_\w+|pg_write_\w+|"
    r"pg_terminate_backend|pg_cancel_backend|pg_reload_conf|pg_advisory\w*|nextval|setval)\b",
    re.I,
)


def checked_query(sql: str) -> str:
    """``sql`` if it is exactly one ``SELECT`` (or ``WITH ... SELECT``), else ``NotAQuery``.

    Why, beside the read-only transaction and a SELECT-only role: each of those is a setting that a
    statement, a deployment or a role grant can undo (``COMMIT; SET TRANSACTION READ WRITE; ...``
    created a table through a role that could write). This check stands in the reader itself,
    before anything reaches the server. ``FOR UPDATE``-style locks are refused with the rest.
    """
    bare = _OPAQUE.sub(" ", sql).strip().rstrip(";").strip()
    if ";" in bare:
        raise NotAQuery("the replica reader runs one statement per call; this SQL holds several")
    first = bare.split(None, 1)[0].lower() if bare else ""
    if first not in ("select", "with"):
        raise NotAQuery(f"the replica reader runs SELECT statements only, not {first.upper() or 'an empty statement'}")
    forbidden = _FORBIDDEN.search(bare)
    if forbidden or re.search(r"\bfor\s+(update|share|no\s+key|key)\b", bare, re.I):
        word = forbidden.group(1) if forbidden else "FOR UPDATE/SHARE"
        raise NotAQuery(f"the replica reader runs plain reads only; {word.upper()} is not one")
    return sql


class ReplicaReader:
    def __init__(self, engine: Engine):
        self.engine = engine

    def frame(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run one SELECT (aggregating in SQL) and return its rows as a DataFrame.

        Raises ``NotAQuery`` (before connecting) for anything but one SELECT: see ``checked_query``.
        """
        checked_query(sql)
        with self.engine.connect() as conn:
            result = conn.execute(text(sql), dict(params or {}))
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row of one SELECT (``NotAQuery`` otherwise)."""
        checked_query(sql)
        with self.engine.connect() as conn:
            return conn.execute(text(sql), dict(params or {})).scalar()

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
