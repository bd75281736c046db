"""Bring your own sales: a POS line export (CSV or Parquet) imported into a replica-schema database,
so the pipeline can forecast a real restaurant (docs/import.md).

Stands in for the RMS like ``synthetic`` does: it writes the replica with its own connection; the
pipeline itself still only reads it.
"""

from sales_import.loader import ImportReport, check_timezone, import_sales, stable_id
from sales_import.reader import ROLES, SKIP_REASONS, SalesImportError, read_sales

__all__ = ["ImportReport", "check_timezone", "ROLES", "SKIP_REASONS", "SalesImportError", "import_sales", "read_sales", "stable_id"]
