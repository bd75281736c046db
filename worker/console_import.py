"""The ``import-sales`` command: import a POS line export (or with ``--count-col`` a chain's daily
totals) and print where the file's rows went, what changed and how to forecast it."""

from __future__ import annotations

from pathlib import Path

import typer


def run_import(file: Path, dsn: str | None, *, timezone: str, restaurant_name: str | None, country: str | None,
               currency: str | None, columns: dict[str, str | None], date_format: str | None,
               count_col: str | None, sites: Path | None) -> None:
    """Import ``file`` into the replica-schema database ``dsn`` (None: the embedded PostgreSQL) and
    print the outcome; a file or an option that cannot be imported exits 2 with nothing written."""
    from sales_import import SalesImportError, check_timezone, import_sales

    embedded = dsn is None
    predictions_url = None
    try:
        check_timezone(timezone)  # before an embedded server is started for nothing
        if embedded:
            from worker.embedded import embedded_urls
            from worker.settings import get_settings

            dsn, predictions_url = embedded_urls(get_settings().embedded.data_dir)
        if count_col is not None:
            from sales_import.chain import import_daily_totals

            rep = import_daily_totals(file, dsn, timezone=timezone, organization_name=restaurant_name,
                                      country=country, columns={**columns, "count": count_col},
                                      date_format=date_format, sites=sites)
        elif sites is not None:
            raise SalesImportError("--sites goes with --count-col (daily totals); a line export names its sites")
        else:
            rep = import_sales(file, dsn, timezone=timezone, restaurant_name=restaurant_name, country=country,
                               currency=currency, columns=columns, date_format=date_format)
    except SalesImportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    if count_col is not None:
        print_totals_import(rep, dsn, predictions_url)
    else:
        print_line_import(rep, dsn, predictions_url)


def print_line_import(rep, dsn: str, predictions_url: str | None) -> None:
    """Args: rep: ``sales_import.loader.ImportReport``; predictions_url: the embedded one, or None."""
    typer.echo(f"{rep.file}: {rep.lines_read} lines, {rep.tickets_in_file} tickets, {rep.items_in_file} item names")
    typer.echo("columns: " + ", ".join(f"{role}={col}" for role, col in rep.columns.items()))
    typer.echo(f"{'lines':<50} {'count':>8}")
    typer.echo(f"{'imported':<50} {rep.lines_imported:>8}")
    for reason, n in rep.skip_table():
        typer.echo(f"{'skipped: ' + reason:<50} {n:>8}")
    for note, n in rep.notes.items():
        typer.echo(f"{'kept, ' + note.replace('_', ' ') + ' (docs/import.md)':<50} {n:>8}")
    typer.echo("new rows: " + ", ".join(f"{t} {n}" for t, n in rep.inserted.items())
               + (f"; orders re-totalled {rep.orders_updated}" if rep.orders_updated else ""))
    for name, rid in rep.restaurants.items():
        typer.echo(f"restaurant {name!r}: id {rid}, {rep.timezone}, {rep.country}, "
                   f"local days {rep.first_local_day} .. {rep.last_local_day}")
    env = f"RMSML_REPLICA__URL='{dsn}' " + (f"RMSML_PREDICTIONS__URL='{predictions_url}' " if predictions_url else "")
    typer.echo("forecast it (docs/import.md):")
    typer.echo(f"  {env}python -m worker migrate")
    typer.echo(f"  {env}python -m worker run --schedule daily --as-of {rep.next_as_of} --no-lock")


def print_totals_import(rep, dsn: str, predictions_url: str | None) -> None:
    """Args: rep: ``sales_import.chain.TotalsReport``; predictions_url: the embedded one, or None."""
    c = rep.change
    typer.echo(f"{rep.file}: {rep.rows_read} rows, {len(rep.restaurants)} restaurants, "
               f"{rep.orders_in_file} orders, local days {rep.first_local_day} .. {rep.last_local_day}")
    typer.echo("columns: " + ", ".join(f"{role}={col}" for role, col in rep.columns.items()))
    typer.echo(f"restaurant-days: {c.days_new} new, {c.days_corrected} corrected, {c.days_unchanged} unchanged; "
               f"orders: {c.orders_inserted} added, {c.orders_removed} removed; "
               f"{rep.new_restaurants} new restaurants ({rep.timezone}, {rep.country})")
    for line in c.examples:
        typer.echo(f"  corrected: {line}")
    if c.days_corrected > len(c.examples):
        typer.echo(f"  ... and {c.days_corrected - len(c.examples)} more corrected days")
    if rep.future_days:
        typer.echo(f"skipped: {rep.future_days} rows dated after today ({rep.timezone}): not yet happened")
    if rep.zero_days:
        typer.echo(f"kept: {rep.zero_days} rows with a count of 0 (no orders to write; such a day reads as closed)")
    if rep.sites_matched is not None:
        typer.echo(f"sites file: {rep.sites_matched} restaurants matched, {rep.sites_missing} not in it"
                   + (f"; not stored (the replica has no column for them): {', '.join(rep.site_columns_not_stored)}"
                      if rep.site_columns_not_stored else ""))
    env = f"RMSML_REPLICA__URL='{dsn}' " + (f"RMSML_PREDICTIONS__URL='{predictions_url}' " if predictions_url else "")
    typer.echo("forecast it (docs/import.md): demand_daily only, no times of day or items in daily totals")
    typer.echo(f"  {env}python -m worker migrate")
    typer.echo(f"  {env}python -m worker run --schedule daily --as-of {rep.next_as_of} --no-lock")
