"""Customer profiles and which orders they place: regulars who may drift away, and one-off guests.

A mixin of ``generator.RestaurantSim``: it reads the restaurant's orders (``self.created``,
``self.status``, ...) and writes ``customers_customerprofile`` into ``self.chunk`` and the churn
ground truth.

Why this shape (docs/synthetic.md): real guests are not clockwork. Visit rates differ a lot
between people (gamma-distributed), gaps are irregular (gamma renewal, Poisson at one end), and
most churn is a drift: the visit rate decays over weeks or months before the guest stops for
good; fewer stop abruptly; some stop after a cancelled or refunded order; some go quiet for a
season and come back; and a share of one-time guests do return, rarely. A churn model that only
had to spot a broken metronome would learn nothing useful for a real replica.

Customers do not create orders: their wished visit times are mapped onto the restaurant's
existing orders (the next order at or after each time), so demand is unchanged by the module.
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

# Regulars' visits (documented in docs/synthetic.md; the ground truth records the outcomes).
RATE_SHAPE = 2.0  # gamma shape of the per-customer visit rate across regulars
MEAN_RATE_PER_DAY = 1 / 14  # population mean visit rate
GAP_DAYS_RANGE = (3.0, 120.0)  # rates are clipped to these mean gaps
REGULARITY_RANGE = (1.0, 2.5)  # gamma shape of a customer's gaps: 1 is Poisson, higher is steadier
# Each way of leaving is a constant hazard from when they became active (an exponential time to
# the event), so churn does not bunch towards the end of the window and a model trained at an
# earlier cutoff faces the same odds; events drawn after `end` simply have not happened yet.
DECLINE_MEAN_DAYS = 900.0  # drift away: from then the rate decays exponentially, then they stop
DECAY_DAYS_RANGE = (20.0, 75.0)  # e-folding time of the decaying rate
DECAY_STOP = 0.1  # they stop for good once the rate is down to this share of their usual one
ABRUPT_MEAN_DAYS = 3000.0  # stop at once (moved away)
DORMANT_MEAN_DAYS = 2000.0  # a quiet season, then back
DORMANT_DAYS_RANGE = (45, 150)
P_CHURN_AFTER_FAILURE = 0.3  # a regular whose order was cancelled or refunded never comes back
FAILED = (2, 3)  # order status codes ("open", "completed", "cancelled", "refunded")
# One-off guests
RETURN_GAP_DAYS = 120.0  # mean gap of their rare later visits (exponential)
P_OPT_IN = 0.4  # opted in to marketing (regulars and one-off guests alike)
P_SIGNED_UP_AHEAD = 0.15  # one-off guests whose profile (app, website) predates their first order
SIGNED_UP_AHEAD_DAYS = (7, 365)  # how long before it
# Engagement the RMS records and BG/NBD ignores (docs/synthetic.md): odds ratios of a one-off
# guest coming back at all, on a base of P_ONEOFF_RETURN_BASE for a single dine-in guest with a
# completed order, no opt-in and a profile made at the till; about 20 % return overall.
P_ONEOFF_RETURN_BASE = 0.17
ONEOFF_RETURN_OR = {
    "opt_in": 2.0,
    "signed_up_ahead": 2.5,
    "delivery": 0.5,
    "party": 1.5,  # dine-in with 3 or more guests: brought friends or family, may bring them again
    "failed_first_order": 0.4,  # their first order was cancelled or refunded
}
# ... and marketing brings an opted-in returner back sooner: their gaps' mean is divided by this.
ONEOFF_OPT_IN_RETURN_SPEEDUP = 1.5
# Regulars: hazard ratios on drifting away and stopping abruptly (mean times divided by them).
REGULAR_HAZARD_RATIO = {"opt_in": 0.6, "delivery_leaning": 1.8}
P_DELIVERY_LEANING = 0.25  # regulars who order almost only delivery (where the restaurant delivers)
PARTY_GUESTS = 3


def _group_offsets(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For groups of sizes ``counts`` laid end to end: each element's group and its index within it."""
    rep = np.repeat(np.arange(len(counts)), counts)
    j = np.arange(len(rep)) - np.repeat(np.cumsum(counts) - counts, counts)
    return rep, j


