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
from sqlalchemy import Engine, text

from core.contract import MODULE_OF_TABLE, contract_tables


@dataclass(frozen=True)
class Requirement:
    """A contract table a prediction type needs, optionally with specific columns."""

    table: str
    columns: tuple[str, ...] = ()


class ReplicaReader:
    def __init__(self, engine: Engine):
        self.engine = engine

    def frame(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run one SELECT (aggregating in SQL) and return its rows as a DataFrame."""
        with self.engine.connect() as conn:
            result = conn.execute(text(sql), dict(params or {}))
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
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
