"""Customer features: time split (no leakage), one shard per customer, bad input counted."""

from __future__ import annotations

import contextlib
import datetime as dt

import numpy as np
import pandas as pd
import psycopg2
import pytest

from core.replica import ReplicaReader
from features.customers import (
    customer_rfm,
    customer_unit_features,
    customer_window,
    labelled_frame,
)
from tests.conftest import CHAIN_END, REPLICA_URL

AS_OF = pd.Timestamp(CHAIN_END, tz="UTC")
CUTOFF = AS_OF - pd.Timedelta(days=60)
VALID_UNTIL = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)


@contextlib.contextmanager
def replica_admin():
    """A writable connection to the TEST replica, for planting and undoing edge cases.

    The pipeline's own engine cannot write (worker.db); tests that need a row the generator does
    not plant add it here and remove it in ``finally`` so the session's replica stays as seeded.
    """
    conn = psycopg2.connect(REPLICA_URL)
    conn.autocommit = True
    try:
        yield conn.cursor()
    finally:
        conn.close()


def _new_profile(cur, cid: int, joined: dt.datetime) -> None:
    """A plain profile at restaurant 1 (organisation 1), no PII, for a test to plant and remove."""
    cur.execute(
        "INSERT INTO customers_customerprofile (id, organization_id, home_restaurant_id, date_joined, "
        "loyalty_tier, loyalty_points, marketing_opt_in) VALUES (%s, 1, 1, %s, 'none', 0, false)",
        (cid, joined),
    )


def _restaurant_1_scope(reader, run_id: str, model_store):
    from core.settings import ForecastSettings
    from core.units import Scope
    from features.restaurants import load_restaurants

    return Scope(run_id=run_id, schedule="weekly", as_of=AS_OF, restaurants=load_restaurants(reader, [1]).restaurants,
                 forecast=ForecastSettings(), model_store=model_store, valid_until=VALID_UNTIL)


def _reader(replica_engine) -> ReplicaReader:
    return ReplicaReader(replica_engine)


def _rfm(reader, rids, cutoff=CUTOFF):
    return customer_rfm(reader, rids, [1], cutoff, anchor_as_of=AS_OF, valid_until=VALID_UNTIL)


def test_moving_a_future_order_changes_labels_not_features(replica_engine):
    reader = _reader(replica_engine)
    with replica_admin() as cur:
        # A customer with purchases on both sides of the cutoff.
        cur.execute(
            """
            SELECT o.id, o.customer_id, o.created_at, o.total FROM orders_order o
            WHERE o.customer_id IS NOT NULL AND o.status = 'completed' AND o.created_at >= %s
              AND o.created_at < %s
              AND EXISTS (SELECT 1 FROM orders_order p WHERE p.customer_id = o.customer_id AND p.created_at < %s)
            ORDER BY o.id LIMIT 1
            """,
            (CUTOFF.to_pydatetime(), AS_OF.to_pydatetime(), CUTOFF.to_pydatetime()),
        )
        order_id, customer_id, created_at, total = cur.fetchone()
        before = _rfm(reader, [1, 2, 3, 4])
        labels_before = customer_window(reader, [1, 2, 3, 4], [1], CUTOFF, AS_OF, AS_OF, VALID_UNTIL)
        try:
            # Move it later inside the label window and make it bigger.
            cur.execute("UPDATE orders_order SET created_at = %s, total = total + 100 WHERE id = %s",
                        (AS_OF.to_pydatetime() - dt.timedelta(days=1), order_id))
            after = _rfm(reader, [1, 2, 3, 4])
            labels_after = customer_window(reader, [1, 2, 3, 4], [1], CUTOFF, AS_OF, AS_OF, VALID_UNTIL)
            # ... and then to just before the cutoff: now it is history and must show up.
            cur.execute("UPDATE orders_order SET created_at = %s WHERE id = %s",
                        (CUTOFF.to_pydatetime() - dt.timedelta(hours=1), order_id))
            moved_back = _rfm(reader, [1, 2, 3, 4])
        finally:
            cur.execute("UPDATE orders_order SET created_at = %s, total = %s WHERE id = %s",
                        (created_at, total, order_id))
    pd.testing.assert_frame_equal(before, after)
    lb = labels_before.set_index("customer_id").loc[customer_id]
    la = labels_after.set_index("customer_id").loc[customer_id]
    assert la["spend"] == pytest.approx(lb["spend"] + 100)
    row_before = before.set_index("customer_id").loc[customer_id]
    row_back = moved_back.set_index("customer_id").loc[customer_id]
    assert row_back["n_orders"] == row_before["n_orders"] + 1


