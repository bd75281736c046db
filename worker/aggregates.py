"""The demand aggregates kept between nights, in the predictions database (issue 28).

``AggregateKeeper`` is the one writer of ``ml_demand_aggregate_day``, ``ml_demand_daily_aggregate``,
``ml_demand_hourly_aggregate``, ``ml_demand_item_aggregate`` and ``ml_demand_watermark``
(docs/architecture.md). It lives with the worker because it holds the predictions engine; the
readers in ``features/`` reach it handed in as ``Scope.aggregates`` (``core.aggregates.AggregateStore``)
and decide on their own which days to take from it (``features.aggregate_cache``).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import Connection, Engine, make_url, text

from core.replica import result_frame

# kind -> (table, its aggregate columns besides restaurant_id and local_date)
TABLES = {
    "daily": ("ml_demand_daily_aggregate", ("orders", "revenue")),
    "hourly": ("ml_demand_hourly_aggregate", ("hour_start", "local_hour_start", "orders", "one_time", "first_time")),
    "items": ("ml_demand_item_aggregate", ("menu_item_id", "units")),
}
# The writes, spelled out per table (tests/test_table_writers.py reads each owner's writes from its source).
_DAYS = "unnest(CAST(:rids AS bigint[]), CAST(:days AS date[])) AS s(rid, day)"
_DELETE = {
    "daily": f"DELETE FROM ml_demand_daily_aggregate a USING {_DAYS} WHERE a.restaurant_id = s.rid AND a.local_date = s.day",
    "hourly": f"DELETE FROM ml_demand_hourly_aggregate a USING {_DAYS} WHERE a.restaurant_id = s.rid AND a.local_date = s.day",
    "items": f"DELETE FROM ml_demand_item_aggregate a USING {_DAYS} WHERE a.restaurant_id = s.rid AND a.local_date = s.day",
}
_INSERT = {
    "daily": "INSERT INTO ml_demand_daily_aggregate (restaurant_id, local_date, orders, revenue) "
             "SELECT * FROM unnest(CAST(:c0 AS bigint[]), CAST(:c1 AS date[]), CAST(:c2 AS float8[]), "
             "CAST(:c3 AS float8[]))",
    "hourly": "INSERT INTO ml_demand_hourly_aggregate (restaurant_id, local_date, hour_start, local_hour_start, orders, "
              "one_time, first_time) SELECT * FROM unnest(CAST(:c0 AS bigint[]), CAST(:c1 AS date[]), "
              "CAST(:c2 AS timestamptz[]), CAST(:c3 AS timestamp[]), CAST(:c4 AS float8[]), CAST(:c5 AS boolean[]), "
              "CAST(:c6 AS text[]))",
    "items": "INSERT INTO ml_demand_item_aggregate (restaurant_id, local_date, menu_item_id, units) "
             "SELECT * FROM unnest(CAST(:c0 AS bigint[]), CAST(:c1 AS date[]), CAST(:c2 AS bigint[]), "
             "CAST(:c3 AS float8[]))",
}
_FORGET = (
    "DELETE FROM ml_demand_aggregate_day WHERE restaurant_id = ANY(:rids)",
    "DELETE FROM ml_demand_daily_aggregate WHERE restaurant_id = ANY(:rids)",
    "DELETE FROM ml_demand_hourly_aggregate WHERE restaurant_id = ANY(:rids)",
    "DELETE FROM ml_demand_item_aggregate WHERE restaurant_id = ANY(:rids)",
    "DELETE FROM ml_demand_watermark WHERE restaurant_id = ANY(:rids)",
)
_FORGET_ALL = ("TRUNCATE ml_demand_aggregate_day, ml_demand_daily_aggregate, ml_demand_hourly_aggregate, "
               "ml_demand_item_aggregate, ml_demand_watermark")


def _dates(values) -> list:
    return [pd.Timestamp(v).date() for v in values]


def _pylist(series: pd.Series) -> list:
    if isinstance(series.dtype, pd.DatetimeTZDtype) or str(series.dtype).startswith("datetime64"):
        return [pd.Timestamp(v).to_pydatetime() for v in series]
    return series.tolist()


def replica_source(url: str) -> str:
    """The replica's identity kept beside each day (host, port, database; no role or password)."""
    u = make_url(url)
    return f"{u.host or ''}:{u.port or 5432}/{u.database or ''}"


