"""The run lock: at most one run per schedule at a time, whoever triggers it.

Why a lock at all: beat can fire twice (two beat processes, a restart replaying a missed slot, a
DST double fire), an admin can trigger from Flower while the nightly run is going, and a start
message can be redelivered. Each of those must not start a second concurrent run.

Why Redis ``SET key value NX PX ttl`` rather than PostgreSQL: the lock must expire on its own when
every worker of a run died (nobody is left to release it), and the broker's Redis is already
required by every process that can trigger a run. The lock's value is the run id that holds it, so

- a redelivered start message (same task id, so same run id) re-enters its own lock;
- release and refresh are compare-and-set (Lua), so a run whose lock lapsed never deletes or
  extends the lock of the run that followed it;
- every shard refreshes the expiry, so the TTL only needs to outlast one shard
  (``settings.tasks.run_lock_ttl_s``), not a whole run.

Keyed per schedule (``rmsml:run-lock:<schedule>``): a manual run of the daily schedule for one
restaurant also waits for the nightly daily run, since both would write the same rows.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass

import redis

from worker.settings import Settings, get_settings

KEY_PREFIX = "rmsml:run-lock:"
DISPATCH_PREFIX = "rmsml:run-dispatched:"
HEARTBEAT_PREFIX = "rmsml:run-heartbeat:"

# Delete or extend only if we still hold it: GET then DEL/PEXPIRE would race with expiry.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
# Hand a lock from a holder known dead to a new run, only if the dead one still holds it.
_TAKE_OVER = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) "
    "else return 0 end"
)
_REFRESH = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) "
    "else return 0 end"
)


@dataclass(frozen=True)
class LockResult:
    acquired: bool
    holder: str | None  # the run id holding the lock now (ours when acquired)


class RunLock:
    """One lock per schedule in Redis, held by a run id, expiring unless refreshed."""

    def __init__(self, client: redis.Redis, ttl_s: int):
        self.client = client
        self.ttl_ms = int(ttl_s * 1000)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "RunLock":
        settings = settings or get_settings()
        client = redis.Redis.from_url(
            settings.broker.url.get_secret_value(), socket_timeout=10, socket_connect_timeout=5, decode_responses=True
        )
        return cls(client, settings.tasks.run_lock_ttl_s)

    @staticmethod
    def key(schedule: str) -> str:
        return KEY_PREFIX + schedule

    def acquire(self, schedule: str, run_id: str) -> LockResult:
        """Take the schedule's lock for ``run_id``; re-entrant for the run that holds it."""
        key = self.key(schedule)
        if self.client.set(key, run_id, nx=True, px=self.ttl_ms):
            return LockResult(True, run_id)
        holder = self.client.get(key)
        if holder == run_id:
            self.refresh(schedule, run_id)
            return LockResult(True, run_id)
        if holder is None:  # expired between SET and GET: try once more
            if self.client.set(key, run_id, nx=True, px=self.ttl_ms):
                return LockResult(True, run_id)
            holder = self.client.get(key)
        return LockResult(False, holder)

    def refresh(self, schedule: str, run_id: str) -> bool:
        """Push the expiry out again; False when the lock is no longer ours."""
        return bool(self.client.eval(_REFRESH, 1, self.key(schedule), run_id, self.ttl_ms))

    def release(self, schedule: str, run_id: str) -> bool:
        """Free the lock if ``run_id`` holds it; False when it had lapsed or moved on."""
        return bool(self.client.eval(_RELEASE, 1, self.key(schedule), run_id))

    def take_over(self, schedule: str, dead_holder: str, run_id: str) -> bool:
        """Compare-and-swap: the lock passes from ``dead_holder`` to ``run_id`` only if the dead
        holder still has it (two starts racing for it: one wins, the other sees the winner)."""
        return bool(self.client.eval(_TAKE_OVER, 1, self.key(schedule), dead_holder, run_id, self.ttl_ms))

    def beat(self, run_id: str) -> None:
        """An in-process holder is alive now (``Heartbeat`` calls this every few seconds).

        Why: a run in one process (``worker run``, cron-only installs) has no broker to redeliver
        its work; when it is SIGKILLed its lock would block the schedule for the lock's TTL (hours)
        and its run record would look busy for a shard's time limit. Its silence says it died.
        """
        self.client.set(HEARTBEAT_PREFIX + run_id, f"{time.time():.3f}", px=self.ttl_ms)

    def silent_for(self, run_id: str) -> float | None:
        """Seconds since ``run_id`` last beat; None for a holder that never beat (a Celery run,
        whose liveness its shards' records tell)."""
        raw = self.client.get(HEARTBEAT_PREFIX + run_id)
        return None if raw is None else max(0.0, time.time() - float(raw))

    def stop_beating(self, run_id: str) -> None:
        self.client.delete(HEARTBEAT_PREFIX + run_id)

    def dispatched(self, start_task_id: str) -> dict | None:
        """What an earlier delivery of this start message dispatched, if it got that far.

        A start message is acknowledged late, so a worker lost after fanning the shards out gets
        the same message delivered again; re-entering the run is safe, but sending its shards a
        second time would compute every shard twice.
        """
        raw = self.client.get(DISPATCH_PREFIX + start_task_id)
        return json.loads(raw) if raw else None

    def mark_dispatched(self, start_task_id: str, result: dict, ttl_s: int) -> None:
        """Remember a start message's dispatch for as long as the broker may redeliver it."""
        self.client.set(DISPATCH_PREFIX + start_task_id, json.dumps(result), ex=int(ttl_s))

    def holder(self, schedule: str) -> str | None:
        return self.client.get(self.key(schedule))


class Heartbeat:
    """While a run executes in this process: beat and keep its lock fresh every ``interval_s``.

    A daemon thread, so a long shard (one model fit can take minutes) neither lets the lock lapse
    nor looks dead; a SIGKILL stops the beats with the process, and after ``stranded_after_s`` of
    silence the next start takes the lock over (``worker.run_start.begin_locked``).
    """

    def __init__(self, lock: RunLock, schedule: str, run_id: str, interval_s: float):
        self.lock, self.schedule, self.run_id, self.interval_s = lock, schedule, run_id, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{run_id[:8]}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.lock.beat(self.run_id)
                self.lock.refresh(self.schedule, self.run_id)
            except redis.exceptions.RedisError as exc:  # the run goes on; a missed beat is only late
                logging.getLogger(__name__).warning("run %s: heartbeat missed (%s)", self.run_id, exc)

    def __enter__(self) -> "Heartbeat":
        self.lock.beat(self.run_id)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 5)
        try:
            self.lock.stop_beating(self.run_id)
        except redis.exceptions.RedisError:
            pass  # the key expires with the lock's TTL
