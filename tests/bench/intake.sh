#!/usr/bin/env bash
# Intake benchmark: signed webhook deliveries persisted per second, and latency, with wrk; the
# path before group commit ("old", intake_batch_max 1) and with it ("new") in the same run.
#   tests/bench/intake.sh [sqlite|postgres] [seconds]
# BENCH_BATCH sets the new path's batch size (default: the service's), BENCH_ROUNDS repeats the
# alternating old/new runs (default 1), BENCH_PORT the first of the two ports, BENCH_SKIP_BUILD
# uses the release binary as it is.
# PostgreSQL uses $DATABASE_URL's server (a fresh database is created and dropped).
# Measures, never asserts. Needs: wrk, python3, a release build (built here).
set -Eeuo pipefail
cd "$(dirname "$0")/../.."

backend="${1:-sqlite}"
seconds="${2:-15}"
port="${BENCH_PORT:-18787}"
secret="bench-secret-$$"
work="$(mktemp -d)"
rounds="${BENCH_ROUNDS:-1}"
# Enough distinct bodies for every run of one server at up to 25,000/s (the two servers have
# their own stores, so they may use the same bodies). A run faster than that would resend bodies
# of the next run, whose jobs then deduplicate: the check at the end says so.
count="${BENCH_COUNT:-$(( (2 * rounds + 1) * (seconds > 3 ? seconds : 3) * 25000 ))}"
target="${CARGO_TARGET_DIR:-target}"

log() { printf '== %s\n' "$*" >&2; }

server_pids=()
pg_dbs=()
cleanup() {
  for pid in "${server_pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  for db in "${pg_dbs[@]}"; do psql -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 1; }

if [[ -z "${BENCH_SKIP_BUILD:-}" ]]; then
  log "building the release binary"
  cargo build --release -q -p capstan-server
fi
bin="$target/release/capstan"

log "signing $count bodies"
python3 tests/bench/payload.py "$count" "$secret" > "$work/sigs.txt"

case "$backend" in
  sqlite) ;;
  postgres)
    : "${DATABASE_URL:?set DATABASE_URL to a PostgreSQL server}"
    pg_db="capstan_bench_$$"
    ;;
  *) echo "usage: $0 [sqlite|postgres] [seconds]" >&2; exit 2 ;;
esac

# Two servers, each on its own fresh store: "old" commits each delivery alone
# (CAPSTAN_INTAKE_BATCH_MAX=1, the behaviour before group commit), "new" with the batch size given
# (default: the service's default). Their runs alternate, so both see the same machine load.
new_batch="${BENCH_BATCH:-}"
start_server() { # name, port, batch max (empty = default)
  local name="$1" port="$2" batch="$3" url
  case "$backend" in
    sqlite) url="sqlite://$work/$name/capstan.db" ;;
    postgres)
      psql -q "$DATABASE_URL" -c "CREATE DATABASE \"${pg_db}_$name\"" >/dev/null
      pg_dbs+=("${pg_db}_$name")
      url="${DATABASE_URL%/*}/${pg_db}_$name"
      ;;
  esac
  log "starting capstan serve ($backend, $name, intake_batch_max ${batch:-default}) on :$port"
  ( [[ -n "$batch" ]] && export CAPSTAN_INTAKE_BATCH_MAX="$batch"
    CAPSTAN_WEBHOOK_SECRET="$secret" CAPSTAN_LOG=warn exec "$bin" serve \
      --role server --listen "127.0.0.1:$port" --data-dir "$work/$name" --database-url "$url" ) \
    > "$work/serve-$name.log" 2>&1 &
  server_pids+=($!)
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "capstan serve ($name) did not become ready:" >&2; cat "$work/serve-$name.log" >&2; exit 1
}
old_port="$port"
new_port="$((port + 1))"
start_server old "$old_port" 1
start_server new "$new_port" "$new_batch"

export BENCH_SIGS="$work/sigs.txt"
results="$work/results.txt"

run() { # server name, port, run name, wrk args…
  local server="$1" p="$2" name="$3"; shift 3
  local line
  line="$(BENCH_RUN="$server-$name-$$" wrk "$@" -s tests/bench/intake.lua "http://127.0.0.1:$p" -- 2 | grep '^RESULT' || true)"
  local load; load="$(cut -d' ' -f1 /proc/loadavg)"
  [[ -n "$line" ]] && echo "$server $name load=$load ${line#RESULT }" | tee -a "$results" | sed "s/^/$backend /"
}

# Disjoint body ranges per run of a server, so every delivery stores a new job; both servers
# use the same range in a run.
slice=$((count / (2 * rounds + 1)))
log "warm-up"
BENCH_START=1 BENCH_DELAY_MS=0 run old "$old_port" warmup -t2 -c8 -d3s >/dev/null
BENCH_START=1 BENCH_DELAY_MS=0 run new "$new_port" warmup -t2 -c8 -d3s >/dev/null
for round in $(seq "$rounds"); do
  start=$(( (2 * round - 1) * slice + 1 ))
  for s in old new; do
    p="$old_port"; [[ "$s" == new ]] && p="$new_port"
    log "round $round, $s: saturation: 2 threads, 32 connections, ${seconds}s"
    BENCH_START="$start" BENCH_DELAY_MS=0 run "$s" "$p" saturate -t2 -c32 -d"${seconds}s"
  done
  start=$(( 2 * round * slice + 1 ))
  for s in old new; do
    p="$old_port"; [[ "$s" == new ]] && p="$new_port"
    log "round $round, $s: about 1,000/s: 2 threads, 12 connections, 10 ms pause per connection, ${seconds}s"
    BENCH_START="$start" BENCH_DELAY_MS=10 run "$s" "$p" paced -t2 -c12 -d"${seconds}s"
  done
done

# new / old: the mean saturation rate, and the mean p99 of the paced runs.
field() { grep "^$1 $2 " "$results" | sed -n "s/.* $3=\([0-9.]*\).*/\1/p" | awk '{s+=$1; n++} END {if (n) printf "%.2f", s/n; else print "nan"}'; }
for s in old new; do
  p="$old_port"; [[ "$s" == new ]] && p="$new_port"
  accepted="$(curl -fs "http://127.0.0.1:$p/metrics" | awk -F' ' '/^capstan_webhook_deliveries_total\{event="pull_request",outcome="accepted"\}/ {print $2}')"
  queued="$(curl -fs "http://127.0.0.1:$p/metrics" | awk -F' ' '/^capstan_queue_jobs\{kind="pr_check",state="queued"\}/ {print $2}')"
  echo "$backend $s: deliveries persisted (accepted) ${accepted:-0}, pr_check jobs queued ${queued:-0}"
  if [[ "${accepted:-0}" != "${queued:-0}" ]]; then
    echo "$backend $s: WARNING: fewer jobs than deliveries: a run resent bodies (raise BENCH_COUNT)" >&2
  fi
done
old_rate="$(field old saturate rate)"; new_rate="$(field new saturate rate)"
old_p99="$(field old paced p99)"; new_p99="$(field new paced p99)"
awk -v b="$backend" -v orate="$old_rate" -v nrate="$new_rate" -v op="$old_p99" -v np="$new_p99" 'BEGIN {
  printf "%s saturation: old %.0f/s, new %.0f/s, new/old %.2fx\n", b, orate, nrate, (orate > 0 ? nrate / orate : 0)
  printf "%s paced p99: old %.2f ms, new %.2f ms, new/old %.2fx\n", b, op, np, (op > 0 ? np / op : 0)
}'
