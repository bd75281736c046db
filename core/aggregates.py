"""What the demand readers need from the aggregates kept between nights (issue 28).

The readers (``features.aggregate_cache``) decide which local days they can take from the kept
aggregates and which they read fresh from the replica; the store that keeps them lives in the
predictions database and belongs to the worker (``worker.aggregates``, the tables' one writer).
It reaches the readers handed in through ``Scope.aggregates``, typed by this protocol, so
``features/`` imports nothing from ``worker/`` and never holds a predictions-database engine.
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
