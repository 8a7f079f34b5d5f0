#!/usr/bin/env bash
# `make run`: services, migrations, roles, demo data, then every Procfile process in the
# foreground. Ctrl-C stops them all (honcho forwards the signal).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-payments_platform.settings.base}"
export DEBUG="${DEBUG:-1}"
# The simulator's address, where the Procfile binds it: the platform allows it as the test-mode
# "simulator" endpoint of connectors (the demo connectors use it), and every process below
# (migrate, seed_demo, web, worker, beat) reads the same value.
export SIMULATOR_URL="http://127.0.0.1:8090"

python scripts/ensure_services.py
python manage.py migrate --no-input -v 0
python manage.py bootstrap_roles -v 0
python manage.py bootstrap_schedules -v 0
python manage.py collectstatic --no-input -v 0
seed_json="$(python manage.py seed_demo --json)"
python scripts/print_banner.py "$seed_json"
exec honcho start -f Procfile
