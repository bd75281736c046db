"""One writer per table, read from the source: every SQL write (INSERT, UPDATE, DELETE, COPY,
TRUNCATE, ALTER, DROP) to a table of the predictions database stands in its owner's module only,
as ``docs/architecture.md`` names it. ``tests/test_layers.py`` walks the imports the same way.

Benches, tests and migrations build and clear scratch databases as they need and are not walked;
the synthetic RMS and the sales import write replica-schema databases of their own, none of the
tables below.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.pure

ROOT = Path(__file__).resolve().parents[1]

# The table -> the one module that writes it (docs/architecture.md, "Rules of the house").
OWNERS = {
    "m_l_predictions": "worker/writer.py",
    "ml_prediction_history": "worker/writer.py",
    "ml_run": "worker/records.py",
    "ml_run_shard": "worker/records.py",
    "ml_model_registry": "worker/records.py",
    "ml_accuracy": "reporting/records.py",
    "ml_drift_alert": "reporting/records.py",
    "ml_webhook_delivery": "webhooks/records.py",
    "ml_webhook_attempt": "webhooks/records.py",
    "ml_demand_aggregate_day": "worker/aggregates.py",
    "ml_demand_daily_aggregate": "worker/aggregates.py",
    "ml_demand_hourly_aggregate": "worker/aggregates.py",
    "ml_demand_item_aggregate": "worker/aggregates.py",
    "ml_demand_watermark": "worker/aggregates.py",
    "ml_malformed_count": "worker/malformed_counts.py",
}
WALKED = ("core", "features", "models", "synthetic", "sales_import", "prediction_types", "webhooks",
          "reporting", "worker", "tasks")
WRITE = re.compile(
    r"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|COPY|TRUNCATE(?:\s+TABLE)?|ALTER\s+TABLE|"
    r"DROP\s+TABLE(?:\s+IF\s+EXISTS)?)\s+([A-Za-z_][A-Za-z0-9_]*)",
    re.IGNORECASE,
)


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def sql_writes(path: Path) -> list[tuple[str, int]]:
    """(table, line) of every write in the string literals of one module (f-string parts
    included, docstrings not)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _docstrings(tree)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            out += [(m.group(1).lower(), node.lineno) for m in WRITE.finditer(node.value)]
    return out


def test_every_table_of_the_predictions_database_has_one_owner():
    created = set()
    for path in (ROOT / "migrations").rglob("*.py"):
        created |= {m.lower() for m in re.findall(r"CREATE TABLE\s+(?:IF NOT EXISTS\s+)?(\w+)", path.read_text())}
    assert created == set(OWNERS), "a table without an owner (or an owner of no table): name it here and in " \
                                   "docs/architecture.md"
    doc = (ROOT / "docs" / "architecture.md").read_text()
    for table, owner in OWNERS.items():
        assert table in doc and owner in doc, f"docs/architecture.md does not name {table}'s writer {owner}"


def test_each_table_is_written_by_its_owner_only():
    strays = []
    for package in WALKED:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for table, line in sql_writes(path):
                if table in OWNERS and OWNERS[table] != rel:
                    strays.append(f"{rel}:{line} writes {table} (owner: {OWNERS[table]})")
    assert not strays, "writes outside the table's owner:\n" + "\n".join(strays)


def test_the_walk_sees_the_owners_writes():
    """The walk is not vacuous: each owner's module shows writes to each of its tables."""
    for owner in set(OWNERS.values()):
        seen = {t for t, _ in sql_writes(ROOT / owner)}
        assert {t for t, o in OWNERS.items() if o == owner} <= seen, owner
