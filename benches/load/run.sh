#!/usr/bin/env bash
# Load benchmark of `serve`: GitLab issue events posted by wrk (Debian's
# package) to the release binary on loopback, with the embedded SQLite
# store in a temporary folder. Two runs: paced at about 2 000 events/s
# (30 connections, each pausing 10 ms between requests), then unpaced to find the
# ceiling. Reports acknowledgement latency as wrk measures it, and whether
# intake kept up (deliveries still pending when the load stops).
#
#   benches/load/run.sh [seconds]        (default 30 per run)
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-30}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --quiet

work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
sed 's/"iid": 101/"iid": __IID__/' tests/fixtures/gitlab/issue_hook_priority_highest_added.json > "$work/payload.json"
grep -q __IID__ "$work/payload.json"

port=18089
secret=load-test-secret
(cd "$work" && RUST_LOG=warn LABELWARDEN_WEBHOOK_SECRET=$secret \
  exec "$OLDPWD/target/release/labelwarden" serve --notifier log \
    --listen "127.0.0.1:$port" --policies "$OLDPWD/policies" --database "sqlite://$work/load.db") \
  2> "$work/serve.log" &
server=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done

pending() { curl -s "http://127.0.0.1:$port/metrics" | awk '/^labelwarden_deliveries_pending /{print $2}'; }
run() {
  local label=$1 connections=$2 pause=$3
  echo "== $label: $connections connections, pause ${pause} ms, ${seconds}s"
  wrk -t 1 -c "$connections" -d "${seconds}s" --timeout 5s -s benches/load/webhook.lua \
    "http://127.0.0.1:$port" -- "$work/payload.json" "$secret" "$pause"
  echo "deliveries pending when the load stopped: $(pending)"
  for _ in $(seq 120); do [ "$(pending)" = "0" ] && break; sleep 1; done
  echo "deliveries pending after draining: $(pending)"
}
run "paced (target 2000 events/s)" 30 10
run "unpaced (ceiling)" 32 0
echo "databases: $(du -ch "$work"/load*.db | tail -1 | cut -f1), server log lines at WARN or above: $(wc -l < "$work/serve.log")"
