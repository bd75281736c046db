"""A caller's argument mistake through Flower's API is a 4xx naming it (issue 25, item 5).

Before: an unknown keyword or too many arguments to ``async-apply`` answered HTTP 500 with an
empty body. No worker is needed: the arguments are checked before anything is sent.
"""

from __future__ import annotations

import socket
import sys

import httpx
import pytest

from tests.celery_harness import Proc, runs_table, wait_for
from worker.celery_app import flower_command
from worker.settings import get_settings

START = "rmsml.runs.start"


@pytest.fixture(scope="module")
def flower(predictions_url, tmp_path_factory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv, env = flower_command(port=port, address="127.0.0.1")
    proc = Proc("flower", [sys.executable, "-m", *argv], tmp_path_factory.mktemp("flower"), env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{base}/healthcheck", timeout=2).status_code == 200, 60, "flower to answer")
        yield base
    finally:
        proc.stop(grace=5)


@pytest.mark.parametrize(("endpoint", "body", "named"), [
    ("async-apply", {"kwargs": {"schedule": "daily", "no_such_option": 1}}, "no_such_option"),
    ("async-apply", {"args": ["daily", None, None, "flower", None, False, "one too many"]}, "positional"),
    ("apply", {"kwargs": {"shedule": "daily"}}, "shedule"),
])
def test_argument_mistakes_are_400_naming_the_problem_and_start_nothing(flower, clean_predictions, endpoint, body,
                                                                         named):
    f = get_settings().flower
    with httpx.Client(auth=(f.user, f.password.get_secret_value()), timeout=10) as admin:
        response = admin.post(f"{flower}/api/task/{endpoint}/{START}", json=body)
    assert response.status_code == 400, (response.status_code, response.text)
    assert START in response.text and named in response.text, response.text
    assert runs_table() == []
