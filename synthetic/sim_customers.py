"""Customer profiles and which orders they place: regulars who may drift away, and one-off guests.

A mixin of ``generator.RestaurantSim``: it reads the restaurant's orders (``self.created``, ...)
and writes ``customers_customerprofile`` into ``self.chunk`` and the churn ground truth.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from synthetic import catalog
from synthetic.simcore import (
    S_CUSTOMERS,
    _date,
    _days,
    _dt,
)
from synthetic.tables import (
    US_PER_DAY,
    US_PER_MIN,
    Column,
    obj_col,
    text_col,
)


class CustomerSim:
    def _customers(self) -> None:
        if "customers" not in self.mods:
            return
        b, p = self.b, self.p
        rng = self.rng(S_CUSTOMERS)
        created = self.created
        n_reg = p.truth.regular_customers
        window_open = int(p.day_start_us[p.open_idx]) if p.open_idx else b.start_us
        joined_before = rng.random(n_reg) < 0.6
        late_join_hi = max(window_open + 1, b.end_us - 30 * US_PER_DAY)
        join = np.where(
            joined_before,
            window_open - rng.integers(1, 1000, n_reg) * US_PER_DAY - rng.integers(0, US_PER_DAY, n_reg),
            rng.integers(window_open, late_join_hi, n_reg),
        )
        active_start = np.maximum(join, window_open)
        interval = rng.uniform(7, 30, n_reg) * US_PER_DAY
        churn_lo = active_start + 60 * US_PER_DAY
        churn_hi = b.end_us - 30 * US_PER_DAY
        churns = (rng.random(n_reg) < 0.25) & (churn_hi - churn_lo > US_PER_DAY)
        churn_at = np.where(churns, 0, b.end_us)
        if churns.any():
            # churn at a UTC midnight so that "no orders on or after churn_date" is exact
            cday = (churn_lo[churns] + rng.random(churns.sum()) * (churn_hi - churn_lo[churns])) // US_PER_DAY
            churn_at[churns] = cday.astype(np.int64) * US_PER_DAY
        active_end = churn_at
        span = np.maximum(active_end - active_start, 0)
        n_t = (span // interval).astype(np.int64) + 1
        rep = np.repeat(np.arange(n_reg), n_t)
        j = np.arange(len(rep)) - np.repeat(np.cumsum(n_t) - n_t, n_t)
        phase = rng.random(n_reg)
        t = active_start[rep] + (phase[rep] + j) * interval[rep] + rng.normal(0, 0.15, len(rep)) * interval[rep]
        t = t.astype(np.int64)
        ok = (t >= active_start[rep]) & (t < active_end[rep])
        rep, t = rep[ok], t[ok]
        idx = np.searchsorted(created, t)
        ok = idx < len(created)
        rep, idx = rep[ok], idx[ok]
        ok = created[idx] < active_end[rep]
        rep, idx = rep[ok], idx[ok]
        first = np.unique(idx, return_index=True)[1]
        idx, rep = idx[first], rep[first]
        cust_local = np.full(self.n_orders, -1, dtype=np.int64)
        cust_local[idx] = rep
        # one-off customers on a share of the remaining orders
        free = np.flatnonzero(cust_local < 0)
        oneoff = free[rng.random(len(free)) < p.truth.one_off_share]
        n_one = len(oneoff)
        cust_local[oneoff] = n_reg + np.arange(n_one)
        n_c = n_reg + n_one
        joined = np.concatenate([join, created[oneoff] - rng.integers(US_PER_MIN, 10 * US_PER_MIN, n_one)])
        # ids follow date_joined, as a real auto-increment would
        by_join = np.argsort(joined, kind="stable")
        ids = np.empty(n_c, dtype=np.int64)
        ids[by_join] = b.ids.take("customers_customerprofile", n_c)
        has = cust_local >= 0
        self.customer = np.where(has, ids[np.maximum(cust_local, 0)], 0)
        self.customer_null = ~has
        counts = np.bincount(cust_local[has], minlength=n_c)
        points = counts * 10 + rng.integers(0, 50, n_c)
        tier = np.select([points >= 1000, points >= 500, points >= 200], [3, 2, 1], 0)
        first_i = rng.integers(0, len(catalog.FIRST_NAMES), n_c)
        last_i = rng.integers(0, len(catalog.LAST_NAMES), n_c)
        _, _, prefix, tld = catalog.COUNTRY[p.country]
        tag = rng.integers(1, 9999, n_c)
        fn = np.array(catalog.FIRST_NAMES, dtype=object)[first_i]
        ln = np.array(catalog.LAST_NAMES, dtype=object)[last_i]
        emails = [f"{a.lower()}.{c.lower()}{d}@example.{tld}" for a, c, d in zip(fn, ln, tag)]
        digits = rng.integers(100_000_000, 999_999_999, n_c)
        phones = np.array([f"{prefix} {d}" for d in digits], dtype=object)
        phone_null = rng.random(n_c) < 0.15
        birth = rng.integers(_days(dt.date(1945, 1, 1)), _days(dt.date(2006, 12, 31)), n_c)
        birth_null = rng.random(n_c) < 0.25
        order = by_join
        self.b.truth.churned_customers.extend(
            {
                "customer_id": int(ids[c]),
                "restaurant_id": p.rid,
                "churned_at": _dt(int(churn_at[c])),
                "churn_date": _date(int(churn_at[c]) // US_PER_DAY),
                "orders_before_churn": int(counts[c]),
            }
            for c in np.flatnonzero(churns)
        )
        self.chunk["customers_customerprofile"] = {
            "id": Column(ids[order]),
            "organization_id": Column(np.ones(n_c, dtype=np.int64)),
            "home_restaurant_id": Column(np.full(n_c, p.rid, dtype=np.int64)),
            "first_name": obj_col(fn[order]),
            "last_name": obj_col(ln[order]),
            "email": obj_col(np.array(emails, dtype=object)[order]),
            "phone": Column(phones[order], phone_null[order]),
            "birth_date": Column(birth[order], birth_null[order]),
            "date_joined": Column(joined[order]),
            "loyalty_tier": text_col(tier[order], ["none", "silver", "gold", "platinum"]),
            "loyalty_points": Column(points[order].astype(np.int64)),
            "marketing_opt_in": Column((rng.random(n_c) < 0.4)[order]),
        }
