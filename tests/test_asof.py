"""What a user types for a run: a future or malformed --as-of, a misspelt schedule (issue 25).

A future as-of is refused unless forced (its rows would have frozen today's forecasts), and a
forced one never holds the present back; a mistake ends in one line on stderr and exit 2, with
nothing started and no run recorded.
"""

from __future__ import annotations

import uuid

import pandas as pd
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from tests.conftest import cleared_run_lock
from worker import db
from worker.cli import app

AS_OF = "2026-11-01T05:15:00Z"
FUTURE = "2030-01-01T00:00Z"


def _runs() -> int:
    with db.predictions_engine().connect() as conn:
        return conn.execute(text("SELECT count(*) FROM ml_run")).scalar_one()


def _one_line_exit_2(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture()
def lock():
    with cleared_run_lock("monthly") as lk:
        yield lk


@pytest.mark.parametrize("locking", [[], ["--no-lock"]])
def test_a_future_as_of_is_refused_with_one_line_and_nothing_recorded(seeded_replica, clean_predictions, lock, locking):
    result = CliRunner().invoke(app, ["run", "--schedule", "monthly", "--as-of", FUTURE, "--restaurant", "2", *locking])
    line = _one_line_exit_2(result)
    assert "later than now" in line and "--allow-future-as-of" in line
    assert _runs() == 0 and lock.holder("monthly") is None


@pytest.mark.parametrize("as_of", ["2026-13-45T99:00Z", "last tuesday", "20261"])
def test_a_malformed_as_of_is_one_line_and_exit_2(seeded_replica, clean_predictions, as_of):
    for command in (["run", "--no-lock"], ["trigger"]):
        result = CliRunner().invoke(app, [*command, "--schedule", "daily", "--as-of", as_of])
        assert "not an ISO 8601 instant" in _one_line_exit_2(result)
    assert _runs() == 0


def test_trigger_with_an_unknown_schedule_sends_nothing(clean_predictions, monkeypatch):
    """Checked before the broker is even asked: with no broker listening the answer is the same."""
    from worker.settings import get_settings

    monkeypatch.setenv("RMSML_BROKER__URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    try:
        for schedule in ("hourly", "dialy"):
            result = CliRunner().invoke(app, ["trigger", "--schedule", schedule])
            assert f"unknown schedule '{schedule}'" in _one_line_exit_2(result)
            assert "sent" not in result.output
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert _runs() == 0


def test_the_start_protocol_refuses_a_future_as_of_and_frees_the_lock(seeded_replica, clean_predictions, lock):
    """What beat, Flower and the start task go through (``begin_locked``): refused, recorded as a
    failed trigger with the reason, the lock freed."""
    from worker.run_start import RunInputError, begin_locked

    run_id = str(uuid.uuid4())
    with pytest.raises(RunInputError, match="later than now"):
        begin_locked(lock, "monthly", FUTURE, [2], trigger="flower", run_id=run_id)
    assert lock.holder("monthly") is None
    with db.predictions_engine().connect() as conn:
        status, error = conn.execute(text("SELECT status, error FROM ml_run WHERE id = :id"), {"id": run_id}).one()
    assert status == "failed" and "later than now" in error


def test_a_forced_future_run_never_blocks_the_present_one(seeded_replica, clean_predictions):
    from worker.runs import execute_run

    soon = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=30)).isoformat()
    future = execute_run("daily", soon, [2], trigger="test", allow_future_as_of=True)
    assert sum(future["rows_written"].values()) > 0  # a unit or two may fail on no data; the rest is written
    present = execute_run("daily", AS_OF, [2], trigger="test")
    assert present["status"] != "failed"
    assert not any("later as-of" in m for m in present["messages"]), present["messages"]
    with db.predictions_engine().connect() as conn:
        holders = conn.execute(text("SELECT DISTINCT run_id FROM m_l_predictions")).scalars().all()
    assert [str(r) for r in holders] == [str(present["id"])], (future["rows_written"], present["rows_written"])


def test_an_as_of_before_any_order_is_one_line_and_exit_2(seeded_replica, clean_predictions):
    """Before: the run went on and failed deep in stock_daily with a TypeError."""
    result = CliRunner().invoke(app, ["run", "--schedule", "daily", "--as-of", "2000-01-01T00:00Z", "--no-lock",
                                      "--restaurant", "2"])
    assert "before the first order" in _one_line_exit_2(result)
    assert _runs() == 0
