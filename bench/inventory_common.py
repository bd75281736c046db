"""What the inventory bench's pieces share: the scope of a replayed run, the ground truth as a dict."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

STOCKOUT_NOTICE_DAYS = 2
LEAD_HOLDOUT_DAYS = 60


def _scope(restaurants: pd.DataFrame, as_of: pd.Timestamp):
    from core.units import Scope
    from worker.settings import get_settings

    return Scope("bench", "daily", as_of, restaurants.reset_index(drop=True), get_settings().forecast,
                 Path("/tmp/rmsml-bench-models"), datetime.now(timezone.utc))


def _truth(ground_truth) -> dict:
    return ground_truth if isinstance(ground_truth, dict) else ground_truth.to_dict()
