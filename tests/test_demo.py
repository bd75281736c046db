"""The README's first command: the whole pipeline on the embedded PostgreSQL, no servers needed."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def test_demo_seeds_runs_and_writes_predictions_on_embedded_postgres(tmp_path, project_root):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RMSML_")}
    env["RMSML_MODEL_STORE__PATH"] = str(tmp_path / "models")
    done = subprocess.run(
        [sys.executable, "-m", "worker", "demo", "--restaurants", "2", "--days", "120",
         "--data-dir", str(tmp_path / "pgdata")],
        cwd=project_root, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert re.search(r"run [0-9a-f-]{36}: succeeded", out), out
    written = dict((t, int(n)) for t, n in re.findall(r"^\s+(\w+)\s+(\d+) rows$", out, re.M))
    assert written["demand_hourly"] == 2 * 168
    assert written["demand_daily"] == 2 * 28
    assert "hour starting (UTC)" in out  # the sample of predictions as the RMS reads them
