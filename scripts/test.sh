#!/usr/bin/env bash
# `make test`: lint, import boundaries, then the whole suite against real PostgreSQL and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

python scripts/ensure_services.py
echo "== ruff"
ruff check .
ruff format --check .
echo "== import-linter"
lint-imports
echo "== pytest"
exec pytest "$@"