def test_features_are_computed_as_of_the_cutoff(replica_engine):
    frame = labelled_frame(_reader(replica_engine), [1, 2, 3, 4], [1], CUTOFF, 60, AS_OF, VALID_UNTIL)
    assert (frame["last_order_at"] < CUTOFF).all()
    assert (frame["recency_days"] > 0).all()
    assert (frame["n_orders"] >= 1).all()
    assert (frame["n_30d"] <= frame["n_90d"]).all() and (frame["n_90d"] <= frame["n_orders"]).all()
    # Regulars exist and their gaps are plausible (the generator draws 7-30 day intervals).
    regular = frame[frame["n_orders"] >= 4]
    assert len(regular) > 50
    assert regular["gap_mean_days"].between(3, 60).mean() > 0.9
    # No PII column is ever selected.
    for column in ("first_name", "last_name", "email", "phone", "birth_date"):
        assert column not in frame.columns


def test_each_customer_is_anchored_to_exactly_one_shard(replica_engine):
    reader = _reader(replica_engine)
    with replica_admin() as cur:
        cur.execute("SELECT id, home_restaurant_id FROM customers_customerprofile ORDER BY id LIMIT 40")
        saved = cur.fetchall()
        try:
            # Customers without a home restaurant go to the restaurant of their latest purchase.
            cur.execute("UPDATE customers_customerprofile SET home_restaurant_id = NULL WHERE id = ANY(%s)",
                        ([i for i, _ in saved],))
            per_shard = [_rfm(reader, [rid], cutoff=AS_OF) for rid in (1, 2, 3, 4)]
            whole = _rfm(reader, [1, 2, 3, 4], cutoff=AS_OF)
        finally:
            for cid, home in saved:
                cur.execute("UPDATE customers_customerprofile SET home_restaurant_id = %s WHERE id = %s", (home, cid))
    ids = pd.concat([f["customer_id"] for f in per_shard])
    assert not ids.duplicated().any()
    assert set(ids) == set(whole["customer_id"])
    nulled = whole[whole["customer_id"].isin([i for i, _ in saved])]
    with_purchase = nulled[nulled["n_orders"] > 0]
    assert with_purchase["anchored_by_last_order"].all()
    assert len(with_purchase) > 0


def test_bad_customers_are_counted_not_crashing(replica_engine, tmp_path):
    """A customer whose only order lies after the as-of is skipped and counted; refunds are counted."""
    reader = _reader(replica_engine)
    with replica_admin() as cur:
        cur.execute("SELECT max(id) FROM customers_customerprofile")
        cid = cur.fetchone()[0] + 1000
        cur.execute("SELECT max(id) FROM orders_order")
        oid = cur.fetchone()[0] + 1000
        try:
            _new_profile(cur, cid, AS_OF.to_pydatetime() - dt.timedelta(days=3))
            cur.execute(
                "INSERT INTO orders_order (id, restaurant_id, customer_id, order_type, status, subtotal, "
                "discount_total, tax_total, total, created_at) VALUES (%s, 1, %s, 'takeaway', 'completed', 20, 0, 0, 20, %s)",
                (oid, cid, AS_OF.to_pydatetime() + dt.timedelta(days=2)),
            )
            scope = _restaurant_1_scope(reader, "00000000-0000-0000-0000-0000000000c1", tmp_path)
            data = customer_unit_features(reader, scope)
        finally:
            cur.execute("DELETE FROM orders_order WHERE id = %s", (oid,))
            cur.execute("DELETE FROM customers_customerprofile WHERE id = %s", (cid,))
    assert data.counts["customers_only_later_orders"] == 1
    assert data.counts["customers_without_purchase"] >= 1
    assert data.counts["refunded_orders_excluded"] > 0
    row = data.current.set_index("customer_id").loc[cid]
    assert row["n_orders"] == 0
    assert cid not in set(data.churn_train["customer_id"])


