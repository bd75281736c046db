"""The Celery app the tests' worker processes load (``celery -A tests.celery_drill worker``):
the production app, with every shard slowed by ``RMSML_TEST_SHARD_PAUSE_S`` seconds.

Why: the orchestration tests must kill a worker mid-shard, and need a run to outlast a second
trigger, deterministically. The pause wraps ``worker.runs.run_shard`` here, in the test process
tree only, so production tasks carry no test hook.
"""

from __future__ import annotations

import os
import time

from worker import runs
from worker.celery_app import app

PAUSE_S = float(os.environ.get("RMSML_TEST_SHARD_PAUSE_S", "0") or 0)

if PAUSE_S > 0:
    _run_shard = runs.run_shard

    def _paused_run_shard(*args, **kwargs):  # noqa: ANN002, ANN003 - same signature as runs.run_shard
        time.sleep(PAUSE_S)
        return _run_shard(*args, **kwargs)

    runs.run_shard = _paused_run_shard

__all__ = ["app"]
