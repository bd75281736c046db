"""What the command line prints: progress on stderr, summary tables, JSON for scripts.

Kept apart from the commands so that each command reads as what it does, and so that stdout stays
the machine-readable part (JSON, a path) while bars and tables go where a person looks.
"""

from __future__ import annotations

import json
from contextlib import contextmanager


def to_json(obj) -> str:
    return json.dumps(obj, indent=2, default=str, sort_keys=True)


def progress():
    """A progress bar on stderr (stdout stays the JSON a script reads); plain when not a terminal."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    @contextmanager
    def bar():
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                      console=Console(stderr=True), transient=True) as progress:
            yield progress, progress.add_task("starting", total=None)

    return bar()


def advance(bar, task, step: str, done: int, total: int) -> None:
    if step == "shards":
        bar.update(task, description=f"shard {done}/{total}", completed=done, total=total)
    else:
        bar.update(task, description="scoring earlier predictions, drift checks, report")


def summary_table(title: str, headers: list[str], rows: list[list], stderr: bool = True) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for h in headers:
        table.add_column(h)
    for row in rows:
        table.add_row(*[str(c) for c in row])
    Console(stderr=stderr).print(table)


def run_summary(record: dict, stderr: bool = True) -> None:
    rows = [[t, n] for t, n in sorted((record.get("rows_written") or {}).items())]
    rows += [[f"skipped: {t}", reason] for t, reason in sorted((record.get("modules_skipped") or {}).items())]
    rows += [[f"alert: {a.get('signal')} {a.get('prediction_type') or ''} r{a.get('restaurant_id') or '-'}", "drift"]
             for a in record.get("alerts") or []]
    rows.append(["status", record.get("status")])
    if record.get("report_path"):
        rows.append(["report", record["report_path"]])
    summary_table(f"run {record.get('id')}", ["", ""], rows, stderr=stderr)
