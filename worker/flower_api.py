"""Flower's task API, with a caller's argument mistake answered 400 naming it.

Flower hands ``/api/task/apply`` and ``/api/task/async-apply`` arguments straight to
``Task.apply_async``, whose argument check raises ``TypeError`` for an unknown keyword or too many
arguments; Flower's blocking runner turns that into an HTTP 500 with an empty body, so an admin's typo looked like
a server fault and said nothing. Loaded into Flower through its configuration file
(``worker/flower_conf.py``, passed as ``--conf`` by ``worker.celery_app.flower_command``).
"""

from __future__ import annotations

from flower.api import tasks as task_api
from tornado.web import HTTPError


def answer_argument_errors() -> None:
    """Wrap the apply handlers once: ``TypeError`` from the argument check -> 400 with its text."""
    for handler in (task_api.TaskApply, task_api.TaskAsyncApply):
        original = handler.post
        if getattr(original, "_rmsml_checked", False):
            continue

        async def post(self, taskname, *args, _original=original, **kwargs):
            try:
                return await _original(self, taskname, *args, **kwargs)
            except (TypeError, HTTPError) as exc:
                # Flower's blocking runner turns the TypeError into a bare HTTPError(500) from it
                cause = exc if isinstance(exc, TypeError) else exc.__cause__
                if not isinstance(cause, TypeError) or (isinstance(exc, HTTPError) and exc.status_code != 500):
                    raise
                raise HTTPError(400, f"bad arguments for {taskname}: {cause}".replace("%", "%%")) from None

        post._rmsml_checked = True
        handler.post = post
