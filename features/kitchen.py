"""Kitchen tickets and prep-time summaries, read from ``kitchen_orderitemstation``.

A ticket is one order line at one station. Only completed tickets with a recorded prep time
(``completed_at - started_at``, minutes) teach anything; queued, in-progress and cancelled ones
are ignored, malformed ones (``features.quality``: negative prep time or queue size, future
timestamps) are filtered and counted by the run loop.

Local hour and weekday come from the restaurant's IANA zone, in SQL, like every other feature.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from core.replica import ReplicaReader
from core.units import Scope
from features.quality import AS_OF_FILTER, valid

TICKET_HISTORY_DAYS = 90  # rows for the model: one quarter of tickets is plenty and keeps memory bounded
# ...and at most this many x the shard's restaurants, the shard's newest (one cut across the
# shard, so a busier kitchen keeps more than a quieter one). A busy kitchen's quarter is ~27k
# tickets; its newest 10k, about a month, gave the same held-out MAE, 0.570 vs 0.569 minutes,
# item values within 0.7 % on average, in a third of the read and fit time: issue 19).
TICKETS_PER_RESTAURANT = 10_000
MEDIAN_HISTORY_DAYS = 365  # medians (the fallbacks) look further back: a rarely sold item still has one

_COMPLETED = (
    "k.status = 'completed' AND k.prep_time_minutes IS NOT NULL "
    f"AND {valid('kitchen_orderitemstation', 'k')} AND {valid('orders_orderitem', 'i')}"
)
# One ticket's columns and where they come from: prep_tickets and recent_prep_tickets read the same.
_TICKETS_FROM = f"""
        SELECT k.id AS ticket_id, s.restaurant_id, k.station_id, s.station_type, i.menu_item_id,
               i.quantity, i.has_modifiers::int AS has_modifiers, k.queue_size_at_start AS queue_size,
               extract(hour FROM k.queued_at AT TIME ZONE r.timezone)::int AS local_hour,
               (extract(isodow FROM k.queued_at AT TIME ZONE r.timezone)::int - 1) AS local_dow,
               k.prep_time_minutes::float8 AS prep_minutes, k.queued_at
        FROM kitchen_orderitemstation k
        JOIN kitchen_station s ON s.id = k.station_id
        JOIN orders_orderitem i ON i.id = k.order_item_id
        JOIN restaurants_restaurant r ON r.id = s.restaurant_id
        WHERE s.restaurant_id = ANY(:rids) AND k.queued_at >= :start AND k.queued_at < :end AND {_COMPLETED}
