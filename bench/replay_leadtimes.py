"""The replay's supplier lead times from a family the model does not assume.

The model prices a supplier's lead time as a lognormal (``models.lead_time``, with a recent-lateness
factor). A world drawn from that family would hold the model's assumption by construction, so the
replay draws its arrivals here instead, with numpy's generator and nothing from ``models/``:

* a **mixture** per order: on time (70 %: the supplier's usual lead, +/- 15 % uniform), late (25 %:
  plus an exponential delay with mean 1.5 x the supplier's sd, at least 0.75 day), very late (5 %:
  plus 2-4 days uniform);
* **weekday effects**: an order placed on a Saturday (local) waits a day longer (the weekend
  backlog), and nothing is delivered on a Sunday: a Sunday delivery comes on Monday at 07:00;
* **missed deliveries**: on each local day a supplier skips its round with probability 4 % (a
  van off the road): what was due that day comes at the same hour on its next round;
* the supplier's **bad spells** (``synthetic.sim_inventory.supplier_spells``, the generator's own
  truth, which the replica's history shows) multiply the lead as before.

The on-time lead is set so that the mixture's mean, weekday shifts and missed rounds included,
is close to the supplier's ground-truth mean lead (``true_lead_mean_days``, outside spells): the
history the model learns from still describes the world's mean, only not its shape (the bench
reports the world's realised mean per supplier beside the truth, ``lead_time_world``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

P_LATE, P_VERY_LATE = 0.25, 0.05
MISSED_ROUND = 0.04
SUNDAY, SATURDAY = 6, 5
DELIVERY_HOUR_AFTER_SUNDAY = 7.0


def _draw_lead(rng: np.random.Generator, usual: float, sd: float) -> float:
    """One lead time (days) from the mixture, before weekday effects and missed rounds."""
    u = rng.random()
    lead = usual * rng.uniform(0.85, 1.15)
    if u < P_VERY_LATE:
        lead += rng.uniform(2.0, 4.0)
    elif u < P_VERY_LATE + P_LATE:
        lead += rng.exponential(max(1.5 * sd, 0.75))
    return lead


def _missed(seed: int, supplier_id: int, day_ordinal: int) -> bool:
    """Whether the supplier skips its round on this local day (the same for every restaurant)."""
    return bool(np.random.default_rng([seed, 5151, supplier_id, day_ordinal]).random() < MISSED_ROUND)


def _deliver(t: pd.Timestamp, seed: int, supplier_id: int) -> pd.Timestamp:
    """The local arrival instant after weekday effects and missed rounds, from the instant ``t``
    (local, naive) the van would come."""
    for _ in range(14):
        if t.weekday() == SUNDAY:
            t = t.normalize() + pd.Timedelta(days=1, hours=DELIVERY_HOUR_AFTER_SUNDAY)
            continue
        if _missed(seed, supplier_id, t.toordinal()):
            t = t + pd.Timedelta(days=1)
            continue
        break
    return t


def usual_lead(mean: float, sd: float) -> float:
    """The on-time lead that puts the mixture's mean near ``mean`` (weekday shifts and missed
    rounds taken as their average: about 0.15 day for a Saturday order, 0.14 for a Sunday
    delivery, 0.04 for a missed round)."""
    extra = P_LATE * max(1.5 * sd, 0.75) + P_VERY_LATE * 3.0 + 0.15 + 0.14 + MISSED_ROUND
    return max(mean - extra, 0.35 * mean)


def mixture_arrivals(truth: dict, restaurants: pd.DataFrame, start: pd.Timestamp,
                     morning: Callable[[pd.Timestamp, int], pd.Timestamp],
                     cutoff_hour: float = 23.5) -> Callable[[int, int, int], int]:
    """``World.arrive`` drawn from the mixture (module docstring). One draw per (restaurant,
    supplier, day), seeded by them: every policy ordering that day gets the same lead time
    (common random numbers). ``arrive.leads`` keeps (supplier, lead days) of every draw."""
    from synthetic.sim_inventory import spell_factor, supplier_spells

    seed = int(truth["seed"])
    sups = truth["suppliers"]
    ws = pd.Timestamp(truth["window_start"])
    ws = ws.tz_convert("UTC") if ws.tzinfo else ws.tz_localize("UTC")
    spells = supplier_spells(seed, len(sups), int(ws.value // 1000), int(pd.Timestamp(truth["end"]).tz_localize("UTC").value // 1000))
    params = {int(s["supplier_id"]): (k, usual_lead(float(s["true_lead_mean_days"]), float(s["true_lead_sd_days"])),
                                      float(s["true_lead_sd_days"])) for k, s in enumerate(sups)}
    tz = restaurants.set_index("id")["timezone"].to_dict()
    cache: dict = {}
    leads: set = set()  # (restaurant, supplier, day) of every order the replays placed

    def draw(rid: int, sid: int, d: int) -> tuple[pd.Timestamp, float]:
        """(local arrival instant, lead days) of an order placed on the morning of day ``d``."""
        key = (rid, sid, d)
        if key not in cache:
            k, usual, sd = params[sid]
            at = morning(start, d)
            local = at.tz_convert(tz[rid]).tz_localize(None)
            rng = np.random.default_rng([seed, 6262, rid, sid, int(local.toordinal())])
            lead = _draw_lead(rng, usual, sd) * spell_factor(spells[k], int(at.value // 1000))
            if local.weekday() == SATURDAY:
                lead += 1.0
            came = _deliver(local + pd.Timedelta(days=lead), seed, sid)
            cache[key] = (came, (came - local) / pd.Timedelta(days=1))
        return cache[key]

    def arrive(rid: int, sid: int, d: int) -> int:
        if sid not in params:
            return d + 1
        came, lead = draw(rid, sid, d)
        leads.add((rid, sid, d))
        late = came.hour + came.minute / 60.0 >= cutoff_hour  # after the day's use is booked
        return max(int((came.normalize() - start).days) + int(late), d)

    arrive.leads = leads  # type: ignore[attr-defined]
    arrive.cache = cache  # type: ignore[attr-defined]
    arrive.draw = draw  # type: ignore[attr-defined]
    arrive.suppliers = set(params)  # type: ignore[attr-defined]
    return arrive


class WorldLeadHistory:
    """The suppliers' delivery history *of this world*, for the model to learn lead times from.

    The replica's purchase orders came from the generator's lognormal; judged in a world whose lead
    times have another shape and spread, a model fitted on them would be judged on a supplier it
    never saw. A live run learns from the deliveries of the suppliers it is judged on, so here
    every restaurant is taken to order from each of its suppliers every morning over the ``back``
    days before the replay and during it (the same draws as ``arrive``: the orders the replay's
    policies place are among them), and ``frames(day)`` gives, as of that morning, what
    ``features.suppliers.supplier_lead_times`` and ``supplier_recent_orders`` would read: orders
    placed in the last ``back`` days and received by then (n, mean, sd, p10, p50, p90), and the
    orders of the last ``recent_days`` with their lead so far (``open`` when not yet received); with
    ``every`` (supplier id -> k) each restaurant orders from that supplier only every k-th day, a
    history as sparse as a chain's own ordering (the fairness check of docs/inventory.md); with
    ``quantiles`` K > 0 also the received leads at the levels (k + 1/2) / K (``quantiles``, as the
    reader's ``percentile_cont``)."""

    def __init__(self, arrive, pairs: list[tuple[int, int]], days: int, back: int = 365, recent_days: int = 5,
                 every: dict[int, int] | None = None):
        rows = []
        every = every or {}
        for rid, sid in pairs:
            if sid not in arrive.suppliers:
                continue
            k = max(int(every.get(sid, 1)), 1)  # a sparser history: this restaurant orders every k days
            for d in range(-back, days):
                if (d + rid) % k == 0:
                    rows.append((sid, d, d + arrive.draw(rid, sid, d)[1]))
        self.orders = pd.DataFrame(rows, columns=["supplier_id", "placed", "arrived"])
        self.back, self.recent_days = back, recent_days

    def frames(self, day: int, quantiles: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
        o = self.orders
        got = o[(o["placed"] >= day - self.back) & (o["placed"] < day) & (o["arrived"] <= day)]
        lead = (got["arrived"] - got["placed"]).groupby(got["supplier_id"])
        hist = pd.DataFrame({
            "n": lead.size(), "mean": lead.mean(), "sd": lead.std().fillna(0.0),
            "p10": lead.quantile(0.1), "p50": lead.quantile(0.5), "p90": lead.quantile(0.9),
        })
        if quantiles > 0:
            levels = (np.arange(quantiles) + 0.5) / quantiles
            hist["quantiles"] = lead.apply(lambda x: list(np.quantile(x.to_numpy(float), levels)))
        hist = hist.reset_index()
        r = o[(o["placed"] >= day - self.recent_days) & (o["placed"] < day)]
        open_ = r["arrived"] > day
        recent = pd.DataFrame({"supplier_id": r["supplier_id"].to_numpy(),
                               "lead_days": np.where(open_, day - r["placed"], r["arrived"] - r["placed"]).astype(float),
                               "open": open_.to_numpy()})
        return hist, recent

    def weekday_medians(self, day: int, first_weekday: int) -> pd.DataFrame:
        """As of the morning of ``day``: per supplier and weekday of placement (Monday 0; day 0 is
        a ``first_weekday``) the received orders and their median lead, as
        ``features.suppliers._weekday_medians`` reads them before they are made wide."""
        o = self.orders
        got = o[(o["placed"] >= day - self.back) & (o["placed"] < day) & (o["arrived"] <= day)]
        lead = (got["arrived"] - got["placed"]).groupby([got["supplier_id"], (got["placed"] + first_weekday) % 7])
        out = pd.DataFrame({"n": lead.size(), "p50": lead.median()}).reset_index()
        return out.set_axis(["supplier_id", "weekday", "n", "p50"], axis=1)


def lead_time_world(arrive: Callable, truth: dict) -> dict:
    """Per supplier: the world's realised mean and sd lead (days, over the orders the replays drew)
    beside the ground truth's lognormal mean and sd."""
    leads = pd.DataFrame([(sid, arrive.cache[(rid, sid, d)][1]) for rid, sid, d in getattr(arrive, "leads", ())],
                         columns=["supplier_id", "lead"])
    out = {}
    for s in truth["suppliers"]:
        x = leads.loc[leads["supplier_id"] == int(s["supplier_id"]), "lead"]
        out[str(s["supplier_id"])] = {
            "world_mean": round(float(x.mean()), 3) if len(x) else None,
            "world_sd": round(float(x.std()), 3) if len(x) > 1 else None,
            "truth_mean": float(s["true_lead_mean_days"]), "truth_sd": float(s["true_lead_sd_days"]),
            "orders": int(len(x)),
        }
    return out