class AggregateKeeper:
    """Reads and writes the kept aggregates; every write is one transaction.

    ``source``: the replica the aggregates are read from (``replica_source``); days kept from
    another replica are not returned as covered, and are replaced when read again.
    """

    def __init__(self, engine: Engine, source: str = ""):
        self.engine, self.source = engine, source

    def covered(self, kind: str, restaurant_ids: list[int], first: pd.Timestamp, last: pd.Timestamp) -> pd.DataFrame:
        """Kept days between the local dates ``first`` and ``last`` (inclusive): restaurant_id,
        local_date, zone, order_rows, read_at (see ``core.aggregates.AggregateStore``)."""
        with self.engine.connect() as conn:
            result = conn.execute(text(
                "SELECT restaurant_id, local_date, zone, order_rows, read_at FROM ml_demand_aggregate_day "
                "WHERE kind = :kind AND source = :source AND restaurant_id = ANY(:rids) "
                "AND local_date BETWEEN :first AND :last"
            ), {"kind": kind, "source": self.source, "rids": [int(r) for r in restaurant_ids], "first": pd.Timestamp(first).date(),
                "last": pd.Timestamp(last).date()})
            return result_frame(result)

    def rows(self, kind: str, runs: pd.DataFrame) -> pd.DataFrame:
        """The kept rows of the day runs (restaurant_id, first, last), with restaurant_id and local_date."""
        table, columns = TABLES[kind]
        with self.engine.connect() as conn:
            result = conn.execute(text(
                f"""
                SELECT a.restaurant_id, a.local_date, {', '.join('a.' + c for c in columns)}
                FROM {table} a
                JOIN unnest(CAST(:rids AS bigint[]), CAST(:firsts AS date[]), CAST(:lasts AS date[])) AS r(rid, f, l)
                  ON a.restaurant_id = r.rid AND a.local_date BETWEEN r.f AND r.l
                """
            ), {"rids": [int(r) for r in runs["restaurant_id"]], "firsts": _dates(runs["first"]),
                "lasts": _dates(runs["last"])})
            return result_frame(result)

    def save(self, kind: str, days: pd.DataFrame, rows: pd.DataFrame, read_at: datetime) -> int:
        """Keep ``rows`` as the aggregates of ``days`` (restaurant_id, local_date, zone, order_rows),
        read at ``read_at``. A day already kept from a later read keeps its rows (a replay started
        before tonight's run and finishing after it must not put back what it saw). Returns the
        days written."""
        with self.engine.begin() as conn:
            taken = conn.execute(text(
                """
                INSERT INTO ml_demand_aggregate_day AS d (restaurant_id, kind, local_date, source, zone, order_rows,
                                                          read_at)
                SELECT s.rid, :kind, s.day, :source, s.zone, s.n, :read_at
                FROM unnest(CAST(:rids AS bigint[]), CAST(:days AS date[]), CAST(:zones AS text[]),
                            CAST(:ns AS bigint[])) AS s(rid, day, zone, n)
                ON CONFLICT (restaurant_id, kind, local_date) DO UPDATE
                    SET source = EXCLUDED.source, zone = EXCLUDED.zone, order_rows = EXCLUDED.order_rows,
                        read_at = EXCLUDED.read_at
                    WHERE d.read_at <= EXCLUDED.read_at OR d.source <> EXCLUDED.source
                RETURNING restaurant_id, local_date
                """
            ), {"kind": kind, "source": self.source, "read_at": read_at, "rids": [int(r) for r in days["restaurant_id"]],
                "days": _dates(days["local_date"]), "zones": [str(z) for z in days["zone"]],
                "ns": [int(n) for n in days["order_rows"]]}).all()
            if not taken:
                return 0
            got = pd.DataFrame(taken, columns=["restaurant_id", "local_date"])
            params = {"rids": got["restaurant_id"].astype(int).tolist(), "days": list(got["local_date"])}
            conn.execute(text(_DELETE[kind]), params)
            self._insert_rows(conn, kind, got, rows)
            conn.execute(text(
                """
                INSERT INTO ml_demand_watermark AS w (restaurant_id, kind, through, updated_at)
                SELECT s.rid, :kind, max(s.day), now()
                FROM unnest(CAST(:rids AS bigint[]), CAST(:days AS date[])) AS s(rid, day) GROUP BY s.rid
                ON CONFLICT (restaurant_id, kind) DO UPDATE
                    SET through = greatest(w.through, EXCLUDED.through), updated_at = now()
                """
            ), {"kind": kind, **params})
        return len(got)

    def _insert_rows(self, conn: Connection, kind: str, taken: pd.DataFrame, rows: pd.DataFrame) -> None:
        """Insert the rows of the days ``taken`` (the others stay as a later read kept them)."""
        columns = TABLES[kind][1]
        if rows.empty:
            return
        rows = rows.assign(local_date=pd.to_datetime(rows["local_date"]).dt.date,
                           restaurant_id=rows["restaurant_id"].astype("int64"))
        keep = pd.MultiIndex.from_frame(rows[["restaurant_id", "local_date"]]).isin(
            pd.MultiIndex.from_arrays([taken["restaurant_id"].astype("int64"), taken["local_date"]]))
        rows = rows[keep]
        if rows.empty:
            return
        names = ("restaurant_id", "local_date") + columns
        conn.execute(text(_INSERT[kind]), {f"c{i}": _pylist(rows[c]) for i, c in enumerate(names)})

    def forget(self, restaurant_ids: list[int] | None = None) -> int:
        """Drop the kept aggregates of these restaurants (all when None): their next read is a full
        one, and keeps what it read. Returns the kept days dropped."""
        with self.engine.begin() as conn:
            if restaurant_ids is None:
                n = conn.execute(text("SELECT count(*) FROM ml_demand_aggregate_day")).scalar()
                conn.execute(text(_FORGET_ALL))
                return int(n)
            rids = {"rids": [int(r) for r in restaurant_ids]}
            n = conn.execute(text(_FORGET[0]), rids).rowcount
            for sql in _FORGET[1:]:
                conn.execute(text(sql), rids)
            return int(n)

    def watermarks(self) -> pd.DataFrame:
        """restaurant_id, kind, through (last kept local day), updated_at, days (kept days)."""
        with self.engine.connect() as conn:
            result = conn.execute(text(
                "SELECT w.restaurant_id, w.kind, w.through, w.updated_at, "
                "(SELECT count(*) FROM ml_demand_aggregate_day d WHERE d.restaurant_id = w.restaurant_id "
                "AND d.kind = w.kind) AS days FROM ml_demand_watermark w ORDER BY 1, 2"
            ))
            return result_frame(result)
