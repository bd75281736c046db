"""The top of the run report: the three things an operator asks first.

Did the run succeed; how accurate were the last days' forecasts, chain-wide per type, next to
what a spreadsheet's 4-week same-weekday mean would have scored on the same days; and what needs
attention (alerts, failed webhook deliveries, skipped modules, failed shards).
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

import pandas as pd

from core.replica import ReplicaReader
from features.demand import daily_orders
from features.restaurants import load_restaurants

WEEKS = 4


def four_week_mean_wape(reader: ReplicaReader, restaurant_ids: list[int], start: pd.Timestamp, end: pd.Timestamp,
                        valid_until: datetime) -> float | None:
    """WAPE of the spreadsheet baseline on the restaurants' complete local days in [start, end).

    The baseline forecast of day d is the mean of the orders on d-7, d-14, d-21 and d-28 (a day
    without orders counts as 0, as in a spreadsheet). Scored, like the models' realised accuracy,
    on days with at least one order (closed days are not scored). None when nothing is scored.

    Args:
        start, end: UTC instants: the scoring window of the run's realised accuracy.
        valid_until: latest plausible timestamp (later rows are malformed and skipped).
    """
    found = load_restaurants(reader, restaurant_ids).restaurants
    if found.empty:
        return None
    zones = {int(r.id): str(r.timezone) for r in found.itertuples(index=False)}
    history = daily_orders(reader, zones, (start - pd.Timedelta(days=7 * WEEKS + 2)).to_pydatetime(),
                           end.to_pydatetime(), valid_until)
    if history.empty:
        return None
    wide = history.pivot_table(index="local_date", columns="restaurant_id", values="orders", aggfunc="sum")
    days = pd.date_range(wide.index.min(), wide.index.max(), freq="D")
    wide = wide.reindex(days).fillna(0.0)
    baseline = sum(wide.shift(7 * k) for k in range(1, WEEKS + 1)) / WEEKS
    first = min(pd.Timestamp(start).tz_convert(z).tz_localize(None).normalize() for z in zones.values())
    last = max(pd.Timestamp(end).tz_convert(z).tz_localize(None).normalize() for z in zones.values())
    scored = (wide.index > first) & (wide.index < last)  # complete local days only
    actual, forecast = wide[scored], baseline[scored]
    mask = (actual > 0) & forecast.notna()
    total = float(actual[mask].sum().sum())
    if total <= 0:
        return None
    return float((actual[mask] - forecast[mask]).abs().sum().sum()) / total


def _pct(x: Any) -> str:
    try:
        return f"{100 * float(x):.1f} %"
    except (TypeError, ValueError):
        return "–"


def glance_html(run: dict[str, Any], accuracy: pd.DataFrame, alerts: pd.DataFrame, failed_deliveries: int,
                baseline_wape: float | None) -> str:
    """The "at a glance" section (HTML, escaped)."""
    status = str(run.get("status"))
    written = run.get("rows_written") or {}
    verdict = {"succeeded": "succeeded", "partial": "partly succeeded", "failed": "failed"}.get(status, status)
    parts = ["<section id='glance'><h2>At a glance</h2>",
             f"<p class='glance-status status-{html.escape(status)}'>The run <b>{html.escape(verdict)}</b>: "
             f"{sum(int(n) for n in written.values()):,} rows in {len(written)} prediction type(s) for "
             f"{len(run.get('restaurant_ids') or [])} restaurant(s).</p>"]
    window = run.get("accuracy") or {}
    chain = accuracy[accuracy["restaurant_id"].isna() & (accuracy["horizon"] == "all")] if len(accuracy) else accuracy
    if len(chain):
        parts.append(f"<p>Forecasts of the days {html.escape(str(window.get('window_start', ''))[:10])} to "
                     f"{html.escape(str(window.get('window_end', ''))[:10])}, against what happened "
                     "(lower WAPE is better; 80 % intervals should cover about 80 %):</p>")
        rows = []
        for r in chain.itertuples(index=False):
            base = _pct(baseline_wape) if r.prediction_type == "demand_daily" else "–"
            rows.append(f"<tr><td>{html.escape(str(r.prediction_type))}</td><td>{_pct(r.wape)}</td><td>{base}</td>"
                        f"<td>{_pct(r.coverage80)}</td><td>{int(r.n):,}</td></tr>")
        parts.append("<table id='glance-accuracy'><tr><th>type</th><th>WAPE</th><th>4-week same-weekday mean</th>"
                     "<th>coverage 80 %</th><th>scored</th></tr>" + "".join(rows) + "</table>")
    else:
        parts.append("<p class='empty'>No earlier forecasts could be scored yet (a first run, or their days "
                     "have not ended).</p>")
    attention = []
    if len(alerts):
        attention.append(f"{len(alerts)} drift or degradation alert(s) (see Alerts)")
    if failed_deliveries:
        attention.append(f"{failed_deliveries} completion webhook(s) failed or exhausted "
                         "(python -m worker webhooks list --failed)")
    for t, reason in sorted((run.get("modules_skipped") or {}).items()):
        attention.append(f"{t} skipped: {reason}")
    for f in run.get("failed") or []:
        attention.append(f"shard {f.get('shard')} failed")
    parts.append("<h3>Needs attention</h3>")
    parts.append("<ul id='glance-attention'>" + "".join(f"<li>{html.escape(str(a))}</li>" for a in attention) + "</ul>"
                 if attention else "<p class='empty' id='glance-attention'>nothing</p>")
    parts.append("</section>")
    return "".join(parts)
