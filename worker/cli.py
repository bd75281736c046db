"""Command line: the main job (``run``), the synthetic RMS (``seed``), migrations and the demo.

Typer instead of argparse plumbing: typed options, help text and exit codes for free.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import date
from pathlib import Path
from typing import Optional

import typer

from worker.console import advance, progress, run_summary, summary_table, to_json
from worker.console_aggregates import rebuild_aggregates

app = typer.Typer(add_completion=False, no_args_is_help=True, help="RMS prediction engine.")
app.command("rebuild-aggregates")(rebuild_aggregates)  # its body and output: worker/console_aggregates.py


def _setup_logging() -> None:
    from worker.logs import setup_logging

    setup_logging()  # RMSML_LOG_LEVEL, RMSML_LOG_FORMAT=text|json, on stderr


@app.command()
def run(
    schedule: str = typer.Option("daily", help="daily, weekly or monthly"),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="run as if it were this instant (ISO 8601, UTC if naive)"),
    restaurant: Optional[list[int]] = typer.Option(None, "--restaurant", help="restrict to these restaurant ids"),
    lock: bool = typer.Option(True, "--lock/--no-lock",
                              help="take the schedule's Redis run lock, as beat and Flower runs do; "
                                   "--no-lock only where no workers share the databases (no Redis needed)"),
    as_json: bool = typer.Option(False, "--json",
                                 help="print the run record as JSON on stdout (the summary table goes to stderr)"),
    allow_future_as_of: bool = typer.Option(False, "--allow-future-as-of",
                                            help="accept an --as-of later than now (its rows then stand over "
                                                 "no present run, but nothing checks them)"),
) -> None:
    """Run one schedule in this process: read the replica, predict, write, record the run, and
    print a summary table (the full run record with --json).

    Exit codes: 0 done, 1 the run failed, 2 bad input or no Redis for the lock, 3 another run of the
    schedule holds the lock (nothing was started).
    """
    _setup_logging()
    from worker.run_start import LockHeld, RunInputError
    from worker.runs import execute_run

    _check_run_input(schedule, as_of, allow_future_as_of)
    try:
        with progress() as (bar, task):
            record = execute_run(schedule, as_of, restaurant or None, trigger="cli",
                                 progress=lambda step, done, total: advance(bar, task, step, done, total),
                                 lock=_run_lock(schedule) if lock else None,
                                 allow_future_as_of=allow_future_as_of)
    except RunInputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    if isinstance(record, LockHeld):
        typer.echo(f"not started: run {record.holder} of the {schedule} schedule is still running", err=True)
        raise typer.Exit(3)
    if as_json:
        typer.echo(to_json(record))
    run_summary(record, stderr=as_json)
    if record["status"] == "failed":
        raise typer.Exit(1)


def _run_lock(schedule: str):
    """The Redis run lock, or exit 2 when Redis does not answer. Taking it (and the run-table check
    that backs it) is ``worker.run_start.begin_locked``, the same protocol the start task follows:
    running beside a scheduled run would write the same rows twice over and race the webhooks."""
    import redis

    from worker.locks import RunLock

    lock = RunLock.from_settings()
    try:
        lock.client.ping()
    except redis.exceptions.RedisError as exc:
        typer.echo(f"error: cannot take the {schedule} run lock in the broker's Redis ({type(exc).__name__}); "
                   "start Redis, or pass --no-lock if no workers use these databases", err=True)
        raise typer.Exit(2)
    return lock


@app.command()
def migrate(revision: str = typer.Argument("head")) -> None:
    """Apply the predictions database migrations (alembic upgrade)."""
    from worker.migrations import upgrade
    from worker.settings import get_settings

    upgrade(get_settings().predictions.url.get_secret_value(), revision)
    typer.echo(f"predictions database at {revision}")


@app.command()
def seed(
    restaurants: int = typer.Option(5, help="restaurants in the synthetic chain"),
    days: int = typer.Option(400, help="days of history"),
    seed_value: int = typer.Option(42, "--seed", help="random seed (same seed, same data)"),
    end: Optional[str] = typer.Option(None, help="first day after history (YYYY-MM-DD); default today (UTC)"),
    dsn: Optional[str] = typer.Option(None, help="replica database URL; default the configured replica"),
    without: list[str] = typer.Option([], "--without", help="omit an RMS module: kitchen, inventory, customers, payments"),
) -> None:
    """Fill a database with a synthetic restaurant chain in the replica schema.

    This writes to the *target* database with its own connection: it stands in for the RMS, which
    owns the replica. The pipeline itself never writes there.
    """
    _setup_logging()
    from synthetic import ChainConfig, seed_database
    from worker.settings import get_settings

    url = dsn or get_settings().replica.url.get_secret_value()
    modules = tuple(m for m in ("kitchen", "inventory", "customers", "payments") if m not in without)
    cfg = ChainConfig(
        restaurants=restaurants,
        days=days,
        seed=seed_value,
        end=date.fromisoformat(end) if end else None,
        modules=modules,
    )
    with progress() as (bar, task):
        summary = seed_database(url, cfg, progress=lambda line: bar.update(task, description=f"seed: {line}"))
    summary.pop("ground_truth", None)
    typer.echo(to_json(summary))
    summary_table("seeded", ["table", "rows"], [[t, n] for t, n in sorted(summary.items()) if isinstance(n, int)])


@app.command()
def demo(
    restaurants: int = typer.Option(6, help="restaurants in the synthetic chain"),
    days: int = typer.Option(400, help="days of history"),
    data_dir: Optional[Path] = typer.Option(None, help="where the embedded PostgreSQL keeps its data"),
    replay_days: int = typer.Option(3, "--replay-days", min=0, max=14,
                                    help="run the daily schedule as of each of the previous N mornings first, so "
                                         "the report shows forecasts against what happened"),
) -> None:
    """The whole pipeline on an embedded PostgreSQL: seed a chain, migrate, run daily, summarise."""
    _setup_logging()
    from worker.embedded import PREDICTIONS_DB, embedded_server
    from worker.settings import get_settings

    started = time.monotonic()
    pgdata = data_dir or get_settings().embedded.data_dir
    # The server is stopped when the demo ends (done, failed or interrupted): no postgres left behind.
    with embedded_server(pgdata) as (replica_url, predictions_url):
        os.environ["RMSML_REPLICA__URL"] = replica_url
        os.environ["RMSML_PREDICTIONS__URL"] = predictions_url
        from worker import db

        try:
            from worker.demo import demo_run

            record = demo_run(restaurants, days, replica_url, predictions_url, started, replay_days)
        finally:
            db.reset_engines()  # close pooled connections before the server stops
    typer.echo("")
    typer.echo(f"the embedded PostgreSQL is stopped; its data stays in {pgdata}")
    typer.echo("  to query it, start it (it then keeps running) and print its URL:")
    typer.echo(f"  .venv/bin/python -c \"import pgserver; print(pgserver.get_server('{pgdata}', cleanup_mode=None)"
               f".get_uri('{PREDICTIONS_DB}'))\"")
    typer.echo(f"  run record:  SELECT * FROM ml_run WHERE id = '{record['id']}';")
    typer.echo("  predictions: SELECT * FROM m_l_predictions ORDER BY restaurant_id, prediction_type, target_start;")
    if record["status"] == "failed":
        raise typer.Exit(1)


# ---------------------------------------------------------------------- webhooks (issue 6)
webhooks_app = typer.Typer(no_args_is_help=True, help="Completion webhook deliveries: list, redeliver.")
app.add_typer(webhooks_app, name="webhooks")


@webhooks_app.command("list")
def webhooks_list(
    failed: bool = typer.Option(False, "--failed", help="only failed or exhausted deliveries (need an admin)"),
    run_id: Optional[str] = typer.Option(None, "--run", help="only this run's deliveries"),
    attempts: bool = typer.Option(False, "--attempts", help="include every attempt of each delivery"),
    limit: int = typer.Option(200, help="at most this many, newest first"),
) -> None:
    """Deliveries of the completion webhook, newest first, as JSON."""
    from webhooks.records import list_attempts, list_deliveries
    from worker import db

    engine = db.predictions_engine()
    rows = list_deliveries(engine, failed_only=failed, run_id=run_id, limit=limit)
    if attempts:
        for row in rows:
            row["attempts"] = list_attempts(engine, row["id"])
    typer.echo(to_json(rows))


@webhooks_app.command("redeliver")
def webhooks_redeliver(
    delivery_id: Optional[str] = typer.Argument(None, help="the delivery (= webhook-id) to send again"),
    run_id: Optional[str] = typer.Option(None, "--run", help="every undelivered delivery of this run"),
    enqueue: bool = typer.Option(False, "--enqueue", help="hand to the webhooks queue instead of sending here"),
) -> None:
    """Send failed, exhausted or overdue deliveries again, same webhook-id, fresh attempt budget."""
    _setup_logging()
    from webhooks.deliveries import redeliver
    from webhooks.records import get_delivery
    from worker import db
    from worker.celery_app import app as celery
    from worker.settings import get_settings

    def send_deliver_task(delivery_id: str, countdown_s: float) -> object:
        # By name: the CLI (layer 3) cannot import the task from tasks/; the route is the same.
        return celery.send_task("rmsml.webhooks.deliver", args=[delivery_id], countdown=countdown_s)

    if (delivery_id is None) == (run_id is None):
        typer.echo("error: give a delivery id or --run <run-id>, not both", err=True)
        raise typer.Exit(2)
    engine = db.predictions_engine()
    try:
        ids = redeliver(delivery_id, run_id=run_id, send="enqueue" if enqueue else "inline", engine=engine,
                        settings=get_settings().webhooks, enqueue=send_deliver_task)
    except LookupError as exc:
        typer.echo(f"error: {exc.args[0]}", err=True)
        raise typer.Exit(2)
    rows = [get_delivery(engine, i) for i in ids]
    typer.echo(to_json({"redelivered": ids, "deliveries": rows}))
    if any(r and r["status"] in ("failed", "exhausted") for r in rows):
        raise typer.Exit(1)


# ---------------------------------------------------------------------- orchestration (issue 5)
@app.command()
def trigger(
    schedule: str = typer.Option("daily", help="daily, weekly or monthly"),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="run as if it were this instant (ISO 8601, UTC if naive)"),
    restaurant: Optional[list[int]] = typer.Option(None, "--restaurant", help="restrict to these restaurant ids"),
    wait: bool = typer.Option(False, "--wait", help="wait for the run to finish and print its record"),
    timeout: float = typer.Option(3600, help="seconds to wait with --wait"),
    allow_future_as_of: bool = typer.Option(False, "--allow-future-as-of", help="accept an --as-of later than now"),
) -> None:
    """Start a run on the Celery workers, like beat or Flower would (the same task, the same lock).

    Exit codes: 0 started (or finished, with --wait), 3 skipped because a run of the schedule is
    going, 2 bad input (nothing sent, no run recorded), 1 the run failed.
    """
    from worker.celery_app import app as celery

    _check_run_input(schedule, as_of, allow_future_as_of)
    _require_broker()
    kwargs = {"schedule": schedule, "as_of": as_of, "restaurant_ids": restaurant or None, "trigger": "cli",
              "allow_future_as_of": allow_future_as_of}
    result = celery.send_task("rmsml.runs.start", kwargs=kwargs, retry=False)
    typer.echo(f"task {result.id} sent", err=True)
    if not wait:
        return
    try:
        started = result.get(timeout=timeout)
    except Exception as exc:  # the task's own error, e.g. RunInputError
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(2)
    if started["status"] == "skipped":
        typer.echo(to_json(started))
        raise typer.Exit(3)
    record = celery.AsyncResult(started["finish_task_id"]).get(timeout=timeout)
    typer.echo(to_json(record))
    if record["status"] == "failed":
        raise typer.Exit(1)


def _check_run_input(schedule: str, as_of: Optional[str], allow_future_as_of: bool) -> None:
    """Exit 2 with one line for a schedule or as-of the run would refuse, before anything is sent:
    a typo must not leave a failed run record behind an exit 0."""
    from worker.catalog import SCHEDULES
    from worker.run_start import RunInputError, checked_as_of

    if schedule not in SCHEDULES:
        typer.echo(f"error: unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}", err=True)
        raise typer.Exit(2)
    try:
        checked_as_of(as_of, allow_future=allow_future_as_of)
    except RunInputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)


def _require_broker(timeout_s: float = 3.0) -> None:
    """Exit 2 with one line when the broker does not answer: nothing was started, and Celery's
    own reconnect loop would otherwise wait half a minute and end in a traceback."""
    from urllib.parse import urlsplit

    import redis

    from worker.settings import get_settings

    url = get_settings().broker.url.get_secret_value()
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s).ping()
    except (redis.exceptions.RedisError, OSError):
        typer.echo(f"error: broker unreachable at {shown}; nothing was started", err=True)
        raise typer.Exit(2)


@app.command()
def flower(
    port: Optional[int] = typer.Option(None, help="default: settings.flower.port"),
    address: str = typer.Option("0.0.0.0", help="interface to listen on"),
) -> None:
    """Start Flower on this app behind basic auth from settings (RMSML_FLOWER__USER/PASSWORD)."""
    from worker.celery_app import flower_command

    argv, env = flower_command(port=port, address=address)
    os.execvpe(sys.executable, [sys.executable, "-m", *argv], {**os.environ, **env})


# ---------------------------------------------------------------------- accuracy and report (issue 9)
@app.command()
def report(
    run_id: str = typer.Option(..., "--run", help="the run id (ml_run.id)"),
    out: Optional[Path] = typer.Option(None, "--out", help="write here instead of the artifact store"),
) -> None:
    """Write a run's HTML report (summary, accuracy, alerts, plots; no PII) and print its path."""
    _setup_logging()
    from core.replica import ReplicaReader
    from reporting.report import ReportError, write_report
    from worker import db
    from worker.records import RunRecords
    from worker.settings import get_settings

    try:
        with progress() as (bar, task):
            bar.update(task, description=f"report for run {run_id}")
            path = write_report(run_id, engine=db.predictions_engine(), reader=ReplicaReader(db.replica_engine()),
                                model_store=get_settings().model_store.path,
                                run_records=RunRecords(db.predictions_engine()), path=out)
    except ReportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(str(path))
    summary_table("report", ["", ""], [["run", run_id], ["file", path], ["size", f"{path.stat().st_size:,} bytes"]])


