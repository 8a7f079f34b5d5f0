#!/usr/bin/env bash
# `make bench`: the payment-path benchmark against the stack as production runs it, then the
# other benchmarks under bench/ when present, then one combined summary. See docs/benchmarks.md.
#
# Own database (recreated each run), own Redis database, own ports: demo data and a running
# `make run` are untouched. Everything started here is stopped on exit (trap EXIT).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
export PATH="$ROOT/.venv/bin:$PATH"
PY="$ROOT/.venv/bin/python"

# --- configuration (all overridable from the environment) ---------------------------------------
BENCH_DB="${BENCH_DB:-payments_platform_bench}"
PG_BASE="${BENCH_PG_BASE:-postgres://postgres@127.0.0.1:5432}"
BENCH_API_PORT="${BENCH_API_PORT:-18000}"
BENCH_SIM_PORT="${BENCH_SIM_PORT:-18090}"
BENCH_WARMUP="${BENCH_WARMUP:-5}"
BENCH_DURATION="${BENCH_DURATION:-20}"
BENCH_CLIENTS_A="${BENCH_CLIENTS_A:-8}"
BENCH_CLIENTS_B="${BENCH_CLIENTS_B:-64}"
BENCH_SCENARIOS="${BENCH_SCENARIOS:-F A A1 B Bo}"
BENCH_FLOOR_PORT="${BENCH_FLOOR_PORT:-18001}"
BENCH_RATE_OPEN="${BENCH_RATE_OPEN:-120}"     # Bo: payments arriving per second
BENCH_PROFILE_PAYMENTS="${BENCH_PROFILE_PAYMENTS:-100}"
BENCH_QUIET_WAIT="${BENCH_QUIET_WAIT:-20}"  # s a scenario waits for a busy machine to calm down
BENCH_OTHERS="${BENCH_OTHERS:-1}"            # 0: skip ledger/routing/webhooks benches
BENCH_OTHER_TIMEOUT="${BENCH_OTHER_TIMEOUT:-300}"

# gunicorn: 2 processes (one per core; the GIL caps a process at one core of Python) x 32
# threads. Threads, not more processes, cover the PSP wait: 64 clients each waiting ~200 ms on
# the PSP need 64 requests in flight, and an idle thread costs only memory. See docs/benchmarks.md.
export WEB_WORKERS="${WEB_WORKERS:-2}"
export WEB_THREADS="${WEB_THREADS:-32}"
# psycopg pool per gunicorn process. Django keeps a thread's connection for its whole request,
# PSP call included, so the pool must cover every thread or requests queue for a connection.
export DB_POOL=1
export DB_POOL_MIN="${DB_POOL_MIN:-4}"
export DB_POOL_MAX="${DB_POOL_MAX:-$WEB_THREADS}"
CELERY_CONCURRENCY="${BENCH_CELERY_CONCURRENCY:-2}"

export DATABASE_URL="$PG_BASE/$BENCH_DB"
export REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:6379/13}"
export CELERY_BROKER_URL="$REDIS_URL"
export API_BASE_URL="http://127.0.0.1:$BENCH_API_PORT"
export SIMULATOR_URL="http://127.0.0.1:$BENCH_SIM_PORT"
export API_BIND="127.0.0.1:$BENCH_API_PORT"
export LOG_LEVEL="${BENCH_LOG_LEVEL:-INFO}"  # as production: one INFO line per PSP call
export PSP_SIMULATOR_LOG_LEVEL=WARNING
export PYTHONUNBUFFERED=1
# production settings, with throwaway secrets for this run only (the bench database is
# recreated each run, so nothing encrypted with them outlives it)
export DJANGO_SETTINGS_MODULE="${BENCH_SETTINGS:-payments_platform.settings.production}"
export DEBUG=0
export SECURE_SSL_REDIRECT=0   # plain HTTP on 127.0.0.1, no TLS proxy in front
rand_b64() { "$PY" -c 'import base64,os;print(base64.b64encode(os.urandom(32)).decode())'; }
export SECRET_KEY="bench-$("$PY" -c 'import secrets;print(secrets.token_urlsafe(48))')"
export DATA_ENCRYPTION_KEYS="bench1:$(rand_b64)"
export DATA_ENCRYPTION_ACTIVE_KEY=bench1
export FINGERPRINT_KEY="bench-$(rand_b64)"

