#!/usr/bin/env bash
# The main job on the embedded default: no servers to install.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python -m worker demo "$@"