def _exclusive_cumsum(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per group (sizes ``counts``, laid end to end), the sum of the values before each element."""
    cs = np.cumsum(values) - values
    starts = np.cumsum(counts) - counts
    base = cs[np.minimum(starts, max(len(cs) - 1, 0))] if len(cs) else np.zeros(len(counts))
    return cs - np.repeat(base, counts)


class CustomerSim:
    def _customers(self) -> None:
        if "customers" not in self.mods:
            return
        b, p = self.b, self.p
        rng = self.rng(S_CUSTOMERS)
        created = self.created
        n_reg = p.truth.regular_customers
        day = float(US_PER_DAY)
        window_open = int(p.day_start_us[p.open_idx]) if p.open_idx else b.start_us
        joined_before = rng.random(n_reg) < 0.6
        late_join_hi = max(window_open + 1, b.end_us - 30 * US_PER_DAY)
        join = np.where(
            joined_before,
            window_open - rng.integers(1, 1000, n_reg) * US_PER_DAY - rng.integers(0, US_PER_DAY, n_reg),
            rng.integers(window_open, late_join_hi, n_reg),
        )
        active_start = np.maximum(join, window_open)

        # -- who does what --------------------------------------------------------------------
        rate = rng.gamma(RATE_SHAPE, MEAN_RATE_PER_DAY / RATE_SHAPE, n_reg)
        rate = np.clip(rate, 1 / GAP_DAYS_RANGE[1], 1 / GAP_DAYS_RANGE[0])  # visits per day
        shape = rng.uniform(*REGULARITY_RANGE, n_reg)
        end = b.end_us
        otype = self.otype
        delivery_orders = np.flatnonzero(otype == 2)
        opt_in_reg = rng.random(n_reg) < P_OPT_IN
        delivery_leaning = (rng.random(n_reg) < P_DELIVERY_LEANING) & (len(delivery_orders) > 0)
        hazard = (np.where(opt_in_reg, REGULAR_HAZARD_RATIO["opt_in"], 1.0)
                  * np.where(delivery_leaning, REGULAR_HAZARD_RATIO["delivery_leaning"], 1.0))

        def after(mean_days: float, scale: np.ndarray | float = 1.0) -> np.ndarray:
            return active_start + (rng.exponential(mean_days, n_reg) / scale * day).astype(np.int64)

        # gradual: decline from decline_at, e-folding tau, stop when the rate is DECAY_STOP of usual
        decline_at = after(DECLINE_MEAN_DAYS, hazard)
        tau = rng.uniform(*DECAY_DAYS_RANGE, n_reg) * day
        stop_at = decline_at + (np.log(1 / DECAY_STOP) * tau).astype(np.int64)
        abrupt_at = after(ABRUPT_MEAN_DAYS, hazard)
        gradual = (decline_at < end) & (decline_at < abrupt_at)
        abrupt = (abrupt_at < end) & ~gradual
        # churned_at is a UTC midnight, so "no orders on or after churn_date" is exact
        churn_at = np.full(n_reg, end, dtype=np.int64)
        churn_at = np.where(gradual, -(-stop_at // US_PER_DAY) * US_PER_DAY, churn_at)
        churn_at = np.where(abrupt, abrupt_at // US_PER_DAY * US_PER_DAY, churn_at)
        churn_at = np.minimum(churn_at, end)
        # dormant: a quiet spell, after which they come back at their usual rate
        dorm_from = after(DORMANT_MEAN_DAYS)
        dorm_until = dorm_from + rng.integers(*DORMANT_DAYS_RANGE, n_reg) * US_PER_DAY
        dormant = (dorm_from < end) & (dorm_from < churn_at) & ~gradual

        # -- wished visit times: a gamma renewal process per customer, thinned by the decline ----
        span_days = np.maximum(end - active_start, 0) / day
        mean_n = rate * span_days
        n_cand = np.ceil(mean_n + 5 * np.sqrt(mean_n) + 5).astype(np.int64)
        rep, _ = _group_offsets(n_cand)
        gaps = rng.gamma(shape[rep], 1.0 / (shape[rep] * rate[rep]))
        # a member since before the window is somewhere in a gap; a new one signs up at a visit
        first = np.where(joined_before, rng.random(n_reg) / rate, rng.random(n_reg) * 0.01)
        t = (active_start[rep] + (first[rep] + _exclusive_cumsum(gaps, n_cand)) * day).astype(np.int64)
        keep = np.where(gradual[rep] & (t >= decline_at[rep]),
                        np.exp(-(t - decline_at[rep]) / tau[rep]), 1.0)
        keep = np.where(dormant[rep] & (t >= dorm_from[rep]) & (t < dorm_until[rep]), 0.0, keep)
        ok = (rng.random(len(rep)) < keep) & (t < churn_at[rep])
        rep, t = rep[ok], t[ok]
        idx = np.searchsorted(created, t)
        # a delivery-leaning regular takes the next delivery order instead
        lean = delivery_leaning[rep]
        if lean.any():
            pos = np.searchsorted(created[delivery_orders], t[lean])
            idx[lean] = np.where(pos < len(delivery_orders),
                                 delivery_orders[np.minimum(pos, len(delivery_orders) - 1)], len(created))
        ok = idx < len(created)
        rep, idx = rep[ok], idx[ok]
        ok = created[idx] < churn_at[rep]
        rep, idx = rep[ok], idx[ok]
        first_of = np.unique(idx, return_index=True)[1]
        idx, rep = idx[first_of], rep[first_of]

        # -- service failures: some regulars never come back after a cancelled or refunded order --
        fail = np.isin(self.status[idx], FAILED)
        first_fail = np.full(n_reg, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first_fail, rep[fail], created[idx[fail]])
        after_fail = (first_fail < churn_at) & (rng.random(n_reg) < P_CHURN_AFTER_FAILURE)
        churn_at = np.where(after_fail, (first_fail // US_PER_DAY + 1) * US_PER_DAY, churn_at)
        ok = created[idx] < churn_at[rep]
        rep, idx = rep[ok], idx[ok]
        churns = churn_at < end
        gradual &= ~after_fail
        abrupt &= ~after_fail
        cust_local = np.full(self.n_orders, -1, dtype=np.int64)
        cust_local[idx] = rep

        # -- one-off guests on a share of the remaining orders; a few come back, rarely --------
        free = np.flatnonzero(cust_local < 0)
        pick = rng.random(len(free)) < p.truth.one_off_share
        oneoff, rest = free[pick], free[~pick]
        n_one = len(oneoff)
        cust_local[oneoff] = n_reg + np.arange(n_one)
        opt_in_one = rng.random(n_one) < P_OPT_IN
        ahead = rng.random(n_one) < P_SIGNED_UP_AHEAD
        o = ONEOFF_RETURN_OR
        odds = (P_ONEOFF_RETURN_BASE / (1 - P_ONEOFF_RETURN_BASE)
                * np.where(opt_in_one, o["opt_in"], 1.0)
                * np.where(ahead, o["signed_up_ahead"], 1.0)
                * np.where(otype[oneoff] == 2, o["delivery"], 1.0)
                * np.where((otype[oneoff] == 0) & (self.guests[oneoff] >= PARTY_GUESTS), o["party"], 1.0)
                * np.where(np.isin(self.status[oneoff], FAILED), o["failed_first_order"], 1.0))
        returns = rng.random(n_one) < odds / (1 + odds)
        n_back = np.where(returns, rng.integers(1, 4, n_one), 0)
        o_rep, _ = _group_offsets(n_back)
        back_gaps = rng.exponential(RETURN_GAP_DAYS, len(o_rep)) / np.where(opt_in_one[o_rep],
                                                                             ONEOFF_OPT_IN_RETURN_SPEEDUP, 1.0)
        back_t = created[oneoff[o_rep]] + ((_exclusive_cumsum(back_gaps, n_back) + back_gaps) * day).astype(np.int64)
        pos = np.searchsorted(created[rest], back_t)
        ok = pos < len(rest)
        o_rep, pos = o_rep[ok], pos[ok]
        first_of = np.unique(pos, return_index=True)[1]
        cust_local[rest[pos[first_of]]] = n_reg + o_rep[first_of]

        n_c = n_reg + n_one
        lead = np.where(ahead, rng.integers(*SIGNED_UP_AHEAD_DAYS, n_one) * US_PER_DAY, 0)
        joined = np.concatenate([join, created[oneoff] - lead - rng.integers(US_PER_MIN, 10 * US_PER_MIN, n_one)])
        opt_in = np.concatenate([opt_in_reg, opt_in_one])
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
        kinds = np.where(gradual, "gradual", np.where(abrupt, "abrupt", "after_service_failure"))
        self.b.truth.churned_customers.extend(
            {
                "customer_id": int(ids[c]),
                "restaurant_id": p.rid,
                "churned_at": _dt(int(churn_at[c])),
                "churn_date": _date(int(churn_at[c]) // US_PER_DAY),
                "orders_before_churn": int(counts[c]),
                "kind": str(kinds[c]),
                "decline_started_at": _dt(int(decline_at[c])) if gradual[c] else None,
            }
            for c in np.flatnonzero(churns)
        )
        self.b.truth.dormant_customers.extend(
            {
                "customer_id": int(ids[c]),
                "restaurant_id": p.rid,
                "dormant_from": _dt(int(dorm_from[c])),
                "dormant_until": _dt(int(dorm_until[c])),
            }
            for c in np.flatnonzero(dormant)
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
            "marketing_opt_in": Column(opt_in[order]),
        }
