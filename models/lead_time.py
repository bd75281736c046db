"""Supplier lead time: how many days an order really takes, and how much that varies.

A supplier's promise (``default_lead_time_days``) is what operators plan with; the purchase-order
history says what happens. The estimate is the observed mean shrunk towards the promise with the
weight of ``prior_orders`` pseudo-orders, so a supplier with three orders is not judged on them
alone, and one with fifty is judged on its record:

    expected = (n * observed_mean + k * promised) / (n + k)
    sd       = sqrt((n * observed_sd^2 + k * (promised * PRIOR_CV)^2) / (n + k))

**Recent lateness.** Suppliers have bad weeks (a truck off the road, a holiday backlog), and the
orders placed while one runs are late together. So the long-run estimate is scaled by a factor
for how late the supplier is running now, from its orders placed in the last ``lead_time_recent_days`` (5,
settings):
per order x = log(lead / long-run median), clipped to +/- log 4 (an order stuck as ``sent`` for
weeks is not a month-long lead time). Orders not received yet are censored at the days elapsed
(an overdue one is at least that late; one placed this morning says nothing yet), so the median
of x is the Kaplan-Meier median, and when fewer than half have arrived, the largest x (a lower
bound; 0 if that is below the usual). With n the orders whose side of the usual median is known
(received, or open and already past it), and k_r = ``recent_prior_orders``:

    factor = exp(n / (n + k_r) * median(x))

so one late order moves a supplier little and a week of them a lot. ``expected``, ``sd`` and the
percentiles are multiplied by it (the spread relative to the lead time is kept). Without recent
orders the factor is 1 and the estimate is the long-run one. Placement, not receipt, dates the
window: a bad spell slows the orders placed during it, and orders received this week were mostly
placed before it began.

Fallback chain (``method``): ``model`` with at least ``min_orders`` received orders; ``rule`` =
the promise (sd = PRIOR_CV x promise) when there are fewer; ``average`` = the mean of the other
suppliers' estimates when there is neither history nor promise. The interval is the observed
10th-90th percentile (80 %), widened to include the expected value.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd

from core.settings import InventorySettings
from models.base import load_table_model, save_table_model

PRIOR_CV = 0.25  # assumed spread of a supplier with no history, relative to its promise
RECENT_CLIP = np.log(4.0)  # one order counts at most 4x (or 1/4 of) the usual lead time
# The lead-time distribution's shape: quantiles of the observed lead times at these equally spaced
# levels (``features.suppliers.supplier_lead_times``' ``quantiles``), kept as lead / median ratios
LEAD_LEVELS = (np.arange(40) + 0.5) / 40
QUANTILE_COLUMNS = [f"lead_q{k:02d}" for k in range(len(LEAD_LEVELS))]
POOL_PRIOR_ORDERS = 20.0  # weight, in orders, of the chain's pooled shape in a supplier's own
# per local weekday an order is placed on (Monday 0), days added to its lead: the weekday's median
# minus the supplier's, shrunk with the weight of this many orders ("as any other day")
SHIFT_COLUMNS = [f"lead_shift_{w}" for w in range(7)]
WEEKDAY_PRIOR_ORDERS = 5.0
TAIL_FROM = 0.9  # above this level the quantile function continues as an exponential tail
MIN_TAIL_DAYS = 0.25


def censored_median(x: np.ndarray, observed: np.ndarray) -> float:
    """Kaplan-Meier median of ``x`` where ``observed`` is false for right-censored values (true >= x).

    When the survival never falls to 1/2 (more than half still censored), the largest value, a
    lower bound, floored at 0.
    """
    order = np.lexsort((~observed, x))  # at ties an observed value comes before a censored one
    x, observed = x[order], observed[order]
    surv, at_risk = 1.0, len(x)
    for xi, ev in zip(x, observed):
        if ev:
            surv *= (at_risk - 1) / at_risk
            if surv <= 0.5:
                return float(xi)
        at_risk -= 1
    return max(float(x.max()), 0.0) if len(x) else 0.0


def tail_mean(q: np.ndarray) -> float:
    """Mean excess (days) of an exponential tail fitted to the quantiles above ``TAIL_FROM``: with
    Q(g) - Q(p0) = m log((1 - p0) / (1 - g)), least squares through the origin. What lies beyond
    the highest observed level (a delivery later than almost all seen) and how long an order older
    than that may still take (memoryless: a lost order's remaining wait does not shrink)."""
    up = LEAD_LEVELS > TAIL_FROM
    q0 = float(np.interp(TAIL_FROM, LEAD_LEVELS, q))
    ell = np.log((1 - TAIL_FROM) / (1 - LEAD_LEVELS[up]))
    m = float(np.sum((q[up] - q0) * ell) / np.sum(ell**2))
    return max(m, MIN_TAIL_DAYS)


def lead_quantile(q: np.ndarray, u: np.ndarray, elapsed: float = 0.0) -> np.ndarray:
    """Lead times (days) at levels ``u`` of the distribution whose quantiles at ``LEAD_LEVELS`` are
    ``q``, conditioned on the order not having arrived after ``elapsed`` days.

    Linear between the levels, flat below the first, an exponential tail above the last
    (``tail_mean``). Conditioning maps u to F(elapsed) + (1 - F(elapsed)) u; an order older than the
    last level waits ``elapsed`` + the tail's exponential (it is lost in a missed round or a bad
    spell, and the history says how long such waits last).
    """
    q = np.maximum.accumulate(np.asarray(q, dtype=float))
    u = np.asarray(u, dtype=float)
    m, top, g_top = tail_mean(q), float(q[-1]), float(LEAD_LEVELS[-1])
    if elapsed > top:
        return elapsed - m * np.log1p(-np.minimum(u, 1 - 1e-9))
    lo = float(np.interp(elapsed, q, LEAD_LEVELS, left=0.0)) if elapsed > q[0] else 0.0
    v = lo + (1 - lo) * u
    body = np.interp(v, LEAD_LEVELS, q)
    tail = top - m * np.log(np.maximum(1 - v, 1e-12) / (1 - g_top))
    return np.maximum(np.where(v > g_top, tail, body), elapsed)


def lognormal_quantiles(mean: float, sd: float) -> np.ndarray:
    """Quantiles at ``LEAD_LEVELS`` of a lognormal with this mean and sd: the shape when nothing
    better is known (no supplier of the chain has a delivery history)."""
    from scipy.stats import norm

    if not (np.isfinite(mean) and mean > 0):
        return np.full(len(LEAD_LEVELS), np.nan)
    s2 = math.log(1 + (max(sd, 1e-6) / mean) ** 2)
    return np.exp(math.log(mean) - s2 / 2 + math.sqrt(s2) * norm.ppf(LEAD_LEVELS))


def shrunk_shapes(frame: pd.DataFrame, enough: np.ndarray) -> np.ndarray:
    """Per supplier row, its lead / median ratios at ``LEAD_LEVELS``: its own (``quantiles``, K of
    them at the levels (k + 1/2) / K, over ``p50``) shrunk towards the chain's pool with the weight of ``POOL_PRIOR_ORDERS`` orders, so
    a supplier with a short history borrows the tail the chain's suppliers show, and one with
    hundreds of deliveries has its own. The pool is the order-weighted mean of the suppliers' ratio
    quantiles (quantile averaging). NaN rows when nobody has a history (no ``quantiles``)."""
    k = len(LEAD_LEVELS)
    own = np.full((len(frame), k), np.nan)
    if "quantiles" in frame:
        for i, (q, p50, ok) in enumerate(zip(frame["quantiles"], frame["p50"], enough)):
            if ok and q is not None and not (isinstance(q, float) and np.isnan(q)) and p50 and p50 > 0:
                q = np.maximum.accumulate(np.asarray(q, dtype=float))
                own[i] = np.interp(LEAD_LEVELS, (np.arange(len(q)) + 0.5) / len(q), q) / float(p50)
    have = np.isfinite(own).all(axis=1)
    if not have.any():
        return own
    n = frame["n"].to_numpy(float)
    pool = np.average(own[have], axis=0, weights=n[have])
    w = np.where(have, n / (n + POOL_PRIOR_ORDERS), 0.0)[:, None]
    return w * np.where(have[:, None], own, 0.0) + (1 - w) * pool


def weekday_shifts(frame: pd.DataFrame) -> np.ndarray:
    """(suppliers, 7) days to add to the lead of an order placed on each local weekday: the
    weekday's median lead (``wd_p50_{w}``, ``features.suppliers``) minus the supplier's (``p50``),
    shrunk by n_w / (n_w + ``WEEKDAY_PRIOR_ORDERS``); 0 without them. The shape (``shrunk_shapes``)
    is the all-days one, so its spread still holds the weekdays' differences: a little wide."""
    out = np.zeros((len(frame), 7))
    if "wd_p50_0" not in frame:
        return out
    p50 = frame["p50"].to_numpy(float)
    for w in range(7):
        n = frame[f"wd_n_{w}"].fillna(0).to_numpy(float)
        diff = frame[f"wd_p50_{w}"].to_numpy(float) - p50
        out[:, w] = np.where((n > 0) & np.isfinite(diff), n / (n + WEEKDAY_PRIOR_ORDERS) * np.nan_to_num(diff), 0.0)
    return out


def supplier_shifts(lead: pd.DataFrame) -> dict[int, np.ndarray]:
    """Per supplier id, its weekday shifts (``weekday_shifts``; zeros when the estimates have none)."""
    if lead is None or not len(lead) or SHIFT_COLUMNS[0] not in lead:
        return {}
    x = lead[SHIFT_COLUMNS].to_numpy(float)
    return {int(s): np.nan_to_num(x[i]) for i, s in enumerate(lead["supplier_id"])}


def supplier_quantiles(lead: pd.DataFrame) -> dict[int, np.ndarray]:
    """Per supplier id, its lead-time quantiles at ``LEAD_LEVELS`` (``SupplierLeadTime.estimates_``;
    empty for estimates without them, e.g. saved before they existed)."""
    if lead is None or not len(lead) or QUANTILE_COLUMNS[0] not in lead:
        return {}
    q = lead[QUANTILE_COLUMNS].to_numpy(float)
    return {int(s): q[i] for i, s in enumerate(lead["supplier_id"]) if np.isfinite(q[i]).all()}


def lead_draws_now(shapes: dict[int, np.ndarray], supplier_id: float | None, grid: int = 200,
                   shift: float = 0.0) -> np.ndarray | None:
    """``grid`` equally likely lead times (days) of an order placed now with this supplier
    (``supplier_quantiles``), plus today's weekday ``shift``; None when it has no distribution
    (the reorder point then uses the Normal formula with the lead time's sd)."""
    if supplier_id is None or pd.isna(supplier_id) or int(supplier_id) not in shapes:
        return None
    return np.maximum(lead_quantile(shapes[int(supplier_id)], (np.arange(grid) + 0.5) / grid) + shift, 0.0)


def weekday_shift(shifts: dict[int, np.ndarray], supplier_id: float | None, weekday: int) -> float:
    """The supplier's shift (days) for an order placed on this local weekday; 0 when unknown."""
    if supplier_id is None or pd.isna(supplier_id) or int(supplier_id) not in shifts:
        return 0.0
    return float(shifts[int(supplier_id)][int(weekday)])


class SupplierLeadTime:
    name = "lead_time_shrunk_mean"

    def __init__(self, min_orders: int = 3, prior_orders: float = 2.0, recent_prior_orders: float = 5.0):
        """
        Args:
            min_orders: received orders needed before the history is trusted over the promise.
            prior_orders: weight of the promise, in orders, in the shrunk mean.
            recent_prior_orders: weight of "as usual", in orders, in the recent lateness factor.
        """
        self.min_orders = min_orders
        self.prior_orders = prior_orders
        self.recent_prior_orders = recent_prior_orders

    @classmethod
    def from_settings(cls, settings: InventorySettings) -> Self:
        """Unfitted, with ``core.settings.InventorySettings``' lead-time priors."""
        return cls(min_orders=settings.lead_time_min_orders, recent_prior_orders=settings.lead_time_recent_prior_orders)

    def fit(self, suppliers: pd.DataFrame, history: pd.DataFrame, recent: pd.DataFrame | None = None) -> Self:
        """Learn per supplier.

        Args:
            suppliers: supplier_id, promised_lead_days (days, NaN when unknown).
            history: ``features.suppliers.supplier_lead_times`` (supplier_id, n, mean, sd, p10, p50,
                p90; days).
            recent: ``features.suppliers.supplier_recent_orders`` as of the same instant
                (supplier_id, lead_days, open); None or empty: no recent lateness (factor 1).
        """
        frame = suppliers[["supplier_id", "promised_lead_days"]].drop_duplicates("supplier_id")
        frame = frame.merge(history, on="supplier_id", how="left")
        frame["n"] = frame["n"].fillna(0).astype(int)
        k = self.prior_orders
        promised = frame["promised_lead_days"]
        has_promise = promised.notna() & (promised > 0)
        enough = frame["n"] >= self.min_orders
        kk = np.where(has_promise, k, 0.0)
        n = frame["n"].astype(float)
        p = promised.fillna(0.0)
        prior_sd = p * PRIOR_CV
        mean = np.where(enough, (n * frame["mean"].fillna(0) + kk * p) / (n + kk), p)
        sd = np.where(
            enough,
            np.sqrt((n * frame["sd"].fillna(0) ** 2 + kk * prior_sd**2) / np.maximum(n + kk, 1)),
            prior_sd,
        )
        method = np.where(enough, "model", np.where(has_promise, "rule", "average"))
        out = pd.DataFrame(
            {
                "supplier_id": frame["supplier_id"].astype("int64"),
                "expected_days": mean,
                "sd_days": sd,
                "lower": np.where(enough, frame["p10"], np.maximum(p - 1.2816 * prior_sd, 0)),
                "upper": np.where(enough, frame["p90"], p + 1.2816 * prior_sd),
                "median_days": np.where(enough, frame["p50"], p),
                "observed_orders": frame["n"],
                "promised_days": promised,
                "method": method,
            }
        )
        fallback = out.loc[out["method"] != "average", "expected_days"]
        fallback_sd = out.loc[out["method"] != "average", "sd_days"]
        avg = out["method"] == "average"
        if avg.any():
            m = float(fallback.mean()) if len(fallback) else float("nan")
            s = float(fallback_sd.mean()) if len(fallback_sd) else float("nan")
            out.loc[avg, ["expected_days", "median_days"]] = m
            out.loc[avg, "sd_days"] = s
            out.loc[avg, "lower"] = max(m - 1.2816 * s, 0) if np.isfinite(m) else np.nan
            out.loc[avg, "upper"] = m + 1.2816 * s
        out["long_run_expected_days"] = out["expected_days"]
        factor, n_recent = self._recent_factor(out, recent)
        out["recent_lateness_factor"] = factor
        out["recent_orders"] = n_recent
        for col in ("expected_days", "sd_days", "lower", "upper", "median_days"):
            out[col] = out[col] * factor
        out["lower"] = np.minimum(out["lower"], out["expected_days"])
        out["upper"] = np.maximum(out["upper"], out["expected_days"])
        shapes = shrunk_shapes(frame, enough.to_numpy())
        q = shapes * out["median_days"].to_numpy(float)[:, None]
        for i in np.flatnonzero(~np.isfinite(q).all(axis=1)):
            q[i] = lognormal_quantiles(float(out["expected_days"].iloc[i]), float(out["sd_days"].iloc[i]))
        out[QUANTILE_COLUMNS] = q
        out[SHIFT_COLUMNS] = weekday_shifts(frame) * out["recent_lateness_factor"].to_numpy(float)[:, None]
        self.estimates_ = out.reset_index(drop=True)
        return self

    def _recent_factor(self, est: pd.DataFrame, recent: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
        """Per row of ``est``: the shrunk recent lateness factor and the orders it rests on."""
        factor, n_known = np.ones(len(est)), np.zeros(len(est), dtype="int64")
        if recent is None or recent.empty or est.empty:
            return factor, n_known
        ref = est.set_index("supplier_id")["median_days"].astype(float)
        r = recent[["supplier_id", "lead_days", "open"]].copy()
        r["ref"] = r["supplier_id"].map(ref)
        r = r[np.isfinite(r["ref"]) & (r["ref"] > 0)]
        r["x"] = np.clip(np.log(np.maximum(r["lead_days"].astype(float), 1e-3) / r["ref"]), -RECENT_CLIP, RECENT_CLIP)
        groups = dict(tuple(r.groupby("supplier_id")))
        for i, sid in enumerate(est["supplier_id"]):
            g = groups.get(int(sid))
            if g is None:
                continue
            x, received = g["x"].to_numpy(float), ~g["open"].to_numpy(bool)
            n = int((received | (x > 0)).sum())
            if n == 0:
                continue
            median = censored_median(x, received)
            factor[i] = math.exp(n / (n + self.recent_prior_orders) * median) if n + self.recent_prior_orders > 0 else 1.0
            n_known[i] = n
        return factor, n_known

    def predict(self, supplier_ids: list[int] | pd.Series) -> pd.DataFrame:
        """Estimates for these suppliers (rows of unknown suppliers are absent)."""
        ids = pd.Series(list(supplier_ids), dtype="int64")
        return self.estimates_[self.estimates_["supplier_id"].isin(ids)].reset_index(drop=True)

    def save(self, directory: Path) -> None:
        save_table_model(self, directory, {"min_orders": self.min_orders, "prior_orders": self.prior_orders,
                                           "recent_prior_orders": self.recent_prior_orders}, "estimates_")

    @classmethod
    def load(cls, directory: Path) -> Self:
        return load_table_model(cls, directory, "estimates_")


def lead_time_rows(estimates: pd.DataFrame, owned: pd.Series | None = None) -> pd.DataFrame:
    """``lead_time`` rows (entity supplier, organisation-wide: restaurant_id null, no target).

    Args:
        estimates: ``SupplierLeadTime.estimates_`` (days).
        owned: supplier ids this shard writes (see ``features.suppliers.shard_suppliers``).
    """
    est = estimates if owned is None else estimates[estimates["supplier_id"].isin(list(owned))]
    est = est[np.isfinite(est["expected_days"].astype(float))]
    details = [
        {
            "sd_days": round(float(r.sd_days), 3),
            "median_days": round(float(r.median_days), 3),
            "observed_orders": int(r.observed_orders),
            "promised_days": None if pd.isna(r.promised_days) else float(r.promised_days),
            "interval_level": 0.8,
            "long_run_expected_days": round(float(getattr(r, "long_run_expected_days", r.expected_days)), 3),
            "recent_lateness_factor": round(float(getattr(r, "recent_lateness_factor", 1.0)), 4),
            "recent_orders": int(getattr(r, "recent_orders", 0)),
        }
        for r in est.itertuples(index=False)
    ]
    return pd.DataFrame(
        {
            "entity_id": est["supplier_id"].astype("int64").to_numpy(),
            "restaurant_id": pd.array([None] * len(est), dtype="Int64"),
            "target_start": pd.NaT,
            "granularity": None,
            "value": est["expected_days"].astype(float).round(3).to_numpy(),
            "lower": est["lower"].astype(float).round(3).to_numpy(),
            "upper": est["upper"].astype(float).round(3).to_numpy(),
            "details": details,
            "model_name": SupplierLeadTime.name,
            "model_version": "1",
            "method": est["method"].to_numpy(),
        }
    )
