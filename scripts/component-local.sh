#!/usr/bin/env bash
# Runs the `audit` CI/CD component's job with gitlab-ci-local (from npm)
# against the fake GitLab: templates/audit.yml included with inputs, its
# script run on this machine, its reports kept (tests/component.rs).
#
# gitlab-ci-local 4.56 runs on Node.js 20 (later versions need 22). Without
# a container engine, the job's image is dropped and `labelwarden` comes
# from this build.
#
#   scripts/component-local.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tools=target/gitlab-ci-local
if [ ! -x "$tools/node_modules/.bin/gitlab-ci-local" ]; then
  mkdir -p "$tools"
  (cd "$tools" && npm install --silent --no-save gitlab-ci-local@4.56.2)
fi
GITLAB_CI_LOCAL="$PWD/$tools/node_modules/.bin/gitlab-ci-local" \
  cargo test --locked --test component -- --ignored --nocapture
