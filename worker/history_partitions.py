"""The monthly partitions of ``ml_prediction_history`` (ranges of ``as_of``, UTC; migration
0004_history_partitions): their names, the catalog queries that find them and their bounds.
Reads only: creating and dropping them is the writer's (``worker.writer.PredictionWriter``:
``ensure_history_partitions``, ``prune_history``), the table's one writer.
"""

from __future__ import annotations

import re
from datetime import datetime

import pandas as pd
from sqlalchemy import Connection, text

HISTORY_MONTHS_AHEAD = 2  # a run makes sure this many months after its own exist
PARTITION_LOCK_KEY = 0x726D736D6C68  # advisory lock: one creator or pruner of partitions at a time
RUN_PARTITIONS_READY = text(
    "SELECT r.as_of, bool_and(to_regclass('ml_prediction_history_p' || to_char(m, 'YYYYMM')) IS NOT NULL) AS ready "
    "FROM ml_run r, generate_series(date_trunc('month', r.as_of AT TIME ZONE 'UTC'), "
    "date_trunc('month', r.as_of AT TIME ZONE 'UTC') + make_interval(months => :ahead), interval '1 month') m "
    "WHERE r.id = :run_id GROUP BY r.as_of"
)
_PARTITIONS = text(
    "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound, i.inhdetachpending "
    "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
    "WHERE i.inhparent = to_regclass('ml_prediction_history') ORDER BY c.relname"
)
PARTITION_EXISTS = text(
    "SELECT EXISTS (SELECT 1 FROM pg_class WHERE relname = :name AND relnamespace = "
    "(SELECT relnamespace FROM pg_class WHERE oid = 'ml_prediction_history'::regclass))"
)
_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


def utc(ts: datetime) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def month_start(ts: datetime) -> pd.Timestamp:
    return utc(ts).normalize().replace(day=1)


def history_partition_name(month: datetime) -> str:
    """The partition holding the history made in ``month`` (UTC): ``ml_prediction_history_pYYYYMM``."""
    return f"ml_prediction_history_p{month_start(month):%Y%m}"


def history_partitions(conn: Connection) -> list[tuple[str, pd.Timestamp | None, bool]]:
    """(name, upper bound, detach pending) of each partition of ``ml_prediction_history``;
    the bound is None for a DEFAULT partition (never dropped by retention)."""
    out = []
    for name, bound, pending in conn.execute(_PARTITIONS):
        m = _BOUND.search(bound or "")
        upper = pd.Timestamp(m.group(2)).tz_convert("UTC") if m and m.group(2) != "MAXVALUE" else None
        out.append((name, upper, bool(pending)))
    return out
