#!/usr/bin/env bash
# Load benchmark of two `serve` replicas on one PostgreSQL database: the
# same GitLab issue events as run.sh, posted by two wrk processes at once,
# one per replica, as a load balancer would spread them. Reports each
# replica's acknowledgement latency as wrk measures it, and whether intake
# kept up. The database is created for the run and dropped after.
#
#   benches/load/replicas.sh [seconds]     (default 30 per run)
#   LABELWARDEN_BENCH_POSTGRES_URL=postgres://USER@HOST:5432/DB  (default: the machine's, database test)
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-30}
server_url=${LABELWARDEN_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --quiet

work=$(mktemp -d)
database=labelwarden_bench_$$
psql -q "$server_url" -c "create database $database"
url="${server_url%/*}/$database"
servers=()
cleanup() {
  for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  psql -q "$server_url" -c "drop database if exists $database with (force)" || true
  rm -rf "$work"
}
trap cleanup EXIT
sed 's/"iid": 101/"iid": __IID__/' tests/fixtures/gitlab/issue_hook_priority_highest_added.json > "$work/payload.json"
grep -q __IID__ "$work/payload.json"

ports=(18091 18092)
secret=load-test-secret
for port in "${ports[@]}"; do
  RUST_LOG=warn LABELWARDEN_WEBHOOK_SECRET=$secret \
    target/release/labelwarden serve --notifier log --listen "127.0.0.1:$port" \
      --policies policies --database "$url" --reconcile-every 0s \
    2>> "$work/serve-$port.log" &
  servers+=($!)
done
for port in "${ports[@]}"; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
done

pending() { curl -s "http://127.0.0.1:${ports[0]}/metrics" | awk '/^labelwarden_deliveries_pending /{print $2}'; }
run() {
  local label=$1 connections=$2 pause=$3
  echo "== $label: 2 replicas x $connections connections, pause ${pause} ms, ${seconds}s"
  local n=0
  for port in "${ports[@]}"; do
    n=$((n + 100))
    wrk -t 1 -c "$connections" -d "${seconds}s" --timeout 5s -s benches/load/webhook.lua \
      "http://127.0.0.1:$port" -- "$work/payload.json" "$secret" "$pause" "$n" > "$work/wrk-$port.txt" &
  done
  wait %?wrk 2>/dev/null || true
  while pgrep -x wrk >/dev/null; do sleep 0.2; done
  for port in "${ports[@]}"; do echo "replica :$port"; sed 's/^/  /' "$work/wrk-$port.txt"; done
  echo "deliveries pending when the load stopped: $(pending)"
  for _ in $(seq 120); do [ "$(pending)" = "0" ] && break; sleep 1; done
  echo "deliveries pending after draining: $(pending)"
}
run "paced (target 2000 events/s in all)" 15 10
run "unpaced (ceiling)" 16 0
echo "server log lines at WARN or above: $(cat "$work"/serve-*.log | wc -l)"