# ---------------------------------------------------------------------- status and registry (issue 20)
@app.command()
def status(
    as_json: bool = typer.Option(False, "--json", help="print the status as JSON"),
    schedule: Optional[list[str]] = typer.Option(None, "--schedule", help="schedules to check (default: all)"),
) -> None:
    """Last run per schedule, freshness per prediction type, failed webhook deliveries.

    Exit codes, as a Nagios check: 0 OK, 1 WARNING (a partial run, failed deliveries, some rows
    expired, a replica role that can write or is a superuser), 2 CRITICAL (a schedule late or its
    last run failed, a type whose rows all expired, such a role while it is refused by setting).
    """
    from worker import db
    from worker.catalog import SCHEDULES
    from worker.settings import get_settings
    from worker.console_status import print_status
    from worker.status import read_status

    found = read_status(db.predictions_engine(), tuple(schedule or SCHEDULES), replica=db.replica_engine(),
                        refuse_writable_role=get_settings().replica.refuse_writable_role)
    if as_json:
        typer.echo(to_json(found.as_dict()))
    else:
        print_status(found)
    raise typer.Exit(found.code)


@app.command()
def models(
    as_json: bool = typer.Option(False, "--json", help="print the registry as JSON"),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="check each artifact against its sha256"),
) -> None:
    """The model registry as an admin reads it: per prediction type and shard the model in use,
    its version, training window, the backtest scores of every candidate, when it was chosen and
    whether its artifact still matches its checksum."""
    from worker import db
    from worker.console_status import print_models
    from worker.status import models_in_use

    rows = models_in_use(db.predictions_engine(), verify=verify)
    if as_json:
        typer.echo(to_json(rows))
        return
    print_models(rows)


