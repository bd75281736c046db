"""How every record the pipeline writes encodes a value for a ``jsonb`` column.

One encoding for the run, shard, registry, delivery and accuracy records alike: timestamps as ISO
8601, numpy scalars as plain numbers, and NaN refused (``allow_nan=False``): PostgreSQL's jsonb
rejects it, and a NaN metric is a bug to surface, not a value to store.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pandas as pd


def _default(obj: Any) -> Any:
    if isinstance(obj, (datetime, pd.Timestamp)):
        return obj.isoformat()
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


ENCODER = json.JSONEncoder(default=_default, allow_nan=False, separators=(",", ":"))
"""The one encoder: ``dumps`` is its ``encode``; the writer encodes large columns with it too."""


def dumps(value: Any) -> str:
    """``value`` as compact JSON text for a ``CAST(:param AS jsonb)``."""
    return ENCODER.encode(value)
