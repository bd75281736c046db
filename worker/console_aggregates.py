"""The ``rebuild-aggregates`` command: drop the demand aggregates kept between nights and read them
again from the replica (docs/demand.md, "Kept aggregates").

Why a command: a night trusts a kept day once it is older than the re-read window and still has
the order rows it had; an edit that keeps the count (a status or total changed, an item added to
an old order, a zone corrected in place) is not seen. An operator who knows the replica's history
was rewritten runs this; it is also how to start warm after loading a chain's history.
"""

from __future__ import annotations

from typing import Optional

import typer


def rebuild_aggregates(
    restaurant: Optional[list[int]] = typer.Option(None, "--restaurant",
                                                   help="only these restaurant ids (default: every active one)"),
    forget_only: bool = typer.Option(False, "--forget-only",
                                     help="only drop them: the next run reads everything and keeps it"),
) -> None:
    """Drop the kept demand aggregates and read them again from the replica, as of now.

    Exit codes: 0 done, 2 a restaurant that is not on the replica (or has no usable zone), or a
    predictions database without the tables (run `python -m worker migrate`).
    """
    import pandas as pd
    from sqlalchemy import inspect

    from core.replica import ReplicaReader
    from core.tables import MENU_ITEMS, ORDER_ITEMS
    from core.units import Scope
    from features.demand_aggregates import refill_demand_aggregates
    from features.restaurants import load_restaurants
    from worker import db
    from worker.aggregates import AggregateKeeper, replica_source
    from worker.malformed_counts import MalformedKeeper
    from worker.runs import FUTURE_TOLERANCE
    from worker.settings import get_settings

    settings = get_settings()
    if "ml_demand_aggregate_day" not in inspect(db.predictions_engine()).get_table_names():
        typer.echo("error: the predictions database has no kept aggregates yet: run `python -m worker migrate`", err=True)
        raise typer.Exit(2)
    reader = ReplicaReader(db.replica_engine())
    found = load_restaurants(reader, restaurant or None)
    bad = [f"no restaurant {i} on the replica" for i in found.unknown_ids]
    bad += list(found.rejected.values()) if restaurant else []
    if bad:
        typer.echo("error: " + "; ".join(bad), err=True)
        raise typer.Exit(2)
    keeper = AggregateKeeper(db.predictions_engine(), replica_source(settings.replica.url.get_secret_value()))
    ids = [int(i) for i in found.restaurants["id"]]
    dropped = keeper.forget(ids if restaurant else None)
    # the malformed rows' kept counts go too: the next run counts those restaurants in full
    MalformedKeeper(db.predictions_engine(), keeper.source).forget(ids if restaurant else None)
    if forget_only:
        typer.echo(f"dropped {dropped} kept days of {len(ids) if restaurant else 'every'} restaurant(s); "
                   "the next run reads their whole history")
        return
    now = pd.Timestamp.now(tz="UTC")
    with_items = not reader.missing([ORDER_ITEMS, MENU_ITEMS])
    size = max(1, settings.schedules.shard_size)
    for i in range(0, len(ids), size):
        scope = Scope(run_id="rebuild-aggregates", schedule="daily", as_of=now,
                      restaurants=found.restaurants.iloc[i:i + size].reset_index(drop=True), forecast=settings.forecast,
                      model_store=settings.model_store.path,
                      valid_until=(now + FUTURE_TOLERANCE).to_pydatetime(), aggregates=keeper)
        refill_demand_aggregates(reader, scope, with_items=with_items)
    marks = keeper.watermarks()
    days = marks[marks["restaurant_id"].isin(ids)].groupby("kind")["days"].sum()
    typer.echo(f"rebuilt the kept demand aggregates of {len(ids)} restaurant(s) as of {now:%Y-%m-%d %H:%M} UTC: "
               + ", ".join(f"{kind} {int(n)} days" for kind, n in days.items()))
