"""The scale bench's two-worker figure (``bench.scale``): the warm daily run on 1 then 2 real
Celery workers of the project's app, on a redis-server of the bench's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime

from bench.scale_common import log


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(proc: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM to the process group this bench started (the worker and its pool), SIGKILL after a grace."""
    import signal

    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    except ProcessLookupError:
        pass


def _wait_log(path: str, needle: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{path}: exited {proc.returncode}")
        with open(path, errors="replace") as fh:
            if needle in fh.read():
                return
        time.sleep(0.3)
    raise TimeoutError(f"{path}: no {needle!r} within {timeout} s")


def celery_runs(as_of: datetime, shard_size: int, workers: tuple[int, ...] = (1, 2)) -> dict:
    # shard_size must be the in-process runs': the registry keeps selections per shard, so other
    # shards would make the first Celery run a cold one.
    """The daily run (warm: the in-process runs left their selections) on 1, then 2 real Celery
    workers of the project's app (``-A worker.celery_app``, queues runs and scoring, one process
    each, prefork), triggered as an admin does (``python -m worker trigger --wait``), on a
    redis-server of the bench's own (spare port, no persistence): wall time from the trigger to the
    finish task's record. Shard size ``shard_size`` for these runs (enough shards for two workers)."""
    import shutil

    redis_bin = shutil.which("redis-server")
    if not redis_bin:
        return {"speedup": None, "reason": "no redis-server on PATH"}
    tmp = tempfile.mkdtemp(prefix="bench-scale-celery-")
    port = _free_port()
    redis_proc = subprocess.Popen(
        [redis_bin, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp],
        stdout=open(os.path.join(tmp, "redis.log"), "w"), stderr=subprocess.STDOUT, start_new_session=True)
    env = {**os.environ, "RMSML_BROKER__URL": f"redis://127.0.0.1:{port}/0",
           "RMSML_BROKER__RESULT_BACKEND": f"redis://127.0.0.1:{port}/1",
           "RMSML_SCHEDULES__SHARD_SIZE": str(shard_size), "RMSML_LOG_LEVEL": "WARNING"}
    out: dict = {"shard_size": shard_size, "walls_s": {}}
    try:
        import redis

        client = redis.Redis(port=port, socket_connect_timeout=1)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.1)
        for n in workers:
            procs = []
            try:
                for i in range(n):
                    logf = os.path.join(tmp, f"w{n}-{i}.log")
                    procs.append((subprocess.Popen(
                        [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-Q", "runs,scoring",
                         "-c", "1", "-P", "prefork", "-n", f"scale{n}-{i}@%h", "--without-gossip", "--without-mingle",
                         "-l", "INFO"],
                        env=env, stdout=open(logf, "w"), stderr=subprocess.STDOUT, start_new_session=True), logf))
                for proc, logf in procs:
                    _wait_log(logf, "ready.", proc, 180)
                log(f"daily on {n} Celery worker(s) ...")
                started = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-m", "worker", "trigger", "--schedule", "daily", "--as-of", as_of.isoformat(),
                     "--wait", "--timeout", "1800"], env=env, capture_output=True, text=True)
                wall = time.perf_counter() - started
                if done.returncode != 0:
                    raise RuntimeError(f"trigger exit {done.returncode}: {done.stderr[-500:]}")
                record = json.loads(done.stdout)
                out["walls_s"][str(n)] = round(wall, 1)
                out.setdefault("shards_overlap", {})[str(n)] = _shard_overlap(record.get("run_id") or record.get("id"))
                log(f"daily on {n} Celery worker(s): {wall:.1f} s, status {record.get('status')}")
            finally:
                for proc, _ in procs:
                    _stop(proc)
        walls = out["walls_s"]
        out["speedup"] = round(walls["1"] / walls["2"], 2) if "1" in walls and "2" in walls else None
    except Exception as exc:  # the figure is then missing, with why; the rest of the bench stands
        out.update(speedup=None, reason=f"{type(exc).__name__}: {exc}"[:300])
    finally:
        _stop(redis_proc, grace=5)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _shard_overlap(run_id: str | None) -> dict:
    """How the run's shards overlapped: summed shard seconds over the span from the first shard's
    start to the last one's end (1.0 = one at a time, 2.0 = two all along), and per worker process."""
    from sqlalchemy import text

    from worker import db

    if not run_id:
        return {}
    with db.predictions_engine().connect() as conn:
        rows = conn.execute(text("SELECT started_at, finished_at FROM ml_run_shard WHERE run_id = :id"),
                            {"id": run_id}).all()
    rows = [(a, b) for a, b in rows if a and b]
    if not rows:
        return {}
    span = (max(b for _, b in rows) - min(a for a, _ in rows)).total_seconds()
    busy = sum((b - a).total_seconds() for a, b in rows)
    return {"shards": len(rows), "span_s": round(span, 1), "busy_s": round(busy, 1),
            "parallelism": round(busy / span, 2) if span else None}
