#!/usr/bin/env bash
# `make run`: services, migrations, roles, demo data, then every Procfile process in the
# foreground, each under scripts/supervise.py (a process that exits is started again).
# Ctrl-C stops them all, and the project-local PostgreSQL/Redis this run started (if any).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-payments_platform.settings.base}"
export DEBUG="${DEBUG:-1}"
# Where the API listens (gunicorn.conf.py reads API_BIND) and the URL the platform gives out for
# itself (3DS return URLs, the simulator's webhooks)
export API_BIND="${API_BIND:-127.0.0.1:8000}"
export API_BASE_URL="${API_BASE_URL:-http://$API_BIND}"
# The simulator listens where SIMULATOR_URL points: the platform allows it as the test-mode
# "simulator" endpoint of connectors (the demo connectors use it), and every process below
# (migrate, seed_demo, web, worker, beat) reads the same value.
export SIMULATOR_URL="${SIMULATOR_URL:-http://127.0.0.1:8090}"
simulator_hostport="${SIMULATOR_URL#*://}"
export SIMULATOR_BIND="${SIMULATOR_BIND:-${simulator_hostport%%/*}}"

mkdir -p .local
# Prometheus multiprocess mode (docs/observability.md): every gunicorn worker and Celery
# process writes its samples under this directory and /metrics merges them; it must be empty
# when the processes start, or the counters of an earlier run would be summed in.
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-$PWD/.local/prometheus-multiproc}"
rm -rf "$PROMETHEUS_MULTIPROC_DIR"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
started=".local/run-started-services"
rm -f "$started"
stop_started_services() {
  # only what this run started: a server that was already answering is left alone
  if [ -s "$started" ]; then
    python scripts/ensure_services.py --stop --only-listed "$started" || true
  fi
  rm -f "$started"
}
trap stop_started_services EXIT

python scripts/ensure_services.py --record-started "$started"
python manage.py migrate --no-input -v 0
python manage.py bootstrap_roles -v 0
python manage.py bootstrap_schedules -v 0
python manage.py collectstatic --no-input -v 0
seed_json="$(python manage.py seed_demo --json)"
python scripts/print_banner.py "$seed_json"

# honcho runs in the background so that this shell can wait for it, then stop the services.
# Ctrl-C reaches honcho directly (same process group); a SIGTERM/SIGHUP sent to this script is
# passed on to it. Either way honcho stops every process, waits for them, and exits.
honcho start -f Procfile &
honcho_pid=$!
trap 'kill -TERM "$honcho_pid" 2>/dev/null || true' TERM HUP
trap ':' INT
status=0
while kill -0 "$honcho_pid" 2>/dev/null; do
  wait "$honcho_pid" && status=0 || status=$?
done
exit "$status"
