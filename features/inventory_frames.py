"""Inventory frames from what ``features.inventory`` reads: batches left at as-of, day grids of
usage and menu units, where a count shows an item is stocked. No SQL here, so each is tested on
hand-made frames (the readers and the unit's bundle are in ``features.inventory``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.timegrid import local_date


@dataclass
class InventoryFeatures:
    """Everything the inventory models need for one shard, as plain frames (no connection).

    items: ``inventory_items``; usage: complete daily grid per item (inventory_item_id, ds,
    consumption, waste, expired, adjusted, open: the restaurant recorded any consumption that day
    or, if it records none, sold anything; records_use);
    recipes: ``recipe_lines``; menu_units: ``menu_unit_grid`` over the same days; midpoint_hour:
    ``usage_midpoint_hour``; on_hand:
    ``stock_on_hand``; lots: ``allocate_batches``; open_orders: ``open_purchase_orders``;
    suppliers: ``features.suppliers.shard_suppliers``; lead_times: ``supplier_lead_times``; future: per restaurant the
    local days to project (restaurant_id, ds, target_start, remaining_share: the part of that day's
    usage still to come at as_of, 1 except on the first day); recent_orders:
    ``supplier_recent_orders`` (how late each supplier is running now).
    """

    items: pd.DataFrame
    usage: pd.DataFrame
    on_hand: pd.DataFrame
    lots: pd.DataFrame
    open_orders: pd.DataFrame
    suppliers: pd.DataFrame
    lead_times: pd.DataFrame
    future: pd.DataFrame
    as_of: pd.Timestamp
    recipes: pd.DataFrame | None = None
    menu_units: pd.DataFrame | None = None
    midpoint_hour: dict | None = None
    recent_orders: pd.DataFrame | None = None


def allocate_batches(batches: pd.DataFrame, on_hand: pd.DataFrame) -> pd.DataFrame:
    """How much of each expiring batch was left at ``as_of``.

    When no movement happened since ``as_of`` (a live run) the recorded ``quantity_remaining`` is
    the answer. In a replay it is not (later consumption drained it), so the stock on hand is
    assumed to sit in the newest batches (first-in first-out use): it fills them newest first,
    each up to what it received.

    Args:
        batches: ``expiring_batches`` output.
        on_hand: ``stock_on_hand`` output.
    Returns:
        inventory_item_id, expires_at, quantity (item units still in that batch at ``as_of``).
    """
    if batches.empty:
        return pd.DataFrame({"inventory_item_id": pd.Series(dtype="int64"), "expires_at": pd.Series(dtype="datetime64[ns, UTC]"), "quantity": pd.Series(dtype=float)})
    merged = batches.merge(on_hand, on="inventory_item_id", how="inner")
    merged = merged.sort_values(["inventory_item_id", "received_at"], ascending=[True, False])
    live = merged["moved_since"] == 0
    filled_before = merged.groupby("inventory_item_id")["quantity_received"].cumsum() - merged["quantity_received"]
    replay = np.clip(merged["on_hand"] - filled_before, 0, merged["quantity_received"])
    merged["quantity"] = np.where(live, merged["quantity_remaining"], replay)
    out = merged.loc[merged["quantity"] > 0, ["inventory_item_id", "expires_at", "quantity"]]
    return out.reset_index(drop=True)


def _restaurant_grid(rows: pd.DataFrame, ids: pd.Series, key: str, values: list[str], days: pd.DatetimeIndex,
                     restaurant_id: int) -> pd.DataFrame:
    """One restaurant's complete (entity x day) grid of ``values`` (zeros filled), with ``open`` =
    the restaurant recorded any of the first value that day (closed, or not yet trading, otherwise).

    Args:
        rows: that restaurant's rows with ``key``, local_date and ``values``.
        ids: the entities to cover; days: the local days to cover.
    Returns ``key``, restaurant_id, ds, ``values``, open.
    """
    idx = pd.MultiIndex.from_product([ids.astype("int64"), days], names=[key, "ds"])
    full = (
        rows.rename(columns={"local_date": "ds"}).set_index([key, "ds"])[values]
        .reindex(idx, fill_value=0.0).reset_index()
    )
    daily = rows.groupby("local_date")[values[0]].sum()
    full["open"] = full["ds"].isin(set(daily[daily > 0].index))
    full.insert(1, "restaurant_id", restaurant_id)
    return full


def menu_unit_grid(
    units: pd.DataFrame, menu: pd.DataFrame, first: dict[int, pd.Timestamp], last: dict[int, pd.Timestamp], zones: dict[int, str]
) -> pd.DataFrame:
    """Complete daily units sold per menu item, from its first full day on the menu (or the window's).

    Args:
        units: ``features.items.item_daily_units`` (menu_item_id, restaurant_id, local_date, units).
        menu: ``features.items.menu_items`` (id, restaurant_id, is_active, created_at).
        first, last: per restaurant, the local days bounding the history.
        zones: restaurant id -> timezone.
    Returns menu_item_id, restaurant_id, ds, units, open (the restaurant sold anything that day),
    is_active. An item added last month is not read as months of zero sales.
    """
    frames = []
    for rid, items in menu.groupby("restaurant_id"):
        rid = int(rid)
        if rid not in first:
            continue
        days = pd.date_range(first[rid], last[rid], freq="D")
        if not len(days):
            continue
        full = _restaurant_grid(units[units["restaurant_id"] == rid], items["id"], "menu_item_id", ["units"], days, rid)
        created = items.set_index("id")["created_at"].map(lambda t: local_date(t, zones[rid]) + pd.Timedelta(days=1))
        full = full[full["ds"] >= full["menu_item_id"].map(created)]
        full["is_active"] = full["menu_item_id"].map(items.set_index("id")["is_active"]).astype(bool)
        frames.append(full)
    if not frames:
        return pd.DataFrame(columns=["menu_item_id", "restaurant_id", "ds", "units", "open", "is_active"])
    return pd.concat(frames, ignore_index=True)


def usage_midpoint_hour(share: pd.DataFrame) -> dict[int, float]:
    """Per restaurant, the local hour by which half of a day's consumption is recorded.

    A delivery arriving after it mostly feeds the next day (the kitchen already cooked with what
    it had), before it the same day. 23.0 (nearly the whole day) when nothing is known.
    """
    out = {}
    for rid, g in share.groupby("restaurant_id"):
        c = g.sort_values("local_hour").set_index("local_hour")["share"].cumsum()
        hit = c[c >= 0.5]
        out[int(rid)] = float(hit.index[0]) if len(hit) else 23.0
    return out


def usage_grid(raw: pd.DataFrame, items: pd.DataFrame, first: dict[int, pd.Timestamp], last: dict[int, pd.Timestamp]) -> pd.DataFrame:
    """Complete per-item daily usage (zeros filled) between each restaurant's first and last local day.

    A day on which the restaurant recorded no consumption at all is marked ``open = False``
    (closed, or not yet trading): models skip it instead of learning that demand vanished (a
    restaurant that records none on any day is handled by ``open_where_only_counted``).
    ``records_use`` is False for an item with no consumption in the whole window: a kitchen that
    books it only by stock counts (``adjusted``), or not at all; its zeros are not run-outs.
    """
    frames = []
    for rid, its in items.groupby("restaurant_id"):
        rid = int(rid)
        days = pd.date_range(first[rid], last[rid], freq="D")
        if not len(days):
            continue
        frames.append(_restaurant_grid(raw[raw["restaurant_id"] == rid], its["inventory_item_id"], "inventory_item_id",
                                       ["consumption", "waste", "expired", "adjusted"], days, rid))
    if not frames:
        return pd.DataFrame(columns=["inventory_item_id", "restaurant_id", "ds", "consumption", "waste", "expired",
                                     "adjusted", "open", "records_use"])
    grid = pd.concat(frames, ignore_index=True)
    grid["records_use"] = grid.groupby("inventory_item_id")["consumption"].transform("sum") > 0
    return grid


def open_where_only_counted(usage: pd.DataFrame, menu_units: pd.DataFrame | None) -> pd.DataFrame:
    """Open days, from sales, for restaurants that record no consumption on any day of the window.

    Why: many kitchens book ingredients only by receiving and counting them; ``usage_grid`` reads
    a day without consumption as closed, which for them would be every day and leave the recipes
    nothing to learn from. Their open days are the days they sold menu items instead. A
    restaurant that records consumption keeps its rule (a day without any is a gap, not a zero).

    Args:
        usage: ``usage_grid``'s frame; menu_units: ``menu_unit_grid`` over the same days (its
            ``open``: the restaurant sold anything that day).
    Returns ``usage`` with ``open`` replaced for those restaurants.
    """
    if menu_units is None or usage.empty or menu_units.empty:
        return usage
    recorded = usage.groupby("restaurant_id")["consumption"].sum()
    counted = recorded.index[recorded <= 0]
    if not len(counted):
        return usage
    key = ["restaurant_id", "ds"]
    sold = pd.MultiIndex.from_frame(menu_units.loc[menu_units["open"].astype(bool), key])
    out = usage.copy()
    rows = out["restaurant_id"].isin(counted)
    out.loc[rows, "open"] = pd.MultiIndex.from_frame(out.loc[rows, key]).isin(sold)
    return out
