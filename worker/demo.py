"""The demo once its embedded server runs: seed a chain, migrate, replay the last mornings, run
daily and print what was written, realised accuracy and the report's link."""

from __future__ import annotations

import time
from pathlib import Path

import typer


def demo_run(restaurants: int, days: int, replica_url: str, predictions_url: str, started: float,
              replay_days: int = 0) -> dict:
    """Seed, migrate, replay the last mornings, run daily and print what was written and the
    report's link: the demo, once its server runs.

    Why the replay: a report of a first run has nothing to score. Runs as of the previous mornings
    (the first backtests, the others reuse its selection) leave forecasts whose days have since
    happened, so today's run scores them and the report shows realised accuracy at once.
    """
    import pandas as pd

    from worker import db
    from worker.migrations import upgrade
    from worker.settings import get_settings

    get_settings.cache_clear()
    db.reset_engines()
    from synthetic import ChainConfig, seed_database

    typer.echo(f"seeding a synthetic chain of {restaurants} restaurants over {days} days ...")
    seeded = seed_database(replica_url, ChainConfig(restaurants=restaurants, days=days, seed=42))
    upgrade(predictions_url)
    from worker.runs import execute_run

    now = pd.Timestamp.now(tz="UTC").floor("s")
    for back in range(replay_days, 0, -1):
        as_of = now - pd.Timedelta(days=back)
        typer.echo(f"replaying the daily run as of {as_of:%Y-%m-%d %H:%M} UTC ({back} day(s) ago) ...")
        execute_run("daily", as_of.isoformat(), trigger="demo")
    typer.echo("running the daily schedule ...")
    record = execute_run("daily", now.isoformat(), trigger="demo")
    elapsed = time.monotonic() - started
    typer.echo("")
    typer.echo(f"run {record['id']}: {record['status']} in {elapsed:.1f} s (seed + migrate + run)")
    typer.echo(f"replica rows seeded: {sum(v for k, v in seeded.items() if isinstance(v, int))}")
    for ptype, n in sorted(record["rows_written"].items()):
        typer.echo(f"  {ptype:<22} {n:>8} rows")
    if record["rows_skipped"]:
        typer.echo(f"malformed rows skipped: {record['rows_skipped']}")
    if record["modules_skipped"]:
        typer.echo(f"skipped: {record['modules_skipped']}")
    typer.echo("")
    typer.echo("the next hours of demand at the first restaurant (m_l_predictions, as the RMS reads it):")
    typer.echo(sample_rows())
    accuracy = (record.get("accuracy") or {}).get("types") or {}
    if accuracy:
        typer.echo("")
        typer.echo("realised accuracy of the replayed runs' forecasts (chain-wide, days that have happened):")
        for ptype, figures in sorted(accuracy.items()):
            typer.echo(f"  {ptype:<22} WAPE {figures.get('wape')}  coverage80 {figures.get('coverage80')}  "
                       f"n {figures.get('n')}")
    if record.get("report_path"):
        typer.echo("")
        typer.echo(f"run report: {Path(record['report_path']).resolve().as_uri()}")
    return record


def sample_rows(limit: int = 8) -> str:
    """The first hours of demand_hourly at the first restaurant, in its local time and in UTC."""
    import pandas as pd
    from sqlalchemy import text

    from worker import db

    with db.replica_engine().connect() as conn:
        zones = dict(conn.execute(text("SELECT id, timezone FROM restaurants_restaurant")).all())
    with db.predictions_engine().connect() as conn:
        rows = conn.execute(
            text(
                "SELECT restaurant_id, target_start, value, lower, upper, method, model_name "
                "FROM m_l_predictions WHERE prediction_type = 'demand_hourly' "
                "AND restaurant_id = (SELECT min(restaurant_id) FROM m_l_predictions) "
                "ORDER BY target_start LIMIT :n"
            ),
            {"n": limit},
        ).all()
    lines = [f"  {'restaurant':>10}  {'local hour':<22} {'hour starting (UTC)':<20} {'orders':>7} {'80% interval':>15}"
             "  method/model"]
    for r in rows:
        start = pd.Timestamp(r.target_start).tz_convert("UTC")
        zone = zones.get(r.restaurant_id, "UTC")
        local = f"{start.tz_convert(zone):%a %Y-%m-%d %H:%M} {start.tz_convert(zone):%Z}"
        lines.append(
            f"  {r.restaurant_id:>10}  {local:<22} {start:%Y-%m-%d %H:%M}{'':<4} {r.value:>7.1f} "
            f"{f'{r.lower:.1f}-{r.upper:.1f}':>15}  {r.method}/{r.model_name}"
        )
    return "\n".join(lines)
