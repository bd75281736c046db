"""Real Celery worker, beat and Flower processes for the orchestration tests (no tests here).

Each process starts in its own session (process group) with the test environment (conftest set
the database and Redis URLs), logs to a file, and is waited for with a bound. ``kill()`` can
SIGKILL the whole group, pool children included: a worker dying as a container or machine would.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
QUEUES = "runs,scoring,training"
# The shared workers: one restaurant per shard, and every shard lasts at least a second, so a run
# needs both workers and outlasts a second trigger. One webhook receiver is configured so the
# finishing step records deliveries; nobody consumes the webhooks queue here, so none is sent.
WORKER_ENV = {
    "RMSML_SCHEDULES__SHARD_SIZE": "1",
    "RMSML_TEST_SHARD_PAUSE_S": "1",
    "RMSML_WEBHOOKS__URLS": '["http://127.0.0.1:9/never-called"]',
}


def wait_for(check: Callable[[], object], timeout: float, what: str, interval: float = 0.2):
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # a service still starting
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_exc})" if last_exc else ""))


class Proc:
    def __init__(self, name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        full_env = {**os.environ, **(env or {})}
        full_env.setdefault("PYTHONPATH", str(ROOT))
        self.popen = subprocess.Popen(
            argv, cwd=ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_log(self, needle: str, timeout: float) -> None:
        def seen():
            if not self.alive():
                raise AssertionError(f"{self.name} exited ({self.popen.returncode}):\n{self.log()[-3000:]}")
            return needle in self.log()

        try:
            wait_for(seen, timeout, f"{self.name} to log {needle!r}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- {self.name} log ---\n{self.log()[-3000:]}") from None

    def kill(self) -> None:
        """SIGKILL the process and its pool children at once."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=10)

    def stop(self, grace: float = 10) -> None:
        if self.alive():
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout=grace)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        if self.alive() or _group_alive(self.popen.pid):
            self.kill()
        self._log.close()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def start_workers(names: list[str], log_dir: Path, env: dict[str, str] | None = None, queues: str = QUEUES) -> list[Proc]:
    """Start one single-process worker per name, all at once, and wait until each is ready."""
    procs = []
    for name in names:
        argv = [
            sys.executable, "-m", "celery", "-A", "tests.celery_drill", "worker",
            "-Q", queues, "-c", "1", "-P", "prefork", "-n", f"{name}@%h",
            "--without-gossip", "--without-mingle", "-l", "INFO",
        ]
        procs.append(Proc(name, argv, log_dir, env))
    try:
        for proc in procs:
            proc.wait_log("ready.", timeout=120)
    except BaseException:
        for proc in procs:
            proc.stop(grace=0)
        raise
    return procs


def start_worker(name: str, log_dir: Path, env: dict[str, str] | None = None, queues: str = QUEUES) -> Proc:
    return start_workers([name], log_dir, env, queues)[0]


_shared: list[Proc] = []


def shared_workers(log_dir: Path, env: dict[str, str]) -> list[Proc]:
    """The two workers several test modules use, started once per session and stopped at exit.

    Module fixtures cannot share a session-scoped process without conftest; a module global and
    ``atexit`` can, and save a worker start-up (tens of seconds on a busy machine) per module.
    """
    if not _shared or not all(p.alive() for p in _shared):
        for proc in _shared:
            proc.stop(grace=0)
        _shared[:] = start_workers(["w1", "w2"], log_dir, env)
        atexit.register(stop_shared_workers)
    return list(_shared)


def stop_shared_workers() -> None:
    for proc in _shared:
        proc.stop(grace=5)
    _shared.clear()


def start_beat(log_dir: Path, env: dict[str, str]) -> Proc:
    argv = [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "beat",
        "-s", str(log_dir / "beat-schedule"), "-l", "INFO",
    ]
    proc = Proc("beat", argv, log_dir, env)
    proc.wait_log("beat: Starting", timeout=60)
    return proc


def flush_redis() -> None:
    """Empty the test's broker and result databases (queues, results, run locks)."""
    from worker.settings import get_settings

    broker = get_settings().broker
    for url in (broker.url, broker.result_backend):
        redis.Redis.from_url(url.get_secret_value()).flushdb()


def predictions_count() -> int:
    from sqlalchemy import text

    from worker import db

    with db.predictions_engine().connect() as conn:
        return conn.execute(text("SELECT count(*) FROM m_l_predictions")).scalar_one()


def runs_table() -> list[dict]:
    from sqlalchemy import text

    from worker import db

    with db.predictions_engine().connect() as conn:
        return [dict(r) for r in conn.execute(text("SELECT * FROM ml_run ORDER BY started_at")).mappings()]
