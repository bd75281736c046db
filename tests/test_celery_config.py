"""Celery configuration and the run lock, checked without a worker."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest
import redis

from tests.conftest import cleared_run_lock
from worker.celery_app import app
from worker.locks import RunLock
from worker.queues import Queue
from worker.settings import get_settings


def test_json_only_late_acks_and_one_message_at_a_time():
    conf = app.conf
    assert conf.task_serializer == conf.result_serializer == "json"
    assert list(conf.accept_content) == ["json"] and list(conf.result_accept_content) == ["json"]
    assert conf.task_acks_late is True and conf.worker_prefetch_multiplier == 1
    assert conf.result_expires == get_settings().broker.result_expires_s > 0
    assert conf.broker_transport_options["visibility_timeout"] > get_settings().tasks.shard_time_limit_s


def test_queues_declared_once_and_every_task_routed_with_limits():
    conf = app.conf
    assert sorted(q.name for q in conf.task_queues) == sorted(q.value for q in Queue)
    assert conf.task_default_queue == Queue.RUNS.value and conf.task_create_missing_queues is False
    app.loader.import_default_modules()
    ours = {n: t for n, t in app.tasks.items() if n.startswith("rmsml.")}
    assert {"rmsml.runs.start", "rmsml.runs.shard", "rmsml.runs.finish", "rmsml.webhooks.deliver"} <= set(ours)
    for name, task in ours.items():
        # routed by task_routes (the per-task ``queue`` attribute goes in Celery 6)
        routed = app.amqp.router.route({}, name)["queue"].name
        assert routed in {q.value for q in Queue}, name
        assert task.soft_time_limit < task.time_limit, name
        assert task.acks_late is not False
        assert not getattr(task, "autoretry_for", ()), "retries go through tasks.base.retry_transient only"
        assert getattr(task.__wrapped__, "retries_transient", False), name  # tasks.base.retry_transient
        assert task.retry_jitter and task.retry_backoff
    assert app.amqp.router.route({}, "rmsml.runs.shard")["queue"].name == Queue.SCORING.value
    assert app.amqp.router.route({}, "rmsml.webhooks.deliver")["queue"].name == Queue.WEBHOOKS.value


def test_a_task_without_a_route_or_with_limits_upside_down_is_refused():
    from tasks.base import task

    with pytest.raises(ValueError, match="no route"):
        task("other.thing", soft_time_limit=1, time_limit=2)
    with pytest.raises(ValueError, match="below time_limit"):
        task("rmsml.runs.start", soft_time_limit=5, time_limit=5)


def test_visibility_timeout_below_the_shard_limit_is_refused_at_load(tmp_path):
    env = {"RMSML_BROKER__VISIBILITY_TIMEOUT_S": "60", "RMSML_TASKS__SHARD_TIME_LIMIT_S": "120", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", "import celeryconfig"], env=env, capture_output=True, text=True,
                          cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]), timeout=60)
    assert done.returncode != 0 and "visibility_timeout_s (60) must exceed" in done.stderr


@pytest.fixture()
def lock():
    with cleared_run_lock("test-schedule") as lk:
        yield lk


def test_lock_admits_one_run_per_schedule_and_reenters_for_the_holder(lock):
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    assert lock.acquire("test-schedule", a).acquired
    second = lock.acquire("test-schedule", b)
    assert not second.acquired and second.holder == a
    assert lock.acquire("test-schedule", a).acquired  # redelivered start of the same run
    assert not lock.release("test-schedule", b) and lock.holder("test-schedule") == a  # not b's to free
    assert lock.release("test-schedule", a) and lock.holder("test-schedule") is None
    assert lock.acquire("test-schedule", b).acquired


def test_a_stale_lock_expires_and_a_late_release_does_not_free_the_next_run(lock):
    short = RunLock(lock.client, ttl_s=0.3)
    dead, nxt = str(uuid.uuid4()), str(uuid.uuid4())
    assert short.acquire("test-schedule", dead).acquired
    time.sleep(0.5)
    assert short.acquire("test-schedule", nxt).acquired  # the dead run's lock lapsed
    assert not short.refresh("test-schedule", dead) and not short.release("test-schedule", dead)
    assert short.holder("test-schedule") == nxt
    assert short.refresh("test-schedule", nxt) and 0 < lock.client.pttl(short.key("test-schedule")) <= 300


def test_lock_lives_in_the_brokers_redis():
    assert isinstance(RunLock.from_settings().client, redis.Redis)
    assert RunLock.from_settings().client.connection_pool.connection_kwargs["db"] == int(
        get_settings().broker.url.get_secret_value().rsplit("/", 1)[1])


def test_trigger_with_the_broker_unreachable_says_so_and_starts_nothing():
    """It waited ~26 s and ended in a traceback with exit 1 ("run failed") although nothing started."""
    import os
    from pathlib import Path

    env = {**os.environ, "RMSML_BROKER__URL": "redis://:secret-pw@127.0.0.1:1/0"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "worker", "trigger", "--schedule", "daily"], env=env,
                          capture_output=True, text=True, cwd=str(Path(__file__).resolve().parents[1]), timeout=60)
    assert done.returncode == 2, done.stderr
    assert "broker unreachable at redis://127.0.0.1:1/0" in done.stderr
    assert "secret-pw" not in done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - started < 20
