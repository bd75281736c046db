"""The replica's reads in the scale bench (issue 28): how long a run spends in them, and how many
rows a second a large read turns into a DataFrame, the old way against the reader's.

``ReadClock``: while open, every ``ReplicaReader.frame``/``scalar`` call in this process is timed
(statement, transfer and frame building: what a unit waits for), so a run's read seconds can be
told from its model seconds; ``bench.scale`` turns them into ``read_s_per_100_restaurants``.

``read_throughput``: one large read (kitchen tickets joined to their lines and stations, the shape
of ``features.kitchen.prep_tickets``, ``--read-rows`` rows) through the same replica engine twice,
alternating, best of ``repeat``: ``before`` hands SQLAlchemy Row objects to pandas (the reader
until issue 28), ``after`` is ``ReplicaReader.frame``. Both include the statement's own time, so
the ratio is what a caller gains, not what the frame building alone gains.
"""

from __future__ import annotations

import time

from bench.scale_common import log

_TICKETS = """
    SELECT k.id AS ticket_id, s.restaurant_id, k.station_id, s.station_type, i.menu_item_id, i.quantity,
           i.has_modifiers::int AS has_modifiers, k.queue_size_at_start AS queue_size,
           k.prep_time_minutes::float8 AS prep_minutes, k.queued_at
    FROM kitchen_orderitemstation k
    JOIN kitchen_station s ON s.id = k.station_id
    JOIN orders_orderitem i ON i.id = k.order_item_id
    WHERE k.status = 'completed'
    LIMIT :n
"""


class ReadClock:
    """Seconds, calls and rows of the replica reads made while open (this process only)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self.rows = 0
        self._saved: dict = {}

    def __enter__(self) -> "ReadClock":
        from core.replica import ReplicaReader

        for name in ("frame", "scalar"):
            original = getattr(ReplicaReader, name)
            self._saved[name] = original
            setattr(ReplicaReader, name, self._timed(original))
        return self

    def _timed(self, original):
        clock = self

        def timed(reader, *args, **kwargs):
            started = time.perf_counter()
            try:
                out = original(reader, *args, **kwargs)
            finally:
                clock.seconds += time.perf_counter() - started
                clock.calls += 1
            clock.rows += len(out) if hasattr(out, "__len__") and not isinstance(out, str) else 1
            return out

        return timed

    def __exit__(self, *exc) -> None:
        from core.replica import ReplicaReader

        for name, original in self._saved.items():
            setattr(ReplicaReader, name, original)

    def figures(self) -> dict:
        return {"s": round(self.seconds, 2), "calls": self.calls, "rows": self.rows}


def _row_objects(engine, n: int) -> int:
    """The reader's frame before issue 28: SQLAlchemy Row objects handed to pandas."""
    import pandas as pd
    from sqlalchemy import text

    with engine.connect() as conn:
        result = conn.execute(text(_TICKETS), {"n": n})
        return len(pd.DataFrame(result.fetchall(), columns=list(result.keys())))


def read_throughput(rows: int, repeat: int = 2) -> dict:
    """Rows per second of one ``rows``-row read, Row objects (``before``) against
    ``ReplicaReader.frame`` (``after``), best of ``repeat`` each, alternating; on this process's
    replica engine (``worker.db.replica_engine``)."""
    from core.replica import ReplicaReader
    from worker import db

    engine = db.replica_engine()
    reader = ReplicaReader(engine)
    best = {"before": float("inf"), "after": float("inf")}
    got = 0
    for _ in range(max(1, repeat)):
        for label, read in (("before", lambda: _row_objects(engine, rows)),
                            ("after", lambda: len(reader.frame(_TICKETS, {"n": rows})))):
            started = time.perf_counter()
            got = read()
            best[label] = min(best[label], time.perf_counter() - started)
    out = {"rows": got, "before": round(got / best["before"]), "after": round(got / best["after"]),
           "before_s": round(best["before"], 2), "after_s": round(best["after"], 2),
           "ratio": round(best["before"] / best["after"], 2)}
    log(f"replica reads of {got} rows: {out['before_s']} s with Row objects, {out['after_s']} s now")
    return out
