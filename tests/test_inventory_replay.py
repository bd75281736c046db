"""The decision replay's bookkeeping (bench.inventory_replay) against a hand computation, on a
two-item world small enough to follow on paper; no database."""

from __future__ import annotations

import numpy as np
import pytest

from bench.inventory_replay import (
    NEVER,
    ParRule,
    World,
    alarms_in_time,
    replay,
    without_new_orders,
)


def tiny_world() -> World:
    """Item 0: perishable (shelf life 2 days), 5 on hand expiring at the end of day 0, 5 in transit
    landing on day 2, supplier 10 delivers the next day. Item 1: keeps, 6 on hand, supplier 11
    delivers two days after the order. The restaurant is closed on day 1."""
    arrive = {10: 1, 11: 2}
    closed = np.zeros((5, 2), bool)
    closed[1] = True
    return World(
        item_id=np.array([100, 101]), restaurant_id=np.array([1, 1]), supplier_id=np.array([10, 11]),
        shelf=np.array([2, 0]), unit_cost=np.array([2.0, 1.0]),
        demand=np.array([[3, 2], [3, 0], [3, 5], [1, 1], [0, 1]], dtype=float),
        lots0=[[(0, 5.0)], [(NEVER, 6.0)]], pending0=[(0, 5.0, -1, 2)],
        arrive=lambda rid, sid, d: d + arrive[sid], closed=closed, history=np.ones((28, 2)),
        start=None,
    )


def scripted(world: World, state) -> np.ndarray:
    """Order 4 of item 1 on day 0, 4 more on (closed) day 1, 2 of item 0 on day 3."""
    return {0: np.array([0.0, 4.0]), 1: np.array([0.0, 4.0]), 3: np.array([2.0, 0.0])}.get(state.day, np.zeros(2))


def test_replay_books_deliveries_use_expiry_and_run_outs_like_the_hand_computation():
    seen = {}
    res = replay(tiny_world(), scripted, observers=(lambda w, s: seen.setdefault(s.day, without_new_orders(w, s, 5)),))
    # item 0: day 0 uses 3 of the 5 expiring that evening, 2 written off; day 1 has nothing (3
    # short); day 2 the 5 in transit land (expire end of day 4), 3 used; day 3 uses 1; day 4 the
    # 2 ordered on day 3 land, nothing used, the 1 left of day 2's batch expires
    assert res.expired[:, 0].tolist() == pytest.approx([2, 0, 0, 0, 1])
    assert res.short[:, 0].tolist() == pytest.approx([0, 3, 0, 0, 0])
    assert res.end_stock[:, 0].tolist() == pytest.approx([0, 0, 2, 1, 2])
    assert res.received[:, 0].tolist() == pytest.approx([0, 0, 5, 0, 2])
    assert res.served[:, 0].tolist() == pytest.approx([3, 0, 3, 1, 0])
    # item 1: 6 - 2 = 4; closed day 1 places no order; day 0's 4 land on day 2: 4 + 4 - 5 = 3; 2; 1
    assert res.end_stock[:, 1].tolist() == pytest.approx([4, 4, 3, 2, 1])
    assert res.ordered[:, 1].tolist() == pytest.approx([4, 0, 0, 0, 0])
    assert res.short[:, 1].sum() == 0
    # stock balances: start + received - used - expired = end, every item
    start = np.array([5.0, 6.0])
    assert (start + res.received.sum(0) - res.served.sum(0) - res.expired.sum(0)) == pytest.approx(res.end_stock[-1])
    s = res.summary()
    assert s["stockout_item_days"] == 1 and s["units_short"] == pytest.approx(3.0)
    assert s["waste_units"] == pytest.approx(3.0)
    assert s["orders"] == 2  # one purchase order on day 0 (supplier 11), one on day 3 (supplier 10)
    assert s["avg_stock_value"] == pytest.approx((4 + 4 + 7 + 4 + 5) / 5)  # end stock x unit cost
    assert res.runouts() == [(0, 1)]
    # without new orders, seen after day 0's order: item 0 out on day 1, item 1 never (its order lands day 2)
    assert seen[0].tolist() == [1, 5]


def test_a_run_out_continues_over_days_without_demand():
    w = tiny_world()
    w.demand = np.array([[3, 0], [3, 0], [0, 0], [3, 0], [3, 0]], dtype=float)
    w.pending0 = []
    res = replay(w, lambda world, state: None)
    assert res.short[:, 0].tolist() == pytest.approx([0, 3, 0, 3, 3])
    assert res.runouts() == [(0, 1)]  # day 2 (no demand) did not end it


def test_par_rule_orders_up_to_P_days_below_R_days():
    w = tiny_world()
    w.demand = np.full((5, 2), 1.0)
    w.pending0, w.closed = [], None
    w.lots0 = [[(NEVER, 3.0)], [(NEVER, 10.0)]]
    w.shelf = np.array([0, 0])
    res = replay(w, ParRule(R=np.array([3.0, 3.0]), P=np.array([6.0, 6.0])))
    # item 0: position 3 is not below 3 days; day 1: 2 < 3 -> order 6 - 2 = 4 (lands day 2)
    assert res.ordered[:, 0].tolist() == pytest.approx([0, 4, 0, 0, 0])
    assert res.ordered[:, 1].sum() == 0  # 10 days of stock never falls below 3 in 5 days


def test_alarms_count_only_when_they_come_at_least_the_lead_time_before():
    notice = {(d, 0): (2, 3) for d in range(10)}
    runouts = [(0, 6)]
    early_enough = {(3, 0): True, (4, 0): True}  # 3 and 2 days before: in time
    late = {(5, 0): True}  # 1 day before: less than the 2 days an order needs
    too_early = {(1, 0): True}  # 5 days before: beyond the alarm's horizon
    assert alarms_in_time(early_enough, notice, runouts, 10) == {
        "precision": 1.0, "recall": 1.0, "alarms": 2, "late": 0, "runouts": 1, "caught": 0 + 1}
    r = alarms_in_time(late, notice, runouts, 10)
    assert r["recall"] == 0.0 and r["late"] == 1 and r["precision"] is None
    r = alarms_in_time(too_early, notice, runouts, 10)
    assert r["recall"] == 0.0 and r["precision"] == 0.0


def test_notice_days_round_the_lead_time_to_the_day_an_order_can_feed():
    from models.reorder import notice_days

    assert [notice_days(x) for x in (0.3, 1.03, 1.84, 2.2, 9.5)] == [1, 1, 2, 2, 10]
