"""Which demand method the whole chain uses: one decision per prediction type, from the backtest
errors of every shard pooled, never a shard's own few origins.

Why: a shard of ten restaurants backtested over three to six origins ranks methods 1-3 % apart
with noise; on a real chain the pipeline picked five methods for ten shards on such leads, and
that choice cost accuracy. Pooling every shard's absolute errors and actuals gives the chain's
WAPE per candidate from thousands of store-days, and a candidate replaces the default only when
its pooled WAPE leads by a margin on enough series. Where the evidence is thin (one restaurant, a
first night, a handful of origins) the default stands, so nothing switches week to week on
differences the backtest cannot resolve.

The decision is read from the registry snapshot a run starts with (the previous reselection's
records of every shard), so every shard of a run, in any order or on any worker, applies the same
decision; tonight's own backtests feed the next reselection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# A candidate replaces the default only with a pooled WAPE at least this much (relative) lower...
CHAIN_MARGIN = 0.03
# ...over at least this many series of the chain and this many origins per shard.
MIN_SERIES = 20
MIN_FOLDS = 3


@dataclass
class ChainDecision:
    """The chain's method for a type, the pooled scores behind it and why."""

    name: str
    reason: str
    pooled: dict[str, dict] = field(default_factory=dict)  # candidate -> wape, series, shards
    shards: int = 0

    def as_metrics(self) -> dict:
        return {"name": self.name, "reason": self.reason, "shards": self.shards, "pooled": self.pooled}


def latest_backtests(registry: pd.DataFrame | None, prediction_type: str, exclude_run: str = "") -> list[dict]:
    """The newest fresh backtest of each shard of this type: the registry's ``metrics.backtest``
    of records selected in their own run (not refits under an earlier selection), one per shard
    (the version's last part), newest first. ``exclude_run``: a run id prefix to leave out."""
    if registry is None or registry.empty or "metrics" not in registry:
        return []
    rows = registry[registry["prediction_type"] == prediction_type]
    if exclude_run:
        rows = rows[~rows["version"].astype(str).str.contains(exclude_run)]
    if "trained_at" in rows:
        rows = rows.sort_values("trained_at", ascending=False)
    seen: set[str] = set()
    out = []
    for rec in rows.itertuples(index=False):
        metrics = rec.metrics if isinstance(rec.metrics, dict) else {}
        scores = metrics.get("backtest") or {}
        if metrics.get("selected_in") not in (None, rec.version) or not scores:
            continue
        shard = str(rec.version).rsplit(".", 1)[-1]
        if shard in seen:
            continue
        seen.add(shard)
        out.append(scores)
    return out


def pool(backtests: list[dict]) -> dict[str, dict]:
    """Candidate -> pooled WAPE (sum of absolute errors / sum of actuals over every shard that
    scored it), series and shards. Records without the sums (older versions) are left out."""
    acc: dict[str, dict] = {}
    for scores in backtests:
        for name, s in scores.items():
            if not isinstance(s, dict) or s.get("abs_err") is None or not s.get("y_sum"):
                continue
            a = acc.setdefault(name, {"abs_err": 0.0, "y_sum": 0.0, "series": 0, "shards": 0, "folds": []})
            a["abs_err"] += float(s["abs_err"])
            a["y_sum"] += float(s["y_sum"])
            a["series"] += int(s.get("series", 0))
            a["shards"] += 1
            a["folds"].append(int(s.get("folds", 0)))
    # folds: the fewest origins any shard scored the candidate on
    return {n: {"wape": round(a["abs_err"] / a["y_sum"], 5) if a["y_sum"] > 0 else None, "series": a["series"],
                "shards": a["shards"], "folds": min(a["folds"])} for n, a in acc.items()}

def decide(pooled: dict[str, dict], default: str, candidates: tuple[str, ...], margin: float = CHAIN_MARGIN,
           min_series: int = MIN_SERIES, min_folds: int = MIN_FOLDS) -> ChainDecision:
    """The default unless a candidate's pooled WAPE is ``margin`` below the default's over
    ``min_series`` series and ``min_folds`` origins per shard (candidates scored by fewer shards
    than the default are not compared: their pool is another set of restaurants)."""
    base = pooled.get(default)
    shards = int(base["shards"]) if base else 0
    if not base or base.get("wape") is None:
        return ChainDecision(default, "default: no pooled backtest of it yet (a first night)", pooled, shards)
    if base["series"] < min_series or base["folds"] < min_folds:
        return ChainDecision(default, f"default: evidence too thin to switch ({base['series']} series, "
                                      f"{base['folds']} origins; needs {min_series} and {min_folds})", pooled, shards)
    rivals = [(p["wape"], n) for n, p in pooled.items()
              if n != default and n in candidates and p.get("wape") is not None and p["shards"] >= base["shards"]]
    if not rivals:
        return ChainDecision(default, "default: no rival scored on the same shards", pooled, shards)
    w, best = min(rivals)
    gain = 1 - w / base["wape"] if base["wape"] > 0 else 0.0
    if np.isfinite(gain) and gain >= margin:
        return ChainDecision(best, f"{best}: pooled WAPE {w:.4f} is {gain:.1%} under the default {default}'s "
                                   f"{base['wape']:.4f} over {base['series']} series", pooled, shards)
    return ChainDecision(default, f"default: the best rival {best} ({w:.4f}) is {gain:.1%} from {default} "
                                  f"({base['wape']:.4f}) over {base['series']} series, under the {margin:.0%} margin",
                         pooled, shards)


def chain_decision(registry: pd.DataFrame | None, prediction_type: str, default: str, candidates: tuple[str, ...],
                   exclude_run: str = "") -> ChainDecision:
    """The chain's decision for a type from the registry snapshot a run started with."""
    return decide(pool(latest_backtests(registry, prediction_type, exclude_run)), default, candidates)
