"""Menu prices and sales per item and local day, for price elasticity (aggregated in PostgreSQL).

The replica keeps no price history table: the price an item was sold at is the order line's
``unit_price`` (after item-level promotions). The daily *modal* price is taken as that day's list
price, so a few discounted lines do not look like a price change. Sales are counted in order
lines, not units: a price change moves how often an item is chosen, and the quantity per line is
noise for that question.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from core.replica import ReplicaReader
from core.settings import InventorySettings
from core.units import Scope
from features.quality import AS_OF_FILTER, valid

_SOLD = "o.status <> 'cancelled'"


def menu_items(reader: ReplicaReader, restaurant_ids: list[int], as_of: datetime | None = None) -> pd.DataFrame:
    """Active menu items (on the menu before ``as_of``, when given): menu_item_id, restaurant_id,
    category, price (current list price), cost (food cost per unit, NaN when unknown). Names are
    not read."""
    frame = reader.frame(
        f"""
        SELECT id AS menu_item_id, restaurant_id, category, price::float8 AS price, cost::float8 AS cost
        FROM menu_menuitem
        WHERE restaurant_id = ANY(:rids) AND is_active AND price IS NOT NULL AND price > 0
          AND {AS_OF_FILTER.format(column='created_at')}
        ORDER BY id
        """,
        {"rids": restaurant_ids, "as_of": as_of},
    )
    frame["menu_item_id"] = frame["menu_item_id"].astype("int64")
    frame["restaurant_id"] = frame["restaurant_id"].astype("int64")
    frame["cost"] = frame["cost"].astype("float64")
    return frame


def daily_item_sales(
    reader: ReplicaReader, restaurant_ids: list[int], start: datetime, end: datetime, valid_until: datetime
) -> pd.DataFrame:
    """Order lines, units and modal unit price per menu item and local date, lines in [start, end).

    Returns menu_item_id, restaurant_id, local_date (naive), lines, units, price (modal unit_price).
    """
    frame = reader.frame(
        f"""
        SELECT li.menu_item_id, o.restaurant_id, (o.created_at AT TIME ZONE r.timezone)::date AS local_date,
               count(*) AS lines, sum(li.quantity)::float8 AS units,
               (mode() WITHIN GROUP (ORDER BY li.unit_price))::float8 AS price
        FROM orders_orderitem li
        JOIN orders_order o ON o.id = li.order_id
        JOIN restaurants_restaurant r ON r.id = o.restaurant_id
        WHERE o.restaurant_id = ANY(:rids) AND o.created_at >= :start AND o.created_at < :end
          AND {_SOLD} AND {valid('orders_order', 'o')} AND {valid('orders_orderitem', 'li')}
        GROUP BY 1, 2, 3
        ORDER BY 1, 3
        """,
        {"rids": restaurant_ids, "start": start, "end": end, "valid_until": valid_until},
    )
    frame["local_date"] = pd.to_datetime(frame["local_date"])
    for col in ("menu_item_id", "restaurant_id"):
        frame[col] = frame[col].astype("int64")
    frame["lines"] = frame["lines"].astype("float64")
    return frame


def pricing_features(reader: ReplicaReader, scope: Scope, settings: InventorySettings) -> dict[str, pd.DataFrame]:
    """Items and their daily sales over ``settings.price_history_days`` before ``scope.as_of``."""
    start = scope.as_of - pd.Timedelta(days=settings.price_history_days)
    return {
        "items": menu_items(reader, scope.restaurant_ids, scope.as_of),
        "sales": daily_item_sales(reader, scope.restaurant_ids, start, scope.as_of, scope.valid_until),
    }