WORK="$(mktemp -d -t payments-bench.XXXXXX)"
LOGS="$ROOT/bench/results/logs"   # the stack's logs of the last run (*.log is gitignored)
mkdir -p "$LOGS" && rm -f "$LOGS"/*.log
RUN_STARTED="$(date +%s)"
PIDS=()

stop_stack() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
  done
  PIDS=()
}

cleanup() {
  local rc=$?
  stop_stack
  if [[ $rc -ne 0 && -d "$WORK" ]]; then
    echo "bench: failed (exit $rc); logs of the stack:" >&2
    for log in "$LOGS"/*.log; do
      [[ -s "$log" ]] || continue
      echo "--- $(basename "$log") (last 30 lines)" >&2
      tail -n 30 "$log" >&2
    done
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_http() {  # url, seconds, what
  local deadline=$((SECONDS + $2))
  until "$PY" - "$1" <<'EOF' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2).read()
EOF
  do
    if ((SECONDS >= deadline)); then
      echo "bench: $3 did not answer at $1 within $2 s" >&2
      return 1
    fi
    sleep 0.3
  done
}

for port in "$BENCH_API_PORT" "$BENCH_SIM_PORT" "$BENCH_FLOOR_PORT"; do
  if ! port_free "$port"; then
    echo "bench: port $port is in use (set BENCH_API_PORT / BENCH_SIM_PORT)" >&2
    exit 2
  fi
done

# --- database: fresh each run, so figures do not depend on earlier runs ---------------------------
"$PY" scripts/ensure_services.py >/dev/null
"$PY" - "$PG_BASE" "$BENCH_DB" <<'EOF'
import sys
import psycopg
base, name = sys.argv[1], sys.argv[2]
with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.execute(f'CREATE DATABASE "{name}"')
EOF
"$PY" - "$REDIS_URL" <<'EOF'
import sys, redis
redis.Redis.from_url(sys.argv[1]).flushdb()
EOF
echo "bench: database $BENCH_DB recreated; migrating …"
"$PY" manage.py migrate --no-input -v 0

# --- the stack, as production runs it ------------------------------------------------------------
gunicorn apps.psp_simulator.wsgi:app -b "127.0.0.1:$BENCH_SIM_PORT" -k gthread -w 1 \
  --threads 128 --log-level warning >"$LOGS/simulator.log" 2>&1 &
PIDS+=($!); SIM_PID=$!
gunicorn payments_platform.wsgi -c gunicorn.conf.py >"$LOGS/web.log" 2>&1 &
PIDS+=($!); WEB_PID=$!
# the worker keeps one persistent connection per process (DB_CONN_MAX_AGE), not the pool
env -u DB_POOL celery -A payments_platform worker --loglevel WARNING --concurrency "$CELERY_CONCURRENCY" \
  --queues celery --without-gossip --without-mingle >"$LOGS/worker.log" 2>&1 &
PIDS+=($!); WORKER_PID=$!

# the raw-SQL floor (scenario F, bench/floor.py): a bare Django + DRF app, same gunicorn shape
FLOOR_ARGS=()
if [[ " $BENCH_SCENARIOS " == *" F "* ]]; then
  "$PY" -c 'import sys; sys.path.insert(0, "."); import bench.floor as f; f.create_tables()'
  DJANGO_SETTINGS_MODULE=bench.floor_settings API_BIND="127.0.0.1:$BENCH_FLOOR_PORT" \
    gunicorn payments_platform.wsgi -c gunicorn.conf.py >"$LOGS/floor.log" 2>&1 &
  PIDS+=($!); FLOOR_PID=$!
  FLOOR_ARGS=(--floor-url "http://127.0.0.1:$BENCH_FLOOR_PORT" --floor-cpu-group "web=$FLOOR_PID")
fi

wait_http "$SIMULATOR_URL/_sim/health" 30 "the PSP simulator"
wait_http "$API_BASE_URL/readyz" 60 "gunicorn"
if [[ -n "${FLOOR_PID:-}" ]]; then
  wait_http "http://127.0.0.1:$BENCH_FLOOR_PORT/readyz" 60 "the floor's gunicorn"
fi
echo "bench: stack up: gunicorn $WEB_WORKERS x $WEB_THREADS threads on :$BENCH_API_PORT" \
  "(DB pool $DB_POOL_MIN..$DB_POOL_MAX per process), Celery worker ($CELERY_CONCURRENCY)," \
  "simulator gthread 1 x 128 on :$BENCH_SIM_PORT"

STACK_JSON=$(cat <<EOF
{"settings": "$DJANGO_SETTINGS_MODULE", "web_workers": $WEB_WORKERS, "web_threads": $WEB_THREADS,
 "db_pool_min": $DB_POOL_MIN, "db_pool_max": $DB_POOL_MAX, "celery_concurrency": $CELERY_CONCURRENCY,
 "simulator": "gunicorn gthread -w 1 --threads 128", "log_level": "$LOG_LEVEL",
 "warmup_s": $BENCH_WARMUP, "duration_s": $BENCH_DURATION}
EOF
)

# the driver's own Django (seed, in-process profile) logs warnings only; the stack logs INFO
# shellcheck disable=SC2086
LOG_LEVEL=WARNING "$PY" bench/payments_bench.py run \
  --api-url "$API_BASE_URL" --sim-url "$SIMULATOR_URL" --db-name "$BENCH_DB" --workdir "$WORK" \
  --scenarios $BENCH_SCENARIOS --clients-a "$BENCH_CLIENTS_A" --clients-b "$BENCH_CLIENTS_B" \
  --warmup "$BENCH_WARMUP" --duration "$BENCH_DURATION" \
  --profile-payments "$BENCH_PROFILE_PAYMENTS" ${BENCH_CPROFILE:+--cprofile} ${BENCH_PYSPY:+--pyspy} \
  --quiet-wait "$BENCH_QUIET_WAIT" --rate-open "$BENCH_RATE_OPEN" "${FLOOR_ARGS[@]}" \
  --cpu-group "web=$WEB_PID" --cpu-group "sim=$SIM_PID" --cpu-group "worker=$WORKER_PID" \
  --stack-json "$STACK_JSON"

stop_stack

# --- the other benchmarks, when their authors have added them ------------------------------------
# Each is standalone (own database, own setup) and runs after the stack above is stopped, in the
# shell's default environment (not the bench secrets or the bench database).
if [[ "$BENCH_OTHERS" == "1" ]]; then
  for name in ledger routing webhooks risk reconciliation dashboards; do
    script="bench/${name}_bench.py"
    [[ -f "$script" ]] || { echo "bench: $script not present, skipped"; continue; }
    echo
    echo "bench: $script"
    env -u DATABASE_URL -u REDIS_URL -u CELERY_BROKER_URL -u DJANGO_SETTINGS_MODULE \
      -u SECRET_KEY -u DATA_ENCRYPTION_KEYS -u DATA_ENCRYPTION_ACTIVE_KEY -u FINGERPRINT_KEY \
      -u DB_POOL -u DB_POOL_MIN -u DB_POOL_MAX -u WEB_WORKERS -u WEB_THREADS -u API_BIND \
      -u API_BASE_URL -u SIMULATOR_URL -u SECURE_SSL_REDIRECT \
      timeout "$BENCH_OTHER_TIMEOUT" "$PY" "$script" \
      || echo "bench: $script exited with status $? (reported, not fatal)"
  done
fi

"$PY" bench/payments_bench.py summary --since "$RUN_STARTED"
