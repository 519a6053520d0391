#!/usr/bin/env bash
# Loads the HTML audit report in headless Chromium (Debian's package):
# checks the page's rows, that a confidential title is absent and that the
# console stays silent, and refreshes the screenshot the README shows
# (docs/src/images/audit-report.png). Too slow for .ci/run; run it after
# changing the report:
#
#   scripts/browser-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
cargo test --locked --test browser -- --ignored --nocapture