def test_negative_totals_are_skipped_and_counted_refunds_are_not_purchases(replica_engine):
    """A negative-total order is malformed: not a purchase, not spend, counted for the run record.
    A refunded order is not a purchase either, but it is counted and read as a service failure."""
    from features.customer_frames import rfm_transform
    from features.quality import count_malformed

    reader = _reader(replica_engine)
    with replica_admin() as cur:
        cur.execute(
            "SELECT o.customer_id, o.restaurant_id FROM orders_order o WHERE o.customer_id IS NOT NULL "
            "AND o.status = 'completed' AND o.created_at < %s GROUP BY 1, 2 HAVING count(*) >= 3 "
            "ORDER BY 1 LIMIT 1", (CUTOFF.to_pydatetime(),))
        cid, rid = cur.fetchone()
        cur.execute("SELECT max(id) FROM orders_order")
        oid = cur.fetchone()[0] + 2000
        before = _rfm(reader, [rid]).set_index("customer_id").loc[cid]
        malformed_before = count_malformed(reader, ["orders_order"], [rid], VALID_UNTIL).get("orders_order", 0)
        at = CUTOFF.to_pydatetime() - dt.timedelta(hours=2)
        try:
            for k, (status, total) in enumerate((("completed", -45), ("refunded", 30))):
                cur.execute(
                    "INSERT INTO orders_order (id, restaurant_id, customer_id, order_type, status, subtotal, "
                    "discount_total, tax_total, total, created_at) VALUES (%s, %s, %s, 'dine_in', %s, %s, 0, 0, %s, %s)",
                    (oid + k, rid, cid, status, abs(total), total, at + dt.timedelta(minutes=k)),
                )
            after = _rfm(reader, [rid])
            malformed_after = count_malformed(reader, ["orders_order"], [rid], VALID_UNTIL).get("orders_order", 0)
        finally:
            cur.execute("DELETE FROM orders_order WHERE id IN (%s, %s)", (oid, oid + 1))
    row = after.set_index("customer_id").loc[cid]
    assert row["n_orders"] == before["n_orders"] and row["spend"] == pytest.approx(before["spend"])
    assert row["last_order_at"] == before["last_order_at"]
    assert row["n_refunded"] == before["n_refunded"] + 1
    assert malformed_after == malformed_before + 1
    features = rfm_transform(after, CUTOFF).set_index("customer_id").loc[cid]
    assert features["failed_since_last_purchase"] == 1.0
    assert features["days_since_failure"] == pytest.approx(2 / 24 - 1 / 1440, abs=1e-6)


