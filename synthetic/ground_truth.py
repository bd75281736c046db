"""What the generator planted, so tests and models can be checked against known answers.

Every number here is an input of the simulation, not a statistic measured on its output (except
where a field says "observed"): a model that recovers them is right, one that does not is wrong.
See docs/synthetic.md for the exact definitions (which multiplier applies to what, in which time).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class RestaurantTruth:
    restaurant_id: int
    name: str
    timezone: str
    country_code: str
    opened_on: dt.date
    opens_late: bool  # opened inside the history window: no orders before opened_on
    first_local_date: dt.date  # first local date that can have orders
    base_level: float  # expected orders/day when every multiplier is 1
    trend_per_day: float  # multiplier 1 + trend_per_day * (local date - trend_origin).days
    trend_origin: dt.date
    weekly_profile: list[float]  # Monday..Sunday multipliers, mean 1
    weekend_ratio: float  # mean(Sat, Sun) / mean(Mon..Fri) of weekly_profile
    hourly_profile: list[float]  # share of a day's orders per LOCAL hour 0..23, sums to 1
    open_hour: int  # first local hour with orders
    close_hour: int  # local hour from which there are no orders (exclusive)
    lunch_peak_hour: int
    dinner_peak_hour: int
    peak_hour: int  # argmax of hourly_profile (always the dinner peak)
    annual_amplitude: float  # multiplier 1 + A * cos(2*pi*(day_of_year - peak_doy) / 365.25)
    annual_peak_doy: int
    holiday_multiplier: float  # on public holidays of country_code that are not closed dates
    holidays: list[dict] = field(default_factory=list)  # {date, name} inside the window
    closed_dates: list[dt.date] = field(default_factory=list)  # holidays it is closed on
    closed_periods: list[dict] = field(default_factory=list)  # {start, end (exclusive), reason}
    anomalies: list[dict] = field(default_factory=list)  # {date, multiplier, kind: spike|drop}
    tax_rate: float = 0.0
    order_type_mix: dict = field(default_factory=dict)
    status_mix: dict = field(default_factory=dict)
    price_level: float = 1.0
    regular_customers: int = 0
    one_off_share: float = 0.0  # share of orders by one-off (single visit) customers


@dataclass
class MenuItemTruth:
    menu_item_id: int
    restaurant_id: int
    name: str
    category: str
    station_type: str
    station_id: int | None
    popularity: float  # share of order lines while every item is on sale at its first price
    elasticity: float  # units multiplier of a price change = (new/old) ** elasticity
    initial_price: float
    price_changes: list[dict] = field(default_factory=list)  # {date, at, old_price, new_price, units_multiplier}
    introduced_at: dt.datetime | None = None  # first sale possible (None: on sale from the start)
    discontinued_at: dt.datetime | None = None  # no sales from this instant (is_active false)
    base_minutes: float = 0.0  # kitchen prep minutes with an empty queue, quantity 1
    extra_unit_minutes: float = 0.0  # added per unit beyond the first


@dataclass
class StationTruth:
    station_id: int
    restaurant_id: int
    station_type: str
    queue_slope: float  # prep = base * (1 + queue_slope * queue_size_at_start) + ...


@dataclass
class SupplierTruth:
    supplier_id: int
    name: str
    promised_lead_days: float  # inventory_supplier.default_lead_time_days
    true_lead_mean_days: float  # received_at - ordered_at is lognormal with this mean ...
    true_lead_sd_days: float  # ... and this standard deviation
    reliable: bool


@dataclass
class GroundTruth:
    seed: int
    end: dt.date  # exclusive: midnight UTC of this date ends the history
    days: int
    window_start: dt.datetime  # midnight UTC, `days` days before end
    modules: list[str]
    organization_id: int
    restaurants: list[RestaurantTruth] = field(default_factory=list)
    menu_items: list[MenuItemTruth] = field(default_factory=list)
    stations: list[StationTruth] = field(default_factory=list)
    queue_slope_by_type: dict[str, float] = field(default_factory=dict)
    queue_window_minutes: float = 10.0
    prep_noise_sd_fraction: float = 0.1
    suppliers: list[SupplierTruth] = field(default_factory=list)
    # {customer_id, restaurant_id, churned_at, churn_date, orders_before_churn, kind, decline_started_at}
    churned_customers: list[dict] = field(default_factory=list)
    # regulars with a quiet spell who come back: {customer_id, restaurant_id, dormant_from, dormant_until}
    dormant_customers: list[dict] = field(default_factory=list)
    stockouts: list[dict] = field(default_factory=list)
    reorder_gaps: list[dict] = field(default_factory=list)  # planted: no reordering of an item {start_date, end_date}
    # per inventory item: {restaurant_id, inventory_item_id, item, portioning}: used = recipe x portioning
    inventory_items: list[dict] = field(default_factory=list)
    malformed: dict[str, int] = field(default_factory=dict)  # table -> exact malformed row count
    malformed_detail: dict[str, Any] = field(default_factory=dict)
    unknown_timezone_restaurant_id: int | None = None

    def restaurant(self, restaurant_id: int) -> RestaurantTruth:
        for r in self.restaurants:
            if r.restaurant_id == restaurant_id:
                return r
        raise KeyError(restaurant_id)

    def items_of(self, restaurant_id: int) -> list[MenuItemTruth]:
        return [m for m in self.menu_items if m.restaurant_id == restaurant_id]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: dates and datetimes as ISO strings, numpy scalars as Python numbers."""
        return _jsonable(dataclasses.asdict(self))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, dt.datetime):
        return obj.isoformat()
    if isinstance(obj, dt.date):
        return obj.isoformat()
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj
