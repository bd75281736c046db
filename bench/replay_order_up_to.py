"""The textbook order-up-to policy (periodic review, R = 1 day), with its safety stock from the
usage forecast's error, as a replay policy.

Each morning, per item, with the same usage forecast and supplier lead time the model sees
(``ModelInputs``): d = mean forecast use per day over the next max(ceil(L + R), 7) days, sigma =
the forecast's daily sd there (the backtest residual sd of the chosen usage model, an
out-of-sample error, ``models.usage``), and

    S = d (L + R) + z sigma sqrt(L + R),    z = Phi^-1(service level)

(Silver, Pyke & Peterson, *Inventory and Production Management*, periodic review order-up-to;
no lead-time variance term and no order quantity of its own: it orders whatever brings the
position back to S every day). For a fair field it keeps the model's three rules: the position
leaves out what expires within L + R days at d, a perishable's S is at most
max(S_plain, d (L + R + shelf life - 1)) as the model's target, and the minimum order quantity.
Written here rather than taken from ``stockpyl``: the formula is two lines, and the policy must
read the replay's state (expiring batches, orders in transit) that a library does not know.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

from bench.replay_model import ModelInputs
from bench.replay_policies import order_quantity, usable_position
from bench.replay_world import State, World


class OrderUpTo:
    """``S = d (L + R) + z sigma sqrt(L + R)`` every morning (module docstring)."""

    def __init__(self, inputs: ModelInputs, service_level: float, moq: np.ndarray | None = None,
                 review_days: float = 1.0):
        self.inputs, self.z, self.moq, self.review = inputs, float(norm.ppf(service_level)), moq, review_days

    def targets(self, world: World, day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per item: order-up-to level S, mean daily use d, cover L + R."""
        from models.inventory import supplier_lead

        use, lead = self.inputs.usage[day], self.inputs.lead[day]
        S, rate, cover = np.zeros(world.n), np.zeros(world.n), np.ones(world.n)
        for i in range(world.n):
            got = use.get(int(world.item_id[i]))
            if got is None:
                continue
            mean, sd = got
            L, _ = supplier_lead(lead, world.supplier_id[i] if world.supplier_id[i] >= 0 else None)
            cov = max(L + self.review, 1.0)
            window = slice(1, 1 + max(int(math.ceil(cov)), 7))
            d = float(np.mean(mean[window])) if len(mean[window]) else 0.0
            sigma = float(np.sqrt(np.mean(np.asarray(sd[window]) ** 2))) if len(sd[window]) else 0.0
            s = d * cov + self.z * sigma * math.sqrt(cov)
            if world.shelf[i] > 0 and d > 0:
                s = min(s, max(d * cov + d, d * (cov + world.shelf[i] - 1)))
            S[i], rate[i], cover[i] = s, d, cov
        return S, rate, cover

    def __call__(self, world: World, state: State) -> np.ndarray:
        S, rate, cover = self.targets(world, state.day)
        position = usable_position(world, state, rate, cover)
        q = np.where(S > 0, S - position, 0.0)
        return order_quantity(world, q, self.moq)
