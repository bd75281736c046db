"""The supplier lead-time distribution learnt from its own deliveries (models.lead_time, issue 26).

A supplier that usually delivers in two days but now and then skips a round or loses an order
has a lead time whose tail no lognormal with its mean and sd describes. The model keeps the
history's quantiles (lead / median ratios, shrunk to the chain's pool) with an exponential tail;
these tests check the arithmetic, then compare it on held-out orders with the lognormal it
replaced, and check what the reorder advice does with it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import lognorm

pure = pytest.mark.pure

LEVELS = (np.arange(40) + 0.5) / 40


def deliveries(n: int, seed: int) -> np.ndarray:
    """A daily supplier with missed rounds: 85 % in 1.7-2.3 days, 12 % a round or two late, 3 %
    lost for a week or more."""
    rng = np.random.default_rng(seed)
    lead = rng.uniform(1.7, 2.3, n)
    u = rng.random(n)
    lead += np.where(u < 0.12, rng.integers(1, 3, n), 0.0)
    lead += np.where(u > 0.97, 5 + rng.exponential(4.0, n), 0.0)
    return lead


def fitted(lead: np.ndarray, n_other: int = 0) -> pd.Series:
    from models.lead_time import SupplierLeadTime

    rows = [{"supplier_id": 1, "n": len(lead), "mean": lead.mean(), "sd": lead.std(ddof=1), "p10": np.quantile(lead, 0.1),
             "p50": np.median(lead), "p90": np.quantile(lead, 0.9), "quantiles": list(np.quantile(lead, LEVELS))}]
    suppliers = pd.DataFrame({"supplier_id": [1, 2], "promised_lead_days": [2.0, 4.0]})
    if n_other:
        other = np.full(n_other, 4.0)  # a supplier that is never late
        rows.append({"supplier_id": 2, "n": n_other, "mean": 4.0, "sd": 0.0, "p10": 4.0, "p50": 4.0, "p90": 4.0,
                     "quantiles": list(other[: len(LEVELS)] if n_other >= len(LEVELS) else np.full(len(LEVELS), 4.0))})
    est = SupplierLeadTime().fit(suppliers, pd.DataFrame(rows)).estimates_
    return est.set_index("supplier_id")


@pure
def test_lead_quantile_is_the_history_in_the_body_an_exponential_beyond_and_conditions_on_elapsed():
    from models.lead_time import lead_quantile, tail_mean

    q = np.quantile(deliveries(4000, 1), LEVELS)
    u = (np.arange(400) + 0.5) / 400
    draws = lead_quantile(q, u)
    assert np.all(np.diff(draws) >= 0)
    assert np.median(draws) == pytest.approx(np.interp(0.5, LEVELS, q), abs=0.05)
    assert draws[-1] > q[-1]  # beyond the last level: the tail goes on
    # an order 3 days out is past the usual: it comes later than 3 days, and still mostly soon
    late = lead_quantile(q, u, elapsed=3.0)
    assert late.min() >= 3.0 and np.mean(late <= 4.5) > 0.5
    # one older than every level waits the tail's exponential: memoryless, mean tail_mean(q)
    lost = lead_quantile(q, u, elapsed=30.0)
    assert np.mean(lost - 30.0) == pytest.approx(tail_mean(q), rel=0.05)


@pure
def test_a_short_history_borrows_the_chains_tail_and_a_long_one_keeps_its_own():
    from models.lead_time import POOL_PRIOR_ORDERS, QUANTILE_COLUMNS

    long = fitted(deliveries(1000, 2), n_other=10)
    own = long.loc[1, QUANTILE_COLUMNS].to_numpy(float)
    borrowed = long.loc[2, QUANTILE_COLUMNS].to_numpy(float)
    # 10 never-late orders: their top quantile moves a third of the way to the pool's shape
    w = 10 / (10 + POOL_PRIOR_ORDERS)
    pool_top = own[-1] / np.median(deliveries(1000, 2))
    assert borrowed[-1] == pytest.approx(4.0 * (w * 1.0 + (1 - w) * pool_top), rel=0.05)
    assert borrowed[0] <= 4.0 <= borrowed[-1]
    # without any history the lognormal of the promise (nothing better known)
    from models.lead_time import SupplierLeadTime

    bare = SupplierLeadTime().fit(pd.DataFrame({"supplier_id": [3], "promised_lead_days": [2.0]}),
                                  pd.DataFrame({c: pd.Series(dtype="int64" if c in ("supplier_id", "n") else float)
                                                for c in ("supplier_id", "n", "mean", "sd", "p10", "p50", "p90")})).estimates_
    assert np.isfinite(bare[QUANTILE_COLUMNS].to_numpy(float)).all() and bare["method"].iloc[0] == "rule"


@pure
def test_held_out_overdue_orders_are_forecast_better_than_by_the_lognormal_with_the_same_mean_and_sd():
    """Model quality on held-out orders: for every order still out after e days (e = 2.5, 3.5, 6),
    P(it lands within the next 2 days); Brier score against the lognormal of the history's mean
    and sd (the model before), with a margin."""
    from models.lead_time import QUANTILE_COLUMNS, lead_quantile

    train, test = deliveries(365, 3), deliveries(5000, 4)
    est = fitted(train).loc[1]
    q = est[QUANTILE_COLUMNS].to_numpy(float)
    mean, sd = train.mean(), train.std(ddof=1)
    s2 = math.log(1 + (sd / mean) ** 2)
    base = lognorm(s=math.sqrt(s2), scale=math.exp(math.log(mean) - s2 / 2))
    u = (np.arange(400) + 0.5) / 400
    brier_model, brier_base = [], []
    for e in (2.5, 3.5, 6.0):
        out = test[test > e]
        hit = (out <= e + 2).astype(float)
        p_model = float(np.mean(lead_quantile(q, u, e) <= e + 2))
        p_base = float((base.cdf(e + 2) - base.cdf(e)) / base.sf(e))
        brier_model.append(np.mean((hit - p_model) ** 2))
        brier_base.append(np.mean((hit - p_base) ** 2))
    assert sum(brier_model) < 0.8 * sum(brier_base), (brier_model, brier_base)


@pure
def test_reorder_point_from_the_lead_distribution_keeps_its_service_level_on_held_out_cycles():
    """The reorder point as the quantile of use over a random lead + review covers its share of
    held-out replenishment cycles (Poisson use of 10 a day) at every level; the Normal formula with
    the lead time's sd over-serves the low levels and under-serves the high ones (the tail), with a
    margin on the summed misses."""
    from scipy.stats import norm

    from models.lead_time import QUANTILE_COLUMNS, lead_quantile
    from models.reorder import reorder_point_quantile

    train = deliveries(365, 5)
    q = fitted(train).loc[1, QUANTILE_COLUMNS].to_numpy(float)
    draws = lead_quantile(q, (np.arange(200) + 0.5) / 200)
    d, sd_d, R = 10.0, math.sqrt(10.0), 1.0
    cover = train.mean() + R
    rng = np.random.default_rng(6)
    use = rng.poisson(d * (deliveries(20000, 7) + R))
    miss_model, miss_normal = [], []
    for level in (0.8, 0.9, 0.98, 0.99):
        rop = reorder_point_quantile(d, sd_d, draws + R, level)
        normal = d * cover + norm.ppf(level) * math.sqrt(cover * sd_d**2 + d**2 * train.std(ddof=1) ** 2)
        miss_model.append(abs(np.mean(use <= rop) - level))
        miss_normal.append(abs(np.mean(use <= normal) - level))
    assert max(miss_model) < 0.02, miss_model
    assert sum(miss_model) < 0.5 * sum(miss_normal), (miss_model, miss_normal)


@pure
def test_an_order_long_overdue_no_longer_counts_in_full_and_the_advice_reorders():
    """The replay's 32-day order: an order of a supplier whose late orders can take weeks, out for
    15 days, is unlikely to land within the cover, so the position leaves most of it out and
    the advice orders now; with the lead time's mean and sd alone (the lognormal) it did not."""
    from core.settings import InventorySettings
    from models.lead_time import QUANTILE_COLUMNS, lead_draws_now, supplier_quantiles
    from models.reorder import decide_item
    from models.stock_projection import arrival_scenarios

    rng = np.random.default_rng(8)
    slow = np.where(rng.random(365) < 0.8, rng.uniform(7, 10, 365), 9 + rng.exponential(12.0, 365))
    est = fitted(slow).reset_index()
    as_of = pd.Timestamp("2026-10-01 08:00", tz="UTC")
    orders = pd.DataFrame({"purchase_order_id": [1], "supplier_id": [1], "inventory_item_id": [7], "quantity": [100.0],
                           "ordered_at": [as_of - pd.Timedelta(days=15)], "expected_at": [pd.NaT]})
    today = pd.Timestamp("2026-10-01")
    L, sL = float(est.loc[0, "expected_days"]), float(est.loc[0, "sd_days"])
    usage, usage_sd = np.full(30, 5.0), np.full(30, 1.0)
    arrivals = np.zeros(30)
    arrivals[0] = 100.0  # overdue: expected today
    settings = InventorySettings()

    def advice(lead: pd.DataFrame, draws):
        scen = arrival_scenarios(orders, lead, {7: "UTC"}, {7: today}, {7: 23.0}, as_of, 30)[7]
        _, _, plan = decide_item(30.0, [], usage, usage_sd, arrivals, None, L, sL, settings, unit_cost=1.0,
                                 par_level=None, min_order_quantity=None, whole_units=False, scenarios=scen,
                                 p_out=False, lead_draws=draws)
        return plan

    with_tail = advice(est, lead_draws_now(supplier_quantiles(est), 1))
    lognormal = advice(est.drop(columns=QUANTILE_COLUMNS), None)
    assert lognormal["order_by_index"] != 0  # counted the overdue order in full: no order today
    assert with_tail["order_by_index"] == 0 and with_tail["quantity"] > 0
    assert with_tail["position"] < 30.0 + 100.0 * 0.8


