"""What the demand readers need from the aggregates kept between nights (issue 28).

The readers (``features.aggregate_cache``) decide which local days they can take from the kept
aggregates and which they read fresh from the replica; the store that keeps them lives in the
predictions database and belongs to the worker (``worker.aggregates``, the tables' one writer).
It reaches the readers handed in through ``Scope.aggregates``, typed by this protocol, so
``features/`` imports nothing from ``worker/`` and never holds a predictions-database engine.
The malformed-row counts kept between nights (``MalformedCounts``, ``worker.malformed_counts``)
reach ``features.quality.count_malformed`` the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import pandas as pd

KINDS = ("daily", "hourly", "items")


class AggregateStore(Protocol):
    """Kept aggregates of complete local days, per restaurant and kind (one of ``KINDS``)."""

    def covered(self, kind: str, restaurant_ids: list[int], first: pd.Timestamp, last: pd.Timestamp) -> pd.DataFrame:
        """Kept days of these restaurants between the local dates ``first`` and ``last`` (inclusive):
        restaurant_id, local_date (naive midnight), zone, order_rows, read_at (UTC)."""
        ...

    def rows(self, kind: str, runs: pd.DataFrame) -> pd.DataFrame:
        """The kept aggregate rows of the days in ``runs`` (restaurant_id, first, last: local dates,
        inclusive), with the columns of the replica's aggregate query for the kind."""
        ...

    def save(self, kind: str, days: pd.DataFrame, rows: pd.DataFrame, read_at: datetime) -> int:
        """Keep ``rows`` as the aggregates of ``days`` (restaurant_id, local_date, zone, order_rows),
        read from the replica at ``read_at``; a day kept from a later read stays. Returns days kept."""
        ...


class MalformedCounts(Protocol):
    """Malformed replica rows stamped before a cutoff, kept per restaurant and table (issue 28;
    ``features.quality.count_malformed`` decides when to trust them)."""

    def kept_counts(self, table: str, restaurant_ids: list[int]) -> pd.DataFrame:
        """Counts kept from this replica: restaurant_id, cutoff (UTC), malformed_before, counted_at (UTC)."""
        ...

    def keep_counts(self, table: str, counts: pd.DataFrame) -> None:
        """Keep ``counts`` (restaurant_id, cutoff, malformed_before, counted_at), replacing the restaurants' last."""
        ...
