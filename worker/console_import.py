"""What ``import-sales --count-col`` prints: where the file's rows went, what changed, how to forecast it."""

from __future__ import annotations

import typer


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
