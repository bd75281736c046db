#!/usr/bin/env bash
# Every test, against real PostgreSQL and Redis (started or installed when missing).
# The test session builds its databases with `alembic upgrade head` (tests/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/services.sh
exec .venv/bin/python -m pytest "$@"