"""
TICKET_COLUMNS = ("ticket_id", "restaurant_id", "station_id", "station_type", "menu_item_id", "quantity",
                  "has_modifiers", "queue_size", "local_hour", "local_dow", "prep_minutes", "queued_at")


def prep_tickets(
    reader: ReplicaReader,
    restaurant_ids: list[int],
    start: datetime,
    end: datetime,
    valid_until: datetime,
    limit: int | None = None,
) -> pd.DataFrame:
    """Completed tickets queued in [start, end) (UTC instants) at the restaurants' stations; with
    ``limit``, only the newest ``limit`` of them (cut in SQL: the rest never leave the replica).

    Returns columns ticket_id, restaurant_id, station_id, station_type, menu_item_id, quantity
    (units on the line), has_modifiers (0/1), queue_size (tickets ahead when queued; NaN if
    unknown), local_hour (0-23), local_dow (0 = Monday), prep_minutes, queued_at (UTC).
    """
    newest = "k.queued_at DESC, k.id DESC LIMIT :limit" if limit else "k.queued_at, k.id"
    frame = reader.frame(
        f"SELECT * FROM ({_TICKETS_FROM} ORDER BY {newest}) t ORDER BY queued_at, ticket_id",
        {"rids": [int(i) for i in restaurant_ids], "start": start, "end": end, "valid_until": valid_until,
         "limit": int(limit) if limit else None},
    )
    return _typed_tickets(frame)


def _typed_tickets(frame: pd.DataFrame) -> pd.DataFrame:
    """The ticket columns in the dtypes the model and the glue expect, whichever read they came from."""
    for col in ("ticket_id", "restaurant_id", "station_id", "menu_item_id", "local_hour", "local_dow"):
        frame[col] = frame[col].astype("int64")
    for col in ("quantity", "has_modifiers", "queue_size", "prep_minutes"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    frame["queued_at"] = pd.to_datetime(frame["queued_at"], utc=True)
    frame["station_type"] = frame["station_type"].astype(str)
    return frame


@dataclass
class RecentTickets:
    """What a night that reuses the prep-time model needs of the tickets, without reading them all.

    The full read (``prep_tickets``, up to 10,000 tickets per restaurant) feeds the fit; predicting
    with a fitted model needs only each item's newest tickets (its recent hours and weekdays) and
    enough of a summary to know the full read would have led to the same model being reused: how
    many tickets the window holds, how many of them could be "left unbumped" (only a ticket longer
    than ``min_minutes`` can be, see ``features.kitchen_frames.left_unbumped``), and which station
    types they cover. At 100 restaurants x 730 days the full read was the warm night's largest unit
    (75 s), for a model it did not refit (issue 28).
    """

    tickets: pd.DataFrame  # each item's newest ``per_item`` tickets of the window, oldest first (prep_tickets columns)
    per_item: int
    window_tickets: int  # tickets the full read would return
    over_minutes: int  # of those, tickets longer than min_minutes (the only ones that can be unbumped)
    station_types: set[str]  # every station type among those tickets
    station_types_sure: bool  # each of them has a ticket at or under min_minutes (survives the unbumped filter)


def recent_prep_tickets(
    reader: ReplicaReader,
    restaurant_ids: list[int],
    start: datetime,
    end: datetime,
    valid_until: datetime,
    limit: int | None,
    per_item: int,
    min_minutes: float,
) -> RecentTickets:
    """Each menu item's newest ``per_item`` tickets among those ``prep_tickets`` would return with
    the same arguments (window [start, end) in UTC instants, the newest ``limit`` of them), with the
    summary ``RecentTickets`` describes; ``min_minutes`` (minutes) is the unbumped filter's floor.
    One statement: the window is cut, ranked and summarised in SQL; only the newest rows per item
    (and one per station type) leave the replica.
    """
    frame = reader.frame(
        f"""
        WITH capped AS ({_TICKETS_FROM} ORDER BY k.queued_at DESC, k.id DESC LIMIT :limit),
        marked AS (
            SELECT c.*,
                   row_number() OVER (PARTITION BY menu_item_id ORDER BY queued_at DESC, ticket_id DESC) AS item_rank,
                   row_number() OVER (PARTITION BY station_type ORDER BY queued_at DESC, ticket_id DESC) AS type_rank,
                   bool_or(prep_minutes <= :min_minutes) OVER (PARTITION BY station_type) AS type_sure,
                   count(*) OVER () AS window_tickets,
                   sum((prep_minutes > :min_minutes)::int) OVER () AS over_minutes
            FROM capped c
        )
        SELECT * FROM marked WHERE item_rank <= :per_item OR type_rank = 1 ORDER BY queued_at, ticket_id
        """,
        {"rids": [int(i) for i in restaurant_ids], "start": start, "end": end, "valid_until": valid_until,
         "limit": int(limit) if limit else None, "per_item": int(per_item), "min_minutes": float(min_minutes)},
    )
    window = int(frame["window_tickets"].iloc[0]) if len(frame) else 0
    over = int(frame["over_minutes"].iloc[0]) if len(frame) else 0
    sure = bool(frame["type_sure"].astype(bool).all())
    recent = frame[frame["item_rank"] <= per_item]
    tickets = _typed_tickets(recent[list(TICKET_COLUMNS)].reset_index(drop=True))
    types = set(_typed_tickets(frame[list(TICKET_COLUMNS)].copy())["station_type"])
    return RecentTickets(tickets=tickets, per_item=int(per_item), window_tickets=window, over_minutes=over,
                         station_types=types, station_types_sure=sure)


def prep_medians(
    reader: ReplicaReader,
    restaurant_ids: list[int],
    start: datetime,
    end: datetime,
    valid_until: datetime,
) -> pd.DataFrame:
    """Median prep minutes of one unit per (menu item, station) and per station, in SQL.

    Single-unit lines only, so a median is "minutes for one unit" whatever the order sizes were.
    Returns columns level ('item' or 'station'), menu_item_id (NaN for station rows), station_id,
    tickets (count), median_minutes.
    """
    frame = reader.frame(
        f"""
        SELECT CASE WHEN grouping(i.menu_item_id) = 0 THEN 'item' ELSE 'station' END AS level,
               i.menu_item_id, k.station_id, count(*) AS tickets,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY k.prep_time_minutes)::float8 AS median_minutes
        FROM kitchen_orderitemstation k
        JOIN kitchen_station s ON s.id = k.station_id
        JOIN orders_orderitem i ON i.id = k.order_item_id
        WHERE s.restaurant_id = ANY(:rids) AND k.queued_at >= :start AND k.queued_at < :end
          AND i.quantity = 1 AND {_COMPLETED}
        GROUP BY GROUPING SETS ((i.menu_item_id, k.station_id), (k.station_id))
        """,
        {"rids": [int(i) for i in restaurant_ids], "start": start, "end": end, "valid_until": valid_until},
    )
    frame["station_id"] = frame["station_id"].astype("int64")
    frame["menu_item_id"] = pd.to_numeric(frame["menu_item_id"]).astype("float64")
    frame["tickets"] = frame["tickets"].astype("int64")
    frame["median_minutes"] = frame["median_minutes"].astype("float64")
    return frame


def kitchen_menu(reader: ReplicaReader, restaurant_ids: list[int], as_of: datetime | None = None) -> pd.DataFrame:
    """Every menu item of the restaurants (on the menu before ``as_of``, when given: a replay sees
    the menu as it was) with its station: menu_item_id, restaurant_id, station_id (NaN when the
    menu names none), station_type, is_active."""
    frame = reader.frame(
        f"""
        SELECT m.id AS menu_item_id, m.restaurant_id, m.station_id, s.station_type, m.is_active
        FROM menu_menuitem m
        LEFT JOIN kitchen_station s ON s.id = m.station_id
        WHERE m.restaurant_id = ANY(:rids) AND {AS_OF_FILTER.format(column='m.created_at')}
        ORDER BY m.id
        """,
        {"rids": [int(i) for i in restaurant_ids], "as_of": as_of},
    )
    frame["menu_item_id"] = frame["menu_item_id"].astype("int64")
    frame["restaurant_id"] = frame["restaurant_id"].astype("int64")
    frame["station_id"] = pd.to_numeric(frame["station_id"]).astype("float64")
    frame["is_active"] = frame["is_active"].astype(bool)
    return frame


def kitchen_stations(reader: ReplicaReader, restaurant_ids: list[int]) -> pd.DataFrame:
    """Stations of the restaurants: station_id, restaurant_id, station_type."""
    frame = reader.frame(
        "SELECT id AS station_id, restaurant_id, station_type FROM kitchen_station "
        "WHERE restaurant_id = ANY(:rids) ORDER BY id",
        {"rids": [int(i) for i in restaurant_ids]},
    )
    frame["station_id"] = frame["station_id"].astype("int64")
    frame["restaurant_id"] = frame["restaurant_id"].astype("int64")
    return frame


@dataclass
class KitchenData:
    """One shard's kitchen history: tickets to learn from, SQL medians, the menu and stations.

    ``tickets`` is None when only ``recent`` was read (a night expected to reuse its model);
    ``read_tickets`` then reads them all, for the night that has to fit after all. ``medians`` is
    None when not read yet (the same night: the model it reuses keeps the medians it was fitted
    on); ``read_medians`` reads them, for a night that needs them fresh after all.
    """

    as_of: pd.Timestamp
    tickets: pd.DataFrame | None
    medians: pd.DataFrame | None
    menu: pd.DataFrame
    stations: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    recent: RecentTickets | None = None
    read_tickets: Callable[[], pd.DataFrame] | None = None
    read_medians: Callable[[], pd.DataFrame] | None = None


def kitchen_unit_features(reader: ReplicaReader, scope: Scope, recent_per_item: int | None = None,
                          unbumped_min_minutes: float = 0.0) -> KitchenData:
    """The shard's kitchen data. With ``recent_per_item`` (a night expected to reuse its model),
    tickets are not read: only each item's newest ``recent_per_item`` and their summary
    (``recent_prep_tickets``, with ``unbumped_min_minutes`` in minutes), and ``read_tickets`` reads
    the rest when needed; nor are the medians (``read_medians`` reads them when needed)."""
    rids = scope.restaurant_ids
    as_of = scope.as_of
    window = (reader, rids, as_of - pd.Timedelta(days=TICKET_HISTORY_DAYS), as_of, scope.valid_until)
    limit = TICKETS_PER_RESTAURANT * len(rids)
    median_window = (reader, rids, as_of - pd.Timedelta(days=min(MEDIAN_HISTORY_DAYS, scope.forecast.history_days)),
                     as_of, scope.valid_until)
    tickets, recent, medians = None, None, None
    if recent_per_item:
        recent = recent_prep_tickets(*window, limit=limit, per_item=recent_per_item, min_minutes=unbumped_min_minutes)
    else:
        medians = prep_medians(*median_window)
        tickets = prep_tickets(*window, limit=limit)
    return KitchenData(
        as_of=as_of,
        tickets=tickets,
        medians=medians,
        menu=kitchen_menu(reader, rids, as_of),
        stations=kitchen_stations(reader, rids),
        counts={"tickets": int(len(tickets)) if tickets is not None else recent.window_tickets},
        recent=recent,
        read_tickets=lambda: prep_tickets(*window, limit=limit),
        read_medians=lambda: prep_medians(*median_window),
    )
