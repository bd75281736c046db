"""The restaurants a run covers, with the local-time facts every other feature depends on."""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import available_timezones

import pandas as pd

from core.replica import ReplicaReader

_ZONES = frozenset(available_timezones())


@dataclass
class RestaurantSet:
    """Restaurants usable by a run, and those rejected with the reason why."""

    restaurants: pd.DataFrame
    rejected: dict[int, str] = field(default_factory=dict)
    unknown_ids: list[int] = field(default_factory=list)


def load_restaurants(reader: ReplicaReader, restaurant_ids: list[int] | None = None) -> RestaurantSet:
    """Active restaurants (or exactly ``restaurant_ids``), rejecting those with an unknown timezone.

    A restaurant whose timezone is not an IANA name cannot have its hours or days bucketed, so it
    is rejected (counted as a malformed ``restaurants_restaurant`` row) and the rest go on.
    """
    frame = reader.frame(
        """
        SELECT id, organization_id, timezone, country_code, opened_on, is_active
        FROM restaurants_restaurant
        WHERE (CAST(:ids AS bigint[]) IS NULL AND is_active) OR id = ANY(CAST(:ids AS bigint[]))
        ORDER BY id
        """,
        {"ids": restaurant_ids},
    )
    unknown = sorted(set(restaurant_ids or []) - set(frame["id"].astype(int)))
    rejected: dict[int, str] = {}
    for row in frame.itertuples(index=False):
        if row.timezone is None or row.timezone not in _ZONES:
            rejected[int(row.id)] = f"restaurant {row.id}: unknown timezone {row.timezone!r}"
    good = frame[~frame["id"].isin(list(rejected))].copy()
    good["id"] = good["id"].astype("int64")
    good["country_code"] = good["country_code"].fillna("").str.strip().str.upper()
    return RestaurantSet(good.reset_index(drop=True), rejected, unknown)


def inactive_restaurant_ids(reader: ReplicaReader) -> list[int]:
    """Restaurants the RMS marks inactive: closed for good, so their predictions must go."""
    frame = reader.frame("SELECT id FROM restaurants_restaurant WHERE NOT is_active ORDER BY id")
    return [int(i) for i in frame["id"]]


def first_order_at(reader: ReplicaReader, restaurant_ids: list[int]) -> pd.Timestamp | None:
    """The earliest order of these restaurants (UTC), None when they have none.

    One index probe per restaurant (``orders_order (restaurant_id, created_at)``), not a scan: a
    run started with an as-of before it has nothing to learn from, a user's mistake said plainly
    rather than an error deep in a model.
    """
    first = reader.scalar(
        """
        SELECT min(f.created_at) FROM unnest(CAST(:rids AS bigint[])) AS r(id)
        CROSS JOIN LATERAL (SELECT o.created_at FROM orders_order o WHERE o.restaurant_id = r.id
                            ORDER BY o.created_at LIMIT 1) f
        """,
        {"rids": [int(i) for i in restaurant_ids]},
    )
    return None if first is None else pd.Timestamp(first).tz_convert("UTC")
