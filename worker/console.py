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


# What a rich table adds per column (a space either side and a border) and once (the last border).
_COLUMN_OVERHEAD = 3


def _longest_word(text: str) -> int:
    return max((len(w) for w in text.split()), default=0)


def column_widths(headers: list[str], rows: list[list[str]], width: int) -> list[int] | None:
    """Widths that fit the table into ``width`` columns without breaking a word (a name, a
    score, a path), or None when even one word per line does not fit: the table is stacked then.
    Each column gets its longest word and the room left is shared by what the columns lack."""
    columns = list(zip(headers, *rows)) if rows else [(h,) for h in headers]
    natural = [max(len(line) for cell in col for line in (cell.splitlines() or [""])) for col in columns]
    least = [max(_longest_word(cell) for cell in col) for col in columns]
    room = width - _COLUMN_OVERHEAD * len(columns) - 1
    if sum(natural) <= room:
        return natural
    if sum(least) > room:
        return None
    spare, lack = room - sum(least), [n - m for n, m in zip(natural, least)]
    widths = [m + spare * k // sum(lack) for m, k in zip(least, lack)]
    return widths


def _stacked(title: str, headers: list[str], rows: list[list[str]], width: int) -> str:
    """One block per row, a line per column (``header  value``, the value wrapped at spaces so no
    word is cut); a table without headers shows each row's first cell as its heading."""
    import textwrap

    labelled = any(headers)
    key = max((len(h) for h in headers), default=0) + 2 if labelled else 2
    lines = [title]
    for row in rows:
        lines.append("")
        cells = list(zip(headers, row)) if labelled else [("", c) for c in row[1:]]
        if not labelled:
            lines.append(row[0] if row else "")
        for header, cell in cells:
            wrapped = textwrap.wrap(cell, max(20, width - key), break_long_words=False, break_on_hyphens=False) or [""]
            lines += [(header if i == 0 else "").ljust(key) + part for i, part in enumerate(wrapped)]
    return "\n".join(lines)


def render_table(title: str, headers: list[str], rows: list[list], width: int):
    """A table that reads at ``width`` columns: a rich table when every word fits its column,
    else the rows stacked (a narrow terminal, or piped output at 80 columns)."""
    from rich.table import Table
    from rich.text import Text

    cells = [[str(c) for c in row] for row in rows]
    widths = column_widths(headers, cells, width)
    if widths is None:
        return Text(_stacked(title, headers, cells, width))
    table = Table(title=title)
    for h, w in zip(headers, widths):
        table.add_column(h, width=w, overflow="fold")
    for row in cells:
        table.add_row(*row)
    return table


def summary_table(title: str, headers: list[str], rows: list[list], stderr: bool = True) -> None:
    from rich.console import Console

    console = Console(stderr=stderr)
    console.print(render_table(title, headers, rows, console.width), soft_wrap=False)


def run_summary(record: dict, stderr: bool = True) -> None:
    rows = [[t, n] for t, n in sorted((record.get("rows_written") or {}).items())]
    rows += [[f"skipped: {t}", reason] for t, reason in sorted((record.get("modules_skipped") or {}).items())]
    rows += [[f"alert: {a.get('signal')} {a.get('prediction_type') or ''} r{a.get('restaurant_id') or '-'}", "drift"]
             for a in record.get("alerts") or []]
    rows.append(["status", record.get("status")])
    if record.get("report_path"):
        rows.append(["report", record["report_path"]])
    summary_table(f"run {record.get('id')}", ["", ""], rows, stderr=stderr)