def test_engagement_features_read_only_orders_before_the_cutoff(replica_engine):
    """A cancelled big-party order after the cutoff changes no engagement feature; the same order
    placed before the customer's first purchase makes them a let-down first visit (first_order_failed)
    and enters guests_mean only if it were a purchase (it is not: cancelled)."""
    from features.customer_frames import MODEL_FEATURES, rfm_transform

    reader = _reader(replica_engine)
    with replica_admin() as cur:
        cur.execute(
            "SELECT o.customer_id, o.restaurant_id, min(o.created_at) FROM orders_order o "
            "WHERE o.customer_id IS NOT NULL AND o.status = 'completed' AND o.created_at < %s "
            "AND NOT EXISTS (SELECT 1 FROM orders_order f WHERE f.customer_id = o.customer_id "
            "                AND f.status IN ('cancelled', 'refunded')) "
            "GROUP BY 1, 2 HAVING count(*) >= 2 ORDER BY 1 LIMIT 1", (CUTOFF.to_pydatetime(),))
        cid, rid, first_at = cur.fetchone()
        cur.execute("SELECT max(id) FROM orders_order")
        oid = cur.fetchone()[0] + 3000

        def features():
            return rfm_transform(_rfm(reader, [rid]), CUTOFF).set_index("customer_id").loc[cid]

        before = features()
        try:
            cur.execute(
                "INSERT INTO orders_order (id, restaurant_id, customer_id, order_type, status, guest_count, subtotal, "
                "discount_total, tax_total, total, created_at) VALUES (%s, %s, %s, 'delivery', 'cancelled', 9, 40, 0, 0, 40, %s)",
                (oid, rid, cid, CUTOFF.to_pydatetime() + dt.timedelta(days=1)),
            )
            later = features()
            cur.execute("UPDATE orders_order SET created_at = %s WHERE id = %s", (first_at - dt.timedelta(hours=1), oid))
            earlier = features()
        finally:
            cur.execute("DELETE FROM orders_order WHERE id = %s", (oid,))
    engagement = ["marketing_opt_in", "guests_mean", "last_order_delivery", "first_order_failed"]
    assert set(engagement) <= set(MODEL_FEATURES)
    pd.testing.assert_series_equal(before[list(MODEL_FEATURES)], later[list(MODEL_FEATURES)], check_names=False)
    assert before["first_order_failed"] == 0.0 and earlier["first_order_failed"] == 1.0
    assert earlier["guests_mean"] == before["guests_mean"] or (pd.isna(earlier["guests_mean"]) and pd.isna(before["guests_mean"]))
    assert earlier["last_order_delivery"] == before["last_order_delivery"]


def _guests(restaurant_id: int, n: int, returned: int, first_at: pd.Timestamp) -> pd.DataFrame:
    """``n`` guests of one restaurant who first bought at ``first_at``, ``returned`` of them 10 days later."""
    second = [first_at + pd.Timedelta(days=10)] * returned + [pd.NaT] * (n - returned)
    return pd.DataFrame({
        "restaurant_id": restaurant_id,
        "first_order_at": first_at,
        "second_order_at": pd.to_datetime(second, utc=True),
        "n_180d": 1.0,
        "n_90d": 0.0,
    })


def test_anchor_return_rate_ranks_sites_and_reads_only_fully_observed_returns():
    from features.customer_frames import ANCHOR_PRIOR_CUSTOMERS, add_anchor_rates

    cutoff = pd.Timestamp("2026-06-01", tz="UTC")
    early = cutoff - pd.Timedelta(days=150)
    frame = pd.concat([
        _guests(1, 400, 120, early),  # a neighbourhood place: 30 % come back
        _guests(2, 400, 20, early),  # a station site: 5 %
        _guests(3, 4, 4, early),  # four guests, all back: too few to judge alone
    ], ignore_index=True)
    out = add_anchor_rates(frame, cutoff)
    rate = out.groupby("restaurant_id")["anchor_return_rate"].first()
    overall = 144 / 804
    assert rate[1] == pytest.approx((120 + ANCHOR_PRIOR_CUSTOMERS * overall) / (400 + ANCHOR_PRIOR_CUSTOMERS))
    assert rate[1] > rate[2]
    assert overall < rate[3] < 0.5  # shrunk towards the shard, not 100 %

    # guests whose 60-day return window is still open at the cutoff are not counted yet, whatever
    # they did later: adding them (returned or not) leaves restaurant 1's rate where it was
    recent = _guests(1, 100, 0, cutoff - pd.Timedelta(days=20))
    again = add_anchor_rates(pd.concat([frame, recent], ignore_index=True), cutoff)
    assert again.loc[again["restaurant_id"] == 1, "anchor_return_rate"].iloc[0] == pytest.approx(rate[1])


