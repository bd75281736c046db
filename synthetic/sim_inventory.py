"""The inventory simulation: stock, batches, purchase orders and movements, day by day.

A mixin of ``generator.RestaurantSim``: it reads the restaurant's order lines and writes the
inventory tables into ``self.chunk`` and the stockout / lead-time ground truth.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque

import numpy as np

from synthetic import catalog
from synthetic.simcore import (
    S_INVENTORY,
    S_MALFORMED,
    _date,
    _rng,
)
from synthetic.tables import (
    US_PER_DAY,
    US_PER_H,
    US_PER_MIN,
    Column,
    obj_col,
    text_col,
)

# Suppliers' bad spells (a truck off the road, a holiday backlog, staff off sick): while one runs,
# every order placed with that supplier takes longer, so late orders come in clusters instead of
# independently. Per supplier, spells start as a Poisson process of SPELLS_PER_YEAR (about 4 a
# year), last SPELL_DAYS (5-15 whole days, uniform) and multiply the lead time's lognormal median
# by SPELL_FACTOR (1.5-2.0, uniform; its log-sd is unchanged). About 11 % of the days are in a
# spell, which lifts a supplier's mean lead time by about 8 % (2-16 % on the bench chains, as the
# spells fall) over the ground truth's true_lead_mean_days (the lognormal outside spells), and
# makes some stockouts (a manager's mean + 2 sd reorder point does not cover a x1.75 week of a
# reliable supplier: 13 -> 20 items run out in the quick bench's second half). Drawn from their
# own stream, per supplier and not per restaurant (a supplier's bad week hits the whole chain), so
# every other draw of the chain is the one it was without spells; only the lead times of orders
# placed in a spell change (and, through them, when stock arrives and what is ordered next).
S_SUPPLIER_SPELLS = 400
SPELLS_PER_YEAR = 4.0
SPELL_DAYS = (5, 15)
SPELL_FACTOR = (1.5, 2.0)


def supplier_spells(seed: int, n_suppliers: int, start_us: int, end_us: int) -> list[list[tuple[int, int, float]]]:
    """Per supplier index (``catalog.SUPPLIERS``), its bad spells as (start µs, end µs, factor).

    Spells may start up to SPELL_DAYS[1] days before the window so one can be running on its first
    day. The same for every restaurant of a chain (their own stream, indexed by supplier). They are
    not in the ground truth: this function rebuilds them from the chain's seed and window.
    """
    out = []
    for k in range(n_suppliers):
        rng = _rng(seed, S_SUPPLIER_SPELLS, k)
        t0 = start_us - SPELL_DAYS[1] * US_PER_DAY
        years = (end_us - t0) / (365.0 * US_PER_DAY)
        n = int(rng.poisson(SPELLS_PER_YEAR * years))
        starts = np.sort(rng.integers(t0, end_us, n)) // US_PER_DAY * US_PER_DAY
        days = rng.integers(SPELL_DAYS[0], SPELL_DAYS[1] + 1, n)
        factor = rng.uniform(SPELL_FACTOR[0], SPELL_FACTOR[1], n)
        out.append([(int(a), int(a + d * US_PER_DAY), float(f)) for a, d, f in zip(starts, days, factor)])
    return out


def spell_factor(spells: list[tuple[int, int, float]], at_us: int) -> float:
    """The lead-time factor of an order placed at ``at_us`` (1 outside a spell; overlaps: the larger)."""
    return max([f for a, e, f in spells if a <= at_us < e], default=1.0)


class InventorySim:
    def _inventory(self) -> None:
        """Daily stock simulation with a reorder-point policy; loops over days, not orders.

        Stock is kept per batch (first in, first out), so a perishable batch still holding stock on
        its expiry day is written off with a ``waste`` movement naming the batch, as real kitchens
        record it; kitchens also use a little more than the recipe says (``portioning``).
        """
        b, p = self.b, self.p
        rng = self.rng(S_INVENTORY)
        m = p.menu
        n_inv = len(p.inv_ids)
        n_menu = len(m.ids)
        nd = p.n_days
        ds = p.day_start_us
        used = (self.status[self.line_order] == 1) | (self.status[self.line_order] == 3)
        lday = self.local_day[self.line_order][used]
        units = np.bincount(lday * n_menu + self.item[used], weights=self.qty[used], minlength=nd * n_menu).reshape(nd, n_menu)
        each = np.array([catalog.INGREDIENTS[g][0] == "each" for g in p.inv_names])
        grain = np.where(each, 1000, 1)  # milli-units: 'each' items move in whole units
        # over-portioning and trimming: the kitchen uses recipe x portioning (0-12 % more) of what
        # it weighs; items counted 'each' (eggs, buns) are used whole, one per recipe unit
        portioning = np.where(each, 1.0, np.round(rng.uniform(1.0, 1.12, n_inv), 4))
        cons = np.rint(units @ p.recipe_matrix * portioning * 1000).astype(np.int64)
        cons = np.rint(cons / grain).astype(np.int64) * grain
        lo = p.open_idx
        usage = np.maximum(cons[lo:].mean(axis=0), grain)
        # fresh bakery goods (perishable 'dry' items) come from a local daily supplier, not the
        # wholesaler's weekly truck: nobody buys 3-day bread on a 4-day lead time
        sup_key = [
            "produce" if catalog.INGREDIENTS[g][2] == "dry" and catalog.INGREDIENTS[g][3] else catalog.INGREDIENTS[g][2]
            for g in p.inv_names
        ]
        sup_k = np.array([b.supplier_index[k] for k in sup_key])
        # the manager sets reorder points from the lead times actually experienced (mean + 2 sd),
        # with a peak-day factor; tails of unreliable suppliers still cause the odd stockout
        lead_mean = np.array([b.supplier_lead[k][1] for k in sup_key])
        lead_sd = np.array([b.supplier_lead[k][2] for k in sup_key])
        perish = np.array([catalog.INGREDIENTS[g][3] for g in p.inv_names])
        shelf = np.array([catalog.INGREDIENTS[g][4] or 0 for g in p.inv_names])
        cycle = np.where(perish & (shelf <= 7), 3, np.where(perish, 5, 10))
        cover = lead_mean + 2 * lead_sd + 1.5  # days the reorder point must cover
        spread = cons[lo:].std(axis=0)
        rop_days = 1.3 * cover + 2.5 * spread / usage * np.sqrt(cover)
        # a perishable's stock must be used before it expires: the manager orders it more often (a
        # shorter cycle: daily for the shortest-lived) and keeps no more than about shelf life - 1
        # days of mean use beyond the lead time's, plus a few portions for lumpy slow movers (some
        # expiry waste, some stockouts of fresh fish: the real trade-off)
        cycle = np.where(perish, np.minimum(cycle, np.maximum(shelf - 3, 1)), cycle)
        room = np.maximum(shelf - 1 - cycle, 1)
        capped = lead_mean + 1 + room + 1.5 * spread / usage * np.sqrt(lead_mean + 1)
        rop_days = np.where(perish, np.minimum(rop_days, capped), rop_days)
        look = np.ceil(lead_mean + 1).astype(np.int64)  # days until an order placed today is in use
        rop = np.ceil(usage * rop_days / grain).astype(np.int64) * grain
        par = rop + np.rint(usage * cycle / grain).astype(np.int64) * grain
        moq = np.maximum(np.rint(usage / grain).astype(np.int64), 1) * grain

        # planted stockouts: reordering an item is forgotten for longer than its stock lasts
        suppress = np.zeros((nd, n_inv), bool)
        planted = []
        busy = np.flatnonzero(usage >= np.median(usage))
        n_plant = 2 if nd - lo >= 300 else 1
        if nd - lo >= 60 and len(busy):
            for k in rng.choice(busy, size=min(n_plant, len(busy)), replace=False):
                d0 = lo + int((nd - lo) * rng.uniform(0.35, 0.7))
                length = int(math.ceil(par[k] / usage[k])) + int(rng.integers(3, 7))
                suppress[d0 : d0 + length, k] = True
                planted.append((int(k), d0, min(d0 + length, nd)))

        lead_mu = {}
        for key, (_, mean, sd) in b.supplier_lead.items():
            s2 = math.log(1 + (sd / mean) ** 2)
            lead_mu[key] = (math.log(mean) - s2 / 2, math.sqrt(s2))
        spells = supplier_spells(self.seed, len(catalog.SUPPLIERS), b.start_us, b.end_us)

        stock = np.zeros(n_inv, dtype=np.int64)
        transit = np.zeros(n_inv, dtype=np.int64)
        arrivals: dict[int, list[int]] = defaultdict(list)
        po_lines: dict[int, list[int]] = {}
        # purchase orders and their lines as growing lists (a handful per week)
        po_sup, po_ordered, po_received, po_expected = [], [], [], []
        pl_po, pl_item, pl_qty, pl_recv, pl_cost = [], [], [], [], []
        # batches and movements
        bt_item, bt_po, bt_qty, bt_cost, bt_at = [], [], [], [], []
        mv_item, mv_batch, mv_type, mv_qty, mv_at = [], [], [], [], []  # mv_type 0 receipt 1 consumption 2 waste 3 adjustment
        shortfall = np.zeros((nd, n_inv), dtype=np.int64)

        # per item, its batches still holding stock, oldest first: [batch index, remaining, expiry day]
        lots: list[deque] = [deque() for _ in range(n_inv)]
        never = nd + 1

        def receive(item_ix, qty, cost, at, po):
            for it, q, c in zip(item_ix, qty, cost):
                bt_item.append(it), bt_po.append(po), bt_qty.append(q), bt_cost.append(c), bt_at.append(at)
                mv_item.append(it), mv_batch.append(len(bt_item) - 1), mv_type.append(0), mv_qty.append(q), mv_at.append(at)
                e = int(np.searchsorted(ds, at + int(shelf[it]) * US_PER_DAY, side="right")) - 1 if perish[it] else never
                lots[it].append([len(bt_item) - 1, int(q), e])
                if len(lots[it]) > 1 and lots[it][-2][2] > e:  # orders can arrive out of order: first expiring first
                    lots[it] = deque(sorted(lots[it], key=lambda lot: (lot[2], bt_at[lot[0]])))

        def take(it, q):
            """Remove q from the item's oldest batches (first in, first out)."""
            lot = lots[it]
            while q > 0 and lot:
                t = min(lot[0][1], q)
                lot[0][1] -= t
                q -= t
                if lot[0][1] == 0:
                    lot.popleft()

        # opening stock on the first day (no purchase order)
        t0 = max(int(ds[lo]) + 8 * US_PER_H, b.start_us)
        stock += par
        receive(range(n_inv), par.tolist(), p.inv_unit_cost.tolist(), t0, -1)
        closed = p.closed
        perishable = np.flatnonzero(perish)
        waste_p = np.where(perish, 0.03, 0.003)
        for d in range(lo, nd):
            day_end = int(ds[d + 1])
            for po in arrivals.pop(d, ()):
                for li in po_lines[po]:
                    it, q = pl_item[li], pl_recv[li]
                    stock[it] += q
                    transit[it] -= pl_qty[li]
                    receive([it], [q], [pl_cost[li]], po_received[po], po)
            need = cons[d]
            got = np.minimum(need, stock)
            shortfall[d] = need - got
            stock -= got
            t_c = min(max(day_end - 30 * US_PER_MIN, b.start_us), b.end_us - 1)
            for it in np.flatnonzero(got):
                take(it, int(got[it]))
                mv_item.append(int(it)), mv_batch.append(-1), mv_type.append(1), mv_qty.append(-int(got[it])), mv_at.append(t_c)
            # batches expiring today are used first (above), what is left of them is written off
            t_x = min(day_end - 25 * US_PER_MIN, b.end_us - 1)
            for it in perishable:
                lot = lots[it]
                while lot and lot[0][2] <= d:
                    bi, rem, _ = lot.popleft()
                    if rem > 0:
                        stock[it] -= rem
                        at = min(max(t_x, bt_at[bi] + int(shelf[it]) * US_PER_DAY), day_end - 1, b.end_us - 1)
                        mv_item.append(int(it)), mv_batch.append(bi), mv_type.append(2), mv_qty.append(-rem), mv_at.append(at)
            r = rng.random(n_inv)
            w = np.where(r < waste_p, (np.rint(stock * rng.uniform(0.05, 0.2, n_inv) / grain) * grain).astype(np.int64), 0)
            t_w = min(day_end - 20 * US_PER_MIN, b.end_us - 1)
            for it in np.flatnonzero(w):
                stock[it] -= w[it]
                take(it, int(w[it]))
                mv_item.append(int(it)), mv_batch.append(-1), mv_type.append(2), mv_qty.append(-int(w[it])), mv_at.append(t_w)
            r = rng.random(n_inv)
            adj = np.where(r < 0.01, (np.rint(stock * rng.normal(-0.01, 0.01, n_inv) / grain) * grain).astype(np.int64), 0)
            adj = np.maximum(adj, -stock)
            t_a = min(day_end - 15 * US_PER_MIN, b.end_us - 1)
            for it in np.flatnonzero(adj):
                if adj[it] > 0:  # found stock goes back into the newest batch, up to what it received
                    room = bt_qty[lots[it][-1][0]] - lots[it][-1][1] if lots[it] else 0
                    adj[it] = min(int(adj[it]), int(room))
                    if adj[it] == 0:
                        continue
                    lots[it][-1][1] += int(adj[it])
                else:
                    take(it, -int(adj[it]))
                stock[it] += adj[it]
                mv_item.append(int(it)), mv_batch.append(-1), mv_type.append(3), mv_qty.append(int(adj[it])), mv_at.append(t_a)
            ordered_at = day_end - 10 * US_PER_MIN
            if closed[d] or ordered_at >= b.end_us:
                continue
            # the manager reads use-by dates: stock that will expire before it can be used does
            # not count towards the position
            usable = stock.copy()
            for it in perishable:
                left, lost = usage[it] * 0.0, 0
                for bi, rem, e in lots[it]:
                    if e > d + look[it]:
                        break
                    use = min(rem, max(int(usage[it] * (e - d)) - left, 0))
                    left += use
                    lost += rem - use
                usable[it] -= lost
            trig = (usable + transit < rop) & ~suppress[d]
            if not trig.any():
                continue
            for s in np.unique(sup_k[trig]):
                its = np.flatnonzero(trig & (sup_k == s))
                key = catalog.SUPPLIERS[s][0]
                mu, sg = lead_mu[key]
                lead = float(rng.lognormal(mu, sg)) * spell_factor(spells[s], ordered_at)
                recv_at = ordered_at + int(lead * US_PER_DAY)
                po = len(po_sup)
                po_sup.append(int(s)), po_ordered.append(ordered_at)
                po_expected.append(ordered_at + int(b.supplier_lead[key][0] * US_PER_DAY))
                q = np.maximum(par[its] - usable[its] - transit[its], moq[its])
                q = (q + grain[its] - 1) // grain[its] * grain[its]
                short = rng.random(len(its)) < 0.05
                recv = np.where(short, (np.rint(q * rng.uniform(0.85, 0.95, len(its)) / grain[its]) * grain[its]).astype(np.int64), q)
                cost = np.rint(p.inv_unit_cost[its] * rng.uniform(0.97, 1.05, len(its))).astype(np.int64)
                lines = []
                for it, qq, rr, cc in zip(its, q, recv, cost):
                    lines.append(len(pl_po))
                    pl_po.append(po), pl_item.append(int(it)), pl_qty.append(int(qq)), pl_recv.append(int(rr)), pl_cost.append(int(cc))
                po_lines[po] = lines
                transit[its] += q
                a = int(np.searchsorted(ds, recv_at, side="right")) - 1
                if a < nd and recv_at > int(ds[a + 1]) - 30 * US_PER_MIN:
                    a += 1  # after that day's consumption: it feeds the next day
                a = max(a, d + 1)
                if recv_at >= b.end_us or a >= nd:
                    po_received.append(None)  # still in transit at the end of history
                    continue
                po_received.append(recv_at)
                arrivals[a].append(po)
        remaining = np.zeros(len(bt_item), dtype=np.int64)
        for it in range(n_inv):
            for bi, rem, _ in lots[it]:
                remaining[bi] = rem
        assert (np.bincount(np.array(bt_item, dtype=np.int64), weights=remaining, minlength=n_inv) == stock).all()
        for k in range(n_inv):
            b.truth.inventory_items.append({"restaurant_id": p.rid, "inventory_item_id": int(p.inv_ids[k]),
                                            "item": p.inv_names[k], "portioning": float(portioning[k])})
        self._inventory_tables(
            rng, remaining, grain, par, rop, moq, perish, shelf, sup_k, planted, shortfall,
            (po_sup, po_ordered, po_received, po_expected), (pl_po, pl_item, pl_qty, pl_recv, pl_cost),
            (bt_item, bt_po, bt_qty, bt_cost, bt_at), (mv_item, mv_batch, mv_type, mv_qty, mv_at),
        )

    def _inventory_tables(self, rng, remaining, grain, par, rop, moq, perish, shelf, sup_k, planted, shortfall, pos, pls, bts, mvs):
        b, p = self.b, self.p
        n_inv = len(p.inv_ids)
        inv_ids = p.inv_ids
        self.chunk["inventory_inventoryitem"] = {
            "id": Column(inv_ids),
            "restaurant_id": Column(np.full(n_inv, p.rid, dtype=np.int64)),
            "name": obj_col(p.inv_names),
            "unit": obj_col([catalog.INGREDIENTS[g][0] for g in p.inv_names]),
            "unit_cost": Column(p.inv_unit_cost),
            "supplier_id": Column(b.supplier_ids[sup_k]),
            "par_level": Column(par),
            "reorder_point": Column(rop),
            "min_order_quantity": Column(moq),
            "is_perishable": Column(perish.astype(bool)),
            "shelf_life_days": Column(shelf.astype(np.int64), ~perish.astype(bool)),
        }
        po_sup, po_ordered, po_received, po_expected = pos
        n_po = len(po_sup)
        po_ids = b.ids.take("inventory_purchaseorder", n_po)
        recv_null = np.array([r is None for r in po_received], dtype=bool)
        recv_at = np.array([0 if r is None else r for r in po_received], dtype=np.int64)
        self.chunk["inventory_purchaseorder"] = {
            "id": Column(po_ids),
            "restaurant_id": Column(np.full(n_po, p.rid, dtype=np.int64)),
            "supplier_id": Column(b.supplier_ids[np.array(po_sup, dtype=np.int64)]),
            "status": text_col(np.where(recv_null, 0, 1), ["sent", "received"]),
            "ordered_at": Column(np.array(po_ordered, dtype=np.int64)),
            "expected_at": Column(np.array(po_expected, dtype=np.int64)),
            "received_at": Column(recv_at, recv_null),
        }
        pl_po, pl_item, pl_qty, pl_recv, pl_cost = (np.array(x, dtype=np.int64) for x in pls)
        n_pl = len(pl_po)
        line_null = recv_null[pl_po] if n_pl else np.zeros(0, bool)
        self.chunk["inventory_purchaseorderline"] = {
            "id": Column(b.ids.take("inventory_purchaseorderline", n_pl)),
            "purchase_order_id": Column(po_ids[pl_po] if n_pl else np.zeros(0, np.int64)),
            "inventory_item_id": Column(inv_ids[pl_item] if n_pl else np.zeros(0, np.int64)),
            "quantity_ordered": Column(pl_qty),
            "quantity_received": Column(np.where(line_null, 0, pl_recv), line_null),
            "unit_cost": Column(pl_cost),
        }
        bt_item, bt_po, bt_qty, bt_cost, bt_at = (np.array(x, dtype=np.int64) for x in bts)
        n_bt = len(bt_item)
        bt_ids = b.ids.take("inventory_batch", n_bt)
        exp_null = ~perish[bt_item]
        self.chunk["inventory_batch"] = {
            "id": Column(bt_ids),
            "inventory_item_id": Column(inv_ids[bt_item]),
            "purchase_order_id": Column(np.where(bt_po >= 0, po_ids[np.maximum(bt_po, 0)] if n_po else 0, 0), bt_po < 0),
            "quantity_received": Column(bt_qty),
            "quantity_remaining": Column(remaining),
            "unit_cost": Column(bt_cost),
            "received_at": Column(bt_at),
            "expires_at": Column(bt_at + shelf[bt_item] * US_PER_DAY, exp_null),
        }
        mv_item, mv_batch, mv_type, mv_qty, mv_at = (np.array(x, dtype=np.int64) for x in mvs)
        bad_ids: list[int] = []
        if b.cfg.malformed and p.index == 0:
            mrng = self.rng(S_MALFORMED + 200)
            k = 3
            mv_item = np.r_[mv_item, mrng.integers(0, n_inv, k)]
            mv_batch = np.r_[mv_batch, np.full(k, -1)]
            mv_type = np.r_[mv_type, np.full(k, 3)]
            mv_qty = np.r_[mv_qty, np.array([2_500_000_000, -9_999_999_000, 75_000_000_000])]
            mv_at = np.r_[mv_at, mrng.integers(b.start_us, b.end_us, k)]
            bad_pos = np.arange(len(mv_item) - k, len(mv_item))
        o = np.argsort(mv_at, kind="stable")
        n_mv = len(o)
        mv_ids = b.ids.take("inventory_stockmovement", n_mv)
        if b.cfg.malformed and p.index == 0:
            inv_o = np.empty(n_mv, dtype=np.int64)
            inv_o[o] = np.arange(n_mv)
            bad_ids = sorted(mv_ids[inv_o[bad_pos]].tolist())
            b.truth.malformed["inventory_stockmovement"] = 3
            b.truth.malformed_detail["inventory_stockmovement"] = {"absurd_quantity": bad_ids}
        self.chunk["inventory_stockmovement"] = {
            "id": Column(mv_ids),
            "inventory_item_id": Column(inv_ids[mv_item[o]]),
            "batch_id": Column(np.where(mv_batch[o] >= 0, bt_ids[np.maximum(mv_batch[o], 0)], 0), mv_batch[o] < 0),
            "movement_type": text_col(mv_type[o], ["receipt", "consumption", "waste", "adjustment"]),
            "quantity": Column(mv_qty[o]),
            "occurred_at": Column(mv_at[o]),
            "order_id": Column(np.zeros(n_mv, np.int64), np.ones(n_mv, bool)),
        }
        # stockout episodes: runs of days on which consumption exceeded stock on hand
        for k in range(n_inv):
            days = np.flatnonzero(shortfall[:, k] > 0)
            if not len(days):
                continue
            runs = np.split(days, np.flatnonzero(np.diff(days) > 1) + 1)
            for run in runs:
                d0, d1 = int(run[0]), int(run[-1])
                is_planted = any(pk == k and s <= d1 and d0 < e + 30 for pk, s, e in planted)
                b.truth.stockouts.append(
                    {
                        "restaurant_id": p.rid,
                        "inventory_item_id": int(inv_ids[k]),
                        "item": p.inv_names[k],
                        "start_date": _date(p.first_day + d0),
                        "end_date": _date(p.first_day + d1),
                        "days": len(run),
                        "shortfall": round(float(shortfall[run, k].sum()) / 1000, 3),
                        "planted": bool(is_planted),
                    }
                )
        for k, s, e in planted:
            b.truth.reorder_gaps.append(
                {"restaurant_id": p.rid, "inventory_item_id": int(inv_ids[k]), "item": p.inv_names[k],
                 "start_date": _date(p.first_day + s), "end_date": _date(p.first_day + e)}
            )
