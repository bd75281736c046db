"""Price elasticity from an item's own price changes, and a bounded price recommendation.

Estimate (docs/pricing.md): around each change of an item's daily modal price, compare the item's
share of the restaurant's order lines, taken relative to the *other* items' lines, in up to
``window_days`` before and after (stopping at the neighbouring changes):

    e_k = log(r_after / r_before) / log(p_after / p_before),   r = item lines / other items' lines

Dividing by the other items' lines cancels whatever moves the whole restaurant (season, weekday,
trend, a closure), and using the other items rather than all lines removes the dilution of a
popular item's own drop. The "other items" are only those on sale through the whole window at one
price, so an item introduced or repriced meanwhile does not move the reference. Its variance (Poisson counts) is ``(1/n_item + 1/n_other)`` on each side
over ``log(p_after/p_before)^2``. Events are combined with inverse-variance weights, and the result
is shrunk towards its category's mean (empirical Bayes, ``ElasticityEstimator._shrink``), so a noisy
single change cannot produce an absurd elasticity. Items without a price change take their
category's mean in the shard (``method='average'``), else the unit-elastic prior -1
(``method='rule'``).

Recommendation: the price in [current x (1 - b), current x (1 + b)], b = ``max_change_pct``,
maximising expected gross profit (price - cost) x units when the food cost is known, else revenue,
with units ∝ price^elasticity. ``expected_revenue_change_pct`` = ((p / p0)^(1 + e) - 1) x 100.
``confidence`` = P(the recommended direction is right) = Phi(|e - e*| / se), e* being the
elasticity at which the current price would already be optimal (-p0 / (p0 - cost), or -1).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd
from scipy.stats import norm

from models.base import load_table_model, save_table_model

PRIOR_ELASTICITY = -1.0
# spread of true elasticities among one category's items: assumed when too few items changed price
# to estimate it, and never below MIN_TAU so that one category mean cannot swallow every item
DEFAULT_TAU = 0.3
MIN_TAU = 0.1
MODEL_VERSION = "1"


class ElasticityEstimator:
    name = "elasticity_share_ratio"

    def __init__(self, window_days: int = 150, min_change_pct: float = 2.0, prior_sd: float = 0.6, min_run_days: int = 5):
        """
        Args:
            window_days: days compared on each side of a price change.
            min_change_pct: smaller moves of the modal price are not price changes (rounding, promos).
            prior_sd: sd of the unit-elastic prior (-1) that category means are shrunk towards.
            min_run_days: a new price must hold this many sales days to count as a change.
        """
        self.window_days = window_days
        self.min_change_pct = min_change_pct
        self.prior_sd = prior_sd
        self.min_run_days = min_run_days

    def price_changes(self, sales: pd.DataFrame) -> pd.DataFrame:
        """Changes of each item's daily modal price that then held ``min_run_days`` days.

        Returns menu_item_id, at (first local date at the new price), old_price, new_price.
        """
        out = []
        # A day sold at a modal price of 0 (comped, or a free item) says nothing about elasticity
        # and would divide by zero below.
        priced = sales[sales["price"] > 0]
        for iid, g in priced.sort_values("local_date").groupby("menu_item_id"):
            prices = g["price"].to_numpy()
            dates = g["local_date"].to_numpy()
            # a run-length view of the price: a change needs the new price to hold min_run_days
            current = prices[0]
            i = 1
            while i < len(prices):
                if abs(prices[i] / current - 1) * 100 >= self.min_change_pct:
                    run = prices[i : i + self.min_run_days]
                    if len(run) >= self.min_run_days and np.all(np.abs(run / prices[i] - 1) * 100 < self.min_change_pct):
                        out.append((int(iid), pd.Timestamp(dates[i]), float(current), float(prices[i])))
                        current = prices[i]
                        i += self.min_run_days
                        continue
                i += 1
        return pd.DataFrame(out, columns=["menu_item_id", "at", "old_price", "new_price"])

    def fit(self, items: pd.DataFrame, sales: pd.DataFrame) -> Self:
        """Estimate every item's elasticity.

        Args:
            items: ``features.prices.menu_items`` (menu_item_id, restaurant_id, category).
            sales: ``features.prices.daily_item_sales`` (lines per item and local day, modal price).
        """
        changes = self.price_changes(sales) if len(sales) else pd.DataFrame(columns=["menu_item_id", "at", "old_price", "new_price"])
        span = sales.groupby("menu_item_id")["local_date"].agg(["min", "max"]) if len(sales) else pd.DataFrame()
        lines = sales.pivot_table(index="local_date", columns="menu_item_id", values="lines", aggfunc="sum", fill_value=0.0) if len(sales) else pd.DataFrame()
        owner = sales.groupby("menu_item_id")["restaurant_id"].first() if len(sales) else pd.Series(dtype="int64")
        events = []
        for iid, ch in changes.groupby("menu_item_id"):
            g = sales[sales["menu_item_id"] == iid].set_index("local_date")
            rid = int(g["restaurant_id"].iloc[0])
            ats = list(ch["at"])
            for k, row in enumerate(ch.itertuples(index=False)):
                lo = max(ats[k - 1] if k else pd.Timestamp.min, row.at - pd.Timedelta(days=self.window_days))
                hi = min(ats[k + 1] if k + 1 < len(ats) else pd.Timestamp.max, row.at + pd.Timedelta(days=self.window_days))
                before = g[(g.index >= lo) & (g.index < row.at)]
                after = g[(g.index >= row.at) & (g.index < hi)]
                if len(before) < self.min_run_days or len(after) < self.min_run_days:
                    continue
                lo, hi = before.index.min(), after.index.max()
                # the reference: the restaurant's items on sale through the whole window at one price.
                # Their lines move only with the restaurant's traffic and the item's own choice share.
                moved = set(changes.loc[(changes["at"] > lo) & (changes["at"] <= hi), "menu_item_id"])
                ref = [
                    int(j) for j in owner.index[owner == rid]
                    if j != iid and j not in moved and span.loc[j, "min"] <= lo and span.loc[j, "max"] >= hi
                ]
                if not ref:
                    continue
                ref_lines = lines[ref].sum(axis=1)
                nb, na = before["lines"].sum(), after["lines"].sum()
                ob = ref_lines.reindex(before.index, fill_value=0.0).sum()
                oa = ref_lines.reindex(after.index, fill_value=0.0).sum()
                if min(nb, na, ob, oa) <= 0:
                    continue
                dlogp = math.log(row.new_price / row.old_price)
                e = math.log((na / oa) / (nb / ob)) / dlogp
                var = (1 / nb + 1 / na + 1 / ob + 1 / oa) / dlogp**2
                events.append((int(iid), e, var))
        ev = pd.DataFrame(events, columns=["menu_item_id", "e", "var"])
        own = pd.DataFrame(columns=["menu_item_id", "raw", "raw_se", "n_changes"])
        if len(ev):
            ev["w"] = 1 / ev["var"]
            g = ev.groupby("menu_item_id")
            own = pd.DataFrame(
                {
                    "raw": g.apply(lambda x: float((x["e"] * x["w"]).sum() / x["w"].sum()), include_groups=False),
                    "raw_se": g["w"].sum() ** -0.5,
                    "n_changes": g.size(),
                }
            ).reset_index()
        est = items[["menu_item_id", "restaurant_id", "category"]].merge(own, on="menu_item_id", how="left")
        est = self._shrink(est)
        est["n_changes"] = est["n_changes"].fillna(0).astype(int)
        self.estimates_ = est[["menu_item_id", "restaurant_id", "category", "elasticity", "se", "raw", "n_changes", "source"]]
        return self

    def _shrink(self, est: pd.DataFrame) -> pd.DataFrame:
        """Empirical-Bayes shrinkage of the raw per-item estimates towards their category's mean.

        Items of one category (drinks, desserts, ...) answer price alike, so the category's mean is
        a far better prior for a noisy single price change than one unit-elastic guess for the whole
        menu. The spread of true elasticities within a category, tau^2, is estimated from the data
        (DerSimonian-Laird moments pooled over categories, floored at ``MIN_TAU``); each category's
        mean is a random-effects mean itself shrunk towards -1 with ``prior_sd``. An item's estimate
        is then the precision-weighted mean of its raw estimate (variance raw_se^2) and its
        category's mean (variance tau^2); its se adds the category mean's own uncertainty.
        """
        known = est[est["raw"].notna()]
        tau2 = DEFAULT_TAU**2
        if len(known) > known["category"].nunique() + 2:
            w = 1 / known["raw_se"] ** 2
            fixed = (known["raw"] * w).groupby(known["category"]).transform("sum") / w.groupby(known["category"]).transform("sum")
            q = float((w * (known["raw"] - fixed) ** 2).sum())
            sw = w.groupby(known["category"]).sum()
            sw2 = (w**2).groupby(known["category"]).sum()
            c = float((sw - sw2 / sw).sum())
            dof = len(known) - known["category"].nunique()
            tau2 = max((q - dof) / c, 0.0) if c > 0 else DEFAULT_TAU**2
        tau2 = max(tau2, MIN_TAU**2)
        w_re = 1 / (known["raw_se"] ** 2 + tau2)
        cat_sum = (known["raw"] * w_re).groupby(known["category"]).sum()
        cat_w = w_re.groupby(known["category"]).sum()
        w_prior = 1 / self.prior_sd**2
        cat_mean = (cat_sum + PRIOR_ELASTICITY * w_prior) / (cat_w + w_prior)
        cat_var = 1 / (cat_w + w_prior)
        mu = est["category"].map(cat_mean).fillna(PRIOR_ELASTICITY)
        mu_var = est["category"].map(cat_var).fillna(self.prior_sd**2)
        has_cat = est["category"].isin(cat_mean.index)
        own = est["raw"].notna()
        w_data = 1 / est["raw_se"] ** 2
        k = w_data / (w_data + 1 / tau2)  # weight of the item's own data
        est["elasticity"] = np.where(own, k * est["raw"] + (1 - k) * mu, mu)
        est["se"] = np.where(own, np.sqrt(1 / (w_data + 1 / tau2) + (1 - k) ** 2 * mu_var), np.sqrt(tau2 + mu_var))
        est["source"] = np.select([own, has_cat], ["own", "category"], "prior")
        est.loc[~own & ~has_cat, "se"] = self.prior_sd
        self.tau_ = math.sqrt(tau2)
        return est

    def predict(self, menu_item_ids: Iterable[int]) -> pd.DataFrame:
        return self.estimates_[self.estimates_["menu_item_id"].isin(list(menu_item_ids))].reset_index(drop=True)

    def save(self, directory: Path) -> None:
        save_table_model(self, directory, {"window_days": self.window_days, "min_change_pct": self.min_change_pct,
                                           "prior_sd": self.prior_sd, "min_run_days": self.min_run_days}, "estimates_")

    @classmethod
    def load(cls, directory: Path) -> Self:
        return load_table_model(cls, directory, "estimates_")


def recommend_price(price: float, cost: float | None, elasticity: float, se: float, max_change_pct: float) -> dict:
    """The best price within the bound (module docstring), with its expected effects.

    Args:
        price: current list price (currency).
        cost: food cost per unit (currency), None or NaN when unknown.
        elasticity: d log(units) / d log(price), negative.
        se: standard error of ``elasticity``.
        max_change_pct: the recommendation stays within +/- this percentage of ``price``.
    """
    b = max_change_pct / 100.0
    grid = np.linspace(price * (1 - b), price * (1 + b), 81)
    rel = (grid / price) ** elasticity
    use_profit = cost is not None and np.isfinite(cost) and 0 < cost < price
    objective = (grid - cost) * rel if use_profit else grid * rel
    best = float(np.round(grid[int(np.argmax(objective))], 2))
    critical = -price / (price - cost) if use_profit else -1.0
    revenue = ((best / price) ** (1 + elasticity) - 1) * 100
    out = {
        "price": best,
        "expected_revenue_change_pct": float(revenue),
        "objective": "gross_profit" if use_profit else "revenue",
        "confidence": float(norm.cdf(abs(elasticity - critical) / max(se, 1e-6))),
    }
    if use_profit:
        out["expected_profit_change_pct"] = float(((best - cost) * (best / price) ** elasticity / (price - cost) - 1) * 100)
    return out


def price_rows(items: pd.DataFrame, estimates: pd.DataFrame, max_change_pct: float) -> pd.DataFrame:
    """``price_recommendation`` rows: one per active menu item, point-in-time (no target_start)."""
    frame = items.merge(estimates[["menu_item_id", "elasticity", "se", "n_changes", "source"]], on="menu_item_id")
    method = {"own": "model", "category": "average", "prior": "rule"}
    recs, details = [], []
    for r in frame.itertuples(index=False):
        rec = recommend_price(float(r.price), None if pd.isna(r.cost) else float(r.cost), float(r.elasticity), float(r.se), max_change_pct)
        recs.append(rec["price"])
        d = {
            "current_price": round(float(r.price), 2),
            "elasticity": round(float(r.elasticity), 4),
            "elasticity_se": round(float(r.se), 4),
            "elasticity_source": r.source,
            "price_changes_observed": int(r.n_changes),
            "expected_revenue_change_pct": round(rec["expected_revenue_change_pct"], 3),
            "confidence": round(rec["confidence"], 4),
            "objective": rec["objective"],
            "bound_pct": max_change_pct,
        }
        if "expected_profit_change_pct" in rec:
            d["expected_profit_change_pct"] = round(rec["expected_profit_change_pct"], 3)
        details.append(d)
    return pd.DataFrame(
        {
            "entity_id": frame["menu_item_id"].astype("int64").to_numpy(),
            "restaurant_id": frame["restaurant_id"].astype("int64").to_numpy(),
            "value": recs,
            "details": details,
            "model_name": ElasticityEstimator.name,
            "model_version": MODEL_VERSION,
            "method": [method[s] for s in frame["source"]],
        }
    )
