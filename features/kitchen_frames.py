"""Kitchen model frames from the tickets ``features.kitchen`` reads: each ticket's item and station
reference minutes, the ratio target, and tickets left unbumped on the screen. No SQL here (the
readers are in ``features.kitchen``), so the prep-time model imports these without a reader.
"""

from __future__ import annotations

import pandas as pd


def add_item_reference(tickets: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Join each ticket to its item's reference minutes (``item_ref``) and the station's
    (``station_ref``), and the ratio target ``prep_ratio`` = prep_minutes / item_ref.

    Why a ratio: the queue slows a station down proportionally (a 2-minute salad and a 12-minute
    steak both take longer when busy), so one model of the ratio serves every item of a station type.

    Args:
        tickets: ``prep_tickets`` output.
        reference: ``reference_minutes`` output (computed on training tickets only).
    """
    items = reference[reference["level"] == "item"][["menu_item_id", "station_id", "median_minutes"]]
    stations = reference[reference["level"] == "station"][["station_id", "median_minutes"]]
    out = tickets.merge(items.rename(columns={"median_minutes": "item_ref"}), on=["menu_item_id", "station_id"], how="left")
    out = out.merge(stations.rename(columns={"median_minutes": "station_ref"}), on="station_id", how="left")
    out["item_ref"] = out["item_ref"].fillna(out["station_ref"])
    if "prep_minutes" in out:
        out["prep_ratio"] = out["prep_minutes"] / out["item_ref"]
    return out


def references_cover(reference: pd.DataFrame, tickets: pd.DataFrame) -> bool:
    """Whether ``reference`` (medians kept from an earlier night, ``prep_medians`` shape) has a
    median for every (item, station) and every station among the single-unit ``tickets``.

    Why: kept medians may be a few days old (``prediction_types.kitchen``); older values are close,
    but a key that is missing (an item first sold, or moved to another station, since they were
    taken) would turn an item's own median into its station's, or skip the item, until the next
    refit. The tickets read tonight (the newest of each item) show such keys.
    """
    single = tickets[tickets["quantity"] == 1]
    items = reference[reference["level"] == "item"]
    kept_items = set(zip(items["menu_item_id"].astype("float64"), items["station_id"].astype("int64")))
    kept_stations = set(reference.loc[reference["level"] == "station", "station_id"].astype("int64"))
    sold = set(zip(single["menu_item_id"].astype("float64"), single["station_id"].astype("int64")))
    return sold <= kept_items and set(single["station_id"].astype("int64")) <= kept_stations


# A ticket open this many times its item's reference (per unit), or this many minutes beyond it,
# was not cooking: the line forgot to bump it on the kitchen screen (it closes at the end of
# service, or when someone tidies the screen). On the synthetic chain no ticket passes 4.8x or
# reaches 110 minutes; real screens hold many such tickets.
UNBUMPED_RATIO = 6.0
UNBUMPED_EXTRA_MINUTES = 120.0
UNBUMPED_MIN_MINUTES = 30.0


def left_unbumped(tickets: pd.DataFrame, ratio: float = UNBUMPED_RATIO, extra_minutes: float = UNBUMPED_EXTRA_MINUTES,
                  min_minutes: float = UNBUMPED_MIN_MINUTES) -> pd.Series:
    """Tickets whose recorded prep time is the screen's, not the cook's.

    Args:
        tickets: ``add_item_reference`` output (prep_minutes, item_ref, prep_ratio, quantity).
        ratio: open more than ``ratio`` x its item's reference x its units, or...
        extra_minutes: ...more than this many minutes beyond its item's reference (a slow dish
            two hours late is not being cooked either)...
        min_minutes: ...and, either way, longer than this many minutes (a 2-minute drink left 20
            minutes is slow service, not a forgotten ticket).
    Returns a boolean Series: True where the ticket should not teach the model. Why: one ticket
    left open four hours outweighs hundreds of honest ones in a squared-error fit.
    """
    units = tickets["quantity"].clip(lower=1).astype(float)
    far = (tickets["prep_ratio"] > ratio * units) | (tickets["prep_minutes"] > tickets["item_ref"] + extra_minutes)
    return far & (tickets["prep_minutes"] > min_minutes)


def reference_minutes(tickets: pd.DataFrame) -> pd.DataFrame:
    """Medians per (item, station) and per station from tickets in memory (training split only),
    same shape as ``prep_medians``; single-unit lines, falling back to all lines for items sold
    only in multiples."""
    single = tickets[tickets["quantity"] == 1]
    item = single.groupby(["menu_item_id", "station_id"])["prep_minutes"].agg(["size", "median"]).reset_index()
    multi = tickets.groupby(["menu_item_id", "station_id"])["prep_minutes"].agg(["size", "median"]).reset_index()
    item = pd.concat([item, multi]).drop_duplicates(["menu_item_id", "station_id"], keep="first")
    station = single.groupby("station_id")["prep_minutes"].agg(["size", "median"]).reset_index()
    item["level"] = "item"
    station["level"] = "station"
    station["menu_item_id"] = float("nan")
    out = pd.concat([item, station], ignore_index=True).rename(columns={"size": "tickets", "median": "median_minutes"})
    return out[["level", "menu_item_id", "station_id", "tickets", "median_minutes"]]
