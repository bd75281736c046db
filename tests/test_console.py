"""The command line's tables at 80 columns (a narrow terminal, or piped output): `worker models`
and `run`'s summary keep every name, score and path whole, stacked when a table cannot."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from worker.console import render_table

pytestmark = pytest.mark.pure

MODEL_HEADERS = ["type", "shard", "model", "trained", "chosen", "backtest WAPE", "checksum"]
MODEL_ROWS = [
    ["item_demand_daily", "2219fecb", "lgbm_topdown_blend", "2024-11-20 .. 2026-11-20", "2026-11-20T04:15",
     "lgbm_global=0.123, prophet_per_series=0.150, seasonal_naive=0.201, lgbm_topdown_blend=0.119", "ok"],
    ["price_recommendation", "a1b2c3d4", "elasticity_share_ratio", "2026-06-23 .. 2026-11-20",
     "2026-11-20T04:15", "-", "mismatch"],
]
RUN_ROWS = [
    ["demand_daily", 840], ["item_demand_daily", 25_200],
    ["skipped: prep_time", "RMS module 'kitchen' not installed: no table kitchen_orderitemstation"],
    ["status", "partial"],
    ["report", "/var/lib/rmsml/models/reports/run-6f1c2a4e-5b0d-4a57-9a0e-3c1d2b7e8f90.html"],
]


def rendered(title: str, headers: list[str], rows: list[list], width: int = 80) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(render_table(title, headers, rows, width), soft_wrap=False)
    return console.file.getvalue()


def words(rows: list[list]) -> set[str]:
    return {w for row in rows for cell in row for w in str(cell).split()}


@pytest.mark.parametrize("headers, rows", [(MODEL_HEADERS, MODEL_ROWS), (["", ""], RUN_ROWS)])
def test_every_name_score_and_path_stays_whole_at_80_columns(headers, rows):
    page = rendered("models in use", headers, rows)
    shown = set(re.findall(r"[^\s│┃]+", page))
    missing = sorted(w for w in words(rows) if w not in shown)
    assert not missing, f"cut at 80 columns: {missing}\n{page}"
    too_wide = [line for line in page.splitlines() if len(line) > 80 and len(line.split()) > 1]
    assert not too_wide, page


def test_a_wide_terminal_still_gets_the_table():
    page = rendered("models in use", MODEL_HEADERS, MODEL_ROWS, width=240)
    assert "┃ type" in page and "lgbm_topdown_blend=0.119" in page
