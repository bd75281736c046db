"""The replica contract as data: tables, columns, types, foreign keys, and which RMS module owns each.

Parsed from the project's copy of ``contracts/rms_replica.sql``, the single source of truth for
table names, column order, types and references: the reader, the generator, the importer and the
tests share this one parser, so a change to the contract file changes all of them at once instead
of drifting apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

CONTRACT_SQL = Path(__file__).resolve().parents[1] / "contracts" / "rms_replica.sql"

MODULES = ("kitchen", "inventory", "customers", "payments")

# Which optional RMS module provides a table; "core" tables every installation has.
MODULE_OF_TABLE: dict[str, str] = {
    "restaurants_organization": "core",
    "restaurants_restaurant": "core",
    "menu_menuitem": "core",
    "orders_order": "core",
    "orders_orderitem": "core",
    "customers_customerprofile": "customers",
    "kitchen_station": "kitchen",
    "kitchen_orderitemstation": "kitchen",
    "payments_payment": "payments",
    "inventory_supplier": "inventory",
    "inventory_inventoryitem": "inventory",
    "menu_recipeingredient": "inventory",
    "inventory_purchaseorder": "inventory",
    "inventory_purchaseorderline": "inventory",
    "inventory_batch": "inventory",
    "inventory_stockmovement": "inventory",
}


def module_of(table: str) -> str:
    """The module whose absence lets a database leave the table out: 'core' when every installation has it."""
    # customers_customerprofile can only be left out with its references: orders_order.customer_id
    # points at it, so a database is built with it whether or not the customers module is there.
    if table == "customers_customerprofile":
        return "core"
    return MODULE_OF_TABLE.get(table, "core")


@dataclass(frozen=True)
class ColumnDef:
    name: str
    pgtype: str  # normalised: bigint, integer, boolean, date, timestamptz, text, char, numeric
    scale: int = 0  # numeric scale (digits after the point)
    not_null: bool = False


@dataclass
class TableDef:
    name: str
    columns: list[ColumnDef]
    references: set[str] = field(default_factory=set)
    create_sql: str = ""
    index_sql: list[str] = field(default_factory=list)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def module(self) -> str:
        return module_of(self.name)


_CREATE_TABLE = re.compile(r"^\s*CREATE\s+TABLE\s+(\w+)\s*\((.*)\)\s*$", re.S | re.I)
_CREATE_INDEX = re.compile(r"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+\w+\s+ON\s+(\w+)", re.I)
_REFERENCES = re.compile(r"REFERENCES\s+(\w+)", re.I)
_NUMERIC = re.compile(r"numeric\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)", re.I)


def split_statements(sql: str) -> list[str]:
    """SQL statements of the contract, comments removed (the contract has no ';' in strings)."""
    no_comments = re.sub(r"--[^\n]*", "", sql)
    return [s.strip() for s in no_comments.split(";") if s.strip()]


def _split_columns(body: str) -> list[str]:
    """Split a CREATE TABLE body on top-level commas (numeric(10, 2) has a comma inside)."""
    parts, depth, cur = [], 0, []
    for ch in body:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _column(defn: str) -> ColumnDef | None:
    words = defn.split()
    if words[0].upper() in {"PRIMARY", "UNIQUE", "CONSTRAINT", "FOREIGN", "CHECK"}:
        return None
    name, rest = words[0], " ".join(words[1:])
    low = rest.lower()
    scale = 0
    if low.startswith("bigint"):
        pgtype = "bigint"
    elif low.startswith("integer") or low.startswith("int "):
        pgtype = "integer"
    elif low.startswith("boolean"):
        pgtype = "boolean"
    elif low.startswith("timestamptz") or low.startswith("timestamp with time zone"):
        pgtype = "timestamptz"
    elif low.startswith("date"):
        pgtype = "date"
    elif low.startswith("char"):
        pgtype = "char"
    elif low.startswith("text") or low.startswith("varchar"):
        pgtype = "text"
    elif low.startswith("numeric"):
        pgtype = "numeric"
        m = _NUMERIC.match(low)
        scale = int(m.group(2)) if m else 4
    else:
        raise ValueError(f"unsupported column type in contract: {defn!r}")
    not_null = "not null" in low or "primary key" in low
    return ColumnDef(name, pgtype, scale, not_null)


@lru_cache
def contract() -> dict[str, TableDef]:
    """Contract tables in file order (which is also a valid dependency order)."""
    tables: dict[str, TableDef] = {}
    for stmt in split_statements(CONTRACT_SQL.read_text()):
        m = _CREATE_TABLE.match(stmt)
        if m:
            name, body = m.group(1), m.group(2)
            cols = [c for c in (_column(d) for d in _split_columns(body)) if c is not None]
            refs = set(_REFERENCES.findall(body)) - {name}
            tables[name] = TableDef(name, cols, refs, stmt)
            continue
        m = _CREATE_INDEX.match(stmt)
        if m:
            tables[m.group(1)].index_sql.append(stmt)
            continue
        raise ValueError(f"unexpected statement in contract: {stmt[:80]!r}")
    return tables


def tables_for(modules: tuple[str, ...] | list[str]) -> list[str]:
    """Contract tables an installation with these modules has, parents before children."""
    wanted = [t for t, d in contract().items() if d.module == "core" or d.module in modules]
    return dependency_order(wanted)


def dependency_order(names: list[str]) -> list[str]:
    """Topological order by REFERENCES, stable on contract order (fails on a cycle)."""
    defs = contract()
    remaining = list(names)
    done: list[str] = []
    while remaining:
        ready = [t for t in remaining if not (defs[t].references & set(remaining))]
        if not ready:
            raise ValueError(f"reference cycle among {remaining}")
        done.extend(ready)
        remaining = [t for t in remaining if t not in ready]
    return done


@lru_cache
def contract_tables() -> dict[str, tuple[str, ...]]:
    """Table name -> column names in contract order."""
    return {name: tuple(d.column_names) for name, d in contract().items()}
