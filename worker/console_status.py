"""What ``status`` and ``models`` print for an operator (``--json`` prints the data as it is)."""

from __future__ import annotations

import typer

from worker.console import summary_table
from worker.status import chain_decisions


def print_status(found) -> None:
    """Args: found: ``worker.status.read_status``'s result (schedules, prediction types, problems)."""
    summary_table("schedules", ["schedule", "last run", "status", "age (h)"], [
        [s["schedule"], s.get("last_run") or "-", s.get("status") or "-", s.get("age_hours", "-")]
        for s in found.schedules], stderr=False)
    summary_table("prediction types", ["type", "rows", "newest", "expired"], [
        [t["prediction_type"], t["rows"], t["newest_generated_at"], t["expired_rows"]]
        for t in found.prediction_types], stderr=False)
    summary = found.as_dict()
    for p in summary["problems"]:
        typer.echo(f"{p['level']}: {p['problem']}")
    typer.echo(f"{summary['verdict']}: {len(found.problems)} problem(s)")


def print_models(rows: list[dict]) -> None:
    """Args: rows: ``worker.status.models_in_use`` (one per prediction type and shard)."""
    summary_table("models in use", ["type", "shard", "model", "trained", "chosen", "backtest WAPE", "checksum"], [
        [r["prediction_type"], r["shard"], r["model"],
         f"{(r['training_start'] or '?')[:10]} .. {(r['training_end'] or '?')[:10]}", r["chosen_at"][:16],
         ", ".join(f"{n}={v.get('wape'):.3f}" for n, v in (r["backtest"] or {}).items()
                   if isinstance(v, dict) and isinstance(v.get("wape"), (int, float))) or "-",
         r["checksum"] or "-"] for r in rows], stderr=False)
    for line in chain_decisions(rows):
        typer.echo(line)