@pure
def test_a_weekday_whose_orders_come_a_day_later_gets_that_day_shrunk_by_its_orders():
    from models.lead_time import SHIFT_COLUMNS, WEEKDAY_PRIOR_ORDERS, SupplierLeadTime, lead_draws_now, supplier_quantiles

    lead = deliveries(700, 9)
    row = {"supplier_id": 1, "n": 700, "mean": lead.mean(), "sd": lead.std(), "p10": 0.0, "p50": float(np.median(lead)),
           "p90": 0.0, "quantiles": list(np.quantile(lead, LEVELS))}
    for w in range(7):  # Saturday's orders wait for Monday's van: a day more; Sunday has 3 orders
        row[f"wd_n_{w}"] = 3 if w == 6 else 100
        row[f"wd_p50_{w}"] = row["p50"] + (1.0 if w in (5, 6) else 0.0)
    est = SupplierLeadTime().fit(pd.DataFrame({"supplier_id": [1], "promised_lead_days": [2.0]}),
                                 pd.DataFrame([row])).estimates_
    shifts = est[SHIFT_COLUMNS].to_numpy(float)[0]
    assert shifts[0] == 0.0 and shifts[5] == pytest.approx(100 / (100 + WEEKDAY_PRIOR_ORDERS))
    assert shifts[6] == pytest.approx(3 / (3 + WEEKDAY_PRIOR_ORDERS))
    base = lead_draws_now(supplier_quantiles(est), 1)
    assert np.allclose(lead_draws_now(supplier_quantiles(est), 1, shift=shifts[5]), base + shifts[5])


