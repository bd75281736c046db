"""Customer features for churn and lifetime value, aggregated in PostgreSQL as of a cutoff.

Time split: every feature reads only orders created strictly before ``cutoff``; labels read only
orders in ``[cutoff, cutoff + window)``. Training uses a cutoff one label window before the run's
``as_of`` and predicting uses ``as_of`` itself, so no label ever leaks into its own features
(``tests/test_customers_features.py`` moves a future order and checks nothing changes).

What counts as a purchase: a well-formed order (``features.quality``) that is neither cancelled
nor refunded. A refunded order is money returned, not spend; refunds are counted (a feature and
a run message) rather than silently dropped.

Sharding: each customer is scored by exactly one shard, the one holding their *anchor*
restaurant: ``home_restaurant_id`` when set, else the restaurant of their latest purchase before
the run's ``as_of`` (ties broken by the higher order id). A customer with neither (no home and no
purchase yet) has nothing to score. The anchor is fixed by ``as_of`` for every cutoff of a run,
so the training and scoring populations of one shard are the same people.

PII: the SQL selects only ids, timestamps, amounts, order types, guest counts, the loyalty tier
and the marketing opt-in flag; names, emails, phones and birth dates are never read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from core.replica import ReplicaReader
from core.units import Scope
from features.customer_frames import (
    CUTOFF_STEP_DAYS,
    MAX_TRAIN_ROWS,
    ORDER_TYPES,
    RECENT_WINDOWS_DAYS,
    TRAINING_CUTOFFS,
    capped_training,
    house_accounts,
    ltv_label_window,
    rfm_transform,
    scorable,
    training_cutoffs,
    training_sample_per_mille,
    typed_rfm,
)
from features.quality import valid

PURCHASE = "o.status NOT IN ('cancelled', 'refunded')"

# Customers anchored to the shard's restaurants (see the module docstring). Only non-PII columns.
_ANCHORED = """
anchored AS (
    SELECT c.id AS customer_id,
           c.organization_id,
           coalesce(c.home_restaurant_id, last.restaurant_id) AS restaurant_id,
           c.home_restaurant_id IS NULL AS anchored_by_last_order,
           c.date_joined,
           c.loyalty_tier,
           c.marketing_opt_in
    FROM customers_customerprofile c
    LEFT JOIN LATERAL (
        SELECT o.restaurant_id
        FROM orders_order o
        WHERE c.home_restaurant_id IS NULL AND o.customer_id = c.id AND o.created_at < :anchor_as_of
          AND {purchase} AND {valid_o}
        ORDER BY o.created_at DESC, o.id DESC
        LIMIT 1
    ) last ON true
    WHERE (c.home_restaurant_id = ANY(:rids)
           OR (c.home_restaurant_id IS NULL AND c.organization_id = ANY(:orgs)))
      AND {valid_c}
      AND c.date_joined < :anchor_as_of  -- an as-of replay sees the customers of that instant
      AND coalesce(c.home_restaurant_id, last.restaurant_id) = ANY(:rids)
      AND mod(c.id * 7919, 1000) < :keep_per_mille
)
"""


def _anchored_cte() -> str:
    return _ANCHORED.format(purchase=PURCHASE, valid_o=valid("orders_order", "o"),
                            valid_c=valid("customers_customerprofile", "c"))


def _params(restaurant_ids, organization_ids, anchor_as_of, valid_until, keep_per_mille: int = 1000, **more) -> dict:
    return {
        "rids": [int(i) for i in restaurant_ids],
        "orgs": [int(i) for i in organization_ids],
        "anchor_as_of": anchor_as_of,
        "valid_until": valid_until,
        "keep_per_mille": int(keep_per_mille),
        **more,
    }


def _rfm_sql() -> str:
    """``customer_rfm``'s statement: the anchored customers, their purchases (with gaps and
    order from either end) and failed orders in the window, aggregated per customer."""
    windows = ",\n".join(
        f"count(p.customer_id) FILTER (WHERE p.created_at >= CAST(:cutoff AS timestamptz) - interval '{d} days') AS n_{d}d,\n"
        f"coalesce(sum(p.total) FILTER (WHERE p.created_at >= CAST(:cutoff AS timestamptz) - interval '{d} days'), 0) AS spend_{d}d"
        for d in RECENT_WINDOWS_DAYS
    )
    types = ",\n".join(f"count(p.customer_id) FILTER (WHERE p.order_type = '{t}') AS n_{t}" for t in ORDER_TYPES)
    return f"""
    WITH {_anchored_cte()},
    p AS (
        SELECT a.customer_id, o.restaurant_id, o.order_type, o.guest_count, o.total::float8 AS total, o.created_at,
               extract(epoch FROM o.created_at - lag(o.created_at) OVER w) / 86400.0 AS gap_days,
               row_number() OVER (PARTITION BY a.customer_id ORDER BY o.created_at DESC, o.id DESC) AS back,
               row_number() OVER w AS fwd
        FROM anchored a
        JOIN orders_order o ON o.customer_id = a.customer_id
        WHERE o.created_at < :cutoff AND o.created_at >= CAST(:cutoff AS timestamptz) - make_interval(days => :history_days)
          AND {PURCHASE} AND {valid('orders_order', 'o')}
        WINDOW w AS (PARTITION BY a.customer_id ORDER BY o.created_at, o.id)
    ),
    other AS (
        SELECT a.customer_id,
               count(*) FILTER (WHERE o.status = 'refunded') AS n_refunded,
               count(*) FILTER (WHERE o.status = 'cancelled') AS n_cancelled,
               count(*) FILTER (WHERE o.created_at >= CAST(:cutoff AS timestamptz) - interval '90 days') AS n_failed_90d,
               max(o.created_at) AS last_failure_at,
               min(o.created_at) AS first_failure_at
        FROM anchored a
        JOIN orders_order o ON o.customer_id = a.customer_id
        WHERE o.created_at < :cutoff AND o.created_at >= CAST(:cutoff AS timestamptz) - make_interval(days => :history_days)
          AND o.status IN ('cancelled', 'refunded') AND {valid('orders_order', 'o')}
        GROUP BY a.customer_id
    )
    SELECT a.customer_id, a.restaurant_id, a.organization_id, a.anchored_by_last_order, a.loyalty_tier,
           a.date_joined, a.marketing_opt_in,
           count(p.customer_id) AS n_orders,
           min(p.created_at) AS first_order_at,
           max(p.created_at) AS last_order_at,
           min(p.created_at) FILTER (WHERE p.fwd = 2) AS second_order_at,
           coalesce(sum(p.total), 0) AS spend,
           {windows},
           avg(p.gap_days) AS gap_mean_days,
           stddev_samp(p.gap_days) AS gap_sd_days,
           max(p.gap_days) FILTER (WHERE p.back = 1) AS last_gap_days,
           avg(p.gap_days) FILTER (WHERE p.back <= 3) AS recent_gap_mean_days,
           {types},
           avg(p.guest_count) AS guests_mean,
           max(p.order_type) FILTER (WHERE p.back = 1) AS last_order_type,
           count(DISTINCT p.restaurant_id) AS n_restaurants,
           count(p.customer_id) FILTER (WHERE p.restaurant_id = a.restaurant_id) AS n_at_anchor,
           coalesce(max(other.n_refunded), 0) AS n_refunded,
           coalesce(max(other.n_cancelled), 0) AS n_cancelled,
           coalesce(max(other.n_failed_90d), 0) AS n_failed_90d,
           max(other.last_failure_at) AS last_failure_at,
           min(other.first_failure_at) AS first_failure_at
    FROM anchored a
    LEFT JOIN p ON p.customer_id = a.customer_id
    LEFT JOIN other ON other.customer_id = a.customer_id
    GROUP BY a.customer_id, a.restaurant_id, a.organization_id, a.anchored_by_last_order, a.loyalty_tier, a.date_joined,
             a.marketing_opt_in
    ORDER BY a.customer_id
    """


_RFM_SQL = _rfm_sql()


def customer_rfm(
    reader: ReplicaReader,
    restaurant_ids: list[int],
    organization_ids: list[int],
    cutoff: datetime,
    anchor_as_of: datetime,
    valid_until: datetime,
    history_days: int = 730,
    keep_per_mille: int = 1000,
) -> pd.DataFrame:
    """Per anchored customer, aggregates of their purchases in [cutoff - history_days, cutoff).

    Args:
        restaurant_ids: the shard's restaurants (anchors).
        organization_ids: their organisations (customers without a home restaurant).
        cutoff: UTC instant; only orders strictly before it are read.
        anchor_as_of: the run's as-of, which fixes each customer's anchor restaurant.
        valid_until: latest plausible timestamp (malformed-row rule), UTC.
        history_days: how far back purchases count (days).
        keep_per_mille: read only the customers whose id hashes below this (of 1000): a fixed,
            uniform sample of people (``training_sample_per_mille``); 1000 reads everyone.

    Returns one row per anchored customer (also those without purchases, ``n_orders`` 0):
    customer_id, restaurant_id (anchor), organization_id, anchored_by_last_order, loyalty_tier,
    date_joined, n_orders, first_order_at, last_order_at, second_order_at, spend (sum of totals, currency units),
    spend_{30,90,180,365}d, n_{30,90,180,365}d, gap_mean_days, gap_sd_days, last_gap_days,
    recent_gap_mean_days (mean of the last three gaps), n_dine_in, n_takeaway, n_delivery,
    n_restaurants, n_at_anchor, n_refunded, n_cancelled, n_failed_90d (cancelled or refunded in
    the last 90 days), last_failure_at and first_failure_at (latest and earliest cancelled or
    refunded order, NaT if none), marketing_opt_in (the profile's flag *as of the read*, see
    ``MODEL_FEATURES``), guests_mean (mean guest_count of purchases where recorded),
    last_order_type (of the latest purchase).
    """
    frame = reader.frame(
        _RFM_SQL,
        _params(restaurant_ids, organization_ids, anchor_as_of, valid_until, keep_per_mille, cutoff=cutoff,
                history_days=int(history_days)),
    )
    return typed_rfm(frame)


def customer_window(
    reader: ReplicaReader,
    restaurant_ids: list[int],
    organization_ids: list[int],
    start: datetime,
    end: datetime,
    anchor_as_of: datetime,
    valid_until: datetime,
    keep_per_mille: int = 1000,
) -> pd.DataFrame:
    """Purchases and spend per anchored customer in [start, end): the labels of a cutoff.

    Returns customer_id, orders (count), spend (sum of totals); customers without purchases in
    the window are absent (read them as zero). ``keep_per_mille``: as in ``customer_rfm``.
    """
    frame = reader.frame(
        f"""
        WITH {_anchored_cte()}
        SELECT a.customer_id, count(*) AS orders, coalesce(sum(o.total), 0)::float8 AS spend
        FROM anchored a
        JOIN orders_order o ON o.customer_id = a.customer_id
        WHERE o.created_at >= :start AND o.created_at < :end AND {PURCHASE} AND {valid('orders_order', 'o')}
        GROUP BY a.customer_id
        """,
        _params(restaurant_ids, organization_ids, anchor_as_of, valid_until, keep_per_mille, start=start, end=end),
    )
    frame["customer_id"] = frame["customer_id"].astype("int64")
    frame["orders"] = frame["orders"].astype("float64")
    frame["spend"] = frame["spend"].astype("float64")
    return frame


def customers_only_later(
    reader: ReplicaReader,
    restaurant_ids: list[int],
    organization_ids: list[int],
    as_of: datetime,
    valid_until: datetime,
) -> int:
    """Anchored customers with no purchase before ``as_of`` but some order at or after it.

    A diagnostic for the run record (they are skipped), never a feature: it looks past the cutoff.
    """
    return int(
        reader.scalar(
            f"""
            WITH {_anchored_cte()}
            SELECT count(*) FROM anchored a
            WHERE NOT EXISTS (SELECT 1 FROM orders_order o WHERE o.customer_id = a.customer_id
                              AND o.created_at < :anchor_as_of AND {PURCHASE} AND {valid('orders_order', 'o')})
              AND EXISTS (SELECT 1 FROM orders_order o WHERE o.customer_id = a.customer_id
                          AND o.created_at >= :anchor_as_of)
            """,
            _params(restaurant_ids, organization_ids, as_of, valid_until),
        )
        or 0
    )


@dataclass
class CustomerData:
    """What the churn and LTV units need for one shard, all as of plain cutoffs.

    ``current``: features as of the run's ``as_of`` (to score; ``house_account`` marks the
    profiles ``house_accounts`` finds, never scored nor trained on); ``churn_train``/``ltv_train``:
    features as of the earlier training cutoffs, with labels ``churned`` (no purchase in the
    churn window) and ``future_spend``/``future_orders`` (in the LTV window).
    """

    as_of: pd.Timestamp
    current: pd.DataFrame
    churn_train: pd.DataFrame
    ltv_train: pd.DataFrame
    churn_window_days: int
    ltv_window_days: int
    history_first_order: pd.Timestamp | None
    counts: dict[str, int] = field(default_factory=dict)


CHURN_WINDOW_DAYS = 60


def _labelled(frame: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    labels = labels.rename(columns={"orders": "future_orders", "spend": "future_spend"})
    out = frame.merge(labels, on="customer_id", how="left")
    out[["future_orders", "future_spend"]] = out[["future_orders", "future_spend"]].fillna(0.0)
    return out


def labelled_frame(
    reader: ReplicaReader,
    restaurant_ids: list[int],
    organization_ids: list[int],
    cutoff: pd.Timestamp,
    window_days: int,
    anchor_as_of: datetime,
    valid_until: datetime,
    history_days: int = 730,
    keep_per_mille: int = 1000,
) -> pd.DataFrame:
    """Features as of ``cutoff`` with the labels of [cutoff, cutoff + window_days), for customers
    with at least one purchase before the cutoff (of the ``keep_per_mille`` sample, see
    ``customer_rfm``).

    Adds future_orders and future_spend (currency units) to ``rfm_transform``'s columns, and
    trailing_spend (spend in the window_days before the cutoff: the naive baseline). Labels
    end at the later of the window end and ``anchor_as_of``'s knowledge: callers keep
    cutoff + window_days <= as-of so that every label is observed in full.
    """
    common = dict(anchor_as_of=anchor_as_of, valid_until=valid_until, keep_per_mille=keep_per_mille)
    frame = rfm_transform(
        customer_rfm(reader, restaurant_ids, organization_ids, cutoff, history_days=history_days, **common), cutoff
    )
    labels = customer_window(reader, restaurant_ids, organization_ids, cutoff,
                             cutoff + pd.Timedelta(days=window_days), **common)
    frame = _labelled(frame, labels)
    trailing = customer_window(reader, restaurant_ids, organization_ids, cutoff - pd.Timedelta(days=window_days),
                               cutoff, **common)
    frame = frame.merge(trailing[["customer_id", "spend"]].rename(columns={"spend": "trailing_spend"}),
                        on="customer_id", how="left")
    frame["trailing_spend"] = frame["trailing_spend"].fillna(0.0)
    return frame[frame["n_orders"] > 0].reset_index(drop=True)


def training_frame(
    reader: ReplicaReader,
    restaurant_ids: list[int],
    organization_ids: list[int],
    last_cutoff: pd.Timestamp,
    window_days: int,
    anchor_as_of: datetime,
    valid_until: datetime,
    first_order: pd.Timestamp | None = None,
    history_days: int = 730,
    cutoffs: int = TRAINING_CUTOFFS,
    step_days: int = CUTOFF_STEP_DAYS,
    keep_per_mille: int = 1000,
) -> pd.DataFrame:
    """``labelled_frame`` at ``last_cutoff`` and up to ``cutoffs - 1`` earlier ones, stacked.

    Why several cutoffs: regulars are a small share of customers, and lapsing regulars a small
    share of those; stacking a few cutoffs ``step_days`` apart gives the model several looks at
    each lapse. A cutoff with less than ``MIN_FEATURE_HISTORY_DAYS`` of history before it (from
    ``first_order``, the earliest purchase) is left out, except the last one. Adds ``cutoff``.
    """
    frames = []
    for cut in training_cutoffs(last_cutoff, first_order, cutoffs, step_days):
        f = labelled_frame(reader, restaurant_ids, organization_ids, cut, window_days, anchor_as_of, valid_until,
                           history_days, keep_per_mille)
        frames.append(f.assign(cutoff=cut))
    return pd.concat(frames, ignore_index=True)


def customer_unit_features(reader: ReplicaReader, scope: Scope) -> CustomerData:
    """Read the current features and both training sets for the shard's anchored customers.

    The churn and LTV units share this read (``shares`` in ``prediction_types.customers``): the
    run loop reads it once per shard and drops it when the shard's last unit is done.
    """
    return _read_customer_data(reader, scope)


def _read_customer_data(reader: ReplicaReader, scope: Scope) -> CustomerData:
    rids = scope.restaurant_ids
    orgs = sorted({int(o) for o in scope.restaurants["organization_id"]}) if len(scope.restaurants) else []
    as_of = scope.as_of
    hist = int(scope.forecast.history_days)
    common = dict(anchor_as_of=as_of, valid_until=scope.valid_until, history_days=hist)
    current = rfm_transform(
        customer_rfm(reader, rids, orgs, as_of, anchor_as_of=as_of, valid_until=scope.valid_until, history_days=hist),
        as_of,
    )
    house = house_accounts(current)
    current["house_account"] = house.to_numpy(bool)
    house_ids = set(current.loc[house, "customer_id"].astype("int64"))
    first = current.loc[~house, "first_order_at"].min() if len(current) else None
    first = None if first is None or pd.isna(first) else first

    buyers = current.loc[scorable(current), "first_order_at"]
    counts: dict[str, int] = {}

    def training(unit: str, last_cut: pd.Timestamp, window: int) -> pd.DataFrame:
        """One model's training rows: a hash sample of people when the shard is large, house
        accounts out, capped at ``MAX_TRAIN_ROWS``; what was sampled goes into ``counts``."""
        keep = training_sample_per_mille(buyers, training_cutoffs(last_cut, first), max_rows=MAX_TRAIN_ROWS)
        frame = training_frame(reader, rids, orgs, last_cut, window, first_order=first, keep_per_mille=keep, **common)
        frame = frame[~frame["customer_id"].isin(house_ids)].reset_index(drop=True)
        counts[f"{unit}_training_customers_per_mille"] = keep
        if len(frame) > MAX_TRAIN_ROWS:
            counts[f"{unit}_training_rows_sampled_from"] = int(len(frame))
        return capped_training(frame, max_rows=MAX_TRAIN_ROWS)

    churn_train = training("churn", as_of - pd.Timedelta(days=CHURN_WINDOW_DAYS), CHURN_WINDOW_DAYS)
    churn_train["churned"] = (churn_train["future_orders"] == 0).astype(int)
    ltv_days = ltv_label_window(as_of, first)
    ltv_train = training("ltv", as_of - pd.Timedelta(days=ltv_days), ltv_days)

    counts.update({
        "customers_anchored": int(len(current)),
        "customers_without_purchase": int((current["n_orders"] == 0).sum()),
        "customers_only_later_orders": customers_only_later(reader, rids, orgs, as_of, scope.valid_until),
        "refunded_orders_excluded": int(current["n_refunded"].sum()),
        "customers_anchored_by_last_order": int(current["anchored_by_last_order"].sum()),
        "house_accounts": len(house_ids),
    })
    return CustomerData(
        as_of=as_of,
        current=current,
        churn_train=churn_train,
        ltv_train=ltv_train,
        churn_window_days=CHURN_WINDOW_DAYS,
        ltv_window_days=ltv_days,
        history_first_order=first,
        counts=counts,
    )


def customer_coverage(reader: ReplicaReader) -> dict[str, int]:
    """How much of the replica the customer types can use: profiles, orders, and orders that
    carry a customer (counts, chain-wide). A till that never asks for the customer leaves churn
    and LTV with nothing to learn from, which the run must say rather than succeed silently."""
    row = reader.frame(
        "SELECT (SELECT count(*) FROM customers_customerprofile) AS profiles, "
        "(SELECT count(*) FROM orders_order) AS orders, "
        "(SELECT count(*) FROM orders_order WHERE customer_id IS NOT NULL) AS orders_with_customer"
    ).iloc[0]
    return {k: int(v) for k, v in row.items()}
