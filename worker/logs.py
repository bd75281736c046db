"""Logging for the command line (and whatever else calls ``setup_logging``): one place for the format
and for the third-party noise we silence.

``RMSML_LOG_FORMAT=text`` (the default) writes ``time LEVEL logger: message`` lines;
``RMSML_LOG_FORMAT=json`` writes one JSON object per log event and line, for a log shipper. Context
a log call passes with ``extra=`` under a name in ``CONTEXT_FIELDS`` (run id, shard, unit, seconds,
rows) becomes a field of its own::

    log.info("shard %d done", n, extra={"run_id": run_id, "shard": n, "seconds": 4.2, "rows": 336})

Standard library only: a formatter is a dozen lines, not a dependency.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from datetime import datetime, timezone

# Fields a log call may supply with ``extra=``; the JSON formatter emits those present, in this order.
CONTEXT_FIELDS = ("run_id", "shard", "unit", "seconds", "rows")

# Warnings raised inside third-party code about its own use of another library or of the machine:
# nothing in this project can act on them, and they drown the output (hundreds per test session).
# As ``(category, message regex, module regex)``; the same list is in pyproject.toml's pytest
# ``filterwarnings``.
KNOWN_THIRD_PARTY_WARNINGS = (
    # prophet 1.5 calls pandas APIs pandas 3.1 deprecates (DataFrame.drop(inplace=True),
    # read_json(convert_dates=)): pandas.errors.Pandas4Warning, a DeprecationWarning
    (DeprecationWarning, r"", r"prophet\."),
    # pgserver asks platformdirs for a runtime dir at import; without a login session there is no
    # XDG_RUNTIME_DIR and platformdirs warns (platformdirs.api.RuntimeDirWarning) before using /tmp
    (UserWarning, r"XDG_RUNTIME_DIR is not set", r"platformdirs\."),
)
# Loggers that narrate at INFO what only matters when it fails (pgserver: every initdb/pg_ctl output).
CHATTY_LOGGERS = ("alembic", "pgserver")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, context fields,
    and the traceback as a string when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        event = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            if name in record.__dict__:
                event[name] = record.__dict__[name]
        if record.exc_info:
            event["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            event["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(event, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def formatter(log_format: str) -> logging.Formatter:
    """The formatter for a ``log_format`` setting: ``json`` or ``text``."""
    if log_format == "json":
        return JsonFormatter()
    if log_format == "text":
        return logging.Formatter(TEXT_FORMAT)
    raise ValueError(f"log_format must be 'text' or 'json', not {log_format!r}")


def filter_known_warnings() -> None:
    """Ignore the deprecation warnings third-party packages raise about their own dependencies."""
    for category, message, module in KNOWN_THIRD_PARTY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)


def setup_logging(level: str | int | None = None, log_format: str | None = None, stream=None) -> None:
    """Configure the root logger once per process (a second call changes nothing, as basicConfig)."""
    if level is None or log_format is None:
        from worker.settings import get_settings

        settings = get_settings()
        level = settings.log_level if level is None else level
        log_format = settings.log_format if log_format is None else log_format
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(log_format))
    logging.basicConfig(level=level, handlers=[handler])
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    filter_known_warnings()
