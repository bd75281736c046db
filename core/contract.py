"""The replica contract as data: tables, their columns, and which RMS module owns each table.

Parsed from the project's copy of ``contracts/rms_replica.sql`` so that the reader, the generator
and the tests agree on one definition, and a change to the contract file changes all three.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

CONTRACT_SQL = Path(__file__).resolve().parents[1] / "contracts" / "rms_replica.sql"

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

_CREATE = re.compile(r"CREATE TABLE (\w+) \((.*?)\n\);", re.S)
_COLUMN = re.compile(r"^\s*(\w+)\s+\w", re.M)


@lru_cache
def contract_tables() -> dict[str, tuple[str, ...]]:
    """Table name -> column names in contract order."""
    text = CONTRACT_SQL.read_text()
    tables: dict[str, tuple[str, ...]] = {}
    for name, body in _CREATE.findall(text):
        body = re.sub(r"--[^\n]*", "", body)
        cols = [m.group(1) for m in _COLUMN.finditer(body)]
        tables[name] = tuple(c for c in cols if c.upper() not in {"PRIMARY", "UNIQUE", "CONSTRAINT"})
    return tables
