"""Does a night cost more as a chain's history grows? (issue 28, ``bench.scale``)

The same chain, the same restaurants, run at as-ofs with more or less history behind them: an
``--as-of`` run sees the replica as it was at that instant, so one replica seeded with the
longest history answers for every shorter one too (the tables are as large; only what a run may
read differs, which is the question). For each history ``h``: a fresh predictions database
(migrations) and model store, the daily schedule cold, then warm, at the as-of that leaves ``h``
days behind it. Fresh, so nothing another history's runs kept (registry, model store, any
aggregate store with its watermarks) makes these runs cheaper or dearer; ``bench.scale`` then
makes the database again for its own runs.

``warm_s_per_100_restaurants_by_days``: the warm run's wall seconds per 100 restaurants, keyed by
days of history; ``history_cost_ratio``: the longest history's over the 365-day one (the issue's
730 over 365), null when only one history was run.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bench.scale_common import ML_DB, log, point_at
from bench.scale_runs import run_schedule


def other_history_runs(replica_url: str, as_of_for: Callable[[int], datetime], histories: list[int]) -> dict:
    """Daily cold and warm runs for each ``h`` in ``histories`` (days of history), each at
    ``as_of_for(h)`` (a UTC instant with ``h`` seeded days before it) on a fresh predictions
    database and model store. Returns ``{str(h): {"as_of", "cold": run, "warm": run}}``
    (``bench.scale_runs.run_schedule``'s figures)."""
    import tempfile

    from synthetic.scratch import recreate_database
    from worker.migrations import upgrade

    out: dict = {}
    for h in sorted({int(h) for h in histories if int(h) > 0}):
        ml_url = recreate_database(ML_DB)
        upgrade(ml_url)
        point_at(replica_url, ml_url, tempfile.mkdtemp(prefix=f"bench-scale-models-{h}d-"))
        at = as_of_for(h)
        log(f"history of {h} days: as-of {at.isoformat()}")
        out[str(h)] = {"as_of": at.isoformat(), "cold": run_schedule("daily", at, f"cold, {h} days"),
                       "warm": run_schedule("daily", at, f"warm, {h} days")}
    return out


def by_days(others: dict, main_warm: dict, days: int, restaurants: int) -> dict:
    """The issue's keys from the other histories' runs and the bench's own warm daily run at ``days``:
    ``warm_s_per_100_restaurants_by_days``, ``history_cost_ratio`` (longest over 365, else over the
    shortest), ``read_s_per_100_restaurants_by_days`` (warm) and ``history_runs`` (the details)."""
    warm = {h: r["warm"] for h, r in others.items()}
    if main_warm:
        warm[str(days)] = main_warm
    per_100 = {h: round(r["wall_s"] * 100 / restaurants, 1) for h, r in sorted(warm.items(), key=lambda kv: int(kv[0]))}
    reads = {h: round(r.get("read", {}).get("s", 0.0) * 100 / restaurants, 1) for h, r in warm.items()}
    base = "365" if "365" in per_100 else (min(per_100, key=int) if per_100 else None)
    longest = max(per_100, key=int) if per_100 else None
    ratio = (round(per_100[longest] / per_100[base], 2)
             if base and longest and base != longest and per_100[base] else None)
    details = {h: {"as_of": r["as_of"],
                   **{k: {"wall_s": r[k]["wall_s"], "read": r[k]["read"], "status": r[k]["status"],
                          "units": {u: v["s"] for u, v in r[k]["units"].items()}} for k in ("cold", "warm")}}
               for h, r in others.items()}
    return {"warm_s_per_100_restaurants_by_days": per_100, "history_cost_ratio": ratio,
            "history_cost_ratio_of": f"{longest} over {base}" if ratio else None,
            "read_s_per_100_restaurants_by_days": reads, "history_runs": details}
