#!/usr/bin/env bash
# Install everything into .venv and run every check: lint, format, types, the whole test suite.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh tests/cli -x`).
# Tests that need Ray start and stop their own cluster on loopback addresses.
set -euo pipefail
source "$(dirname "$0")/_venv.sh"

echo "+ ruff check ." >&2
.venv/bin/ruff check .
echo "+ ruff format --check ." >&2
.venv/bin/ruff format --check .
echo "+ mypy" >&2
.venv/bin/mypy
echo "+ pytest $*" >&2
# No `|| true` anywhere: any failure, including pytest's exit 5 (no tests collected), fails the run.
.venv/bin/pytest "$@"
