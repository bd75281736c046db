"""The LightGBM parameters every booster of the project trains with, in one place.

Every booster (demand's ``models.lgbm``, churn, LTV, prep time) is deterministic and quiet, and
takes its objective, capacity (learning rate, leaves, rows per leaf), threads and seed from the
model's own attributes (set by ``keep_capacity``); what differs per model (row and column sampling, L2, monotone
constraints, Tweedie power, bins) is added on top by the model.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol


class Capacity(Protocol):
    """The attributes of a model that set its booster's capacity, threads and seed."""

    learning_rate: float
    num_leaves: int
    min_data_in_leaf: int
    num_threads: int
    seed: int


def keep_capacity(model: object, num_boost_round: int, learning_rate: float, num_leaves: int,
                  min_data_in_leaf: int, num_threads: int, seed: int) -> None:
    """Set on ``model`` the attributes its booster is trained with (``Capacity``, and the rounds)."""
    model.num_boost_round = num_boost_round  # type: ignore[attr-defined]
    model.learning_rate = learning_rate  # type: ignore[attr-defined]
    model.num_leaves = num_leaves  # type: ignore[attr-defined]
    model.min_data_in_leaf = min_data_in_leaf  # type: ignore[attr-defined]
    model.num_threads = num_threads  # type: ignore[attr-defined]
    model.seed = seed  # type: ignore[attr-defined]


# Row and column sampling with a little L2: the customers' boosters (demand's bag 0.8 of rows).
SAMPLED: dict[str, Any] = {"feature_fraction": 0.9, "bagging_fraction": 0.9, "bagging_freq": 1, "lambda_l2": 1.0}


def booster_params(model: Capacity, objective: str, **extra: Any) -> dict[str, Any]:
    """LightGBM's ``params`` for ``model``: its objective, capacity, threads and seed,
    deterministic and without log output; ``extra`` added (and overriding) on top."""
    return {
        "objective": objective,
        "learning_rate": model.learning_rate,
        "num_leaves": model.num_leaves,
        "min_data_in_leaf": model.min_data_in_leaf,
        "num_threads": model.num_threads,
        "seed": model.seed,
        "deterministic": True,
        "verbose": -1,
        **extra,
    }


def monotone_up(features: Iterable[str], up: Iterable[str]) -> dict[str, Any]:
    """Constraints that keep the prediction non-decreasing in each feature of ``up``."""
    rising = set(up)
    return {"monotone_constraints": [1 if f in rising else 0 for f in features],
            "monotone_constraints_method": "advanced"}


__all__ = ["Capacity", "SAMPLED", "booster_params", "keep_capacity", "monotone_up"]
