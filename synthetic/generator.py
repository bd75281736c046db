"""The synthetic restaurant chain: config in, replica tables and the planted ground truth out.

Pure (no I/O): ``generate`` returns DataFrames; the loader consumes the same chunks one restaurant
at a time so that memory stays bounded for large chains. Everything is vectorised with numpy; the
only Python loops run over restaurants, menu segments, suppliers and days (the inventory
simulation), never over orders or order lines.

Determinism: each restaurant and each concern (demand, menu, customers, kitchen, payments,
inventory, malformed rows) draws from its own ``SeedSequence([seed, stream, restaurant])``, so
turning a module off changes no other table's values, and ids are handed out by per-table counters
in a fixed restaurant order.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import holidays as pyholidays
import numpy as np
import pandas as pd

from synthetic import catalog
from synthetic.config import ChainConfig
from synthetic.ground_truth import (
    GroundTruth,
    MenuItemTruth,
    RestaurantTruth,
    StationTruth,
    SupplierTruth,
)
from core.contract import contract, tables_for
from synthetic.sim_customers import CustomerSim
from synthetic.sim_inventory import InventorySim
from synthetic.simcore import (
    CATEGORY_ELASTICITY,
    CATEGORY_WEIGHT,
    ITEMS_PER_ORDER_P,
    OPEN_ORDER_STATUSES,
    ORDER_TYPES,
    PAY_METHODS,
    PAY_MIX,
    POPULARITY_EXPONENT,
    PREP_NOISE_SD,
    QUEUE_WINDOW_MIN,
    S_CHAIN,
    S_INV_PLAN,
    S_KITCHEN,
    S_LINES,
    S_MALFORMED,
    S_MENU,
    S_ORDERS,
    S_PAYMENTS,
    S_PLAN,
    S_STATIONS,
    SLOT_US,
    STATUS_MIX,
    UNKNOWN_TIMEZONE,
    WEEKLY_BASE,
    Chunk,
    _date,
    _days,
    _dt,
    _local_us,
    _rng,
    _round_price,
)
from synthetic.tables import (
    US_PER_DAY,
    US_PER_H,
    US_PER_MIN,
    US_PER_S,
    Column,
    concat_columns,
    empty_columns,
    obj_col,
    text_col,
    to_frame,
)

# ---------------------------------------------------------------------------------------------
# plan: the small, static part of the chain (parameters, menus, stations, suppliers)


@dataclass
class _MenuPlan:
    ids: np.ndarray
    names: list[str]
    categories: list[str]
    station_types: list[str]
    popularity: np.ndarray
    elasticity: np.ndarray
    created_us: np.ndarray
    intro_us: np.ndarray  # first sale instant (start of window for items on sale throughout)
    disc_us: np.ndarray  # no sales from this instant (INT64 max when never)
    price_changes: list[list[tuple[int, int, int]]]  # per item: (at_us, old_cents, new_cents)
    initial_cents: np.ndarray
    current_cents: np.ndarray
    cost_cents: np.ndarray
    base_minutes: np.ndarray
    extra_minutes: np.ndarray
    station_idx: np.ndarray  # index into the restaurant's stations
    recipe: list[dict[str, float]]


@dataclass
class _RestaurantPlan:
    index: int
    rid: int
    truth: RestaurantTruth
    tz: str
    country: str
    first_day: int  # local date (days since 1970) of the window start
    n_days: int
    day_start_us: np.ndarray  # n_days + 1 local midnights as UTC µs
    open_idx: int  # first local day index with orders
    daily_mult: np.ndarray  # expected orders per local day (0 when closed)
    closed: np.ndarray  # bool per local day (closed period, closed holiday, before opening)
    hourly: np.ndarray
    menu: _MenuPlan
    station_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    station_types: list[str] = field(default_factory=list)
    station_slopes: np.ndarray = field(default_factory=lambda: np.zeros(0))
    inv_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    inv_names: list[str] = field(default_factory=list)
    inv_unit_cost: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # 1e-4 units
    recipe_matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # menu x inventory
    recipe_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


class _Ids:
    """Per-table id counters: ids are unique, never reused, in generation order."""

    def __init__(self) -> None:
        self.next: dict[str, int] = defaultdict(lambda: 1)

    def take(self, table: str, n: int) -> np.ndarray:
        start = self.next[table]
        self.next[table] = start + int(n)
        return np.arange(start, start + int(n), dtype=np.int64)


class ChainBuilder:
    """Plans the chain up front, then yields it chunk by chunk (one restaurant per chunk)."""

    def __init__(self, cfg: ChainConfig):
        self.cfg = cfg
        self.end = cfg.resolved_end()
        self.start = self.end - dt.timedelta(days=cfg.days)
        self.start_us = _days(self.start) * US_PER_DAY
        self.end_us = _days(self.end) * US_PER_DAY
        self.mods = set(cfg.modules)
        self.ids = _Ids()
        self.truth = GroundTruth(
            seed=cfg.seed,
            end=self.end,
            days=cfg.days,
            window_start=_dt(self.start_us),
            modules=list(cfg.modules),
            organization_id=1,
            queue_window_minutes=QUEUE_WINDOW_MIN,
            prep_noise_sd_fraction=PREP_NOISE_SD,
            queue_slope_by_type={k: v[0] for k, v in catalog.STATIONS.items()},
        )
        self._malformed_keep: dict = {}
        self._plan()

    # -- planning ------------------------------------------------------------------------------

    def _plan(self) -> None:
        cfg = self.cfg
        self.ids.take("restaurants_organization", 1)
        self.supplier_ids = np.zeros(0, np.int64)
        self.supplier_lead: dict[str, tuple[float, float, float]] = {}
        if "inventory" in self.mods:
            rng = _rng(cfg.seed, S_CHAIN)
            n = len(catalog.SUPPLIERS)
            self.supplier_ids = self.ids.take("inventory_supplier", n)
            unreliable = set(rng.choice(n, size=2, replace=False).tolist())
            for k, (key, name, promised) in enumerate(catalog.SUPPLIERS):
                if k in unreliable:
                    mean = promised * rng.uniform(1.5, 2.5)
                    sd = mean * rng.uniform(0.4, 0.6)
                else:
                    mean = promised * rng.uniform(0.95, 1.2)
                    sd = mean * rng.uniform(0.1, 0.25)
                self.supplier_lead[key] = (promised, mean, sd)
                self.truth.suppliers.append(
                    SupplierTruth(int(self.supplier_ids[k]), name, promised, round(mean, 4), round(sd, 4), k not in unreliable)
                )
        self.supplier_index = {key: k for k, (key, _, _) in enumerate(catalog.SUPPLIERS)}
        rids = self.ids.take("restaurants_restaurant", cfg.restaurants)
        self.plans = [self._plan_restaurant(i, int(rids[i])) for i in range(cfg.restaurants)]
        self.mars_rid = int(self.ids.take("restaurants_restaurant", 1)[0]) if cfg.malformed else None
        self.truth.unknown_timezone_restaurant_id = self.mars_rid

    def _plan_restaurant(self, i: int, rid: int) -> _RestaurantPlan:
        cfg = self.cfg
        rng = _rng(cfg.seed, S_PLAN, i)
        tz, country, area = catalog.LOCATIONS[i % len(catalog.LOCATIONS)]
        tax, level, _, _ = catalog.COUNTRY[country]
        name = f"Synthetic Kitchen {area}" + (f" {i // len(catalog.LOCATIONS) + 1}" if i >= len(catalog.LOCATIONS) else "")
        first_day = int(_local_us(tz, np.array([self.start_us]))[0] // US_PER_DAY)
        last_day = int(_local_us(tz, np.array([self.end_us - 1]))[0] // US_PER_DAY)
        n_days = last_day - first_day + 1
        mids = pd.date_range(_date(first_day), periods=n_days + 1, freq="D")
        day_start_us = (
            mids.tz_localize(tz, ambiguous=np.ones(n_days + 1, bool), nonexistent="shift_forward")
            .tz_convert("UTC").as_unit("us").asi8.astype(np.int64)
        )
        dates = np.datetime64(_date(first_day)) + np.arange(n_days)
        weekday = (np.arange(n_days) + first_day + 3) % 7  # 1970-01-01 was a Thursday
        doy = (dates - dates.astype("datetime64[Y]")).astype(np.int64) + 1

        base = float(rng.uniform(*cfg.orders_per_day))
        trend = float(rng.uniform(-0.0002, 0.0006))
        weekly = WEEKLY_BASE * np.exp(rng.normal(0, 0.04, 7))
        weekly = weekly / weekly.mean()
        open_h = int(rng.choice([10, 11, 11, 12]))
        close_h = int(rng.choice([22, 23, 23]))
        lunch_h = int(rng.choice([12, 13]))
        dinner_h = int(rng.choice([19, 20]))
        strength = float(rng.uniform(1.3, 1.6))
        h = np.arange(24)
        hourly = 0.12 + np.exp(-0.5 * ((h - lunch_h) / 0.9) ** 2) + strength * np.exp(-0.5 * ((h - dinner_h) / 1.1) ** 2)
        hourly = np.where((h >= open_h) & (h < close_h), hourly, 0.0)
        hourly = hourly / hourly.sum()
        amp = float(rng.uniform(0.05, 0.2))
        peak_doy = int((rng.integers(170, 211) if country not in catalog.SOUTHERN else rng.integers(-10, 31)) % 365)
        hol_mult = float(rng.uniform(0.55, 0.8) if i % 4 == 3 else rng.uniform(1.3, 1.6))

        years = range(_date(first_day).year, _date(last_day).year + 1)
        try:
            hol = pyholidays.country_holidays(country, years=years, language="en_US")
        except Exception:  # pragma: no cover - a holidays version without English names
            hol = pyholidays.country_holidays(country, years=years)
        hol_days = {(_days(d) - first_day): str(nm) for d, nm in sorted(hol.items()) if first_day <= _days(d) <= last_day}
        closed = np.zeros(n_days, bool)
        closed_dates = []
        for d, nm in hol_days.items():
            date = _date(first_day + d)
            if (i % 2 == 0 and (date.month, date.day) == (12, 25)) or (i % 4 == 0 and (date.month, date.day) == (1, 1)):
                closed[d] = True
                closed_dates.append(date)

        opens_late = i % 10 == 2 and cfg.days >= 60
        if opens_late:
            open_idx = int(n_days * rng.uniform(0.25, 0.5))
            opened_on = _date(first_day + open_idx)
        else:
            open_idx = 0
            opened_on = _date(first_day - int(rng.integers(200, 3000)))
        closed[:open_idx] = True

        closed_periods = []
        if (i % 7 == 1 or cfg.restaurants == 1) and n_days - open_idx >= 60:
            length = int(rng.integers(10, 21))
            lo = open_idx + int(0.25 * (n_days - open_idx))
            hi = open_idx + int(0.75 * (n_days - open_idx)) - length
            s = int(rng.integers(lo, max(hi, lo + 1)))
            closed[s : s + length] = True
            closed_periods.append({"start": _date(first_day + s), "end": _date(first_day + s + length), "reason": "refurbishment"})

        is_hol = np.zeros(n_days, bool)
        is_hol[list(hol_days)] = True
        anomaly = np.ones(n_days)
        anomalies = []
        cand = np.flatnonzero(~closed & ~is_hol & (np.arange(n_days) > 0) & (np.arange(n_days) < n_days - 1))
        k = int(np.clip((n_days - open_idx) // 120, 1, 8))
        if len(cand) >= 2 * k:
            picks = rng.choice(cand, size=2 * k, replace=False)
            mults = np.r_[rng.uniform(2.5, 4.0, k), rng.uniform(0.2, 0.4, k)]
            for j in np.argsort(picks):
                d, mlt = int(picks[j]), float(mults[j])
                anomaly[d] = mlt
                anomalies.append({"date": _date(first_day + d), "multiplier": round(mlt, 4), "kind": "spike" if j < k else "drop"})

        season = 1 + amp * np.cos(2 * np.pi * (doy - peak_doy) / 365.25)
        trend_m = np.maximum(1 + trend * np.arange(n_days), 0.1)
        holm = np.where(is_hol, hol_mult, 1.0)
        daily = base * weekly[weekday] * season * trend_m * holm * anomaly
        daily[closed] = 0.0

        dine = float(rng.uniform(0.45, 0.65))
        delivery = float(rng.uniform(0.1, 0.25))
        truth = RestaurantTruth(
            restaurant_id=rid,
            name=name,
            timezone=tz,
            country_code=country,
            opened_on=opened_on,
            opens_late=opens_late,
            first_local_date=_date(first_day + open_idx),
            base_level=round(base, 4),
            trend_per_day=round(trend, 8),
            trend_origin=_date(first_day),
            weekly_profile=[round(float(x), 6) for x in weekly],
            weekend_ratio=round(float(weekly[5:].mean() / weekly[:5].mean()), 6),
            hourly_profile=[round(float(x), 6) for x in hourly],
            open_hour=open_h,
            close_hour=close_h,
            lunch_peak_hour=lunch_h,
            dinner_peak_hour=dinner_h,
            peak_hour=int(np.argmax(hourly)),
            annual_amplitude=round(amp, 6),
            annual_peak_doy=peak_doy,
            holiday_multiplier=round(hol_mult, 6),
            holidays=[{"date": _date(first_day + d), "name": nm} for d, nm in hol_days.items()],
            closed_dates=closed_dates,
            closed_periods=closed_periods,
            anomalies=anomalies,
            tax_rate=tax,
            order_type_mix={"dine_in": round(dine, 6), "takeaway": round(1 - dine - delivery, 6), "delivery": round(delivery, 6)},
            status_mix=dict(zip(OPEN_ORDER_STATUSES, STATUS_MIX)),
            price_level=level,
            regular_customers=int(round(base * rng.uniform(0.6, 1.2))) if "customers" in self.mods else 0,
            one_off_share=round(float(rng.uniform(0.04, 0.08)), 6) if "customers" in self.mods else 0.0,
        )
        self.truth.restaurants.append(truth)
        plan = _RestaurantPlan(
            index=i, rid=rid, truth=truth, tz=tz, country=country, first_day=first_day, n_days=n_days,
            day_start_us=day_start_us, open_idx=open_idx, daily_mult=daily, closed=closed, hourly=hourly,
            menu=None,  # type: ignore[arg-type]
        )
        plan.menu = self._plan_menu(plan, level)
        self._plan_stations(plan)
        self._plan_inventory(plan, level)
        for j in range(len(plan.menu.ids)):
            m = plan.menu
            self.truth.menu_items.append(
                MenuItemTruth(
                    menu_item_id=int(m.ids[j]),
                    restaurant_id=rid,
                    name=m.names[j],
                    category=m.categories[j],
                    station_type=m.station_types[j],
                    station_id=int(plan.station_ids[m.station_idx[j]]) if len(plan.station_ids) else None,
                    popularity=round(float(m.popularity[j]), 6),
                    elasticity=round(float(m.elasticity[j]), 4),
                    initial_price=m.initial_cents[j] / 100,
                    price_changes=[
                        {
                            "date": _date(int(_local_us(tz, np.array([at]))[0] // US_PER_DAY)),
                            "at": _dt(at),
                            "old_price": old / 100,
                            "new_price": new / 100,
                            "units_multiplier": round(float((new / old) ** m.elasticity[j]), 6),
                        }
                        for at, old, new in m.price_changes[j]
                    ],
                    introduced_at=_dt(m.intro_us[j]) if m.intro_us[j] > self.start_us else None,
                    discontinued_at=_dt(m.disc_us[j]) if m.disc_us[j] < self.end_us else None,
                    base_minutes=round(float(m.base_minutes[j]), 4),
                    extra_unit_minutes=round(float(m.extra_minutes[j]), 4),
                )
            )
        return plan

    def _plan_menu(self, plan: _RestaurantPlan, level: float) -> _MenuPlan:
        rng = _rng(self.cfg.seed, S_MENU, plan.index)
        by_cat = {c: [k for k, it in enumerate(catalog.MENU) if it[1] == c] for c in catalog.CATEGORIES}
        chosen: list[int] = []
        for c in catalog.CATEGORIES:
            chosen += rng.choice(by_cat[c], size=2, replace=False).tolist()
        rest = [k for k in range(len(catalog.MENU)) if k not in chosen]
        n_total = int(rng.integers(15, 41))
        chosen += rng.choice(rest, size=n_total - len(chosen), replace=False).tolist()
        rng.shuffle(chosen)
        n = len(chosen)
        items = [catalog.MENU[k] for k in chosen]
        names = [it[0] for it in items]
        cats = [it[1] for it in items]
        stypes = [it[3] if (it[3] != "tandoor" or plan.country == "IN") else "grill" for it in items]
        ranks = rng.permutation(n)
        pop = (ranks + 1.0) ** -POPULARITY_EXPONENT * np.exp(rng.normal(0, 0.4, n)) * np.array([CATEGORY_WEIGHT[c] for c in cats])
        pop = pop / pop.sum()
        elast = np.clip(np.array([CATEGORY_ELASTICITY[c] for c in cats]) + rng.uniform(-0.3, 0.3, n), -2.0, -0.5)
        init = np.array([_round_price(it[2] * level * rng.uniform(0.9, 1.15), level) for it in items], dtype=np.int64)
        # availability: a few items arrive mid-history, a few are discontinued
        day_us = plan.day_start_us
        lo_d, n_d = plan.open_idx, plan.n_days
        active_days = n_d - lo_d
        intro = np.full(n, self.start_us, dtype=np.int64)
        disc = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        open_us = int(day_us[lo_d])
        created = np.where(
            plan.open_idx > 0,
            open_us - rng.integers(1, 30, n) * US_PER_DAY,
            self.start_us - rng.integers(30, 900, n) * US_PER_DAY,
        ).astype(np.int64) + rng.integers(0, US_PER_DAY, n)
        order = np.argsort(-pop)
        top = int(order[0])
        if active_days >= 40 and n >= 10:
            pool = [int(k) for k in order[1:]]
            n_intro = max(1, int(round(0.12 * n)))
            n_disc = max(1, int(round(0.10 * n)))
            picks = rng.choice(pool, size=n_intro + n_disc, replace=False)
            for k in picks[:n_intro]:
                d = lo_d + int(active_days * rng.uniform(0.15, 0.8))
                intro[k] = day_us[d]
                created[k] = day_us[d] - rng.integers(1, 6 * US_PER_H)
            for k in picks[n_intro:]:
                d = lo_d + int(active_days * rng.uniform(0.25, 0.85))
                disc[k] = day_us[d]
        changes: list[list[tuple[int, int, int]]] = [[] for _ in range(n)]
        current = init.copy()
        if active_days >= 40:
            n_changes = max(2, int(round(0.25 * n)))
            others = [k for k in range(n) if k != top]
            w = pop[others] / pop[others].sum()
            picks = [top] + rng.choice(others, size=min(n_changes - 1, len(others)), replace=False, p=w).tolist()
            for k in picks:
                a = max(int(intro[k]), int(day_us[lo_d]))
                b = min(int(disc[k]), int(day_us[n_d]))
                if b - a < 40 * US_PER_DAY:
                    continue
                n_ch = 2 if (k != top and rng.random() < 0.3) else 1
                fracs = sorted(rng.uniform(0.3, 0.8, n_ch)) if k != top else [rng.uniform(0.5, 0.65)]
                for f in fracs:
                    at_day = int(np.searchsorted(day_us, a + f * (b - a)))
                    at = int(day_us[min(at_day, n_d)])
                    up = k == top or rng.random() < 0.65
                    factor = rng.uniform(1.15, 1.25) if k == top else (rng.uniform(1.08, 1.25) if up else rng.uniform(0.8, 0.93))
                    new = _round_price(current[k] / 100 * factor, level)
                    if new == current[k]:
                        new = current[k] + (100 if up else -100) * (5 if level >= 10 else 1)
                    changes[k].append((at, int(current[k]), int(new)))
                    current[k] = new
        smins = np.array([rng.uniform(*catalog.STATIONS[s][1:]) for s in stypes])
        extra = smins * rng.uniform(0.15, 0.35, n)
        recipe = [dict(it[4]) for it in items]
        return _MenuPlan(
            ids=self.ids.take("menu_menuitem", n), names=names, categories=cats, station_types=stypes,
            popularity=pop, elasticity=elast, created_us=created, intro_us=intro, disc_us=disc,
            price_changes=changes, initial_cents=init, current_cents=current, cost_cents=np.zeros(n, np.int64),
            base_minutes=smins, extra_minutes=extra,
            station_idx=np.zeros(n, np.int64), recipe=recipe,
        )

    def _plan_stations(self, plan: _RestaurantPlan) -> None:
        m = plan.menu
        types = [t for t in catalog.STATIONS if t in set(m.station_types)]
        plan.station_types = types
        m.station_idx = np.array([types.index(t) for t in m.station_types], dtype=np.int64)
        rng = _rng(self.cfg.seed, S_STATIONS, plan.index)
        plan.station_slopes = np.array([catalog.STATIONS[t][0] * rng.uniform(0.8, 1.2) for t in types])
        if "kitchen" in self.mods:
            plan.station_ids = self.ids.take("kitchen_station", len(types))
            for sid, t, s in zip(plan.station_ids, types, plan.station_slopes):
                self.truth.stations.append(StationTruth(int(sid), plan.rid, t, round(float(s), 6)))

    def _plan_inventory(self, plan: _RestaurantPlan, level: float) -> None:
        m = plan.menu
        rng = _rng(self.cfg.seed, S_INV_PLAN, plan.index)
        ingredients = sorted({ing for r in m.recipe for ing in r})
        cost = np.array([catalog.INGREDIENTS[g][1] * level * rng.uniform(0.9, 1.1) for g in ingredients])
        plan.inv_names = ingredients
        plan.inv_unit_cost = np.rint(cost * 10_000).astype(np.int64)
        R = np.zeros((len(m.ids), len(ingredients)))
        for a, r in enumerate(m.recipe):
            for g, q in r.items():
                b = ingredients.index(g)
                each = catalog.INGREDIENTS[g][0] == "each"
                R[a, b] = q if each else round(q * rng.uniform(0.9, 1.1), 4)
        plan.recipe_matrix = R
        food = R @ cost
        m.cost_cents = np.rint(food * 1.1 * 100).astype(np.int64)
        if "inventory" in self.mods:
            plan.inv_ids = self.ids.take("inventory_inventoryitem", len(ingredients))
            plan.recipe_ids = self.ids.take("menu_recipeingredient", int((R > 0).sum()))

    # -- chunks --------------------------------------------------------------------------------

    def chunks(self) -> Iterator[Chunk]:
        """The chain: a chain-level chunk, one chunk per restaurant, then the malformed restaurant."""
        yield self._chain_chunk()
        for plan in self.plans:
            yield RestaurantSim(self, plan).run()
        if self.cfg.malformed:
            yield self._mars_chunk()
        self._finish_truth()

    def _finish_truth(self) -> None:
        malformed = {k: v for k, v in self.truth.malformed.items()}
        self.truth.malformed = dict(sorted(malformed.items()))

    def _chain_chunk(self) -> Chunk:
        chunk: Chunk = {}
        chunk["restaurants_organization"] = {
            "id": Column(np.array([1], dtype=np.int64)),
            "name": obj_col(["Synthetic Dining Group"]),
        }
        plans = self.plans
        n = len(plans)
        rids = [p.rid for p in plans]
        names = [p.truth.name for p in plans]
        tzs = [p.tz for p in plans]
        ccs = [p.country for p in plans]
        rng = _rng(self.cfg.seed, S_CHAIN, 1)
        seats = rng.integers(40, 161, n).tolist()
        opened = [_days(p.truth.opened_on) for p in plans]
        if self.cfg.malformed:
            rids.append(self.mars_rid)
            names.append("Synthetic Kitchen Olympus Mons")
            tzs.append(UNKNOWN_TIMEZONE)
            ccs.append("US")
            seats.append(12)
            opened.append(_days(self.end) - 14)
            self.truth.malformed["restaurants_restaurant"] = 1
        chunk["restaurants_restaurant"] = {
            "id": Column(np.array(rids, dtype=np.int64)),
            "organization_id": Column(np.ones(len(rids), dtype=np.int64)),
            "name": obj_col(names),
            "timezone": obj_col(tzs),
            "country_code": obj_col(ccs),
            "seats": Column(np.array(seats, dtype=np.int64)),
            "opened_on": Column(np.array(opened, dtype=np.int64)),
            "is_active": Column(np.ones(len(rids), dtype=bool)),
        }
        if "inventory" in self.mods:
            chunk["inventory_supplier"] = {
                "id": Column(self.supplier_ids),
                "organization_id": Column(np.ones(len(self.supplier_ids), dtype=np.int64)),
                "name": obj_col([s[1] for s in catalog.SUPPLIERS]),
                "default_lead_time_days": Column(np.array([int(round(s[2] * 100)) for s in catalog.SUPPLIERS], dtype=np.int64)),
            }
        return chunk

    def _mars_chunk(self) -> Chunk:
        """A restaurant whose timezone no database knows, with a handful of ordinary orders."""
        rng = _rng(self.cfg.seed, S_MALFORMED, 10_000)
        rid = self.mars_rid
        chunk: Chunk = {}
        menu_ids = self.ids.take("menu_menuitem", 2)
        prices = np.array([1450, 350], dtype=np.int64)
        chunk["menu_menuitem"] = {
            "id": Column(menu_ids),
            "restaurant_id": Column(np.full(2, rid, dtype=np.int64)),
            "name": obj_col(["Red Dust Burger", "Olympus Soda"]),
            "category": obj_col(["mains", "drinks"]),
            "price": Column(prices),
            "cost": Column(np.array([480, 60], dtype=np.int64)),
            "station_id": Column(np.zeros(2, dtype=np.int64), np.ones(2, bool)),
            "is_active": Column(np.ones(2, bool)),
            "created_at": Column(np.full(2, self.end_us - 15 * US_PER_DAY, dtype=np.int64)),
        }
        n = 12
        created = np.sort(self.end_us - rng.integers(US_PER_H, 10 * US_PER_DAY, n))
        oids = self.ids.take("orders_order", n)
        n_lines = rng.integers(1, 3, n)
        line_order = np.repeat(np.arange(n), n_lines)
        item = rng.integers(0, 2, len(line_order))
        qty = np.ones(len(line_order), dtype=np.int64)
        subtotal = np.bincount(line_order, weights=prices[item] * qty, minlength=n).astype(np.int64)
        tax = np.rint(subtotal * 0.08).astype(np.int64)
        completed = created + rng.integers(5, 30, n) * US_PER_MIN
        chunk["orders_order"] = _orders_cols(
            oids, rid, np.zeros(n, np.int64), np.ones(n, bool), np.full(n, 1, np.int64), np.ones(n, np.int64),
            np.full(n, 1, np.int64), np.zeros(n, bool), subtotal, np.zeros(n, np.int64), tax, subtotal + tax, created,
            completed, np.zeros(n, bool),
        )
        lids = self.ids.take("orders_orderitem", len(line_order))
        chunk["orders_orderitem"] = {
            "id": Column(lids),
            "order_id": Column(oids[line_order]),
            "menu_item_id": Column(menu_ids[item]),
            "quantity": Column(qty),
            "unit_price": Column(prices[item]),
            "has_modifiers": Column(np.zeros(len(line_order), bool)),
            "created_at": Column(created[line_order]),
        }
        if "payments" in self.mods:
            pids = self.ids.take("payments_payment", n)
            chunk["payments_payment"] = {
                "id": Column(pids),
                "order_id": Column(oids),
                "method": text_col(np.zeros(n, np.int64), ["card"]),
                "amount": Column(subtotal + tax),
                "tip_amount": Column(np.zeros(n, np.int64)),
                "status": text_col(np.zeros(n, np.int64), ["captured"]),
                "paid_at": Column(completed),
            }
        self.truth.malformed_detail["restaurants_restaurant"] = {
            "unknown_timezone": {"restaurant_id": rid, "timezone": UNKNOWN_TIMEZONE, "orders": n, "order_ids": oids.tolist()}
        }
        return chunk


def _orders_cols(ids, rid, customer, customer_null, otype, status, guests, guests_null, subtotal, discount, tax, total,
                 created, completed, completed_null) -> dict[str, Column]:
    n = len(ids)
    return {
        "id": Column(ids),
        "restaurant_id": Column(np.full(n, rid, dtype=np.int64)),
        "customer_id": Column(customer, customer_null),
        "order_type": text_col(otype, ORDER_TYPES),
        "status": text_col(status, ("open",) + OPEN_ORDER_STATUSES),
        "guest_count": Column(guests, guests_null if guests_null.any() else None),
        "subtotal": Column(subtotal),
        "discount_total": Column(discount),
        "tax_total": Column(tax),
        "total": Column(total),
        "created_at": Column(created),
        "completed_at": Column(completed, completed_null if completed_null.any() else None),
    }


# ---------------------------------------------------------------------------------------------
# one restaurant's history


class RestaurantSim(CustomerSim, InventorySim):
    """Simulates one restaurant over the window and returns its rows as a chunk."""

    def __init__(self, builder: ChainBuilder, plan: _RestaurantPlan):
        self.b = builder
        self.p = plan
        self.seed = builder.cfg.seed
        self.mods = builder.mods
        self.chunk: Chunk = {}

    def rng(self, stream: int) -> np.random.Generator:
        return _rng(self.seed, stream, self.p.index)

    def run(self) -> Chunk:
        self._menu_tables()
        self._orders()
        self._lines()
        self._kitchen()
        self._finish_orders()
        self._customers()
        self._malformed_orders()
        self._emit_orders()
        if "payments" in self.mods:
            self._payments()
        if "inventory" in self.mods:
            self._inventory()
        return self.chunk

    # -- static tables ---------------------------------------------------------------------------

    def _menu_tables(self) -> None:
        p, m = self.p, self.p.menu
        n = len(m.ids)
        has_k = "kitchen" in self.mods
        self.chunk["menu_menuitem"] = {
            "id": Column(m.ids),
            "restaurant_id": Column(np.full(n, p.rid, dtype=np.int64)),
            "name": obj_col(m.names),
            "category": obj_col(m.categories),
            "price": Column(m.current_cents),
            "cost": Column(m.cost_cents),
            "station_id": Column(p.station_ids[m.station_idx] if has_k else np.zeros(n, np.int64), None if has_k else np.ones(n, bool)),
            "is_active": Column(m.disc_us >= self.b.end_us),
            "created_at": Column(m.created_us),
        }
        if has_k:
            k = len(p.station_ids)
            self.chunk["kitchen_station"] = {
                "id": Column(p.station_ids),
                "restaurant_id": Column(np.full(k, p.rid, dtype=np.int64)),
                "name": obj_col([f"{t.capitalize()} station" for t in p.station_types]),
                "station_type": obj_col(p.station_types),
            }
        if "inventory" in self.mods:
            a, b = np.nonzero(p.recipe_matrix)
            self.chunk["menu_recipeingredient"] = {
                "id": Column(p.recipe_ids),
                "menu_item_id": Column(m.ids[a]),
                "inventory_item_id": Column(p.inv_ids[b]),
                "quantity_per_unit": Column(np.rint(p.recipe_matrix[a, b] * 10_000).astype(np.int64)),
            }

    # -- orders ----------------------------------------------------------------------------------

    def _orders(self) -> None:
        """Poisson counts per 15-minute UTC slot from the LOCAL day and hour's intensity."""
        b, p = self.b, self.p
        rng = self.rng(S_ORDERS)
        n_slots = (b.end_us - b.start_us) // SLOT_US
        slot_us = b.start_us + np.arange(n_slots, dtype=np.int64) * SLOT_US
        local = _local_us(p.tz, slot_us)
        day = local // US_PER_DAY - p.first_day
        hour = (local % US_PER_DAY) // US_PER_H
        lam = p.daily_mult[day] * p.hourly[hour] * (SLOT_US / US_PER_H)
        counts = rng.poisson(lam)
        slot = np.repeat(np.arange(n_slots), counts)
        created = np.sort(slot_us[slot] + rng.integers(0, SLOT_US, len(slot)))
        n = len(created)
        self.created = created
        self.n_orders = n
        self.local_day = np.searchsorted(p.day_start_us, created, side="right") - 1
        mix = p.truth.order_type_mix
        pm = np.array([mix["dine_in"], mix["takeaway"], mix["delivery"]])
        self.otype = rng.choice(3, size=n, p=pm / pm.sum())
        self.status = rng.choice(3, size=n, p=STATUS_MIX) + 1  # codes into ("open",) + statuses
        self.guests = np.where(self.otype == 0, 1 + rng.poisson(1.2, n), 1).astype(np.int64)
        self.guests_null = (self.otype != 0) & (rng.random(n) < 0.5)
        disc = rng.random(n) < 0.04
        self.discount_rate = np.where(disc, 0.10, 0.0)
        self.service_us = rng.integers(1 * US_PER_MIN, 8 * US_PER_MIN, n)

    def _lines(self) -> None:
        """Order lines. Items are drawn from segment-wise weights (what is on sale); a price change
        then scales the item's own lines by (new/old) ** elasticity, leaving other items alone."""
        b, p, m = self.b, self.p, self.p.menu
        rng = self.rng(S_LINES)
        n = self.n_orders
        n_lines = rng.choice(np.arange(1, 6), size=n, p=ITEMS_PER_ORDER_P)
        line_order = np.repeat(np.arange(n), n_lines)
        line_us = self.created[line_order]
        n_items = len(m.ids)
        bounds = sorted(
            {int(x) for x in m.intro_us if b.start_us < x < b.end_us}
            | {int(x) for x in m.disc_us if b.start_us < x < b.end_us}
            | {at for ch in m.price_changes for at, _, _ in ch if b.start_us < at < b.end_us}
        )
        seg_start = np.array([b.start_us] + bounds, dtype=np.int64)
        S = len(seg_start)
        W = np.zeros((S, n_items))
        M = np.ones((S, n_items))
        P = np.zeros((S, n_items), dtype=np.int64)
        for s, t in enumerate(seg_start):
            price = m.initial_cents.copy()
            for k, ch in enumerate(m.price_changes):
                for at, old, new in ch:
                    if at <= t:
                        M[s, k] *= (new / old) ** m.elasticity[k]
                        price[k] = new
            W[s] = m.popularity * ((m.intro_us <= t) & (t < m.disc_us))
            P[s] = price
        seg = np.searchsorted(seg_start, line_us, side="right") - 1
        cdf = np.cumsum(W, axis=1)
        cdf = cdf / cdf[:, -1:]
        last_pos = n_items - 1 - np.argmax((W > 0)[:, ::-1], axis=1)
        cdf[np.arange(n_items)[None, :] >= last_pos[:, None]] = 1.0
        flat = (cdf + 2.0 * np.arange(S)[:, None]).ravel()
        item = np.searchsorted(flat, 2.0 * seg + rng.random(len(seg)), side="right") - seg * n_items
        # price response: thin the item's lines (never an order's first line, so no order empties;
        # the rate is scaled up to compensate) or add lines to random orders of the same segment
        mult = M[seg, item]
        pos = np.arange(len(item)) - np.repeat(np.cumsum(n_lines) - n_lines, n_lines)
        removable = max(float((pos > 0).mean()), 1e-9)
        drop = (mult < 1) & (pos > 0) & (rng.random(len(item)) < (1 - mult) / removable)
        spawn = np.flatnonzero((mult > 1) & (rng.random(len(item)) < mult - 1))
        seg_lo = np.searchsorted(self.created, seg_start)
        seg_hi = np.r_[seg_lo[1:], n]
        s_seg = seg[spawn]
        width = seg_hi[s_seg] - seg_lo[s_seg]
        t1 = seg_lo[s_seg] + (rng.random(len(spawn)) * width).astype(np.int64)
        t2 = seg_lo[s_seg] + (rng.random(len(spawn)) * width).astype(np.int64)
        target = np.where(n_lines[t1] < 5, t1, t2)  # prefer orders with room for another line
        keep = np.flatnonzero(~drop)
        line_order = np.r_[line_order[keep], target]
        item = np.r_[item[keep], item[spawn]]
        seg = np.r_[seg[keep], s_seg]
        order = np.argsort(line_order, kind="stable")
        line_order, item, seg = line_order[order], item[order], seg[order]
        counts = np.bincount(line_order, minlength=n)
        pos = np.arange(len(line_order)) - np.repeat(np.cumsum(counts) - counts, counts)
        fits = pos < 5  # at most 5 lines: an added line beyond that is dropped (originals come first)
        line_order, item, seg = line_order[fits], item[fits], seg[fits]
        n_lines = np.bincount(line_order, minlength=n)
        line_us = self.created[line_order]
        is_drink = np.array([c == "drinks" for c in m.categories])[item]
        u = rng.random(len(item))
        qty = np.where(is_drink, 1 + (u > 0.6) + (u > 0.9), 1 + (u > 0.82) + (u > 0.96)).astype(np.int64)
        self.line_order = line_order
        self.line_us = line_us
        self.item = item
        self.qty = qty
        self.unit_cents = P[seg, item]
        self.has_mod = rng.random(len(item)) < 0.15
        self.line_starts = np.concatenate([[0], np.cumsum(n_lines)[:-1]]).astype(np.int64)

    def _kitchen(self) -> None:
        """Station tickets: queue = tickets queued at the station in the previous 10 minutes."""
        b, p, m = self.b, self.p, self.p.menu
        rng = self.rng(S_KITCHEN)
        nl = len(self.item)
        station = m.station_idx[self.item]
        queued = np.minimum(self.line_us + rng.integers(5 * US_PER_S, 60 * US_PER_S, nl), b.end_us - 1)
        span = b.end_us - b.start_us + 2 * US_PER_DAY
        key = station * span + (queued - b.start_us)
        order = np.argsort(key, kind="stable")
        sk = key[order]
        lo = np.searchsorted(sk, sk - int(QUEUE_WINDOW_MIN * US_PER_MIN), side="left")
        qs = np.empty(nl, dtype=np.int64)
        qs[order] = np.arange(nl) - lo
        wait = np.rint((rng.exponential(0.4, nl) + 0.25 * qs) * US_PER_MIN).astype(np.int64)
        started = queued + wait
        base = m.base_minutes[self.item]
        prep = base * (1 + p.station_slopes[station] * qs) + m.extra_minutes[self.item] * (self.qty - 1)
        prep = np.maximum(prep + rng.normal(0, PREP_NOISE_SD, nl) * base, 0.2)
        prep_cm = np.rint(prep * 100).astype(np.int64)
        done = started + prep_cm * (US_PER_MIN // 100)
        self.k_station = station
        self.k_queued = queued
        self.k_started = started
        self.k_done = done
        self.k_prep_cm = prep_cm
        self.k_queue = qs

    def _finish_orders(self) -> None:
        """Completion times from the kitchen; orders not finished by `end` are still open."""
        b = self.b
        last_done = np.maximum.reduceat(self.k_done, self.line_starts) if self.n_orders else np.zeros(0, np.int64)
        completed = last_done + self.service_us
        self.status = np.where((self.status != 2) & (completed >= b.end_us), 0, self.status)
        self.completed = completed
        self.completed_null = (self.status == 0) | (self.status == 2)
        sub = np.bincount(self.line_order, weights=self.qty * self.unit_cents, minlength=self.n_orders)
        self.subtotal = np.rint(sub).astype(np.int64)
        self.discount = np.rint(self.subtotal * self.discount_rate).astype(np.int64)
        self.tax = np.rint((self.subtotal - self.discount) * self.p.truth.tax_rate).astype(np.int64)
        self.total = self.subtotal - self.discount + self.tax
        self.customer = np.zeros(self.n_orders, np.int64)
        self.customer_null = np.ones(self.n_orders, bool)

    # -- customers -------------------------------------------------------------------------------


    # -- malformed rows (restaurant 0 only) ------------------------------------------------------

    def _malformed_orders(self) -> None:
        self.extra_orders = None
        self.bad_lines = None
        if not (self.b.cfg.malformed and self.p.index == 0):
            return
        b = self.b
        rng = self.rng(S_MALFORMED)
        fut = b.end_us + np.array([int(1.5 * US_PER_DAY), int(7.125 * US_PER_DAY), 29 * US_PER_DAY]) + rng.integers(0, US_PER_H, 3)
        done = np.flatnonzero(self.status == 1)
        neg_at = self.created[rng.choice(done, 2, replace=False)] + US_PER_S if len(done) >= 2 else np.zeros(0, np.int64)
        created = np.concatenate([fut, neg_at])
        subtotal = np.concatenate([rng.integers(1500, 6000, 3), -rng.integers(1500, 6000, len(neg_at))])
        tax = np.concatenate([np.rint(subtotal[:3] * self.p.truth.tax_rate), np.zeros(len(neg_at))]).astype(np.int64)
        self.extra_orders = {
            "created": created,
            "status": np.array([0, 0, 0] + [3] * len(neg_at)),
            "otype": np.array([1, 1, 2] + [0] * len(neg_at)),
            "subtotal": subtotal,
            "tax": tax,
            "completed": created + 2 * US_PER_MIN,
            "completed_null": np.array([True, True, True] + [False] * len(neg_at)),
            "n_future": 3,
        }
        lines_of_done = np.flatnonzero(self.status[self.line_order] == 1)
        self.bad_lines = rng.choice(lines_of_done, 4, replace=False) if len(lines_of_done) >= 4 else np.zeros(0, np.int64)

    # -- emit orders, lines, kitchen ---------------------------------------------------------------

    def _emit_orders(self) -> None:
        b, p = self.b, self.p
        n = self.n_orders
        oids = b.ids.take("orders_order", n)
        self.oids = oids
        cols = _orders_cols(
            oids, p.rid, self.customer, self.customer_null, self.otype, self.status, self.guests, self.guests_null,
            self.subtotal, self.discount, self.tax, self.total, self.created, np.where(self.completed_null, 0, self.completed),
            self.completed_null,
        )
        nl = len(self.item)
        lids = b.ids.take("orders_orderitem", nl)
        lines = {
            "id": Column(lids),
            "order_id": Column(oids[self.line_order]),
            "menu_item_id": Column(p.menu.ids[self.item]),
            "quantity": Column(self.qty),
            "unit_price": Column(self.unit_cents),
            "has_modifiers": Column(self.has_mod),
            "created_at": Column(self.line_us),
        }
        if "kitchen" in self.mods:
            self.chunk["kitchen_orderitemstation"] = self._kitchen_cols(lids)
        if self.extra_orders is not None:
            e = self.extra_orders
            k = len(e["created"])
            eids = b.ids.take("orders_order", k)
            extra = _orders_cols(
                eids, p.rid, np.zeros(k, np.int64), np.ones(k, bool), e["otype"], e["status"], np.ones(k, np.int64),
                np.ones(k, bool), e["subtotal"], np.zeros(k, np.int64), e["tax"], e["subtotal"] + e["tax"], e["created"],
                np.where(e["completed_null"], 0, e["completed"]), e["completed_null"],
            )
            cols = {c: concat_columns([cols[c], extra[c]]) for c in cols}
            bl = self.bad_lines
            q = np.array([0, -1, 0, -2][: len(bl)], dtype=np.int64)
            bad_ids = b.ids.take("orders_orderitem", len(bl))
            bad = {
                "id": Column(bad_ids),
                "order_id": Column(oids[self.line_order[bl]]),
                "menu_item_id": Column(p.menu.ids[self.item[bl]]),
                "quantity": Column(q),
                "unit_price": Column(self.unit_cents[bl]),
                "has_modifiers": Column(np.zeros(len(bl), bool)),
                "created_at": Column(self.line_us[bl]),
            }
            lines = {c: concat_columns([lines[c], bad[c]]) for c in lines}
            nf = e["n_future"]
            b.truth.malformed["orders_order"] = k
            b.truth.malformed["orders_orderitem"] = len(bl)
            b.truth.malformed_detail["orders_order"] = {
                "future_created_at": eids[:nf].tolist(),
                "negative_total": eids[nf:].tolist(),
            }
            b.truth.malformed_detail["orders_orderitem"] = {"non_positive_quantity": bad_ids.tolist()}
        self.chunk["orders_order"] = cols
        self.chunk["orders_orderitem"] = lines

    def _kitchen_cols(self, lids: np.ndarray) -> dict[str, Column]:
        b, p = self.b, self.p
        nl = len(lids)
        ostatus = self.status[self.line_order]
        cancelled = ostatus == 2
        open_ = ostatus == 0
        done = ~cancelled & (self.k_done < b.end_us)
        started = ~cancelled & (self.k_started < b.end_us)
        # 0 queued, 1 in_progress, 2 completed, 3 cancelled
        kstat = np.where(cancelled, 3, np.where(done, 2, np.where(started, 1, 0)))
        prep = self.k_prep_cm.copy()
        done_us = self.k_done.copy()
        bad_ids: list[int] = []
        ids = b.ids.take("kitchen_orderitemstation", nl)
        if b.cfg.malformed and p.index == 0:
            rng = self.rng(S_MALFORMED + 100)
            cand = np.flatnonzero((kstat == 2) & ~open_)
            if len(cand) >= 3:
                pick = rng.choice(cand, 3, replace=False)
                prep[pick] = -rng.integers(100, 1000, 3)
                done_us[pick] = self.k_started[pick] + prep[pick] * (US_PER_MIN // 100)
                bad_ids = ids[np.sort(pick)].tolist()
                b.truth.malformed["kitchen_orderitemstation"] = 3
                b.truth.malformed_detail["kitchen_orderitemstation"] = {"negative_prep_time": bad_ids}
        return {
            "id": Column(ids),
            "order_item_id": Column(lids),
            "station_id": Column(p.station_ids[self.k_station]),
            "status": text_col(kstat, ["queued", "in_progress", "completed", "cancelled"]),
            "queued_at": Column(self.k_queued),
            "started_at": Column(self.k_started, ~(started | done)),
            "completed_at": Column(done_us, ~done),
            "prep_time_minutes": Column(prep, ~done),
            "queue_size_at_start": Column(self.k_queue),
        }

    # -- payments --------------------------------------------------------------------------------

    def _payments(self) -> None:
        b = self.b
        rng = self.rng(S_PAYMENTS)
        paid = np.flatnonzero((self.status == 1) | (self.status == 3))
        n = len(paid)
        split = rng.random(n) < 0.04
        rep = np.repeat(np.arange(n), np.where(split, 2, 1))
        second = np.zeros(len(rep), bool)
        second[1:] = rep[1:] == rep[:-1]
        total = self.total[paid]
        frac = rng.uniform(0.3, 0.7, n)
        first_part = np.rint(total * frac).astype(np.int64)
        amount = np.where(split[rep], np.where(second, total[rep] - first_part[rep], first_part[rep]), total[rep])
        method = rng.choice(4, size=len(rep), p=PAY_MIX)
        dine = self.otype[paid][rep] == 0
        tipping = dine & ((method == 0) | (method == 2)) & (rng.random(len(rep)) < 0.55)
        tip = np.where(tipping, np.rint(amount * rng.uniform(0.08, 0.22, len(rep))), 0).astype(np.int64)
        status = np.where(self.status[paid][rep] == 3, 1, 0)  # captured / refunded
        paid_at = self.completed[paid][rep] + second * rng.integers(10 * US_PER_S, 90 * US_PER_S, len(rep))
        paid_at = np.minimum(paid_at, b.end_us - 1)
        # a few declined attempts before the one that went through
        fail = np.flatnonzero(~second & (rng.random(len(rep)) < 0.015))
        f_at = paid_at[fail] - rng.integers(30 * US_PER_S, 5 * US_PER_MIN, len(fail))
        order_ix = np.concatenate([paid[rep], paid[rep[fail]]])
        at = np.concatenate([paid_at, f_at])
        cols = {
            "order": self.oids[order_ix],
            "method": np.concatenate([method, np.zeros(len(fail), np.int64)]),
            "amount": np.concatenate([amount, amount[fail]]),
            "tip": np.concatenate([tip, np.zeros(len(fail), np.int64)]),
            "status": np.concatenate([status, np.full(len(fail), 2)]),
        }
        o = np.argsort(at, kind="stable")
        m = len(o)
        self.chunk["payments_payment"] = {
            "id": Column(b.ids.take("payments_payment", m)),
            "order_id": Column(cols["order"][o]),
            "method": text_col(cols["method"][o], PAY_METHODS),
            "amount": Column(cols["amount"][o]),
            "tip_amount": Column(cols["tip"][o]),
            "status": text_col(cols["status"][o], ["captured", "refunded", "failed"]),
            "paid_at": Column(at[o]),
        }

    # -- inventory -------------------------------------------------------------------------------



# ---------------------------------------------------------------------------------------------
# public API


@dataclass
class SyntheticChain:
    tables: dict[str, pd.DataFrame]
    ground_truth: GroundTruth
    config: ChainConfig


def iter_chunks(cfg: ChainConfig) -> tuple[GroundTruth, Iterator[Chunk]]:
    """The chain as a stream of chunks (the loader's path). The ground truth is complete once the
    iterator is exhausted (stockouts and churned customers are filled in as restaurants run)."""
    builder = ChainBuilder(cfg)
    return builder.truth, builder.chunks()


def generate(cfg: ChainConfig) -> SyntheticChain:
    """Generate the whole chain in memory.

    Args:
        cfg: the chain to generate.

    Returns:
        SyntheticChain with ``tables`` (contract table name -> DataFrame with exactly the contract's
        columns in contract order; tables of modules not in ``cfg.modules`` are absent) and
        ``ground_truth``. Money is float (2 decimals), timestamps are UTC datetime64[us].
        Meant for small chains; use ``seed_database`` for large ones (it streams).
    """
    truth, chunks = iter_chunks(cfg)
    parts: dict[str, list[dict[str, Column]]] = defaultdict(list)
    for chunk in chunks:
        for table, cols in chunk.items():
            parts[table].append(cols)
    tables = {}
    for table in tables_for(cfg.modules):
        cols = parts.get(table)
        if not cols:
            merged = empty_columns(table)
        else:
            merged = {c.name: concat_columns([p[c.name] for p in cols]) for c in contract()[table].columns}
        tables[table] = to_frame(table, merged)
    return SyntheticChain(tables, truth, cfg)
