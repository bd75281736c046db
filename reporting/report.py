"""The run report: one self-contained HTML page an admin opens from a link.

Why one file with the images inside (PNG as base64 data URIs): it is mailed, attached to a
ticket, or opened from the artifact store without a server, and it must look the same in a year.
Sections: run summary (what ran, rows per type, time per step, skipped modules, malformed rows,
failures, messages), alerts, accuracy tables, and three plots where a person would rather look than
read: a restaurant's forecast with its interval against actuals, realised accuracy over time, and
interval coverage by horizon.

No PII: the page shows ids and numbers only (no restaurant, item or customer names are read),
and every free text (messages, errors) goes through the webhook's scrubber first.

The caller hands in the predictions engine, a reader on the replica, the model store's path and
the run record's writer (the report's path is recorded on the run); the SQL is in
``reporting.records``.
"""

from __future__ import annotations

import base64
import html
import io
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on workers; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sqlalchemy import Engine  # noqa: E402

from core.replica import ReplicaReader  # noqa: E402
from features.demand import daily_orders  # noqa: E402
from features.restaurants import load_restaurants  # noqa: E402
from models.accuracy import BUCKET_ORDER  # noqa: E402
from reporting import records  # noqa: E402
from reporting.records import RunRecordWriter  # noqa: E402
from reporting.glance import four_week_mean_wape, glance_html  # noqa: E402
from webhooks.payload import scrub_reason  # noqa: E402

SECTIONS = ("glance", "summary", "steps", "skipped", "alerts", "accuracy", "plots")
PLOT_DAYS = 28
MAX_MESSAGES = 60


