"""`python -m worker run` in-process: it takes the same Redis run lock as beat and Flower runs."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from tests.conftest import cleared_run_lock
from worker import db
from worker.cli import app
from worker.locks import RunLock

AS_OF = "2026-11-01T05:15:00Z"


@pytest.fixture()
def lock():
    with cleared_run_lock("monthly") as lk:
        yield lk


def _runs() -> int:
    with db.predictions_engine().connect() as conn:
        return conn.execute(text("SELECT count(*) FROM ml_run")).scalar_one()


def test_a_run_holding_the_lock_stops_the_cli_run_and_nothing_is_recorded(seeded_replica, clean_predictions, lock):
    assert lock.acquire("monthly", "nightly-run").acquired
    result = CliRunner().invoke(app, ["run", "--schedule", "monthly", "--as-of", AS_OF, "--restaurant", "2"])
    assert result.exit_code == 3, result.output
    assert "nightly-run" in result.output and _runs() == 0
    assert lock.holder("monthly") == "nightly-run"  # the holder's lock is left alone


def test_the_cli_run_takes_the_lock_under_its_run_id_and_frees_it(seeded_replica, clean_predictions, lock):
    seen = []
    real = RunLock.refresh

    def spy(self, schedule, run_id):
        seen.append(self.holder(schedule))
        return real(self, schedule, run_id)

    RunLock.refresh = spy
    try:
        result = CliRunner().invoke(app, ["run", "--schedule", "monthly", "--as-of", AS_OF, "--restaurant", "2"])
    finally:
        RunLock.refresh = real
    assert result.exit_code == 0, result.output
    record = json.loads(result.output[: result.output.rindex("}") + 1])
    assert record["status"] == "succeeded" and _runs() == 1
    assert seen and set(seen) == {record["id"]}  # held by this run while it ran
    assert lock.holder("monthly") is None


def test_no_lock_runs_without_redis(seeded_replica, clean_predictions, monkeypatch):
    from worker.settings import get_settings

    monkeypatch.setenv("RMSML_BROKER__URL", "redis://127.0.0.1:1/0")  # nothing listens there
    get_settings.cache_clear()
    try:
        refused = CliRunner().invoke(app, ["run", "--schedule", "monthly", "--as-of", AS_OF, "--restaurant", "2"])
        assert refused.exit_code == 2 and "--no-lock" in refused.output and _runs() == 0
        done = CliRunner().invoke(app, ["run", "--schedule", "monthly", "--as-of", AS_OF, "--restaurant", "2", "--no-lock"])
        assert done.exit_code == 0, done.output
        assert _runs() == 1
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
