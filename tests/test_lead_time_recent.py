"""Supplier lead time conditioned on the supplier's recent lateness (models.lead_time, issue #8 follow-up).

Pure arithmetic of the shrunk recent factor and its censored median, then as-of correctness on the
seeded chain: what is received after the run's instant cannot move the estimate.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import REPLICA_URL
from worker import db
from worker.db import sqlalchemy_url

SUPPLIERS = pd.DataFrame({"supplier_id": [1], "promised_lead_days": [2.0]})
# a long record: 200 orders, 2 days on average and at the median
HISTORY = pd.DataFrame({"supplier_id": [1], "n": [200], "mean": [2.0], "sd": [0.4], "p10": [1.5], "p50": [2.0], "p90": [2.5]})


def recent(leads, open_=None):
    leads = list(leads)
    return pd.DataFrame({"supplier_id": [1] * len(leads), "lead_days": leads,
                         "open": list(open_) if open_ is not None else [False] * len(leads)})


def fit(rec=None, k=5.0):
    from models.lead_time import SupplierLeadTime

    return SupplierLeadTime(recent_prior_orders=k).fit(SUPPLIERS, HISTORY, rec).estimates_.iloc[0]


def test_a_supplier_running_late_gets_a_longer_lead_time_than_its_long_run_one():
    long_run = fit()
    assert long_run["recent_lateness_factor"] == 1.0 and long_run["recent_orders"] == 0
    late = fit(recent([3.5] * 10))  # ten recent orders took 3.5 days instead of the usual 2
    w = 10 / (10 + 5)
    assert late["recent_lateness_factor"] == pytest.approx(math.exp(w * math.log(3.5 / 2.0)))
    assert late["expected_days"] == pytest.approx(long_run["expected_days"] * late["recent_lateness_factor"])
    assert late["long_run_expected_days"] == pytest.approx(long_run["expected_days"])
    assert late["expected_days"] > long_run["expected_days"] + 0.8
    # the spread relative to the lead time is kept, the interval follows
    assert late["sd_days"] / late["expected_days"] == pytest.approx(long_run["sd_days"] / long_run["expected_days"])
    assert late["lower"] <= late["expected_days"] <= late["upper"]


def test_few_recent_orders_are_shrunk_towards_the_long_run():
    long_run = fit()["expected_days"]
    one = fit(recent([3.5]))
    three = fit(recent([3.5] * 3))
    ten = fit(recent([3.5] * 10))
    assert long_run < one["expected_days"] < three["expected_days"] < ten["expected_days"] < long_run * 3.5 / 2.0
    assert one["recent_lateness_factor"] == pytest.approx(math.exp(1 / 6 * math.log(1.75)))
    # an early spell shortens it the same way
    assert fit(recent([1.2] * 10))["expected_days"] < long_run
    # one order stuck as 'sent' for weeks counts as 4x the usual at most
    assert fit(recent([60.0], [True]))["recent_lateness_factor"] == pytest.approx(math.exp(1 / 6 * math.log(4.0)))


def test_open_orders_count_once_they_are_overdue():
    # placed hours ago and not here yet: says nothing
    quiet = fit(recent([0.2, 0.5, 0.9], [True, True, True]))
    assert quiet["recent_lateness_factor"] == 1.0 and quiet["recent_orders"] == 0
    # five orders 3 days out and not here yet: the supplier is at least 1.5x late
    overdue = fit(recent([3.0] * 5, [True] * 5))
    assert overdue["recent_orders"] == 5
    assert overdue["recent_lateness_factor"] == pytest.approx(math.exp(0.5 * math.log(1.5)))


def test_censored_median_is_kaplan_meier():
    from models.lead_time import censored_median

    x = np.array([0.1, -0.3, 0.4, 0.2, -0.1])
    assert censored_median(x, np.ones(5, bool)) == pytest.approx(0.1)  # nothing censored: the median
    # two still open at 0.0 (their value is above): they carry the weight of the later orders, so
    # the survival reaches 1/2 at 0.2 (4/5 x 1/2), not at the naive median of the values (0.0)
    obs = np.array([True, True, True, False, False])
    x = np.array([-0.3, 0.2, 0.5, 0.0, 0.0])
    assert censored_median(x, obs) == pytest.approx(0.2)
    # most still open, later than usual: the largest value is a lower bound
    assert censored_median(np.array([0.3, 0.4, -0.2]), np.array([False, False, True])) == pytest.approx(0.4)
    # most still open and not yet late: "as usual"
    assert censored_median(np.array([-0.5, -0.4, -0.2]), np.array([False, False, False])) == 0.0


def test_row_keeps_its_fields_and_adds_the_recent_ones():
    from models.lead_time import SupplierLeadTime, lead_time_rows

    est = SupplierLeadTime().fit(SUPPLIERS, HISTORY, recent([3.5] * 10)).estimates_
    row = lead_time_rows(est).iloc[0]
    d = row["details"]
    assert {"sd_days", "median_days", "observed_orders", "promised_days", "interval_level"} <= set(d)
    assert d["recent_orders"] == 10 and d["recent_lateness_factor"] > 1.2
    assert row["value"] == pytest.approx(d["long_run_expected_days"] * d["recent_lateness_factor"], rel=1e-3)


# --------------------------------------------------------------------------- as of, on the chain


def _estimates(reader, as_of):
    from features.suppliers import shard_suppliers, supplier_lead_times, supplier_recent_orders
    from models.lead_time import SupplierLeadTime

    rids = [int(i) for i in reader.frame("SELECT id FROM restaurants_restaurant")["id"]]
    sup = shard_suppliers(reader, rids)
    sids = [int(s) for s in sup["supplier_id"]]
    hist = supplier_lead_times(reader, sids, as_of - pd.Timedelta(days=365), as_of)
    rec = supplier_recent_orders(reader, sids, as_of, 5)
    return rec, SupplierLeadTime().fit(sup, hist, rec).estimates_.set_index("supplier_id")


def test_a_receipt_after_the_instant_does_not_move_the_estimate(seeded_replica):
    """An order open at as_of: wherever its receipt lands after as_of, nothing changes; received
    before as_of instead, it does count (the test can see a change)."""
    from core.replica import ReplicaReader

    reader = ReplicaReader(db.replica_engine())
    end = pd.Timestamp(str(seeded_replica["ground_truth"]["end"])).tz_localize("UTC")
    as_of = end - pd.Timedelta(days=30) + pd.Timedelta(hours=4)
    with db.replica_engine().connect() as conn:
        po_id, supplier_id, ordered_at, received_at = conn.execute(text(
            """SELECT id, supplier_id, ordered_at, received_at FROM inventory_purchaseorder
               WHERE status = 'received' AND ordered_at < :t AND ordered_at >= :t - interval '2 days'
                 AND ordered_at < :t - interval '2 hours' AND received_at >= :t + interval '12 hours'
               ORDER BY ordered_at LIMIT 1"""), {"t": as_of.to_pydatetime()}).one()
    rec0, est0 = _estimates(reader, as_of)
    assert rec0.loc[rec0["open"], "supplier_id"].eq(supplier_id).any()

    writer = create_engine(sqlalchemy_url(REPLICA_URL))  # the replica engine is read-only

    def move(to):
        with writer.begin() as conn:
            conn.execute(text("UPDATE inventory_purchaseorder SET received_at = :r WHERE id = :i"),
                         {"r": to, "i": po_id})

    try:
        for later in (pd.Timedelta(hours=1), pd.Timedelta(days=6)):
            move((as_of + later).to_pydatetime())
            rec, est = _estimates(reader, as_of)
            pd.testing.assert_frame_equal(rec, rec0)
            pd.testing.assert_frame_equal(est, est0)
        move((as_of - pd.Timedelta(hours=1)).to_pydatetime())
        rec, est = _estimates(reader, as_of)
        assert not rec.equals(rec0)
        assert not np.allclose(est["expected_days"], est0["expected_days"])
    finally:
        move(received_at)
        writer.dispose()
    _, est = _estimates(reader, as_of)
    pd.testing.assert_frame_equal(est, est0)