class ReportError(LookupError):
    """The report cannot be built (no such run)."""


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _esc(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _fmt(x: Any, digits: int = 3) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "–"
    if v != v:  # NaN
        return "–"
    return f"{v:.{digits}f}"


def _table(headers: list[str], rows: list[list[Any]], empty: str = "none") -> str:
    if not rows:
        return f"<p class='empty'>{_esc(empty)}</p>"
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# ------------------------------------------------------------------------------------ plots
def forecast_plot(actual: pd.DataFrame, past: pd.DataFrame, future: pd.DataFrame, restaurant_id: int | None) -> str:
    """Daily orders of one restaurant: actuals, the day-1 forecasts earlier runs made for those
    days (with their 80 % interval), and this run's forecast ahead (with its interval).

    Args:
        actual: local_date, orders. past / future: local_date, value, lower, upper.
    """
    fig, ax = plt.subplots(figsize=(9, 3.6))
    if len(future):
        ax.fill_between(future["local_date"], future["lower"], future["upper"], color="tab:blue", alpha=0.2,
                        label="this run: 80 % interval")
        ax.plot(future["local_date"], future["value"], color="tab:blue", label="this run: forecast")
    if len(past):
        ax.fill_between(past["local_date"], past["lower"], past["upper"], color="tab:orange", alpha=0.2,
                        label="earlier day-1 forecasts: 80 % interval")
        ax.plot(past["local_date"], past["value"], color="tab:orange", ls="--", label="earlier day-1 forecasts")
    if len(actual):
        ax.plot(actual["local_date"], actual["orders"], color="black", marker="o", ms=3, lw=1, label="actual orders")
    if not (len(actual) or len(past) or len(future)):
        ax.text(0.5, 0.5, "no daily demand data for this run", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(f"demand_daily, restaurant {restaurant_id}" if restaurant_id is not None else "demand_daily")
    ax.set_ylabel("orders per local day")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left")
    fig.autofmt_xdate()
    return _png(fig)


def accuracy_over_time_plot(over_time: pd.DataFrame) -> str:
    """Chain-wide realised WAPE per type at each scoring run, with its backtest figure dashed."""
    fig, ax = plt.subplots(figsize=(9, 3.6))
    if over_time.empty:
        ax.text(0.5, 0.5, "no realised accuracy yet: predictions are scored once their targets have passed",
                ha="center", va="center", transform=ax.transAxes, fontsize=9)
    for i, (ptype, g) in enumerate(over_time.groupby("prediction_type", sort=True)):
        color = f"C{i}"
        when = pd.to_datetime(g["as_of"], utc=True)
        ax.plot(when, g["wape"].astype(float), marker="o", color=color, label=f"{ptype} realised")
        if g["backtest_wape"].notna().any():
            ax.plot(when, g["backtest_wape"].astype(float), ls="--", color=color, alpha=0.7, label=f"{ptype} backtest")
    ax.set_title("realised accuracy over time (chain-wide WAPE, lower is better)")
    ax.set_ylabel("WAPE")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.autofmt_xdate()
    return _png(fig)


def coverage_plot(accuracy: pd.DataFrame) -> str:
    """Realised 80 % interval coverage per type and horizon bucket (chain-wide); 0.8 is the goal."""
    fig, ax = plt.subplots(figsize=(9, 3.6))
    rows = accuracy[accuracy["restaurant_id"].isna() & accuracy["coverage80"].notna()] if len(accuracy) else accuracy
    if rows is None or rows.empty:
        ax.text(0.5, 0.5, "no interval coverage yet", ha="center", va="center", transform=ax.transAxes)
    else:
        types = sorted(rows["prediction_type"].unique())
        buckets = [b for b in BUCKET_ORDER if b in set(rows["horizon"])]
        width = 0.8 / max(1, len(types))
        for i, ptype in enumerate(types):
            g = rows[rows["prediction_type"] == ptype].set_index("horizon")["coverage80"].astype(float)
            xs = [j + i * width for j in range(len(buckets))]
            ax.bar(xs, [g.get(b, float("nan")) for b in buckets], width=width, label=ptype, color=f"C{i}")
        ax.set_xticks([j + width * (len(types) - 1) / 2 for j in range(len(buckets))], buckets)
        ax.legend(fontsize=7)
    ax.axhline(0.8, color="black", ls="--", lw=1)
    ax.set_ylim(0, 1.05)
    ax.set_title("80 % interval coverage by horizon (dashed: the promised 0.8)")
    ax.set_ylabel("share of actuals inside")
    ax.grid(alpha=0.3, axis="y")
    return _png(fig)


# ------------------------------------------------------------------------------------ data
def _forecast_data(engine: Engine, reader: ReplicaReader, run: dict[str, Any], accuracy: pd.DataFrame
                   ) -> tuple[int | None, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The restaurant to plot (the worst-scored one, else the first) and its three series."""
    rids = [int(i) for i in run["restaurant_ids"] or []]
    if not rids:
        return None, pd.DataFrame(), pd.DataFrame(), pd.DataFrame()
    rid = rids[0]
    if len(accuracy):
        per = accuracy[(accuracy["prediction_type"] == "demand_daily") & accuracy["restaurant_id"].notna()
                       & (accuracy["horizon"] == "all") & accuracy["wape"].notna()]
        if len(per):
            rid = int(per.sort_values("wape", ascending=False).iloc[0]["restaurant_id"])
    found = load_restaurants(reader, [rid])
    tz = str(found.restaurants["timezone"].iloc[0]) if len(found.restaurants) else "UTC"
    as_of = pd.Timestamp(run["as_of"]).tz_convert("UTC")
    start = as_of - pd.Timedelta(days=PLOT_DAYS)
    valid_until = datetime.now(timezone.utc)
    actual = daily_orders(reader, {rid: tz}, start.to_pydatetime(), as_of.to_pydatetime(), valid_until)
    # the first day is partial (the window starts mid-day), and so is the day of the as-of: draw
    # complete days only, or the line would end in a cliff
    today = as_of.tz_convert(tz).tz_localize(None).normalize()
    actual = actual[["local_date", "orders"]].iloc[1:] if len(actual) else actual
    actual = actual[actual["local_date"] < today] if len(actual) else actual
    hist = records.demand_daily_history(engine, rid, start.to_pydatetime(), as_of.to_pydatetime())
    past = future = pd.DataFrame(columns=["local_date", "value", "lower", "upper"])
    if len(hist):
        hist["target_start"] = pd.to_datetime(hist["target_start"], utc=True)
        hist["as_of"] = pd.to_datetime(hist["as_of"], utc=True)
        hist["local_date"] = hist["target_start"].dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()
        future = hist[hist["run_id"] == str(run["id"])].sort_values("local_date")
        earlier = hist[(hist["run_id"] != str(run["id"])) & (hist["target_start"] < as_of)]
        # day 1 as in models.accuracy: the local day that contained the prediction's as_of
        past = earlier[earlier["target_start"] <= earlier["as_of"]]
        past = past.sort_values("as_of").groupby("local_date", as_index=False).last()
    return rid, actual, past, future


# ------------------------------------------------------------------------------------ page
CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.4em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em} td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
.status-succeeded{color:#1a7f37}.status-partial{color:#b35900}.status-failed{color:#c00}
.alert{color:#c00} .empty{color:#777;font-style:italic} img{max-width:100%;display:block;margin:.6em 0}
.glance-status{font-size:1.15em}
"""


def build_report(run_id: str, *, engine: Engine, reader: ReplicaReader) -> str:
    """The report of one run as an HTML string. Raises ``ReportError`` for an unknown run.

    Args:
        engine: the predictions database (run record, shards, accuracy, alerts, history).
        reader: the replica, read-only (the plotted restaurant's actual orders).
    """
    try:
        run_id = str(uuid.UUID(str(run_id)))
    except ValueError:
        raise ReportError(f"run id must be a UUID, got {run_id!r}") from None
    run = records.get_run(engine, run_id)
    if run is None:
        raise ReportError(f"no run {run_id}")
    shards = records.shards_frame(engine, str(run_id))
    accuracy = records.accuracy_frame(engine, str(run_id))
    alerts = records.alerts_frame(engine, str(run_id))
    over_time = records.accuracy_over_time(engine, run["as_of"])
    rid, actual, past, future = _forecast_data(engine, reader, run, accuracy)

    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Run {_esc(run['id'])}</title>"
             f"<style>{CSS}</style></head><body>"]
    parts.append(f"<h1>Prediction run {_esc(run['id'])}</h1>")
    parts.append(glance_html(run, accuracy, alerts, records.failed_deliveries(engine), _baseline(reader, run, accuracy)))
    parts.append(_summary_section(run))
    parts.append(_steps_section(run, shards))
    parts.append(_skipped_section(run))
    parts.append(_alerts_section(alerts))
    parts.append(_accuracy_section(run, accuracy))
    parts.append("<section id='plots'><h2>Plots</h2>")
    parts.append(_img(forecast_plot(actual, past, future, rid), "forecast against actuals"))
    parts.append(_img(accuracy_over_time_plot(over_time), "realised accuracy over time"))
    parts.append(_img(coverage_plot(accuracy), "interval coverage"))
    parts.append("</section>")
    parts.append(f"<p class='empty'>generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC</p></body></html>")
    return "".join(parts)


def _baseline(reader: ReplicaReader, run: dict[str, Any], accuracy: pd.DataFrame) -> float | None:
    """The glance's context: the four-week mean WAPE before the window, None when not known."""
    window = run.get("accuracy") or {}
    if not (window.get("window_start") and len(accuracy)):
        return None
    try:
        return four_week_mean_wape(reader, [int(i) for i in run.get("restaurant_ids") or []],
                                   pd.Timestamp(window["window_start"]), pd.Timestamp(window["window_end"]),
                                   datetime.now(timezone.utc))
    except Exception:  # the baseline is context; the report stands without it
        return None


def _summary_section(run: dict[str, Any]) -> str:
    duration = (run["finished_at"] - run["started_at"]).total_seconds() if run.get("finished_at") else None
    written = run.get("rows_written") or {}
    parts = ["<section id='summary'><h2>Run summary</h2>"]
    parts.append(_table(["", ""], [
        ["schedule", _esc(run["schedule"])],
        ["status", f"<span class='status-{_esc(run['status'])}'>{_esc(run['status'])}</span>"],
        ["as of", _esc(run["as_of"])],
        ["trigger", _esc(run.get("trigger"))],
        ["started / finished", f"{_esc(run['started_at'])} / {_esc(run.get('finished_at'))}"],
        ["duration", f"{_fmt(duration, 1)} s"],
        ["restaurants", _esc(len(run.get("restaurant_ids") or []))],
        ["prediction types scheduled", _esc(", ".join(run.get("prediction_types") or []))],
        ["retrain next run", _esc(", ".join(run.get("retrain") or []) or "none")],
    ]))
    parts.append("<h3>Rows written per type</h3>")
    parts.append(_table(["prediction type", "rows"], [[_esc(t), _esc(n)] for t, n in sorted(written.items())],
                        "no rows written"))
    if run.get("failed"):
        parts.append("<h3>Failures</h3>")
        parts.append(_table(["shard", "restaurants", "error"], [
            [_esc(f.get("shard")), _esc(f.get("restaurant_ids")), _esc(scrub_reason(f.get("error")))]
            for f in run["failed"]]))
    parts.append("</section>")
    return "".join(parts)


def _steps_section(run: dict[str, Any], shards: pd.DataFrame) -> str:
    step_rows = []
    for s in shards.itertuples(index=False):
        took = (s.finished_at - s.started_at).total_seconds() if s.finished_at is not None and s.started_at is not None else None
        units = ", ".join(f"{_esc(k)} {_fmt(v, 1)} s" for k, v in sorted((s.step_seconds or {}).items()))
        step_rows.append([f"shard {s.shard_no}", _esc(s.status), _esc(s.attempts), f"{_fmt(took, 1)} s", units])
    for k, v in sorted((run.get("step_seconds") or {}).items()):
        step_rows.append([_esc(k), "", "", f"{_fmt(v, 1)} s", ""])
    return ("<section id='steps'><h2>Time per step</h2>"
            + _table(["step", "status", "attempts", "seconds", "per unit"], step_rows, "no steps recorded")
            + "</section>")


def _skipped_section(run: dict[str, Any]) -> str:
    parts = ["<section id='skipped'><h2>Skipped modules and malformed rows</h2>"]
    parts.append("<h3>Prediction types skipped (an RMS module missing, or nothing usable in it)</h3>")
    parts.append(_table(["prediction type", "reason"], [
        [_esc(t), _esc(scrub_reason(r))] for t, r in sorted((run.get("modules_skipped") or {}).items())],
        "no module skipped"))
    parts.append("<h3>Malformed source rows (counted and skipped)</h3>")
    parts.append(_table(["source table", "rows skipped"], [
        [_esc(t), _esc(n)] for t, n in sorted((run.get("rows_skipped") or {}).items())], "no malformed rows"))
    messages = list(run.get("messages") or [])
    parts.append(f"<h3>Messages ({len(messages)})</h3>")
    if messages:
        shown = "".join(f"<li>{_esc(scrub_reason(m))}</li>" for m in messages[:MAX_MESSAGES])
        more = f"<li>… {len(messages) - MAX_MESSAGES} more in ml_run.messages</li>" if len(messages) > MAX_MESSAGES else ""
        parts.append(f"<ul>{shown}{more}</ul>")
    else:
        parts.append("<p class='empty'>none</p>")
    parts.append("</section>")
    return "".join(parts)


def _alerts_section(alerts: pd.DataFrame) -> str:
    return ("<section id='alerts'><h2>Drift and degradation alerts</h2>"
            + _table(["kind", "signal", "type", "restaurant", "observed", "reference", "threshold", "message"], [
                [_esc(a.kind), _esc(a.signal), _esc(a.prediction_type or "–"),
                 _esc("chain" if a.restaurant_id is None or pd.isna(a.restaurant_id) else int(a.restaurant_id)),
                 _fmt(a.observed), _fmt(a.reference), _fmt(a.threshold), f"<span class='alert'>{_esc(a.message)}</span>"]
                for a in alerts.itertuples(index=False)], "no alerts")
            + "</section>")


def _accuracy_section(run: dict[str, Any], accuracy: pd.DataFrame) -> str:
    parts = ["<section id='accuracy'><h2>Realised accuracy</h2>"]
    window = run.get("accuracy") or {}
    if window.get("window_start"):
        parts.append(f"<p>Predictions whose targets ended between {_esc(window['window_start'])} and "
                     f"{_esc(window['window_end'])}, against what the replica recorded. WAPE = sum |actual - forecast| "
                     "/ sum actual; bias = mean (forecast - actual), &gt; 0 over-forecasts; coverage = share of "
                     "actuals inside the 80 % interval.</p>")
    headers = ["type", "horizon", "n", "WAPE", "backtest WAPE", "MAE", "bias", "coverage 80 %", "backtest coverage"]
    chain = accuracy[accuracy["restaurant_id"].isna()] if len(accuracy) else accuracy
    parts.append("<h3>Chain-wide, by horizon</h3>")
    parts.append(_table(headers, [
        [_esc(r.prediction_type), _esc(r.horizon), _esc(r.n), _fmt(r.wape), _fmt(r.backtest_wape), _fmt(r.mae, 2),
         _fmt(r.bias, 2), _fmt(r.coverage80, 2), _fmt(r.backtest_coverage80, 2)]
        for r in chain.itertuples(index=False)], "nothing scored in this window"))
    per = accuracy[accuracy["restaurant_id"].notna() & (accuracy["horizon"] == "all")] if len(accuracy) else accuracy
    parts.append("<h3>Per restaurant, all horizons</h3>")
    parts.append(_table(["type", "restaurant", "n", "WAPE", "backtest WAPE", "MAE", "bias", "coverage 80 %", "not scored"], [
        [_esc(r.prediction_type), _esc(int(r.restaurant_id)), _esc(r.n), _fmt(r.wape), _fmt(r.backtest_wape),
         _fmt(r.mae, 2), _fmt(r.bias, 2), _fmt(r.coverage80, 2),
         _esc(", ".join(f"{k} {v}" for k, v in sorted((r.excluded or {}).items())) or "–")]
        for r in per.itertuples(index=False)], "nothing scored in this window"))
    excluded = window.get("excluded") or {}
    if excluded:
        parts.append("<h3>Not scored, and why</h3>")
        parts.append(_table(["type", "reasons"], [
            [_esc(t), _esc(", ".join(f"{k} {v}" for k, v in sorted(c.items())))] for t, c in sorted(excluded.items())]))
    parts.append("</section>")
    return "".join(parts)


def report_path(run_id: str, model_store: Path) -> Path:
    """Where a run's report lives in the artifact store (``model_store``: its root)."""
    return Path(model_store) / "reports" / f"run-{run_id}.html"


def write_report(run_id: str, *, engine: Engine, reader: ReplicaReader, model_store: Path,
                 run_records: RunRecordWriter, path: Path | None = None) -> Path:
    """Build the report, write it (atomically) into the artifact store or ``path``, record where.

    Args:
        engine: the predictions database (read).
        reader: the replica, read-only.
        model_store: the artifact store's root; the report goes to ``<model_store>/reports/``.
        run_records: records the report's path and seconds on the run (the worker's writer).
        path: write here instead.
    """
    started = time.monotonic()
    page = build_report(str(run_id), engine=engine, reader=reader)
    target = Path(path) if path else report_path(str(run_id), model_store)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    run_records.record_report(str(run_id), str(target), time.monotonic() - started)
    return target


__all__ = ["SECTIONS", "ReportError", "build_report", "write_report", "report_path", "forecast_plot",
           "accuracy_over_time_plot", "coverage_plot"]
