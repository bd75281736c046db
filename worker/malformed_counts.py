"""Malformed replica rows counted before a cutoff, kept in the predictions database (issue 28).

``MalformedKeeper`` is the one writer of ``ml_malformed_count`` (docs/architecture.md). The run
loop hands it to ``features.quality.count_malformed`` (typed by ``core.aggregates.MalformedCounts``),
which decides which restaurants' counts to trust and which to count again.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine, text

from core.replica import result_frame


class MalformedKeeper:
    """Reads and writes the kept counts; ``source`` is the replica counted (``worker.aggregates.
    replica_source``): counts kept from another replica are not returned, and are replaced."""

    def __init__(self, engine: Engine, source: str = ""):
        self.engine, self.source = engine, source

    def kept_counts(self, table: str, restaurant_ids: list[int]) -> pd.DataFrame:
        """restaurant_id, cutoff, malformed_before, counted_at of this replica's kept counts."""
        with self.engine.connect() as conn:
            result = conn.execute(text(
                "SELECT restaurant_id, cutoff, malformed_before, counted_at FROM ml_malformed_count "
                "WHERE table_name = :t AND source = :source AND restaurant_id = ANY(:rids)"
            ), {"t": table, "source": self.source, "rids": [int(r) for r in restaurant_ids]})
            return result_frame(result)

    def keep_counts(self, table: str, counts: pd.DataFrame) -> None:
        """Keep restaurant_id, cutoff, malformed_before, counted_at per restaurant (one transaction)."""
        if counts.empty:
            return
        with self.engine.begin() as conn:
            conn.execute(text(
                """
                INSERT INTO ml_malformed_count (restaurant_id, table_name, source, cutoff, malformed_before, counted_at)
                SELECT s.rid, :t, :source, s.cutoff, s.n, s.counted_at
                FROM unnest(CAST(:rids AS bigint[]), CAST(:cutoffs AS timestamptz[]), CAST(:ns AS bigint[]),
                            CAST(:ats AS timestamptz[])) AS s(rid, cutoff, n, counted_at)
                ON CONFLICT (restaurant_id, table_name) DO UPDATE
                    SET source = EXCLUDED.source, cutoff = EXCLUDED.cutoff,
                        malformed_before = EXCLUDED.malformed_before, counted_at = EXCLUDED.counted_at
                """
            ), {"t": table, "source": self.source, "rids": [int(r) for r in counts["restaurant_id"]],
                "cutoffs": [pd.Timestamp(c).to_pydatetime() for c in counts["cutoff"]],
                "ns": [int(n) for n in counts["malformed_before"]],
                "ats": [pd.Timestamp(c).to_pydatetime() for c in counts["counted_at"]]})

    def forget(self, restaurant_ids: list[int] | None = None) -> int:
        """Drop the kept counts of these restaurants (all when None): their next count is a full one."""
        with self.engine.begin() as conn:
            if restaurant_ids is None:
                return int(conn.execute(text("DELETE FROM ml_malformed_count")).rowcount)
            return int(conn.execute(text("DELETE FROM ml_malformed_count WHERE restaurant_id = ANY(:rids)"),
                                    {"rids": [int(r) for r in restaurant_ids]}).rowcount)
