"""`python -m worker run` in-process: it takes the same Redis run lock as beat and Flower runs."""

from __future__ import annotations

import json
import re

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
        result = CliRunner().invoke(app, ["run", "--schedule", "monthly", "--as-of", AS_OF, "--restaurant", "2", "--json"])
    finally:
        RunLock.refresh = real
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)  # with --json stdout is the run record alone; the table goes to stderr
    assert f"run {record['id']}" in result.stderr
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
        # By default the operator gets the summary table on stdout, not the run record's JSON.
        assert re.search(r"run [0-9a-f-]{36}", done.stdout) and "succeeded" in done.stdout, done.stdout
        assert '"rows_written"' not in done.output
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


# ---------------------------------------------------------------------- what the operator's logs look like
def test_json_log_format_writes_one_object_per_event_with_the_context_the_call_gives():
    import io
    import logging

    from worker.logs import formatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter("json"))
    log = logging.getLogger("rmsml.test.json")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("shard %d done\nin two lines", 2, extra={"run_id": "r-1", "shard": 2, "unit": "demand_hourly",
                                                              "seconds": 1.5, "rows": 336, "other": "x"})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("shard failed")
    finally:
        log.removeHandler(handler)
    first, second = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert first["message"] == "shard 2 done\nin two lines" and first["level"] == "WARNING"
    assert {k: first[k] for k in ("run_id", "shard", "unit", "seconds", "rows")} == {
        "run_id": "r-1", "shard": 2, "unit": "demand_hourly", "seconds": 1.5, "rows": 336}
    assert "other" not in first and first["logger"] == "rmsml.test.json" and first["time"].endswith("+00:00")
    assert "run_id" not in second and "ValueError: boom" in second["exc_info"]


def test_log_format_is_text_by_default_and_only_text_or_json():
    from pydantic import ValidationError

    from worker.settings import Settings

    assert Settings().log_format == "text"
    assert Settings(log_format="json").log_format == "json"
    with pytest.raises(ValidationError):
        Settings(log_format="xml")


def test_pytest_filters_the_same_third_party_warnings_as_the_logging_setup(project_root):
    import tomllib

    from worker.logs import KNOWN_THIRD_PARTY_WARNINGS

    ini = tomllib.loads((project_root / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert ini["filterwarnings"] == [f"ignore:{message}:{category.__name__}:{module}"
                                     for category, message, module in KNOWN_THIRD_PARTY_WARNINGS]


def test_status_is_a_nagios_check_and_models_lists_the_registry(seeded_replica, clean_predictions, lock):
    """Nothing ran: critical (exit 2). After a run of the checked schedule: its last run and the
    types' freshness, OK (exit 0). ``models`` shows the model in use with its checksum verdict."""
    runner = CliRunner()
    empty = runner.invoke(app, ["status", "--json", "--schedule", "monthly"])
    assert empty.exit_code == 1, empty.output  # no run yet: a warning, not a page
    assert json.loads(empty.stdout)["verdict"] == "WARNING"

    done = runner.invoke(app, ["run", "--schedule", "monthly", "--as-of", AS_OF, "--restaurant", "2", "--no-lock"])
    assert done.exit_code == 0, done.output
    with db.predictions_engine().begin() as conn:  # the run's as-of is in the past: judge it then
        conn.execute(text("UPDATE ml_run SET started_at = now(), finished_at = now()"))
    ok = runner.invoke(app, ["status", "--json", "--schedule", "monthly"])
    status = json.loads(ok.stdout)
    # the test replica's role is a superuser: said, a warning; nothing else is wrong
    assert ok.exit_code == 1 and status["verdict"] == "WARNING", status
    assert [p["problem"] for p in status["problems"]] == [
        f"replica role can write: {status['replica_role_risks'][0]}; use a SELECT-only role (docs/replica.md)"]
    assert "superuser" in status["replica_role_risks"][0]
    assert status["schedules"][0]["status"] == "succeeded"
    assert {t["prediction_type"] for t in status["prediction_types"]} == {"price_recommendation"}

    with db.predictions_engine().begin() as conn:
        conn.execute(text("UPDATE m_l_predictions SET expires_at = now() - interval '1 hour'"))
        conn.execute(text("UPDATE ml_run SET status = 'failed'"))
    bad = runner.invoke(app, ["status", "--schedule", "monthly"])
    assert bad.exit_code == 2 and "CRITICAL" in bad.stdout and "past expires_at" in bad.stdout

    listed = json.loads(runner.invoke(app, ["models", "--json"]).stdout)
    assert [m["prediction_type"] for m in listed] == ["price_recommendation"]
    assert listed[0]["checksum"] == "ok" and listed[0]["version"].startswith("price_recommendation.")


def test_each_run_publishes_prometheus_metrics_to_the_textfile_and_the_pushgateway(
        seeded_replica, clean_predictions, tmp_path, monkeypatch):
    """Duration per step, rows per type, the status, failed deliveries: in the node exporter's
    textfile format (parsed back with prometheus_client's own parser) and pushed over HTTP."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from prometheus_client.parser import text_string_to_metric_families

    from worker.settings import get_settings

    pushed: list[tuple[str, bytes]] = []

    class Gateway(BaseHTTPRequestHandler):
        def do_PUT(self):  # noqa: N802 - the Pushgateway API
            pushed.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("RMSML_METRICS__TEXTFILE_DIR", str(tmp_path / "textfile"))
    monkeypatch.setenv("RMSML_METRICS__PUSHGATEWAY_URL", f"http://127.0.0.1:{server.server_port}")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["run", "--schedule", "monthly", "--as-of", AS_OF, "--restaurant", "2",
                                          "--no-lock", "--json"])
        assert result.exit_code == 0, result.output
        record = json.loads(result.stdout)
    finally:
        get_settings.cache_clear()
        server.shutdown()
    text_ = (tmp_path / "textfile" / "rmsml_monthly.prom").read_text()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text_) for s in family.samples}
    assert samples[("rmsml_rows_written", (("prediction_type", "price_recommendation"), ("schedule", "monthly")))] \
        == record["rows_written"]["price_recommendation"]
    assert samples[("rmsml_run_status", (("schedule", "monthly"), ("status", "succeeded")))] == 1
    assert samples[("rmsml_step_seconds", (("schedule", "monthly"), ("step", "price_recommendation")))] > 0
    assert samples[("rmsml_run_duration_seconds", (("schedule", "monthly"),))] > 0
    assert ("rmsml_webhook_deliveries_failed", ()) in samples
    [(path, body)] = pushed
    assert path == "/metrics/job/rmsml/schedule/monthly" and b"rmsml_rows_written" in body
