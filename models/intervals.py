"""Prediction intervals calibrated on held-out residuals (split conformal, binned by forecast size).

Why not the models' own intervals: Prophet's assume Gaussian noise and LightGBM's point model has
none, and count noise grows with the count. Residuals from the rolling-origin backtest are scaled
by sqrt(yhat + 1) (Poisson-like spread) and their quantiles taken separately within bins of yhat,
so a quiet hour and a busy Saturday each get a spread measured on their own kind of period.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd


class ConformalIntervals:
    def __init__(self, level: float = 0.8, bins: int = 5, min_per_bin: int = 30):
        """
        Args:
            level: central coverage wanted, e.g. 0.8 for an 80 % interval.
            bins: how many yhat-quantile bins get their own residual quantiles.
            min_per_bin: fewer residuals than this collapse the bins into one.
        """
        self.level = level
        self.bins = bins
        self.min_per_bin = min_per_bin

    @staticmethod
    def _scale(yhat: np.ndarray) -> np.ndarray:
        return np.sqrt(np.maximum(yhat, 0.0) + 1.0)

    def fit(self, y: np.ndarray, yhat: np.ndarray) -> Self:
        """Learn residual quantiles from held-out actuals ``y`` and forecasts ``yhat`` (same unit)."""
        y = np.asarray(y, float)
        yhat = np.asarray(yhat, float)
        ok = np.isfinite(y) & np.isfinite(yhat)
        y, yhat = y[ok], np.maximum(yhat[ok], 0.0)
        if len(y) == 0:
            raise ValueError("no residuals to calibrate intervals on")
        n_bins = max(1, min(self.bins, len(y) // self.min_per_bin))
        edges = np.unique(np.quantile(yhat, np.linspace(0, 1, n_bins + 1)[1:-1])) if n_bins > 1 else np.array([])
        which = np.searchsorted(edges, yhat, side="right")
        r = (y - yhat) / self._scale(yhat)
        alpha = (1 - self.level) / 2
        lo, hi = [], []
        for b in range(len(edges) + 1):
            rb = r[which == b]
            if len(rb) == 0:
                rb = r
            lo.append(float(np.quantile(rb, alpha)))
            hi.append(float(np.quantile(rb, 1 - alpha)))
        self.edges_ = [float(e) for e in edges]
        self.lower_q_ = lo
        self.upper_q_ = hi
        return self

    def apply(self, yhat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds around ``yhat``, floored at zero and bracketing yhat."""
        yhat = np.maximum(np.asarray(yhat, float), 0.0)
        which = np.searchsorted(np.asarray(self.edges_), yhat, side="right")
        s = self._scale(yhat)
        lower = yhat + np.asarray(self.lower_q_)[which] * s
        upper = yhat + np.asarray(self.upper_q_)[which] * s
        return np.clip(np.minimum(lower, yhat), 0.0, None), np.maximum(upper, yhat)

    def to_dict(self) -> dict:
        return {
            "level": self.level, "bins": self.bins, "min_per_bin": self.min_per_bin,
            "edges": self.edges_, "lower_q": self.lower_q_, "upper_q": self.upper_q_,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Self:
        obj = cls(data["level"], data["bins"], data["min_per_bin"])
        obj.edges_, obj.lower_q_, obj.upper_q_ = data["edges"], data["lower_q"], data["upper_q"]
        return obj

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: Path) -> Self:
        return cls.from_dict(json.loads(path.read_text()))


def coverage(y, lower, upper) -> float:
    """Share of actuals inside [lower, upper]."""
    y, lower, upper = (np.asarray(a, float) for a in (y, lower, upper))
    return float(np.mean((y >= lower) & (y <= upper))) if len(y) else float("nan")


def wape(y, yhat) -> float:
    """Weighted absolute percentage error: sum |y - yhat| / sum y (NaN when nothing was sold)."""
    y, yhat = np.asarray(y, float), np.asarray(yhat, float)
    total = np.abs(y).sum()
    return float(np.abs(y - yhat).sum() / total) if total > 0 else float("nan")


def mae(y, yhat) -> float:
    y, yhat = np.asarray(y, float), np.asarray(yhat, float)
    return float(np.mean(np.abs(y - yhat))) if len(y) else float("nan")


def scores(frame: pd.DataFrame) -> dict:
    """WAPE, MAE (and coverage80 when lower/upper present) of a frame with y, yhat[, lower, upper]."""
    out = {"wape": wape(frame["y"], frame["yhat"]), "mae": mae(frame["y"], frame["yhat"]), "n": int(len(frame))}
    if {"lower", "upper"} <= set(frame.columns) and frame["lower"].notna().all():
        out["coverage80"] = coverage(frame["y"], frame["lower"], frame["upper"])
    return out
