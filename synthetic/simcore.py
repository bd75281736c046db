"""Constants, seed streams and time helpers shared by the chain generator's parts.

Kept apart from ``generator`` so that the per-concern simulations (``sim_customers``,
``sim_inventory``) can import them without a cycle.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from synthetic.tables import (
    US_PER_MIN,
    Column,
)

Chunk = dict[str, dict[str, Column]]

EPOCH = dt.date(1970, 1, 1)
UNKNOWN_TIMEZONE = "Mars/Olympus_Mons"
SLOT_US = 15 * US_PER_MIN  # orders are drawn per 15-minute UTC slot: aligns with any :30 offset
QUEUE_WINDOW_MIN = 10.0
PREP_NOISE_SD = 0.10
OPEN_ORDER_STATUSES = ("completed", "cancelled", "refunded")
STATUS_MIX = (0.955, 0.03, 0.015)
ORDER_TYPES = ("dine_in", "takeaway", "delivery")
PAY_METHODS = ("card", "cash", "wallet", "gift_card")
PAY_MIX = (0.68, 0.17, 0.12, 0.03)
ITEMS_PER_ORDER_P = (0.32, 0.30, 0.20, 0.11, 0.07)
WEEKLY_BASE = np.array([0.86, 0.83, 0.88, 0.95, 1.15, 1.32, 1.08])  # Monday..Sunday
POPULARITY_EXPONENT = 1.8  # Zipf-like ranks: a few best sellers and a long tail of intermittent items
CATEGORY_WEIGHT = {"mains": 1.5, "drinks": 1.3, "sides": 1.0, "starters": 0.8, "desserts": 0.6}
CATEGORY_ELASTICITY = {"drinks": -1.4, "mains": -1.0, "starters": -1.2, "sides": -0.8, "desserts": -1.5}

# streams of the SeedSequence
S_PLAN, S_MENU, S_STATIONS, S_INV_PLAN, S_ORDERS, S_LINES, S_KITCHEN, S_CUSTOMERS, S_PAYMENTS, S_INVENTORY, S_MALFORMED, S_CHAIN = range(12)


def _rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream, index]))


def _days(d: dt.date) -> int:
    return (d - EPOCH).days


def _date(days: int) -> dt.date:
    return EPOCH + dt.timedelta(days=int(days))


def _dt(us: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=int(us))


def _local_us(tz: str, utc_us: np.ndarray) -> np.ndarray:
    """Local wall-clock time (as naive µs since 1970) of UTC instants, DST-correct."""
    idx = pd.DatetimeIndex(np.asarray(utc_us, dtype=np.int64).astype("datetime64[us]"))
    return idx.tz_localize("UTC").tz_convert(tz).tz_localize(None).as_unit("us").asi8


def _round_price(x: float, level: float) -> int:
    """A menu-looking price in cents: whole rupees/reais in steps, halves elsewhere."""
    if level >= 10:
        return int(round(x / 5.0) * 5) * 100
    if level >= 3:
        return int(round(x)) * 100
    return int(round(x * 2) / 2 * 100)
