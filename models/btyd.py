"""Buy-till-you-die baselines: BG/NBD for purchase counts and Gamma-Gamma for order value.

Why here and not a library: ``lifetimes`` is unmaintained and ``pymc-marketing`` drags in a
Bayesian stack whose per-customer runs are slow at scale (pymc-marketing#1077, lifetimes#328).
Both models have closed-form likelihoods, so a vectorised maximum-likelihood fit with scipy over
a bounded sample, and closed-form per-customer predictions, keep the weekly run bounded in time
and memory for hundreds of thousands of customers.

Inputs follow the usual RFM convention, all in DAYS (converted to weeks inside, where the
optimiser is well conditioned):

- ``x``: repeat purchases (purchases minus one);
- ``t_x``: days from the first to the last purchase;
- ``T``: days from the first purchase to the cutoff.

Churn uses ``prob_no_purchase`` (BG/NBD's probability of no purchase in the next ``t`` days),
never ``p_alive``: P(alive) is 1 for every one-time buyer, so as a churn score it rates the
likeliest churners as the safest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.optimize import minimize
from scipy.special import gammaln, hyp2f1

_DAYS_PER_UNIT = 7.0  # fit in weeks
_MAX_FIT_ROWS = 200_000  # the likelihood is per distinct (x, t_x, T); beyond this, a seeded sample


def _weeks(values) -> np.ndarray:
    return np.asarray(values, dtype=float) / _DAYS_PER_UNIT


def _compress(*columns: np.ndarray) -> tuple[np.ndarray, ...]:
    """Distinct rows and their counts: the likelihood only needs each distinct RFM triple once."""
    stacked = np.column_stack(columns)
    uniq, counts = np.unique(stacked, axis=0, return_counts=True)
    return (*uniq.T, counts.astype(float))


def _sample(n: int, limit: int, seed: int) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


@dataclass
class BetaGeo:
    """BG/NBD (Fader, Hardie and Lee 2005) fitted by maximum likelihood.

    Fitted state: ``r_``, ``alpha_`` (per week), ``a_``, ``b_``.
    """

    name: str = "bgnbd"
    penalizer: float = 0.0
    r_: float | None = None
    alpha_: float | None = None
    a_: float | None = None
    b_: float | None = None

    # -- likelihood pieces ---------------------------------------------------------------------
    @staticmethod
    def _parts(params, x, t_x, T):
        r, alpha, a, b = params
        a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
        a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
        alive = -(r + x) * np.log(alpha + T)
        dead = np.where(
            x > 0,
            np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
        return a1 + a2, alive, dead

    def fit(self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike, *, seed: int = 0) -> Self:
        """Fit on customers' RFM summaries.

        Args:
            x: repeat purchases per customer (>= 0).
            t_x: days from first to last purchase.
            T: days from first purchase to the cutoff (>= t_x).
            seed: for the sample taken when there are more than 200,000 customers.
        """
        x = np.asarray(x, dtype=float)
        keep = _sample(len(x), _MAX_FIT_ROWS, seed)
        # Whole days: the likelihood barely moves within a day, and rounding lets the thousands
        # of one-time buyers collapse to one row per tenure day.
        cx, ctx, cT, w = _compress(x[keep], _weeks(np.round(t_x))[keep], _weeks(np.maximum(np.round(T), 1.0))[keep])
        if len(cx) == 0:
            raise ValueError("BG/NBD needs at least one customer")

        def nll(log_params):
            params = np.exp(log_params)
            base, alive, dead = self._parts(params, cx, ctx, cT)
            ll = base + np.logaddexp(alive, dead)
            return -(w * ll).sum() / w.sum() + self.penalizer * (params**2).sum()

        best = None
        # Bounded log-parameters: populations without dropouts push a and b to infinity (only
        # their ratio matters there); bounds stop the optimiser wandering after them.
        for start in ([0.5, 2.0, 0.8, 2.5], [1.0, max(float(np.mean(cT)), 1.0), 1.0, 1.0]):
            res = minimize(nll, np.log(start), method="L-BFGS-B", bounds=[(-9.0, 9.0)] * 4)
            if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
                best = res
        if best is None:
            raise ValueError("BG/NBD fit did not converge")
        self.r_, self.alpha_, self.a_, self.b_ = (float(v) for v in np.exp(best.x))
        return self

    @property
    def params_(self) -> tuple[float, float, float, float]:
        if self.r_ is None:
            raise RuntimeError("BetaGeo is not fitted")
        return self.r_, self.alpha_, self.a_, self.b_

    def p_alive(self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> np.ndarray:
        """P(still active | history). 1 for one-time buyers by construction: not a churn score."""
        x = np.asarray(x, dtype=float)
        _, alive, dead = self._parts(self.params_, x, _weeks(t_x), _weeks(T))
        return np.exp(alive - np.logaddexp(alive, dead))

    def prob_no_purchase(self, t_days: float, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> np.ndarray:
        """P(no purchase in the next ``t_days`` days | history): the churn baseline.

        Mixes the dead state (no purchase for sure) with the alive state, whose rate posterior is
        Gamma(r + x, alpha + T), so E[exp(-lambda t) | alive] = ((alpha+T)/(alpha+T+t))^(r+x).
        """
        r, alpha, a, b = self.params_
        x = np.asarray(x, dtype=float)
        T = _weeks(T)
        t = float(t_days) / _DAYS_PER_UNIT
        _, alive, dead = self._parts(self.params_, x, _weeks(t_x), T)
        quiet_if_alive = alive + (r + x) * (np.log(alpha + T) - np.log(alpha + T + t))
        return np.exp(np.logaddexp(quiet_if_alive, dead) - np.logaddexp(alive, dead))

    def expected_purchases(self, t_days: float, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> np.ndarray:
        """E[purchases in the next ``t_days`` days | history] (Fader et al. 2005, eq. 10)."""
        r, alpha, a, b = self.params_
        x = np.asarray(x, dtype=float)
        t_x = _weeks(t_x)
        T = _weeks(T)
        t = float(t_days) / _DAYS_PER_UNIT
        if t <= 0:
            return np.zeros_like(x)
        ca, cb, cc = r + x, b + x, a + b + x - 1
        z = t / (alpha + T + t)
        with np.errstate(all="ignore"):
            hyp = hyp2f1(ca, cb, cc, z)
            ln_hyp = np.log(hyp)
            # Euler's transformation where the direct series overflows.
            alt = np.log(hyp2f1(cc - ca, cc - cb, cc, z)) + (cc - ca - cb) * np.log1p(-z)
            ln_hyp = np.where(np.isfinite(ln_hyp), ln_hyp, alt)
            first = (a + b + x - 1) / (a - 1)
            second = 1 - np.exp(ln_hyp + (r + x) * np.log((alpha + T) / (alpha + t + T)))
            denom = 1 + np.where(x > 0, a / np.maximum(b + x - 1, 1e-12) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0)
            out = first * second / denom
        return np.clip(np.nan_to_num(out, nan=0.0, posinf=0.0), 0.0, None)

    # -- persistence ---------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / "bgnbd.json").write_text(json.dumps({"r": self.r_, "alpha_per_week": self.alpha_, "a": self.a_, "b": self.b_}))

    @classmethod
    def load(cls, directory: Path) -> Self:
        p = json.loads((Path(directory) / "bgnbd.json").read_text())
        return cls(r_=p["r"], alpha_=p["alpha_per_week"], a_=p["a"], b_=p["b"])


@dataclass
class GammaGamma:
    """Gamma-Gamma model of a customer's mean order value (Fader, Hardie and Lee 2005b).

    Fitted on customers' number of purchases ``n`` (>= 1) and mean purchase value ``m`` (> 0).
    Fitted state: ``p_``, ``q_``, ``v_`` (the paper's gamma).
    """

    name: str = "gamma_gamma"
    p_: float | None = None
    q_: float | None = None
    v_: float | None = None

    def fit(self, n: ArrayLike, m: ArrayLike, *, seed: int = 0) -> Self:
        """Args: n purchases per customer (>= 1), m mean purchase value (currency units, > 0)."""
        n = np.asarray(n, dtype=float)
        m = np.asarray(m, dtype=float)
        ok = (n >= 1) & (m > 0) & np.isfinite(m)
        n, m = n[ok], m[ok]
        keep = _sample(len(n), _MAX_FIT_ROWS, seed)
        n, m = n[keep], m[keep]
        if len(n) < 2:
            raise ValueError("Gamma-Gamma needs at least two customers with a positive spend")
        scale = float(np.mean(m))
        ms = m / scale  # fit on a unit scale; v scales back by `scale`

        def nll(log_params):
            p, q, v = np.exp(log_params)
            px = p * n
            ll = (
                gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v)
                + (px - 1) * np.log(ms) + px * np.log(n) - (px + q) * np.log(n * ms + v)
            )
            return -ll.mean()

        res = minimize(nll, np.log([2.0, 3.0, 2.0]), method="Nelder-Mead", options={"maxiter": 4000})
        res = minimize(nll, res.x, method="L-BFGS-B")
        p, q, v = np.exp(res.x)
        if q <= 1:  # the mean value is undefined for q <= 1; keep the estimate usable
            q = 1.0 + 1e-3
        self.p_, self.q_, self.v_ = float(p), float(q), float(v * scale)
        return self

    def expected_value(self, n: ArrayLike, m: ArrayLike) -> np.ndarray:
        """E[mean order value | n purchases with mean m]; the population mean when n = 0."""
        if self.p_ is None:
            raise RuntimeError("GammaGamma is not fitted")
        n = np.asarray(n, dtype=float)
        m = np.nan_to_num(np.asarray(m, dtype=float), nan=0.0)
        p, q, v = self.p_, self.q_, self.v_
        return (v + m * n) * p / (p * n + q - 1)

    def save(self, directory: Path) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / "gamma_gamma.json").write_text(json.dumps({"p": self.p_, "q": self.q_, "v": self.v_}))

    @classmethod
    def load(cls, directory: Path) -> Self:
        p = json.loads((Path(directory) / "gamma_gamma.json").read_text())
        return cls(p_=p["p"], q_=p["q"], v_=p["v"])


def simulate_bgnbd(n: int, r: float, alpha: float, a: float, b: float, T_days: float, seed: int = 0):
    """Draw RFM summaries from a BG/NBD process (rates per week), for recovery tests.

    Returns (x, t_x, T) in days, every customer observed for ``T_days`` from a first purchase at 0.
    """
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    T = T_days / _DAYS_PER_UNIT
    x = np.zeros(n)
    t_x = np.zeros(n)
    for i in range(n):  # test helper only: a few thousand customers
        t, k = 0.0, 0
        while True:
            t += rng.exponential(1.0 / lam[i])
            if t > T:
                break
            k += 1
            t_x[i] = t
            if rng.random() < p[i]:
                break
        x[i] = k
    return x, t_x * _DAYS_PER_UNIT, np.full(n, T_days)


BTYD_FEATURES: tuple[str, ...] = ("bg_p_quiet", "bg_expected_orders", "bg_p_alive", "gg_expected_value")


def add_btyd_features(frame: pd.DataFrame, window_days: int) -> pd.DataFrame:
    """Add BG/NBD and Gamma-Gamma summaries as features, fitted on ``frame`` itself.

    Why: the tree model then starts from the BTYD view of each customer (regularity-blind but
    well founded) and learns what it misses. The fit uses only the RFM columns at the frame's own
    cutoff, never labels, so adding these to a training frame leaks nothing.

    Args:
        frame: ``features.customer_frames.rfm_transform`` output, customers with purchases only.
        window_days: the prediction window (days) for bg_p_quiet and bg_expected_orders.

    Adds bg_p_quiet (P(no purchase in window)), bg_expected_orders (in window), bg_p_alive,
    gg_expected_value (expected order value, currency units).
    """
    if "cutoff" in frame.columns and frame["cutoff"].nunique() > 1:
        # Stacked training cutoffs: each is its own population at its own time.
        parts = [add_btyd_features(g.drop(columns="cutoff"), window_days).assign(cutoff=c)
                 for c, g in frame.groupby("cutoff", sort=False)]
        return pd.concat(parts).loc[frame.index]
    out = frame.copy()
    if out.empty:
        for col in BTYD_FEATURES:
            out[col] = pd.Series(dtype=float)
        return out
    x = out["x_repeat"].to_numpy(float)
    t_x = out["t_x_days"].fillna(0).to_numpy(float)
    T = np.maximum(out["tenure_days"].fillna(0).to_numpy(float), 1e-3)
    try:
        bg = BetaGeo().fit(x, t_x, T) if len(out) >= 20 else BetaGeo(r_=0.5, alpha_=4.0, a_=0.8, b_=2.5)
    except ValueError:
        bg = BetaGeo(r_=0.5, alpha_=4.0, a_=0.8, b_=2.5)
    out["bg_p_quiet"] = bg.prob_no_purchase(window_days, x, t_x, T)
    out["bg_expected_orders"] = bg.expected_purchases(window_days, x, t_x, T)
    out["bg_p_alive"] = bg.p_alive(x, t_x, T)
    n = out["n_orders"].to_numpy(float)
    m = out["spend_mean"].to_numpy(float)
    try:
        gg = GammaGamma().fit(n, m)
        out["gg_expected_value"] = gg.expected_value(n, m)
    except ValueError:
        out["gg_expected_value"] = m
    return out