def test_a_house_account_is_neither_scored_nor_trained_on(replica_engine, tmp_path):
    """POS systems park anonymous orders on one catch-all profile ("Walk-in"). Here restaurant 1's
    anonymous orders of the last 120 days are put on such a profile: it is named in the run, gets
    no churn or LTV row and stays out of both training sets; real guests are scored as before."""
    from prediction_types.customers import predict_churn, predict_ltv

    reader = _reader(replica_engine)
    since = AS_OF.to_pydatetime() - dt.timedelta(days=120)
    with replica_admin() as cur:
        cur.execute("SELECT max(id) FROM customers_customerprofile")
        cid = cur.fetchone()[0] + 3000
        try:
            _new_profile(cur, cid, since - dt.timedelta(days=1))
            cur.execute("UPDATE orders_order SET customer_id = %s WHERE restaurant_id = 1 AND customer_id IS NULL "
                        "AND created_at >= %s AND created_at < %s", (cid, since, AS_OF.to_pydatetime()))
            parked = cur.rowcount
            scope = _restaurant_1_scope(reader, "00000000-0000-0000-0000-0000000000c7", tmp_path)
            data = customer_unit_features(reader, scope)
        finally:
            cur.execute("UPDATE orders_order SET customer_id = NULL WHERE customer_id = %s", (cid,))
            cur.execute("DELETE FROM customers_customerprofile WHERE id = %s", (cid,))
    assert parked > 120 * 10  # busier than any guest could be
    assert data.counts["house_accounts"] == 1
    assert bool(data.current.set_index("customer_id").loc[cid, "house_account"])
    assert cid not in set(data.churn_train["customer_id"]) and cid not in set(data.ltv_train["customer_id"])
    for predict, name in ((predict_churn, "churn"), (predict_ltv, "ltv")):
        result = predict(data, scope)
        assert cid not in set(result.rows["entity_id"])
        assert any(m.startswith(f"{name}: 1 house account") for m in result.messages), result.messages
        assert len(result.rows) == int(((data.current["n_orders"] > 0) & ~data.current["house_account"]).sum())


def test_a_large_shard_reads_a_fixed_sample_of_people_for_training(replica_engine):
    """The training read, not the fit, is what a shard of hundreds of thousands of customers holds
    in memory; it reads a hash sample of ids: the same people at every cutoff, with the same
    features and labels as in a full read."""
    from features.customer_frames import MAX_TRAIN_ROWS, training_sample_per_mille
    from features.customers import training_frame

    cuts = [pd.Timestamp("2026-09-01", tz="UTC") - pd.Timedelta(days=14 * k) for k in range(3)]
    early = pd.Series(pd.Timestamp("2025-01-01", tz="UTC"), index=range(400_000))
    late = pd.Series(pd.Timestamp("2026-09-05", tz="UTC"), index=range(400_000))  # first bought after every cutoff
    assert training_sample_per_mille(early.iloc[:10_000], cuts) == 1000  # a small shard reads everyone
    assert training_sample_per_mille(early, cuts) == 100  # 1.2 x the cap's rows over 3 cutoffs
    assert training_sample_per_mille(early, cuts) * 400_000 * 3 / 1000 >= MAX_TRAIN_ROWS
    assert training_sample_per_mille(late, cuts) == 1000  # no history at any cutoff: no rows to save

    reader = _reader(replica_engine)
    rids, orgs = [1, 2], [1]
    args = (reader, rids, orgs, CUTOFF - pd.Timedelta(days=60), 60, AS_OF, VALID_UNTIL)
    full = training_frame(*args)
    part = training_frame(*args, keep_per_mille=300)
    assert 0.2 < part["customer_id"].nunique() / full["customer_id"].nunique() < 0.4
    people = part.groupby("cutoff")["customer_id"].apply(set)
    mine = set(part["customer_id"])
    for cut, ids in full.groupby("cutoff")["customer_id"]:
        assert people[cut] == set(ids) & mine  # everyone sampled who has history at that cutoff
    key = ["customer_id", "cutoff"]
    cols = ["n_orders", "spend", "recency_days", "future_orders", "future_spend", "trailing_spend"]
    joined = part[key + cols].merge(full[key + cols], on=key, suffixes=("", "_full"))
    assert len(joined) == len(part)
    for c in cols:
        assert np.allclose(joined[c], joined[f"{c}_full"], equal_nan=True), c
