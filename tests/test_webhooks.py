"""Completion webhooks against a real HTTP receiver on 127.0.0.1 that verifies every request with the
``standardwebhooks`` library, and real delivery records in PostgreSQL.

Backoff values are tiny (tens of milliseconds) so retries are real but quick; where a wait is part
of the behaviour (backoff, Retry-After) the test asserts its lower bound as seen by the receiver.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from pydantic import ValidationError
from standardwebhooks.webhooks import WebhookVerificationError

from core.settings import WebhookReceiver, WebhookSettings
from webhooks import deliveries, payload, records, signing, transport
from webhooks.receiver import CompletionReceiver, ReceiverHandler, make_server
from webhooks.records import DeliveryRecords
from worker.records import RunRecords
from worker.settings import Settings
from worker.writer import PredictionWriter

CONTRACT_DATA_FIELDS = {
    "run_id", "schedule", "status", "started_at", "finished_at", "prediction_types", "restaurant_ids", "failed",
}
# Added by the project (the contract allows additions, never renames): docs/webhooks.md, docs/accuracy.md.
ADDED_DATA_FIELDS = {"alerts", "retrain", "accuracy"}


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


# ------------------------------------------------------------------------------ the test receiver
@dataclass
class Request:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool


class ScriptedHandler(ReceiverHandler):
    """The reference receiver, preceded by a script of canned answers (500, 429, redirect, hang)."""

    def do_POST(self) -> None:  # noqa: N802
        box: ScriptedReceiver = self.server.box
        body = self.read_body() or b""
        headers = dict(self.headers.items())
        try:
            box.receiver.verify(body, headers)
            verified = True
        except WebhookVerificationError:
            verified = False
        with box.lock:
            box.requests.append(Request(time.monotonic(), self.path, headers, body, verified))
            action = box.script.pop(0) if box.script else box.default
        if action is None:
            status, payload = box.receiver.handle(body, headers)
            self.answer(status, payload)
        elif action[0] == "status":
            self.answer(action[1], {"scripted": action[1]}, action[2] if len(action) > 2 else None)
        elif action[0] == "redirect":
            self.answer(302, {}, {"location": box.url("/elsewhere")})
        elif action[0] == "hang":
            box.release.wait(10)
            self.close_connection = True


@dataclass
class ScriptedReceiver:
    secrets: list[str]
    script: list[tuple] = field(default_factory=list)
    default: tuple | None = None  # the answer once the script is used up; None = the reference receiver
    requests: list[Request] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.receiver = CompletionReceiver(self.secrets, on_event=self.events.append)
        self.server = make_server(self.receiver, handler=ScriptedHandler)
        self.server.box = self
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hooks/ml") -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receivers():
    made: list[ScriptedReceiver] = []

    def make(secrets: str | list[str], **kw) -> ScriptedReceiver:
        box = ScriptedReceiver([secrets] if isinstance(secrets, str) else secrets, **kw)
        made.append(box)
        return box

    yield make
    for box in made:
        box.close()


def hook_settings(receivers: list[tuple[str, str, list[str]]], **overrides) -> WebhookSettings:
    values = dict(
        connect_timeout_s=0.5, timeout_s=0.5, max_attempts=4, backoff_base_s=0.05, backoff_max_s=2.0,
        inline_budget_s=15.0,
    )
    values.update(overrides)
    return WebhookSettings(
        receivers=[WebhookReceiver(name=n, url=u, secrets=s) for n, u, s in receivers], **values
    )


# ----------------------------------------------------------------------------- a real run record
def finished_run(engine, *, failing_error: str | None = None) -> dict:
    """A run recorded as the run loop does: two shards, rows committed by the writer, a prediction
    type skipped for a missing module, malformed rows counted; finish_run counts what was
    committed."""
    writer = PredictionWriter(engine)
    run_records = RunRecords(engine)
    run_id = uuid.uuid4()
    as_of = datetime(2026, 11, 1, 4, 15, tzinfo=timezone.utc)
    run_records.create_run(
        run_id, "daily", as_of, trigger="test", restaurant_ids=[1, 2], prediction_types=["demand_daily"],
        rows_skipped={"orders": 2}, modules_skipped={"prep_time": "kitchen module missing: no table kitchen_tickets"},
    )
    run_records.plan_shards(run_id, [[1], [2]])
    now = datetime.now(timezone.utc)
    for shard_no, rid in enumerate((1, 2)):
        run_records.start_shard(run_id, shard_no, [rid])
        if failing_error and shard_no == 1:
            run_records.finish_shard(run_id, 1, status="failed", rows_written={}, rows_skipped={},
                                     messages=[], error=failing_error)
            continue
        days = 3 if rid == 1 else 2
        rows = pd.DataFrame({
            "entity_id": [rid] * days,
            "restaurant_id": [rid] * days,
            "target_start": [pd.Timestamp("2026-11-01", tz="UTC") + pd.Timedelta(days=d) for d in range(days)],
            "granularity": "day",
            "value": [10.0 + d for d in range(days)],
            "model_name": "seasonal",
            "model_version": "1",
            "method": "model",
        })
        n = writer.replace_predictions(run_id, "demand_daily", "restaurant", rows, generated_at=now,
                                       expires_at=now + timedelta(hours=36))
        run_records.finish_shard(run_id, shard_no, status="succeeded", rows_written={"demand_daily": n},
                                 rows_skipped={}, messages=[])
    return run_records.finish_run(run_id)


@pytest.fixture()
def engine(clean_predictions):
    from worker import db

    return db.predictions_engine()


def gaps(requests: list[Request]) -> list[float]:
    return [b.at - a.at for a, b in zip(requests, requests[1:])]


# ------------------------------------------------------------------------------------------ tests
def test_run_gets_exactly_one_verified_delivery_per_receiver(engine, receivers):
    old, new = new_secret(), new_secret()
    # Receiver "rms" is mid-rotation: we sign with both; one server still knows only the old
    # secret, another only the new one. Both must verify.
    still_old = receivers(old)
    already_new = receivers(new)
    settings = hook_settings([
        ("rms", still_old.url(), [new, old]),
        ("rms-eu", already_new.url(), [new, old]),
    ])
    record = finished_run(engine)
    ids = deliveries.emit_run_completed(record, send="inline", settings=settings, engine=engine)
    # The finishing step running twice (a redelivered message) is the same event: no new send.
    again = deliveries.emit_run_completed(record, send="inline", settings=settings, engine=engine)

    assert again == ids and len(set(ids)) == 2
    for box, delivery_id in ((still_old, ids[0]), (already_new, ids[1])):
        assert len(box.requests) == 1 and box.requests[0].verified
        assert box.requests[0].headers["webhook-id"] == delivery_id
        assert len(box.requests[0].headers["webhook-signature"].split(" ")) == 2
        assert len(box.events) == 1
        row = records.get_delivery(engine, delivery_id)
        assert row["status"] == "delivered" and row["attempt_count"] == 1 and row["delivered_at"]
    event = still_old.events[0]
    assert event["type"] == "predictions.completed"
    assert set(event["data"]) == CONTRACT_DATA_FIELDS | ADDED_DATA_FIELDS
    assert event["data"]["run_id"] == str(record["id"])
    assert event["data"]["status"] == "succeeded"
    assert event["data"]["prediction_types"] == {"demand_daily": 5}  # 3 + 2 rows committed
    assert event["data"]["restaurant_ids"] == [1, 2]
    assert {e["kind"] for e in event["data"]["failed"]} == {"prediction_type", "rows"}
    # The bytes sent are the bytes recorded.
    assert still_old.requests[0].body == records.get_delivery(engine, ids[0], with_payload=True)["payload"].encode()


def test_body_counts_committed_rows_lists_failures_and_carries_no_pii(engine):
    record = finished_run(
        engine, failing_error="demand_daily: ValueError: bad row for jane.doe@example.com, phone +44 20 7946 0958"
    )
    body = payload.build_body(record)
    event = json.loads(body)
    assert set(event) == {"type", "timestamp", "data"}
    assert set(event["data"]) == CONTRACT_DATA_FIELDS | ADDED_DATA_FIELDS
    assert event["data"]["status"] == "partial"
    assert event["data"]["prediction_types"] == {"demand_daily": 3}  # only shard 0 committed
    shard = next(e for e in event["data"]["failed"] if e["kind"] == "shard")
    assert shard["shard"] == 1 and shard["restaurant_ids"] == [2] and "ValueError" in shard["reason"]
    assert "jane.doe" not in body and "example.com" not in body and "7946" not in body
    assert event["timestamp"].endswith("Z") and event["data"]["finished_at"].endswith("Z")


def test_500_twice_then_200_is_three_attempts_with_one_webhook_id_and_backoff(engine, receivers):
    secret = new_secret()
    box = receivers(secret, script=[("status", 500), ("status", 500)])
    settings = hook_settings([("rms", box.url(), [secret])], backoff_base_s=0.1)
    [delivery_id] = deliveries.emit_run_completed(finished_run(engine), send="inline", settings=settings, engine=engine)

    assert len(box.requests) == 3 and all(r.verified for r in box.requests)
    assert {r.headers["webhook-id"] for r in box.requests} == {delivery_id}
    assert len({r.body for r in box.requests}) == 1
    # Equal jitter: never sooner than half the nominal wait (0.1 s, then 0.2 s).
    first_gap, second_gap = gaps(box.requests)
    assert first_gap >= 0.05 and second_gap >= 0.1
    attempts = records.list_attempts(engine, delivery_id)
    assert [(a["attempt_no"], a["status"], a["response_status"]) for a in attempts] == [
        (1, "retry", 500), (2, "retry", 500), (3, "delivered", 200)
    ]
    assert all(a["finished_at"] and a["duration_ms"] is not None for a in attempts)
    row = records.get_delivery(engine, delivery_id)
    assert row["status"] == "delivered" and row["attempt_count"] == 3 and row["last_error"] is None


def test_429_retry_after_is_honoured(engine, receivers):
    secret = new_secret()
    box = receivers(secret, script=[("status", 429, {"Retry-After": "1"})])
    settings = hook_settings([("rms", box.url(), [secret])], backoff_base_s=0.01)
    [delivery_id] = deliveries.emit_run_completed(finished_run(engine), send="inline", settings=settings, engine=engine)

    assert len(box.requests) == 2
    assert gaps(box.requests)[0] >= 1.0  # backoff alone would have waited ~0.01 s
    attempts = records.list_attempts(engine, delivery_id)
    assert [a["response_status"] for a in attempts] == [429, 200]
    assert records.get_delivery(engine, delivery_id)["status"] == "delivered"


def test_400_is_not_retried(engine, receivers):
    secret = new_secret()
    box = receivers(secret, default=("status", 400))
    settings = hook_settings([("rms", box.url(), [secret])])
    [delivery_id] = deliveries.emit_run_completed(finished_run(engine), send="inline", settings=settings, engine=engine)

    assert len(box.requests) == 1
    row = records.get_delivery(engine, delivery_id)
    assert row["status"] == "failed" and row["attempt_count"] == 1 and "400" in row["last_error"]
    [attempt] = records.list_attempts(engine, delivery_id)
    assert attempt["response_status"] == 400 and '"scripted": 400' in attempt["response_body"]


def test_redirect_is_not_followed(engine, receivers):
    secret = new_secret()
    box = receivers(secret, script=[("redirect",)])
    settings = hook_settings([("rms", box.url(), [secret])])
    [delivery_id] = deliveries.emit_run_completed(finished_run(engine), send="inline", settings=settings, engine=engine)

    assert [r.path for r in box.requests] == ["/hooks/ml"]  # nothing reached /elsewhere
    row = records.get_delivery(engine, delivery_id)
    assert row["status"] == "failed" and "redirect" in row["last_error"]
    assert [a["response_status"] for a in records.list_attempts(engine, delivery_id)] == [302]


def test_silent_receiver_times_out_exhausts_then_is_redelivered(engine, receivers):
    secret = new_secret()
    box = receivers(secret, default=("hang",))
    settings = hook_settings([("rms", box.url(), [secret])], max_attempts=2, timeout_s=0.3)
    record = finished_run(engine)
    [delivery_id] = deliveries.emit_run_completed(record, send="inline", settings=settings, engine=engine)

    row = records.get_delivery(engine, delivery_id)
    assert row["status"] == "exhausted" and row["attempt_count"] == 2
    attempts = records.list_attempts(engine, delivery_id)
    assert [a["status"] for a in attempts] == ["retry", "retry"]
    assert all("timeout (read)" in a["error"] for a in attempts)
    assert [d["id"] for d in records.list_deliveries(engine, failed_only=True)] == [delivery_id]

    box.default = None  # the receiver is back, shaky at first
    box.script[:] = [("status", 500)]
    box.release.set()
    assert deliveries.redeliver(run_id=str(record["id"]), send="none", settings=settings, engine=engine) == [delivery_id]
    first = deliveries.attempt_delivery(delivery_id, settings=settings, engine=engine)
    # Attempt 3 is the first of the new budget: it waits like a first retry (<= base), not a third.
    assert first.attempt_no == 3 and first.delivery_status == "pending" and first.retry_in_s <= 0.05
    deliveries.deliver_inline([delivery_id], settings=settings, engine=engine)
    row = records.get_delivery(engine, delivery_id)
    assert row["status"] == "delivered" and row["attempt_count"] == 4
    assert box.requests[-1].verified and box.requests[-1].headers["webhook-id"] == delivery_id
    assert len(box.events) == 1
    assert records.list_deliveries(engine, failed_only=True) == []
    # Redelivering a delivered event is a no-op; the receiver would drop it anyway.
    assert deliveries.redeliver(delivery_id, settings=settings, engine=engine) == []


def test_wrong_secret_and_tampered_body_fail_verification_at_the_receiver(engine, receivers):
    ours, theirs = new_secret(), new_secret()
    box = receivers(theirs)
    settings = hook_settings([("rms", box.url(), [ours])])
    [delivery_id] = deliveries.emit_run_completed(finished_run(engine), send="inline", settings=settings, engine=engine)

    assert len(box.requests) == 1 and not box.requests[0].verified and box.events == []
    row = records.get_delivery(engine, delivery_id)
    assert row["status"] == "failed" and "401" in row["last_error"]  # 4xx: not retried

    # A correctly signed request verifies; one changed byte in the body does not.
    good = CompletionReceiver(ours)
    request = box.requests[0]
    assert good.verify(request.body, request.headers)["data"]["status"] == "succeeded"
    tampered = request.body.replace(b'"succeeded"', b'"succeedes"')
    with pytest.raises(WebhookVerificationError):
        good.verify(tampered, request.headers)
    status, _ = good.handle(tampered, request.headers)
    assert status == 401


def test_receiver_drops_duplicates_by_webhook_id():
    secret = new_secret()
    events: list[dict] = []
    receiver = CompletionReceiver(secret, on_event=events.append)
    body = '{"type":"predictions.completed","timestamp":"2026-11-22T03:12:09Z","data":{}}'
    headers = signing.sign_headers("msg_1", body, [secret])
    assert receiver.handle(body.encode(), headers) == (200, {"ok": True})
    later = signing.sign_headers("msg_1", body, [secret], at=datetime.now(timezone.utc) + timedelta(seconds=5))
    assert receiver.handle(body.encode(), later) == (200, {"duplicate": True})
    assert len(events) == 1


def test_unreachable_receiver_leaves_the_delivery_pending_and_the_run_untouched(engine):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = hook_settings(
        [("rms", f"http://127.0.0.1:{port}/hooks", [new_secret()])], max_attempts=8, backoff_base_s=0.2,
        inline_budget_s=0.5,
    )
    record = finished_run(engine)
    [delivery_id] = deliveries.emit_run_completed(record, send="inline", settings=settings, engine=engine)

    row = records.get_delivery(engine, delivery_id)
    assert row["status"] == "pending" and 1 <= row["attempt_count"] < 8  # the budget stopped retrying here
    assert "network error" in row["last_error"]
    assert records.due_delivery_ids(engine, overdue_s=-60) == [delivery_id]  # the sweep will find it
    from worker.records import get_run

    assert get_run(engine, str(record["id"]))["status"] == "succeeded"


def test_backoff_grows_with_jitter_floor_retry_after_and_cap():
    import random

    rng = random.Random(1)
    for n in range(1, 6):
        nominal = 0.5 * 2 ** (n - 1)
        delays = [transport.backoff_delay(n, base_s=0.5, max_s=100, rng=rng) for _ in range(50)]
        assert all(nominal / 2 <= d <= nominal for d in delays) and len(set(delays)) > 1
    assert transport.backoff_delay(1, base_s=0.5, max_s=100, retry_after_s=7, rng=rng) == 7
    assert transport.backoff_delay(30, base_s=0.5, max_s=60, rng=rng) <= 60
    assert transport.backoff_delay(1, base_s=0.5, max_s=60, retry_after_s=3600, rng=rng) == 60
    soon = datetime.now(timezone.utc) + timedelta(seconds=120)
    from email.utils import format_datetime

    assert 100 < transport.parse_retry_after(format_datetime(soon, usegmt=True)) <= 120
    assert transport.parse_retry_after("garbage") is None


@pytest.mark.parametrize(
    "env, setting",
    [
        ({"RMSML_WEBHOOKS__RECEIVERS": '[{"name": "rms", "url": "rms.internal/hooks", "secrets": ["%s"]}]'},
         "webhooks.receivers.0.url"),
        ({"RMSML_WEBHOOKS__RECEIVERS": '[{"name": "rms", "url": "https://rms.internal/h", "secrets": ["whsec_not*base64"]}]'},
         "webhooks.receivers.0.secrets.0"),
        ({"RMSML_WEBHOOKS__RECEIVERS": '[{"name": "rms", "url": "https://rms.internal/h", "secrets": ["c2hvcnQ="]}]'},
         "webhooks.receivers.0.secrets.0"),
        ({"RMSML_WEBHOOKS__URLS": '["https://rms.internal/h"]', "RMSML_WEBHOOKS__SECRET": "whsec_c2hvcnQ="},
         "webhooks.secret"),
        ({"RMSML_WEBHOOKS__URLS": '["https://ok.internal/h", "ftp://rms.internal/h"]'}, "webhooks.urls.1"),
    ],
)
def test_malformed_receiver_settings_fail_at_load_naming_the_setting(monkeypatch, env, setting):
    good = new_secret()
    for key, value in env.items():
        monkeypatch.setenv(key, value.replace("%s", good))
    with pytest.raises(ValidationError) as info:
        Settings()
    message = str(info.value)
    assert setting in message
    assert good not in message and "not*base64" not in message and "c2hvcnQ" not in message


def test_cli_lists_failed_deliveries_and_redelivers_them(engine, receivers, monkeypatch):
    from typer.testing import CliRunner

    from worker.cli import app
    from worker.settings import get_settings

    secret = new_secret()
    box = receivers(secret, default=("status", 503))
    monkeypatch.setenv(
        "RMSML_WEBHOOKS__RECEIVERS", json.dumps([{"name": "rms", "url": box.url(), "secrets": [secret]}])
    )
    monkeypatch.setenv("RMSML_WEBHOOKS__MAX_ATTEMPTS", "1")
    get_settings.cache_clear()
    try:
        record = finished_run(engine)
        [delivery_id] = deliveries.emit_run_completed(
            record, send="inline", engine=engine, settings=get_settings().webhooks
        )
        runner = CliRunner()
        listed = runner.invoke(app, ["webhooks", "list", "--failed"])
        assert listed.exit_code == 0, listed.output
        rows = json.loads(listed.stdout)
        assert [(r["id"], r["status"]) for r in rows] == [(delivery_id, "exhausted")]

        box.default = None
        again = runner.invoke(app, ["webhooks", "redeliver", "--run", str(record["id"])])
        assert again.exit_code == 0, again.output
        assert json.loads(again.stdout)["redelivered"] == [delivery_id]
        assert records.get_delivery(engine, delivery_id)["status"] == "delivered"
        assert runner.invoke(app, ["webhooks", "redeliver", "msg_nope"]).exit_code == 2
    finally:
        get_settings.cache_clear()


def test_attempt_cut_short_by_a_dead_worker_stays_visible_and_is_redelivered(engine, receivers):
    secret = new_secret()
    box = receivers(secret)
    settings = hook_settings([("rms", box.url(), [secret])], max_attempts=1)
    [delivery_id] = deliveries.emit_run_completed(finished_run(engine), send="none", settings=settings, engine=engine)
    # A worker claims the only attempt and dies before sending (lease 0: already over).
    assert DeliveryRecords(engine).claim_attempt(delivery_id, lease_s=0)["attempt_count"] == 1
    time.sleep(0.01)

    assert [d["id"] for d in records.list_deliveries(engine, failed_only=True)] == [delivery_id]
    assert [a["status"] for a in records.list_attempts(engine, delivery_id)] == ["sending"]
    assert deliveries.redeliver(delivery_id, settings=settings, engine=engine) == [delivery_id]
    row = records.get_delivery(engine, delivery_id)
    assert row["status"] == "delivered" and row["attempt_count"] == 2 and len(box.events) == 1


def test_a_run_rejected_for_bad_input_is_announced_too(engine, receivers, monkeypatch):
    """docs/webhooks.md lists a ``run`` failure kind, yet runs rejected for bad input sent nothing.
    The rejected run's event is recorded for the sweep; sent, it verifies and names the reason."""
    from worker import run_start
    from worker.settings import get_settings

    secret = new_secret()
    box = receivers(secret)
    monkeypatch.setenv(
        "RMSML_WEBHOOKS__RECEIVERS", json.dumps([{"name": "rms", "url": box.url(), "secrets": [secret]}])
    )
    get_settings.cache_clear()
    try:
        run_id = str(uuid.uuid4())
        run_start.reject_run(run_id, "hourly", None, trigger="test", error="unknown schedule 'hourly'")
        [row] = records.list_deliveries(engine, run_id=run_id)
        assert row["status"] == "pending"
        deliveries.redeliver(row["id"], engine=engine, settings=get_settings().webhooks, send="inline")
        [request] = box.requests
        data = json.loads(request.body)["data"]
        assert data["status"] == "failed" and data["run_id"] == run_id
        assert data["failed"] == [{"kind": "run", "reason": "unknown schedule 'hourly'"}]
        run_start.reject_run(run_id, "hourly", None, trigger="test", error="again")  # recorded once: nothing new
        assert len(records.list_deliveries(engine, run_id=run_id)) == 1
    finally:
        get_settings.cache_clear()
