"""Customer model frames from the aggregates ``features.customers`` reads: derived features,
home-restaurant rates, training-size rules and run messages. No SQL here (the readers are in
``features.customers``), so these are tested on hand-made frames and reused by the bench.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pandas as pd

TIERS = {"none": 0, "silver": 1, "gold": 2, "platinum": 3}
ORDER_TYPES = ("dine_in", "takeaway", "delivery")
RECENT_WINDOWS_DAYS = (30, 90, 180, 365)
LTV_HORIZON_DAYS = 365  # a customer's lifetime value is the next 12 months' spend

HOME_RESTAURANT_FEATURES: tuple[str, ...] = ("anchor_return_rate", "anchor_lapse_rate")
"""Rates of the customer's anchor restaurant (``add_anchor_rates``). Churn reads them; LTV does not:
its training cutoff lies a year back, where a young chain's sites had other rates than now, and
a model that learnt "this rate, this spend" then mispredicted today's customers (on the bench
chain, read from a 54 % sample of customers, its mean prediction fell to a fifth of the
observed and the trust check refused it)."""

MODEL_FEATURES: tuple[str, ...] = (
    "recency_days",
    "tenure_days",
    "joined_days",
    "signup_lead_days",
    "n_orders",
    "x_repeat",
    "spend",
    "spend_mean",
    *(f"n_{d}d" for d in RECENT_WINDOWS_DAYS),
    *(f"spend_{d}d" for d in RECENT_WINDOWS_DAYS),
    "gap_mean_days",
    "gap_sd_days",
    "gap_cv",
    "last_gap_days",
    "recency_over_gap",
    "share_dine_in",
    "share_takeaway",
    "share_delivery",
    "n_restaurants",
    "share_at_anchor",
    "n_refunded",
    "n_cancelled",
    "anchored_by_last_order",
    # a drifting customer: visits thinning out, gaps lengthening, spend falling
    "rate_90d_over_usual",
    "n_90d_minus_prior_90d",
    "recent_gap_over_mean",
    "last_gap_over_mean",
    "spend_mean_90d_over_usual",
    # service failures: a cancelled or refunded order, especially one after the last purchase
    "n_failed_90d",
    "days_since_failure",
    "failed_since_last_purchase",
    # engagement BG/NBD ignores: how the guest came and what the first visit was like
    "marketing_opt_in",
    "guests_mean",
    "last_order_delivery",
    "first_order_failed",
    # the home restaurant: guests of an airport or tourist-street site come back less than a
    # neighbourhood place's, and a site losing its regulars loses them all at once
    *HOME_RESTAURANT_FEATURES,
)
"""Model inputs. ``loyalty_tier`` is read but deliberately not among them: the replica stores only
today's tier, which at a training cutoff would encode purchases made after it (a leak); the tier
drives the churn recommendations instead. ``marketing_opt_in`` is current state too (the replica
keeps no history of it) but is kept: unlike the tier it is not computed from orders; a guest sets
it at sign-up and rarely touches it again, so at a training cutoff (60-88 days back for churn, up
to a year for LTV) it is almost always the value it had then. The residual leak is a guest who
opts out after lapsing, i.e. within the training label window: it would make opt-out look
slightly more predictive of churn in training than it is. At scoring time (as-of = now) it is exactly the current flag, no leak."""


def rfm_transform(rfm: pd.DataFrame, cutoff: datetime) -> pd.DataFrame:
    """Add model features derived from ``customer_rfm`` (same rows, extra columns).

    Args:
        rfm: output of ``customer_rfm`` for the same ``cutoff``.
        cutoff: UTC instant the aggregates were taken at.

    Adds: recency_days (cutoff - last purchase, days), tenure_days (cutoff - first purchase),
    joined_days (cutoff - date_joined), signup_lead_days (date_joined to first purchase: a profile
    created at the till minutes before a single order is a different customer from a member who
    signed up long before), x_repeat (purchases - 1), t_x_days (first to last
    purchase), spend_mean (per purchase), gap_cv, recency_over_gap (recency / mean gap; the
    "overdue" signal of a regular), shares of order types and of purchases at the anchor;
    drift signals: rate_90d_over_usual (purchases per day in the last 90 days, or the tenure when
    shorter, over purchases per day of tenure), n_90d_minus_prior_90d (count), recent_gap_over_mean
    and last_gap_over_mean (the last three gaps' mean and the last gap, over the mean gap),
    spend_mean_90d_over_usual; service failures: days_since_failure (latest cancelled or refunded
    order), failed_since_last_purchase (1 when such an order came after the last purchase);
    engagement: marketing_opt_in (0/1), last_order_delivery (1 when the latest purchase was a
    delivery), first_order_failed (1 when the customer's first order in the history was cancelled
    or refunded and only later ones were purchases: a let-down first visit). All durations in days; NaN where undefined (e.g. gaps of a one-time buyer).
    """
    out = rfm.copy()
    cut = pd.Timestamp(cutoff)
    cut = cut.tz_localize("UTC") if cut.tzinfo is None else cut.tz_convert("UTC")
    day = pd.Timedelta(days=1)
    n = out["n_orders"]
    has = n > 0
    out["recency_days"] = ((cut - out["last_order_at"]) / day).where(has)
    out["tenure_days"] = ((cut - out["first_order_at"]) / day).where(has)
    out["joined_days"] = ((cut - out["date_joined"]) / day).clip(lower=0)
    out["signup_lead_days"] = ((out["first_order_at"] - out["date_joined"]) / day).where(has)
    out["t_x_days"] = ((out["last_order_at"] - out["first_order_at"]) / day).where(has)
    out["x_repeat"] = (n - 1).clip(lower=0)
    out["spend_mean"] = (out["spend"] / n).where(has)
    out["gap_cv"] = out["gap_sd_days"] / out["gap_mean_days"].replace(0, np.nan)
    out["recency_over_gap"] = out["recency_days"] / out["gap_mean_days"].replace(0, np.nan)
    for t in ORDER_TYPES:
        out[f"share_{t}"] = (out[f"n_{t}"] / n).where(has)
    out["share_at_anchor"] = (out["n_at_anchor"] / n).where(has)
    # Drift: the last 90 days against the customer's own usual pace (over their whole tenure, or
    # 90 days when newer, so a new customer is not read as accelerating).
    usual_rate = n / out["tenure_days"].clip(lower=1.0)
    recent_rate = out["n_90d"] / out["tenure_days"].clip(lower=1.0, upper=90.0)
    out["rate_90d_over_usual"] = (recent_rate / usual_rate).where(has)
    out["n_90d_minus_prior_90d"] = (out["n_90d"] - (out["n_180d"] - out["n_90d"])).where(has)
    gap = out["gap_mean_days"].replace(0, np.nan)
    out["recent_gap_over_mean"] = out["recent_gap_mean_days"] / gap
    out["last_gap_over_mean"] = out["last_gap_days"] / gap
    spend_90 = (out["spend_90d"] / out["n_90d"]).where(out["n_90d"] > 0)
    out["spend_mean_90d_over_usual"] = spend_90 / out["spend_mean"].replace(0, np.nan)
    failed = out["last_failure_at"].notna()
    out["days_since_failure"] = ((cut - out["last_failure_at"]) / day).where(failed)
    out["failed_since_last_purchase"] = (failed & (~has | (out["last_failure_at"] > out["last_order_at"]))).astype(float)
    out["anchored_by_last_order"] = out["anchored_by_last_order"].astype(float)
    out["marketing_opt_in"] = out["marketing_opt_in"].astype(float)
    out["last_order_delivery"] = (out["last_order_type"] == "delivery").astype(float).where(has)
    out["first_order_failed"] = (out["first_failure_at"].notna()
                                 & (~has | (out["first_failure_at"] < out["first_order_at"]))).astype(float)
    out["loyalty_rank"] = out["loyalty_tier"].map(TIERS).fillna(0).astype(int)
    return add_anchor_rates(out, cut)


# Pseudo-customers at the shard's rate added to each restaurant's counts (below): a restaurant
# with 20 eligible guests is judged mostly on the shard, one with 2,000 on its own record.
ANCHOR_PRIOR_CUSTOMERS = 50.0
RETURN_WINDOW_DAYS = 60  # "came back" = a second purchase within this many days of the first
RETURN_LOOKBACK_DAYS = 365  # first purchases counted: in the year before the window closes


def add_anchor_rates(frame: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Per anchor restaurant, how its guests behave, from purchases before ``cutoff`` only.

    Args:
        frame: ``rfm_transform``'s rows for one shard (all its anchored customers at one cutoff).
        cutoff: UTC instant the aggregates were taken at.

    Adds, the same for every customer of a restaurant (shrunk towards the shard's rate by
    ``ANCHOR_PRIOR_CUSTOMERS``):
    anchor_return_rate: share of first-time guests whose first purchase fell in the
    ``RETURN_LOOKBACK_DAYS`` before ``cutoff - RETURN_WINDOW_DAYS`` who bought again within
    ``RETURN_WINDOW_DAYS`` of it (fully observed before the cutoff: no label leaks in).
    anchor_lapse_rate: share of the customers who bought in [cutoff - 180 d, cutoff - 90 d) who
    have not bought since (a site in decline loses its regulars together).
    Why: BG/NBD pools the shard's restaurants, but where a guest first ate says much about
    whether they come back, most of all for the one-time guests who are most of a chain.
    """
    out = frame
    day = pd.Timedelta(days=1)
    window_end = cutoff - RETURN_WINDOW_DAYS * day
    first = out["first_order_at"]
    eligible = first.notna() & (first < window_end) & (first >= window_end - RETURN_LOOKBACK_DAYS * day)
    returned = eligible & out["second_order_at"].notna() & (
        (out["second_order_at"] - first) < RETURN_WINDOW_DAYS * day)
    active_before = (out["n_180d"] - out["n_90d"]) > 0
    lapsed = active_before & (out["n_90d"] == 0)
    for name, hit, base in (("anchor_return_rate", returned, eligible), ("anchor_lapse_rate", lapsed, active_before)):
        total = base.sum()
        overall = hit.sum() / total if total else np.nan
        counts = pd.DataFrame({"r": out["restaurant_id"], "hit": hit.astype(float), "n": base.astype(float)})
        by = counts.groupby("r")[["hit", "n"]].sum()
        rate = (by["hit"] + ANCHOR_PRIOR_CUSTOMERS * overall) / (by["n"] + ANCHOR_PRIOR_CUSTOMERS)
        out[name] = out["restaurant_id"].map(rate).astype(float)
    return out


# Training rows kept per model and shard. A shard of large restaurants can hold hundreds of
# thousands of customers x several cutoffs; the fit's memory and time grow with the rows while
# LightGBM's and BG/NBD's estimates stop improving long before. Scoring still covers everyone.
MAX_TRAIN_ROWS = 100_000


# A profile buying this often, on average over its last year (at least 30 days of it), with at
# least this many purchases, is not a guest: POS systems park anonymous orders on a house
# account ("Walk-in", "Guest", a delivery platform's). A daily regular buys ~1 a day; a company
# account ordering team lunches a few.
HOUSE_ACCOUNT_PURCHASES_PER_DAY = 10.0
HOUSE_ACCOUNT_MIN_PURCHASES = 300


def house_accounts(frame: pd.DataFrame) -> pd.Series:
    """True for profiles that are a till's catch-all rather than a customer (``rfm_transform`` rows).

    Why: one such profile holds thousands of orders; scored, it gets a meaningless churn risk and
    the largest LTV of the chain, and in training it drags BG/NBD's and Gamma-Gamma's fits.
    """
    days = frame["tenure_days"].clip(lower=30.0, upper=365.0)
    return (frame["n_365d"] / days > HOUSE_ACCOUNT_PURCHASES_PER_DAY) & (frame["n_365d"] >= HOUSE_ACCOUNT_MIN_PURCHASES)


def training_sample_per_mille(first_orders: pd.Series, cutoffs: list[pd.Timestamp], max_rows: int | None = None) -> int:
    """Which share of the shard's customers (per mille) to read for training.

    Args:
        first_orders: each scored customer's first purchase (UTC), from the as-of read.
        cutoffs: the training cutoffs (``training_cutoffs``); a customer is a row at each cutoff
            after their first purchase.
        max_rows: the cap (default ``MAX_TRAIN_ROWS``).

    Why: every training cutoff reads one aggregate row per customer, and the read, not the fit,
    is what a shard of hundreds of thousands of customers holds in memory; ``capped_training``
    alone samples only after the read. Reading a fixed hash sample of people (ids, so the same
    people at every cutoff and in both label windows) keeps about ``max_rows`` x 1.2 rows, which
    ``capped_training`` then trims exactly. 1000 (everyone) when that is no saving.
    """
    max_rows = MAX_TRAIN_ROWS if max_rows is None else max_rows
    expected = sum(int((first_orders < cut).sum()) for cut in cutoffs)
    return int(min(1000, math.ceil(1000 * 1.2 * max_rows / max(expected, 1))))


def scorable(current: pd.DataFrame) -> pd.Series:
    """Customers that get churn and LTV rows: a purchase before the as-of, and not a house account."""
    house = current["house_account"].astype(bool) if "house_account" in current else False
    return (current["n_orders"] > 0) & ~house


def read_messages(unit: str, counts: dict, trained_rows: int) -> list[str]:
    """What the run record says about the shard's customer read, for ``unit`` ("churn" or "ltv").

    Args:
        counts: ``CustomerData.counts``; trained_rows: the unit's training rows after the cap.
    """
    out = []
    if counts.get("customers_without_purchase"):
        out.append(f"{unit}: {counts['customers_without_purchase']} anchored customer(s) without a purchase before "
                   f"as-of skipped ({counts.get('customers_only_later_orders', 0)} with orders only at or after it)")
    if counts.get("house_accounts"):
        out.append(f"{unit}: {counts['house_accounts']} house account(s) (over {HOUSE_ACCOUNT_PURCHASES_PER_DAY:g} "
                   "purchases a day: a till's catch-all profile, not a guest) neither scored nor trained on")
    if counts.get(f"{unit}_training_customers_per_mille", 1000) < 1000:
        out.append(f"{unit}: training read {counts[f'{unit}_training_customers_per_mille'] / 10:g} % of the shard's "
                   "customers (a fixed sample by id); everyone is scored")
    if counts.get(f"{unit}_training_rows_sampled_from"):
        out.append(f"{unit}: trained on a sample of {trained_rows} of {counts[f'{unit}_training_rows_sampled_from']} "
                   "training rows")
    return out


def capped_training(frame: pd.DataFrame, max_rows: int | None = None, seed: int = 7) -> pd.DataFrame:
    """At most ``max_rows`` (default ``MAX_TRAIN_ROWS``) training rows: a uniform, seeded sample,
    so label rates and the cutoffs' mix are kept in expectation and reruns fit the same model."""
    max_rows = MAX_TRAIN_ROWS if max_rows is None else max_rows
    if len(frame) <= max_rows:
        return frame
    return frame.sample(n=max_rows, random_state=seed).sort_index().reset_index(drop=True)


def typed_rfm(frame: pd.DataFrame) -> pd.DataFrame:
    """``customer_rfm``'s columns in their types: ids int64, instants UTC, counts and sums float64,
    flags bool, the tier a string ('none' when missing)."""
    frame = frame.copy()
    for col in ("customer_id", "restaurant_id", "organization_id"):
        frame[col] = frame[col].astype("int64")
    for col in ("date_joined", "first_order_at", "last_order_at", "second_order_at", "last_failure_at",
                "first_failure_at"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    skip = {"customer_id", "restaurant_id", "organization_id", "anchored_by_last_order", "loyalty_tier",
            "date_joined", "first_order_at", "last_order_at", "second_order_at", "last_failure_at",
            "first_failure_at", "marketing_opt_in", "last_order_type"}
    for col in frame.columns:
        if col not in skip:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    frame["anchored_by_last_order"] = frame["anchored_by_last_order"].astype(bool)
    frame["marketing_opt_in"] = frame["marketing_opt_in"].fillna(False).astype(bool)
    frame["last_order_type"] = frame["last_order_type"].astype(object)
    frame["loyalty_tier"] = frame["loyalty_tier"].fillna("none").astype(str)
    return frame


# ---------------------------------------------------------------- training windows
MIN_FEATURE_HISTORY_DAYS = 60


def ltv_label_window(as_of: pd.Timestamp, first_order: pd.Timestamp | None) -> int:
    """Days of the LTV training label: 365 when history allows, else the largest multiple of 30
    days that leaves ``MIN_FEATURE_HISTORY_DAYS`` of history before the training cutoff (at
    least 30). The model's output is then extrapolated to 12 months (see ``models.ltv``)."""
    if first_order is None or pd.isna(first_order):
        return LTV_HORIZON_DAYS
    avail = int((as_of - first_order) / pd.Timedelta(days=1)) - MIN_FEATURE_HISTORY_DAYS
    if avail >= LTV_HORIZON_DAYS:
        return LTV_HORIZON_DAYS
    return max(30, (avail // 30) * 30)


TRAINING_CUTOFFS = 3
CUTOFF_STEP_DAYS = 14


def training_cutoffs(last_cutoff: pd.Timestamp, first_order: pd.Timestamp | None = None,
                     cutoffs: int = TRAINING_CUTOFFS, step_days: int = CUTOFF_STEP_DAYS) -> list[pd.Timestamp]:
    """``last_cutoff`` and up to ``cutoffs - 1`` earlier ones ``step_days`` apart, leaving out those
    with less than ``MIN_FEATURE_HISTORY_DAYS`` of history after ``first_order`` (never the last)."""
    out = []
    for k in range(max(1, cutoffs)):
        cut = last_cutoff - pd.Timedelta(days=k * step_days)
        if k and first_order is not None and (cut - first_order) < pd.Timedelta(days=MIN_FEATURE_HISTORY_DAYS):
            break
        out.append(cut)
    return out