def test_the_readers_quantiles_and_weekday_medians_are_the_received_orders_own(seeded_replica):
    """``supplier_lead_times(quantiles=K)`` on the seeded chain: per supplier the received orders'
    lead times at the levels (k + 1/2) / K, and their medians by the local weekday of placement,
    as numpy and pandas compute them from ``received_orders``."""
    from core.replica import ReplicaReader
    from features.suppliers import received_orders, supplier_lead_times
    from worker import db

    reader = ReplicaReader(db.replica_engine())
    end = pd.Timestamp(str(seeded_replica["ground_truth"]["end"])).tz_localize("UTC")
    sids = [int(s) for s in reader.frame("SELECT id FROM inventory_supplier")["id"]]
    start, as_of = end - pd.Timedelta(days=365), end - pd.Timedelta(days=20)
    hist = supplier_lead_times(reader, sids, start, as_of, quantiles=8).set_index("supplier_id")
    orders = received_orders(reader, sids, start, as_of)
    got = reader.frame("SELECT id, received_at FROM inventory_purchaseorder").set_index("id")["received_at"]
    orders = orders[pd.to_datetime(orders["purchase_order_id"].map(got), utc=True) < as_of]
    tz = reader.frame("SELECT id, timezone FROM restaurants_restaurant").set_index("id")["timezone"]
    orders["weekday"] = [t.tz_convert(tz[r]).weekday() for t, r in zip(orders["ordered_at"], orders["restaurant_id"])]
    assert len(hist) and len(orders)
    for sid, g in orders.groupby("supplier_id"):
        lead = g["lead_days"].to_numpy(float)
        assert np.allclose(hist.loc[sid, "quantiles"], np.quantile(lead, (np.arange(8) + 0.5) / 8), atol=1e-6)
        for w, day in g.groupby("weekday"):
            assert hist.loc[sid, f"wd_n_{w}"] == len(day)
            assert hist.loc[sid, f"wd_p50_{w}"] == pytest.approx(float(day["lead_days"].median()), abs=1e-6)


@pure
def test_short_risk_over_agreeing_scenarios_is_the_reorder_point_rule_and_a_maybe_never_order_reorders():
    """With every arrival scenario landing the same quantity within the cover, "risk of running
    short > 1 - service level" is "position <= reorder point"; an open order that lands in 75 %
    of the scenarios and never in the rest is due again while its expected quantity alone (75)
    would still sit above the reorder point."""
    from models.reorder import reorder_point_quantile, short_risk

    draws = np.linspace(2.0, 6.0, 200)  # cover: lead + review
    d, sd_d, level = 10.0, 3.0, 0.9
    rop = reorder_point_quantile(d, sd_d, draws, level)
    for stock in (rop - 5, rop + 5):
        risk = short_risk(np.array([stock, stock]), np.array([0.5, 0.5]), d, sd_d, draws)
        assert (risk > 1 - level) == (stock <= rop)
    on_hand = 10.0
    assert on_hand + 0.75 * 100.0 > rop
    assert short_risk(np.array([on_hand + 100.0, on_hand]), np.array([0.75, 0.25]), d, sd_d, draws) > 1 - level
