"""Selection that generalises: a complex candidate is chosen over the four-week mean only when it
beats it by the margin pooled over every origin and on most origins (models.backtest.select)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.backtest import select
from models.intervals import wape


def _res(errors_by_fold: list[float], n: int = 50) -> pd.DataFrame:
    """Residual frames with y = 10 and |error| per fold as given (WAPE of a fold = error / 10)."""
    parts = []
    for k, e in enumerate(errors_by_fold):
        sign = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
        parts.append(pd.DataFrame({"fold": k, "y": 10.0, "yhat": 10.0 + sign * e}))
    return pd.concat(parts, ignore_index=True)


def _scores(res: dict[str, pd.DataFrame]) -> dict[str, dict]:
    return {n: {"wape": wape(r["y"], r["yhat"])} for n, r in res.items()}


def test_a_complex_candidate_needs_the_margin_pooled_and_most_origins():
    res = {"seasonal_naive": _res([3.0, 3.0, 3.0]), "seasonal_average": _res([2.0, 2.0, 2.0]),
           "lightgbm": _res([1.5, 1.6, 1.7])}
    assert select(_scores(res), res) == ("lightgbm", None)  # 20 % better on every origin

    res["lightgbm"] = _res([1.96, 1.96, 1.96])  # 2 % better: under the 3 % margin
    chosen, note = select(_scores(res), res)
    assert chosen == "seasonal_average" and "margin" in note

    res["lightgbm"] = _res([0.8, 2.2, 2.2])  # 13 % better pooled, from one lucky origin only
    chosen, note = select(_scores(res), res)
    assert chosen == "seasonal_average" and "1 of them" in note


def test_the_best_simple_candidate_is_the_default_and_without_simples_the_lowest_wins():
    res = {"seasonal_naive": _res([1.0, 1.0, 1.0]), "seasonal_average": _res([2.0, 2.0, 2.0]),
           "lightgbm": _res([1.9, 1.9, 1.9])}
    assert select(_scores(res), res)[0] == "seasonal_naive"
    res = {"lightgbm": _res([1.9, 1.9, 1.9]), "prophet": _res([1.8, 1.8, 1.8])}
    assert select(_scores(res), res) == ("prophet", None)
