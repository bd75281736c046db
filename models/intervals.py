"""Prediction intervals calibrated on held-out residuals (split conformal, per horizon and level).

Why not the models' own intervals: Prophet's assume Gaussian noise and LightGBM's point model has
none, and count noise grows with the count. Residuals from the rolling-origin backtest are scaled
by sqrt(yhat + 1) (Poisson-like spread) and calibrated separately per cell of (horizon bucket x
forecast-size bucket), so a quiet hour, a busy Saturday and a forecast four weeks out each get a
spread measured on their own kind of period; a thin cell borrows its horizon bucket's, then the
overall quantile.

Why symmetric by default (the quantile of |residual|): the backtest's few folds often share one
bias (a level drifting the same way for three weeks); asymmetric quantiles would bake that bias
into the interval's position and miss when it does not repeat. |residual| keeps the width the
bias cost without betting on its sign. Lower bounds are floored at zero.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike


class ConformalIntervals:
    def __init__(
        self,
        level: float = 0.8,
        bins: int = 5,
        min_per_bin: int = 30,
        horizon_bins: int = 4,
        symmetric: bool = True,
    ):
        """
        Args:
            level: central coverage wanted, e.g. 0.8 for an 80 % interval.
            bins: how many yhat-quantile (forecast size) buckets get their own quantiles.
            min_per_bin: fewest residuals a cell needs; thinner cells borrow a wider one.
            horizon_bins: how many horizon buckets (quantiles of days ahead) get their own.
            symmetric: quantile of |residual| (True) or separate lower/upper quantiles.
        """
        self.level = level
        self.bins = bins
        self.min_per_bin = min_per_bin
        self.horizon_bins = horizon_bins
        self.symmetric = symmetric

    @staticmethod
    def _scale(yhat: np.ndarray) -> np.ndarray:
        return np.sqrt(np.maximum(yhat, 0.0) + 1.0)

    @staticmethod
    def _edges(values: np.ndarray, n: int) -> np.ndarray:
        if n <= 1 or len(values) == 0:
            return np.array([])
        return np.unique(np.quantile(values, np.linspace(0, 1, n + 1)[1:-1]))

    def _quantiles(self, r: np.ndarray) -> tuple[float, float]:
        """Conformal quantiles with the finite-sample correction ceil((n + 1) q) / n."""
        n = len(r)
        if self.symmetric:
            q = float(np.quantile(np.abs(r), min(1.0, np.ceil((n + 1) * self.level) / n)))
            return -q, q
        alpha = (1 - self.level) / 2
        lo = float(np.quantile(r, max(0.0, np.floor((n + 1) * alpha) / n)))
        hi = float(np.quantile(r, min(1.0, np.ceil((n + 1) * (1 - alpha)) / n)))
        return lo, hi

    def fit(self, y: np.ndarray, yhat: np.ndarray, h_days: np.ndarray | None = None) -> Self:
        """Learn residual quantiles from held-out actuals and forecasts.

        Args:
            y, yhat: held-out actuals and forecasts (same unit: orders or units per period).
            h_days: days between each forecast's origin and its period (None: one horizon bucket).
        """
        y = np.asarray(y, float)
        yhat = np.asarray(yhat, float)
        h = np.zeros(len(y)) if h_days is None else np.asarray(h_days, float)
        ok = np.isfinite(y) & np.isfinite(yhat) & np.isfinite(h)
        y, yhat, h = y[ok], np.maximum(yhat[ok], 0.0), h[ok]
        if len(y) == 0:
            raise ValueError("no residuals to calibrate intervals on")
        r = (y - yhat) / self._scale(yhat)
        h_edges = self._edges(h, min(self.horizon_bins, len(y) // (self.min_per_bin * self.bins) or 1))
        h_which = np.searchsorted(h_edges, h, side="right")
        overall = self._quantiles(r)
        self.h_edges_ = [float(e) for e in h_edges]
        self.edges_, self.lower_q_, self.upper_q_ = [], [], []
        for hb in range(len(h_edges) + 1):
            in_h = h_which == hb
            base = self._quantiles(r[in_h]) if in_h.sum() >= self.min_per_bin else overall
            n_bins = max(1, min(self.bins, int(in_h.sum()) // self.min_per_bin))
            edges = self._edges(yhat[in_h], n_bins)
            which = np.searchsorted(edges, yhat[in_h], side="right")
            lo, hi = [], []
            for b in range(len(edges) + 1):
                rb = r[in_h][which == b]
                q = self._quantiles(rb) if len(rb) >= self.min_per_bin else base
                lo.append(q[0])
                hi.append(q[1])
            self.edges_.append([float(e) for e in edges])
            self.lower_q_.append(lo)
            self.upper_q_.append(hi)
        return self

    def apply(self, yhat: np.ndarray, h_days: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds around ``yhat`` (days ahead ``h_days``), floored at zero, bracketing yhat."""
        yhat = np.maximum(np.asarray(yhat, float), 0.0)
        h = np.zeros(len(yhat)) if h_days is None else np.nan_to_num(np.asarray(h_days, float))
        hb = np.searchsorted(np.asarray(self.h_edges_), h, side="right")
        lq, uq = np.empty(len(yhat)), np.empty(len(yhat))
        for b in np.unique(hb):
            m = hb == b
            which = np.searchsorted(np.asarray(self.edges_[b]), yhat[m], side="right")
            lq[m] = np.asarray(self.lower_q_[b])[which]
            uq[m] = np.asarray(self.upper_q_[b])[which]
        s = self._scale(yhat)
        lower, upper = yhat + lq * s, yhat + uq * s
        return np.clip(np.minimum(lower, yhat), 0.0, None), np.maximum(upper, yhat)

    def to_dict(self) -> dict:
        return {
            "level": self.level, "bins": self.bins, "min_per_bin": self.min_per_bin,
            "horizon_bins": self.horizon_bins, "symmetric": self.symmetric, "h_edges": self.h_edges_,
            "edges": self.edges_, "lower_q": self.lower_q_, "upper_q": self.upper_q_,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Self:
        """Also reads the first pass's format (one horizon bucket, flat lists)."""
        obj = cls(data["level"], data["bins"], data["min_per_bin"], data.get("horizon_bins", 1),
                  data.get("symmetric", False))
        if "h_edges" in data:
            obj.h_edges_, obj.edges_, obj.lower_q_, obj.upper_q_ = (
                data["h_edges"], data["edges"], data["lower_q"], data["upper_q"])
        else:
            obj.h_edges_, obj.edges_, obj.lower_q_, obj.upper_q_ = (
                [], [data["edges"]], [data["lower_q"]], [data["upper_q"]])
        return obj

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: Path) -> Self:
        return cls.from_dict(json.loads(path.read_text()))


