#!/usr/bin/env bash
# Loads the HTML audit report and serve's status page in headless Chromium
# (Debian's package): checks their rows, that a confidential title is
# absent, that the status page works with script off, and that the console
# stays silent, and refreshes the screenshots the README shows
# (docs/src/images/audit-report.png, status-page.png). Too slow for
# .ci/run; run it after changing either page:
#
#   scripts/browser-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
cargo test --locked --test browser -- --ignored --nocapture
