"""The replay's fair competitors (issue 26) on cases small enough to compute by hand: the par rule
with the model's position rule and MOQ, its cost fit, the order-up-to policy, the halves, the
curves' comparison, the default's choice, alarms and calibration judged without new orders, and
the lead-time world's weekday rules. No database."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from bench.inventory_replay import choose_default, curve_check
from bench.replay_alarms import alarms_without_new_orders, calibration_buckets, calibration_holds
from bench.replay_leadtimes import WorldLeadHistory, _deliver, usual_lead
from bench.replay_model import ModelInputs
from bench.replay_order_up_to import OrderUpTo
from bench.replay_policies import ParFit, ParRule, expiring, item_costs, shortage_penalty
from bench.replay_world import NEVER, State, World, replay

pytestmark = pytest.mark.pure


def one_item(shelf: int = 0, lots=None, days: int = 4) -> World:
    """One item of supplier 10 (delivers the next day), use 1 a day, 28 days of history at 1."""
    return World(
        item_id=np.array([100]), restaurant_id=np.array([1]), supplier_id=np.array([10]),
        shelf=np.array([shelf]), unit_cost=np.array([2.0]), demand=np.ones((days, 1)),
        lots0=[lots if lots is not None else [(NEVER, 1.0)]], pending0=[],
        arrive=lambda rid, sid, d: d + 1, history=np.ones((28, 1)),
    )


def morning_state(world: World) -> State:
    return State(0, [sorted([int(e), float(q)] for e, q in lot) for lot in world.lots0], [],
                 np.zeros(world.demand.shape), np.zeros(world.demand.shape))


def test_expiring_counts_what_rots_before_it_is_used_first_expiring_first():
    # day 0, 2 a day: the lot expiring end of day 1 can have 4 of its 5 used -> 1 lost; the lot
    # expiring on day 3 is beyond a 3-day horizon (days 0-2); stock that keeps never counts
    assert expiring([[1, 5.0], [3, 4.0], [NEVER, 10.0]], 0, 2.0, 3) == pytest.approx(1.0)
    # with a 4-day horizon the second lot is in: 8 usable by day 3, 4 already taken -> 4 of 4 used
    assert expiring([[1, 5.0], [3, 4.0]], 0, 2.0, 4) == pytest.approx(1.0)
    assert expiring([[1, 5.0], [3, 6.0]], 0, 2.0, 4) == pytest.approx(3.0)


def test_fair_par_rule_leaves_expiring_stock_out_of_its_position_and_orders_at_least_the_moq():
    # perishable, 4 on hand expiring at the end of day 1, use 1 a day: within lead + 1 = 2 days
    # 2 are used and 2 rot, so the position is 2, below R = 3 days: order up to 5 -> 3, MOQ 4 -> 4
    w = one_item(shelf=3, lots=[(1, 4.0)])
    s = morning_state(w)
    plain = ParRule(np.array([3.0]), np.array([5.0]))
    fair = ParRule(np.array([3.0]), np.array([5.0]), moq=np.array([4.0]), lead=np.array([1.0]))
    assert plain(w, s).tolist() == [0.0]  # counts the 4, not below 3 days
    assert fair(w, s).tolist() == [4.0]
    assert ParRule(np.array([3.0]), np.array([5.0]), lead=np.array([1.0]))(w, s).tolist() == [3.0]


def test_par_fit_picks_per_item_the_pair_of_least_cost_at_the_service_level():
    # item 0: (1, 2) holds 1 and is short 1 (value); (3, 5) holds 5, never short
    grid = pd.DataFrame({"i": [0, 0], "R": [1, 3], "P": [2, 5], "hold": [1.0, 5.0], "order": [0.0, 0.0],
                         "waste": [0.0, 0.0], "short_value": [1.0, 0.0], "stockout_days": [1, 0]})
    fit = ParFit(grid, np.zeros(1), np.ones(1))
    assert shortage_penalty(0.5) == pytest.approx(1.0) and shortage_penalty(0.9) == pytest.approx(9.0)
    assert fit.rule(0.5).R.tolist() == [1.0]  # 1 + 1 x 1 = 2 < 5
    assert fit.rule(0.9).R.tolist() == [3.0] and fit.rule(0.9).P.tolist() == [5.0]  # 1 + 9 = 10 > 5


def test_item_costs_add_holding_ordering_waste_and_the_priced_shortage():
    w = one_item(days=2, lots=[(NEVER, 1.0)])
    res = replay(w, lambda world, state: np.array([2.0]) if state.day == 0 else None)
    # day 0: 1 used, 0 left, 2 ordered; day 1: the 2 land, 1 used, 1 left (value 2)
    settings = SimpleNamespace(holding_cost_rate_per_year=365.0, order_cost=10.0)
    assert item_costs(res, slice(0, 2), settings, 0.5).tolist() == pytest.approx([1.0 * 2 + 10.0])
    assert item_costs(res, slice(1, 2), settings, 0.5).tolist() == pytest.approx([2.0])


def test_order_up_to_level_is_cover_days_of_use_plus_z_times_the_forecast_error():
    w = one_item(lots=[(NEVER, 1.0)])
    lead = pd.DataFrame({"supplier_id": [10], "expected_days": [1.0], "sd_days": [0.2]})
    inputs = ModelInputs([None], [{100: (np.ones(10), np.full(10, 0.5))}], [lead], pd.DataFrame(), pd.DataFrame())
    s = morning_state(w)
    # L + R = 2 days: S = 1 x 2 + z x 0.5 x sqrt(2); on hand 1 -> order S - 1
    assert OrderUpTo(inputs, 0.5)(w, s).tolist() == pytest.approx([1.0])
    z = float(norm.ppf(0.9))
    assert OrderUpTo(inputs, 0.9)(w, s).tolist() == pytest.approx([1.0 + z * 0.5 * np.sqrt(2)])
    assert OrderUpTo(inputs, 0.5, moq=np.array([3.0]))(w, s).tolist() == [3.0]


def test_summary_over_a_half_counts_only_its_days():
    w = one_item(days=4, lots=[(NEVER, 2.0)])
    res = replay(w, lambda world, state: None)  # 2 on hand, use 1 a day: short on days 2 and 3
    assert res.summary()["stockout_item_days"] == 2
    assert res.summary(slice(0, 2))["stockout_item_days"] == 0
    second = res.summary(slice(2, 4))
    assert second["stockout_item_days"] == 2 and second["runouts"] == 1
    assert res.summary(slice(0, 2))["avg_stock_value"] == pytest.approx((1 + 0) * 2.0 / 2)


def test_curve_check_interpolates_at_matched_stockout_levels():
    def pts(xy):
        return [{"second_half": {"stockout_item_days": x, "avg_stock_value": y}} for x, y in xy]

    model = pts([(10, 100.0), (30, 60.0)])
    other = pts([(0, 200.0), (20, 100.0), (40, 50.0)])
    got = curve_check(model, other)
    # overlap 10..30; at 10 the other is 150, at 20 the model is 80 vs 100, at 30 60 vs 75
    assert got["overlap"] == [10.0, 30.0]
    assert [(m["stockout_item_days"], m["model"], m["other"]) for m in got["matched"]] == [
        (10.0, 100.0, 150.0), (20.0, 80.0, 100.0), (30.0, 60.0, 75.0)]
    assert got["at_or_below"]
    assert curve_check(other, model)["at_or_below"] is False
    apart = curve_check(model, pts([(50, 10.0), (60, 5.0)]))
    assert apart["at_or_below"] is None and apart["other_stockouts"] == [50.0, 60.0]


def test_the_default_is_the_level_with_fewest_stockouts_at_no_more_waste_and_stock_than_the_chain():
    def res(short_days, stock, waste):
        r = SimpleNamespace()
        r.summary = lambda days=None: {"stockout_item_days": short_days, "avg_stock_value": stock, "waste_units": waste}
        return r

    hist = res(10, 100.0, 50.0)
    model = {0.9: res(14, 80.0, 30.0), 0.95: res(9, 90.0, 40.0), 0.99: res(5, 110.0, 45.0)}
    assert choose_default(model, hist, slice(0, 1))[0] == 0.95
    model[0.99] = res(5, 100.0, 50.0)  # at the chain's stock and waste: allowed, fewer stockouts
    assert choose_default(model, hist, slice(0, 1))[0] == 0.99


def test_alarms_and_calibration_are_judged_on_run_outs_without_new_orders():
    # two items, mornings 0-3; notice 1, horizon 2; cf = first day out without new orders
    cf = {(0, 0): 2, (1, 0): 1, (2, 0): 0, (0, 1): 5, (1, 1): 5, (2, 1): 1, (3, 1): 5}
    p = {k: np.array([0.0, 0.9, 0.9]) if k in {(0, 0), (1, 0), (0, 1)} else np.array([0.0, 0.1, 0.1]) for k in cf}
    watch = SimpleNamespace(cf=cf, out_now={k: False for k in cf}, model=SimpleNamespace(p_out=p))
    notice = {k: (1, 2) for k in cf}
    alarms = {k: bool(v[2] >= 0.5) for k, v in p.items()}
    got = alarms_without_new_orders(alarms, notice, watch, range(0, 4), end=10)
    # needed: (0,0) x=2, (1,0) x=1, (2,1) x=1; (2,0) x=0 is too late. Alarms: (0,0) (1,0) true, (0,1) false
    assert got == {"precision": pytest.approx(2 / 3, abs=1e-4), "recall": pytest.approx(2 / 3, abs=1e-4),
                   "alarms": 3, "true": 2, "needed": 3, "late": 0}
    world = SimpleNamespace(demand=np.zeros((10, 2)))
    b = calibration_buckets(watch, world, range(0, 4), ks=(1,), buckets=(0.0, 0.5, 1.01))["by_day_1"]
    # P(out by day 1): 0.9 for (0,0) [cf 2: no], (1,0) [cf 1: yes], (0,1) [no]; 0.1 for the other four
    assert b[1] == {"bucket": "0.50-1.00", "cases": 3, "predicted": 0.9, "realised": pytest.approx(0.3333, abs=1e-4)}
    assert b[0]["cases"] == 4 and b[0]["realised"] == 0.5  # (2,0) cf 0, (2,1) cf 1
    assert not calibration_holds({"by_day_1": b}, min_cases=3)
    assert calibration_holds({"by_day_1": b}, min_cases=5)


def test_the_lead_time_world_delivers_no_sunday_and_keeps_the_suppliers_mean_in_view():
    sunday = pd.Timestamp("2026-11-01 10:00")  # a Sunday
    got = _deliver(sunday, seed=1, supplier_id=999_999)
    assert got.weekday() in (0, 1) and got.hour == 7  # Monday 07:00, or Tuesday if Monday's round was missed
    assert _deliver(pd.Timestamp("2026-11-03 10:00"), 1, 3).weekday() != 6
    # the on-time lead leaves room for the late draws and the weekday shifts, never below 35 % of the mean
    assert 0.35 * 2.0 <= usual_lead(2.0, 0.5) < 2.0
    assert usual_lead(0.5, 2.0) == pytest.approx(0.35 * 0.5)


def test_the_world_lead_history_is_what_a_replica_would_show_as_of_each_morning():
    # supplier 10: every order takes 2 days, except the one placed on day -1, which takes 4
    arrive = SimpleNamespace(suppliers={10}, draw=lambda rid, sid, d: (None, 4.0 if d == -1 else 2.0))
    h = WorldLeadHistory(arrive, [(1, 10), (1, 99)], days=3, back=4, recent_days=2)
    hist, recent = h.frames(2)
    # as of day 2: placed on days -2..1; received by then: -2 (day 0), 0 (day 2); -1 lands day 3, 1 day 3
    assert hist.to_dict("records") == [{"supplier_id": 10, "n": 2, "mean": 2.0, "sd": 0.0, "p10": 2.0, "p50": 2.0, "p90": 2.0}]
    # the last 2 days' orders (days 0 and 1): day 0 received after 2 days, day 1 open for 1 day so far
    assert recent.to_dict("records") == [{"supplier_id": 10, "lead_days": 2.0, "open": False},
                                         {"supplier_id": 10, "lead_days": 1.0, "open": True}]
