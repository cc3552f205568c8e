#!/usr/bin/env bash
# Intake benchmark: signed webhook deliveries persisted per second, and latency, with wrk.
#   tests/bench/intake.sh [sqlite|postgres] [seconds]
# PostgreSQL uses $DATABASE_URL's server (a fresh database is created and dropped).
# Measures, never asserts. Needs: wrk, python3, a release build (built here).
set -Eeuo pipefail
cd "$(dirname "$0")/../.."

backend="${1:-sqlite}"
seconds="${2:-15}"
port="${BENCH_PORT:-18787}"
secret="bench-secret-$$"
work="$(mktemp -d)"
count="${BENCH_COUNT:-300000}"
target="${CARGO_TARGET_DIR:-target}"

log() { printf '== %s\n' "$*" >&2; }

cleanup() {
  if [[ -n "${server_pid:-}" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [[ -n "${pg_db:-}" ]]; then psql -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS \"$pg_db\" WITH (FORCE)" >/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 1; }

log "building the release binary"
cargo build --release -q -p capstan-server
bin="$target/release/capstan"

log "signing $count bodies"
python3 tests/bench/payload.py "$count" "$secret" > "$work/sigs.txt"

case "$backend" in
  sqlite) db_url="sqlite://$work/data/capstan.db" ;;
  postgres)
    : "${DATABASE_URL:?set DATABASE_URL to a PostgreSQL server}"
    pg_db="capstan_bench_$$"
    psql -q "$DATABASE_URL" -c "CREATE DATABASE \"$pg_db\"" >/dev/null
    db_url="${DATABASE_URL%/*}/$pg_db"
    ;;
  *) echo "usage: $0 [sqlite|postgres] [seconds]" >&2; exit 2 ;;
esac

log "starting capstan serve ($backend)"
CAPSTAN_WEBHOOK_SECRET="$secret" CAPSTAN_LOG=warn "$bin" serve \
  --listen "127.0.0.1:$port" --data-dir "$work/data" --database-url "$db_url" \
  > "$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

url="http://127.0.0.1:$port"
export BENCH_SIGS="$work/sigs.txt"

run() { # name, wrk args…
  local name="$1"; shift
  BENCH_RUN="$name-$$" wrk "$@" -s tests/bench/intake.lua "$url" -- 2 | grep '^RESULT' | sed "s/^RESULT/$backend $name:/"
}

# Disjoint body ranges per run, so every delivery of every run stores a new job.
log "warm-up"
BENCH_START=1 BENCH_DELAY_MS=0 run warmup -t2 -c8 -d3s >/dev/null
log "saturation: 2 threads, 32 connections, ${seconds}s"
BENCH_START=$((count / 5)) BENCH_DELAY_MS=0 run saturate -t2 -c32 -d"${seconds}s"
log "about 1,000/s: 2 threads, 12 connections, 10 ms pause per connection, ${seconds}s"
BENCH_START=$((count * 4 / 5)) BENCH_DELAY_MS=10 run paced -t2 -c12 -d"${seconds}s"

accepted="$(curl -fs "$url/metrics" | awk -F' ' '/^capstan_webhook_deliveries_total\{event="pull_request",outcome="accepted"\}/ {print $2}')"
queued="$(curl -fs "$url/metrics" | awk -F' ' '/^capstan_queue_jobs\{kind="pr_check",state="queued"\}/ {print $2}')"
echo "$backend: deliveries persisted (accepted) ${accepted:-0}, pr_check jobs queued ${queued:-0}"