def coverage(y: ArrayLike, lower: ArrayLike, upper: ArrayLike) -> float:
    """Share of actuals inside [lower, upper]."""
    y, lower, upper = (np.asarray(a, float) for a in (y, lower, upper))
    return float(np.mean((y >= lower) & (y <= upper))) if len(y) else float("nan")


def wape(y: ArrayLike, yhat: ArrayLike) -> float:
    """Weighted absolute percentage error: sum |y - yhat| / sum y (NaN when nothing was sold)."""
    y, yhat = np.asarray(y, float), np.asarray(yhat, float)
    total = np.abs(y).sum()
    return float(np.abs(y - yhat).sum() / total) if total > 0 else float("nan")


def mae(y: ArrayLike, yhat: ArrayLike) -> float:
    y, yhat = np.asarray(y, float), np.asarray(yhat, float)
    return float(np.mean(np.abs(y - yhat))) if len(y) else float("nan")


def scores(frame: pd.DataFrame) -> dict:
    """WAPE, MAE (and coverage80 when lower/upper present) of a frame with y, yhat[, lower, upper]."""
    out = {"wape": wape(frame["y"], frame["yhat"]), "mae": mae(frame["y"], frame["yhat"]), "n": int(len(frame))}
    if {"lower", "upper"} <= set(frame.columns) and frame["lower"].notna().all():
        out["coverage80"] = coverage(frame["y"], frame["lower"], frame["upper"])
    return out
