"""The reader's fast fetch (issue 28) gives the frames the Row-object path gave: same columns,
dtypes and values, on the replica's own tables and on every kind of value a reader returns."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import text

from core.replica import ReplicaReader

# Every type the readers in features/ hand back, NULLs included: ints (with and without NULLs),
# numeric (Decimal), floats, text, booleans, timestamps with and without zone, dates, intervals,
# jsonb and arrays, and a column that is NULL throughout.
_KINDS = """
    SELECT o.id, o.restaurant_id, o.customer_id, o.total, o.total::float8 AS total_f,
           o.status, o.created_at, o.created_at AT TIME ZONE 'UTC' AS created_naive,
           o.created_at::date AS day, (o.created_at - date_trunc('day', o.created_at)) AS since_midnight,
           o.customer_id IS NULL AS anonymous, jsonb_build_object('t', o.total) AS details,
           ARRAY[o.id, o.restaurant_id] AS ids, NULL::int AS nothing,
           CASE WHEN o.id % 3 = 0 THEN NULL ELSE o.status END AS sometimes
    FROM orders_order o
    WHERE o.restaurant_id = ANY(:rids)
    ORDER BY o.id
    LIMIT :n
"""

_TICKETS = """
    SELECT k.id AS ticket_id, s.restaurant_id, k.station_id, s.station_type, i.menu_item_id, i.quantity,
           i.has_modifiers::int AS has_modifiers, k.queue_size_at_start AS queue_size,
           k.prep_time_minutes::float8 AS prep_minutes, k.queued_at, k.completed_at
    FROM kitchen_orderitemstation k
    JOIN kitchen_station s ON s.id = k.station_id
    JOIN orders_orderitem i ON i.id = k.order_item_id
    ORDER BY k.id
    LIMIT :n
"""


def _row_object_frame(engine, sql: str, params: dict) -> pd.DataFrame:
    """The reader's frame before issue 28: SQLAlchemy Row objects handed to pandas."""
    with engine.connect() as conn:
        result = conn.execute(text(sql), params)
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


@pytest.mark.parametrize("sql, params", [
    (_KINDS, {"rids": [1, 2, 3, 4], "n": 5000}),
    (_TICKETS, {"n": 20000}),
    (_KINDS, {"rids": [-1], "n": 10}),  # no rows: the columns are still named
])
def test_fast_frames_equal_row_object_frames(replica_engine, sql, params):
    before = _row_object_frame(replica_engine, sql, params)
    after = ReplicaReader(replica_engine).frame(sql, params)
    assert list(after.columns) == list(before.columns)
    assert after.dtypes.to_dict() == before.dtypes.to_dict()
    pd.testing.assert_frame_equal(after, before, check_exact=True)


def test_kinds_query_covers_the_types_it_names(replica_engine):
    """The comparison above means something only if the values are of those kinds."""
    frame = ReplicaReader(replica_engine).frame(_KINDS, {"rids": [1, 2, 3, 4], "n": 5000})
    assert len(frame) == 5000
    assert str(frame["created_at"].dtype).startswith("datetime64[") and frame["created_at"].dt.tz is not None
    assert frame["created_naive"].dt.tz is None
    assert frame["customer_id"].isna().any() and frame["sometimes"].isna().any()
    assert frame["nothing"].isna().all()
