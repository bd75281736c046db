"""Flower's real HTTP API in front of real workers: basic auth from settings, async-apply, state."""

from __future__ import annotations

import socket
import sys

import httpx
import pytest

from tests.celery_harness import WORKER_ENV, Proc, flush_redis, runs_table, shared_workers, wait_for
from worker.celery_app import flower_command
from worker.settings import get_settings

AS_OF = "2026-10-31T04:15:00Z"
START = "rmsml.runs.start"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def flower(seeded_replica, predictions_url, tmp_path_factory):
    flush_redis()
    shared_workers(tmp_path_factory.mktemp("celery-workers"), WORKER_ENV)
    port = _free_port()
    argv, env = flower_command(port=port, address="127.0.0.1")
    assert "FLOWER_BASIC_AUTH" in env and not any("change-me" in a for a in argv)  # password not in argv
    assert argv[0] == "celery"
    proc = Proc("flower", [sys.executable, "-m", *argv], tmp_path_factory.mktemp("flower"), env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{base}/healthcheck", timeout=2).status_code == 200, 60, "flower to answer")
        yield base
    finally:
        proc.stop(grace=5)


@pytest.fixture()
def admin():
    f = get_settings().flower
    return httpx.Client(auth=(f.user, f.password.get_secret_value()), timeout=10)


def _result(admin: httpx.Client, base: str, task_id: str) -> dict:
    def done():
        body = admin.get(f"{base}/api/task/result/{task_id}").json()
        return body if body["state"] in ("SUCCESS", "FAILURE") else None

    return wait_for(done, 90, f"task {task_id} to finish", interval=0.5)


def test_api_refuses_callers_without_the_configured_credentials(flower, clean_predictions):
    assert httpx.get(f"{flower}/api/workers", timeout=10).status_code == 401
    assert httpx.get(f"{flower}/api/workers", auth=("admin", "wrong"), timeout=10).status_code == 401
    assert httpx.post(f"{flower}/api/task/async-apply/{START}", json={"kwargs": {"schedule": "monthly"}},
                      timeout=10).status_code == 401
    assert runs_table() == []


def test_async_apply_triggers_a_run_and_its_state_is_readable(flower, admin, clean_predictions):
    response = admin.post(
        f"{flower}/api/task/async-apply/{START}",
        json={"kwargs": {"schedule": "monthly", "restaurant_ids": [1, 2], "as_of": AS_OF, "trigger": "flower"}},
    )
    assert response.status_code == 200, response.text
    task_id = response.json()["task-id"]

    started = _result(admin, flower, task_id)
    assert started["state"] == "SUCCESS" and started["result"]["status"] == "started"
    run_id = started["result"]["run_id"]
    finished = _result(admin, flower, started["result"]["finish_task_id"])
    assert finished["state"] == "SUCCESS"
    assert finished["result"]["id"] == run_id and finished["result"]["restaurant_ids"] == [1, 2]
    # Flower's own view from worker events knows the task, its name and where it ran.
    info = wait_for(lambda: (lambda r: r.json() if r.status_code == 200 and r.json().get("state") == "SUCCESS" else None)(
        admin.get(f"{flower}/api/task/info/{task_id}")), 30, "flower to record the task's events")
    assert info["name"] == START and info["worker"].split("@")[0] in ("w1", "w2")
    [record] = runs_table()
    assert str(record["id"]) == run_id and record["trigger"] == "flower" and record["status"] == finished["result"]["status"]


def test_bad_input_through_flower_is_a_failed_task_with_a_clear_error(flower, admin, clean_predictions):
    response = admin.post(f"{flower}/api/task/async-apply/{START}", json={"kwargs": {"schedule": "hourly"}})
    assert response.status_code == 200
    failed = _result(admin, flower, response.json()["task-id"])
    assert failed["state"] == "FAILURE"
    assert "unknown schedule 'hourly'" in str(failed["result"])
    [record] = runs_table()
    assert record["status"] == "failed" and "unknown schedule" in record["error"]
    # A body that is not JSON never reaches a worker.
    bad = admin.post(f"{flower}/api/task/async-apply/{START}", content=b"schedule=daily",
                     headers={"content-type": "application/json"})
    assert bad.status_code == 400
    assert len(runs_table()) == 1
