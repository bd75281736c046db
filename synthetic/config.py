"""The knobs of the synthetic chain."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from core.contract import MODULES


@dataclass(frozen=True)
class ChainConfig:
    """What to generate. The data is a pure function of (seed, end, restaurants, days, modules,
    malformed, orders_per_day): the same config always gives the same rows and ids.

    Args:
        restaurants: restaurants in the chain (a malformed-timezone one is added on top when
            ``malformed``).
        days: days of history; the window is [end - days, end) in UTC.
        seed: random seed.
        end: exclusive end date of history (midnight UTC); None means today in UTC, which is the
            one input that makes two runs on different days differ.
        modules: optional RMS modules to fill, any of "kitchen", "inventory", "customers",
            "payments". Missing "kitchen"/"inventory"/"payments" leaves their tables out; missing
            "customers" leaves customers_customerprofile (a core table) empty and every order a
            walk-in.
        malformed: plant the documented malformed rows (see docs/synthetic.md).
        orders_per_day: range the per-restaurant base level (orders/day) is drawn from.
    """

    restaurants: int = 5
    days: int = 365
    seed: int = 42
    end: dt.date | None = None
    modules: tuple[str, ...] = MODULES
    malformed: bool = True
    orders_per_day: tuple[float, float] = (80.0, 200.0)

    def __post_init__(self) -> None:
        mods = tuple(m for m in MODULES if m in set(self.modules))
        unknown = set(self.modules) - set(MODULES)
        if unknown:
            raise ValueError(f"unknown modules {sorted(unknown)}; known: {MODULES}")
        object.__setattr__(self, "modules", mods)
        if isinstance(self.end, dt.datetime):
            object.__setattr__(self, "end", self.end.date())
        if self.restaurants < 1 or self.days < 1:
            raise ValueError("restaurants and days must be >= 1")
        lo, hi = self.orders_per_day
        if not 0 < lo <= hi:
            raise ValueError("orders_per_day must be a (low, high) range of positive numbers")

    def resolved_end(self) -> dt.date:
        return self.end if self.end is not None else dt.datetime.now(dt.timezone.utc).date()
