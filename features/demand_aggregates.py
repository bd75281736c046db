"""The demand types' whole history windows read through the kept aggregates, outside a run.

Why a module of its own: a rebuild (``python -m worker rebuild-aggregates``) reads the same three
windows the demand units read (``features.demand``: daily over ``history_days``, hourly over the
last ``HOURLY_HISTORY_DAYS``; ``features.items``: items over ``ITEM_HISTORY_DAYS``), so the next
night finds them kept; it sits above both reader modules, which import each other one way only.
"""

from __future__ import annotations

from core.replica import ReplicaReader
from core.units import Scope
from features.aggregate_cache import read_through
from features.demand import HOURLY_HISTORY_DAYS, checked_zones, daily_orders_in, hourly_orders_in, local_window
from features.items import ITEM_HISTORY_DAYS, item_daily_units_in


def refill_demand_aggregates(reader: ReplicaReader, scope: Scope, with_items: bool = True) -> dict[str, int]:
    """Read the shard's demand windows as of ``scope.as_of`` through ``scope.aggregates`` (which
    keeps every whole local day read); returns the aggregate rows per kind.

    Args:
        with_items: whether the replica has the order-item and menu tables the item kind reads.
    """
    zones, _ = checked_zones(scope.restaurants)
    history = scope.forecast.history_days
    kinds = [("daily", daily_orders_in, history), ("hourly", hourly_orders_in, min(HOURLY_HISTORY_DAYS, history))]
    if with_items:
        kinds.append(("items", item_daily_units_in, min(ITEM_HISTORY_DAYS, history)))
    out = {}
    for kind, read_in, days in kinds:
        start = local_window(zones, scope.as_of, days)[1]
        out[kind] = len(read_through(kind, read_in, reader, scope, zones, start))
    return out
