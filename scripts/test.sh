#!/usr/bin/env bash
# `make test`: lint, import boundaries, then the whole suite against real PostgreSQL and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

python scripts/ensure_services.py
scripts/ensure_test_tools.sh  # Chromium and promtool (docs/observability.md)
echo "== ruff"
ruff check .
ruff format --check .
echo "== import-linter"
lint-imports
echo "== pytest"
# A fresh test database every run: --reuse-db (pyproject, for quick runs by hand) would keep
# whatever an interrupted earlier run committed (a killed transactional test never flushes) and
# every later run would start with those rows.
exec pytest --create-db "$@"
