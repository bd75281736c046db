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


# ------------------------------------------------------------ servers of a drill's own (test_faults)
def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_pg_bin() -> Path | None:
    """The directory of initdb/pg_ctl (15+), found as scripts/services.sh finds PostgreSQL: on the
    PATH, else the OS packages' /usr/lib/postgresql/<version>/bin, newest first."""
    import shutil

    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    for bindir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name, reverse=True):
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    return None


class PgCluster:
    """A PostgreSQL cluster of one test's own: initdb into a new temporary directory, on ``port``
    (TCP 127.0.0.1 and a socket in that directory), trust auth, no fsync. It can be restarted and
    have connections terminated without touching the session's server. As root, the server runs
    as ``postgres`` (PostgreSQL refuses to run as root), so the directory is made in the system's
    temporary folder and given to that user. ``cleanup()`` stops it and removes the directory."""

    def __init__(self, bindir: Path, port: int | None = None):
        import shutil
        import tempfile

        self.bindir, self.port = bindir, port or free_port()
        self.base = Path(tempfile.mkdtemp(prefix="rmsml-faults-pg-"))
        self.data = self.base / "data"
        self.log_path = self.base / "postgres.log"
        self.user = "postgres" if os.geteuid() == 0 else None
        atexit.register(self.cleanup)
        if self.user:
            shutil.chown(self.base, user=self.user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync", timeout=120)

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        done = subprocess.run([str(self.bindir / tool), *args], capture_output=True, text=True,
                              timeout=timeout, user=self.user, cwd=self.base)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({done.returncode}): {done.stdout}{done.stderr}\n"
                               f"{self.log()[-2000:]}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def _options(self) -> str:
        return (f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", self._options(), "-w", "-t", "60",
                  "start", timeout=90)

    def restart(self) -> None:
        """Fast restart: open connections are cut, in-flight transactions rolled back."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", self._options(), "-m", "fast",
                  "-w", "-t", "60", "restart", timeout=90)

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """Stop the server, whatever it takes; safe to call twice (also registered with atexit)."""
        if self.postmaster_pid() is None:
            return
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop", timeout=40)
        except Exception:
            pid = self.postmaster_pid()
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def cleanup(self) -> None:
        import shutil

        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


class RedisServer:
    """A redis-server of one test's own on ``port``, its append-only file in ``base`` (so a
    restart keeps queued and unacknowledged messages, as the compose service does), or none
    (``appendonly=False``: a restart loses everything, as a broker that lost its memory)."""

    def __init__(self, base: Path, binary: str, port: int | None = None, appendonly: bool = True):
        self.base, self.binary, self.port = base, binary, port or free_port()
        self.appendonly = appendonly
        self.proc: Proc | None = None
        self._starts = 0
        atexit.register(self.stop)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self._starts += 1
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.base),
                "--save", "", "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always"]
        self.proc = Proc(f"redis-{self._starts}", argv, self.base)
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        try:
            wait_for(client.ping, 20, f"redis-server on port {self.port}")
        finally:
            client.close()

    def stop(self) -> None:
        """SIGTERM (Redis writes its append-only file and exits), SIGKILL after a grace."""
        if self.proc is not None:
            self.proc.stop(grace=10)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