# ---------------------------------------------------------------------- bring your own sales (issue 17)
@app.command("import-sales")
def import_sales_command(
    file: Path = typer.Argument(..., help="the POS line export, CSV or Parquet (docs/import.md)"),
    timezone_name: str = typer.Option(..., "--timezone", help="IANA zone of the tills' wall clock, e.g. Europe/London"),
    restaurant_name: Optional[str] = typer.Option(None, "--restaurant-name",
                                                  help="the restaurant (the organisation with --site-col); "
                                                       "default the file name; the same name appends"),
    country: Optional[str] = typer.Option(None, help="ISO 3166 code for public holidays; default the zone's country"),
    currency: Optional[str] = typer.Option(None, help="ISO 4217 code of the prices (checked, shown; not stored)"),
    dsn: Optional[str] = typer.Option(None, help="replica-schema database URL; default the embedded PostgreSQL"),
    date_format: Optional[str] = typer.Option(None, "--date-format", help="strftime format of the date or timestamp"),
    timestamp_col: Optional[str] = typer.Option(None, "--timestamp-col"),
    date_col: Optional[str] = typer.Option(None, "--date-col"),
    time_col: Optional[str] = typer.Option(None, "--time-col"),
    ticket_col: Optional[str] = typer.Option(None, "--ticket-col"),
    item_col: Optional[str] = typer.Option(None, "--item-col"),
    quantity_col: Optional[str] = typer.Option(None, "--quantity-col"),
    price_col: Optional[str] = typer.Option(None, "--price-col"),
    customer_col: Optional[str] = typer.Option(None, "--customer-col"),
    site_col: Optional[str] = typer.Option(None, "--site-col"),
    line_col: Optional[str] = typer.Option(None, "--line-col"),
    category_col: Optional[str] = typer.Option(None, "--category-col"),
    count_col: Optional[str] = typer.Option(None, "--count-col",
                                            help="daily totals: the column of a day's orders (covers, visitors) per "
                                                 "site and --date-col; no line columns then (docs/import.md)"),
    sites: Optional[Path] = typer.Option(None, "--sites", help="daily totals: a file of site attributes (seats, "
                                                              "opening date), matched on the site column"),
) -> None:
    """Import a POS line export as restaurants, menu items, orders and order items (one transaction),
    or with --count-col a chain's daily totals as orders per restaurant and day.

    Unusable lines are counted by reason and skipped; importing again adds only new lines. A bad
    daily total is an error (a day is not a line).
    Exit codes: 0 imported, 2 the file or an option cannot be imported (nothing written).
    """
    _setup_logging()
    from worker.console_import import run_import

    columns = {"timestamp": timestamp_col, "date": date_col, "time": time_col, "ticket": ticket_col,
               "item": item_col, "quantity": quantity_col, "price": price_col, "customer": customer_col,
               "site": site_col, "line": line_col, "category": category_col}
    run_import(file, dsn, timezone=timezone_name, restaurant_name=restaurant_name, country=country,
               currency=currency, columns=columns, date_format=date_format, count_col=count_col, sites=sites)


def main() -> None:
    from pydantic import ValidationError

    try:
        app()
    except ValidationError as exc:  # bad settings: say which, without a traceback or the values
        typer.echo(f"error: invalid settings:\n{exc}", err=True)
        raise SystemExit(2)


if __name__ == "__main__":
    main()
