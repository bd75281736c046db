"""The README's first command: the whole pipeline on the embedded PostgreSQL, no servers needed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import psutil


def _postgres_of(pgdata) -> list[str]:
    """Processes of a PostgreSQL server on ``pgdata``: its postmaster names the folder (-D) and the
    folder's postmaster.pid names the postmaster; the backends are its children."""
    found = []
    pidfile = pgdata / "postmaster.pid"
    if pidfile.exists() and psutil.pid_exists(int(pidfile.read_text().split()[0])):
        found.append(f"postmaster.pid names running pid {pidfile.read_text().split()[0]}")
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(pgdata) in cmdline and "postgres" in (proc.info["name"] or "") + cmdline:
            found.append(f"{proc.info['pid']}: {cmdline}")
            try:
                found += [f"{c.pid}: {' '.join(c.cmdline())}" for c in proc.children(recursive=True)]
            except psutil.Error:
                pass
    return found


def test_demo_seeds_runs_and_writes_predictions_on_embedded_postgres(tmp_path, project_root):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RMSML_")}
    env["RMSML_MODEL_STORE__PATH"] = str(tmp_path / "models")
    env["RMSML_LOG_FORMAT"] = "json"
    env["RMSML_LOG_LEVEL"] = "INFO"
    pgdata = tmp_path / "pgdata"
    done = subprocess.run(
        [sys.executable, "-m", "worker", "demo", "--restaurants", "2", "--days", "120", "--data-dir", str(pgdata)],
        cwd=project_root, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert re.search(r"run [0-9a-f-]{36}: succeeded", out), out
    written = dict((t, int(n)) for t, n in re.findall(r"^\s+(\w+)\s+(\d+) rows$", out, re.M))
    assert written["demand_hourly"] == 2 * 168
    assert written["demand_daily"] == 2 * 28
    assert "hour starting (UTC)" in out and "local hour" in out  # the sample, as the RMS reads it
    # the replayed mornings' forecasts are scored by the last run, and the report is linked
    assert len(re.findall(r"replaying the daily run as of", out)) == 3
    assert re.search(r"demand_daily\s+WAPE 0\.\d+\s+coverage80", out), out
    link = re.search(r"run report: (file://\S+)", out)
    assert link, out
    report = Path(link.group(1).removeprefix("file://"))
    assert report.exists() and "id='glance'" in report.read_text(encoding="utf-8")

    # RMSML_LOG_FORMAT=json: stderr is log events only, one JSON object a line, known warnings filtered.
    events = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert events and all({"time", "level", "logger", "message"} <= set(e) for e in events), done.stderr[-3000:]
    assert any(e["logger"] == "worker.runs" for e in events)
    assert "Importing plotly failed" not in done.stderr

    # The demo stops the embedded server it started: nothing of it is left running.
    assert (pgdata / "PG_VERSION").exists()  # the data stays
    assert not _postgres_of(pgdata), _postgres_of(pgdata)
    assert "the embedded PostgreSQL is stopped" in out
