#!/usr/bin/env bash
# Runs the `audit` and `drill` CI/CD components' jobs with gitlab-ci-local
# (from npm): each template included with inputs, its script run on this
# machine with shell isolation, its reports kept only as its `artifacts:`
# say (tests/component.rs). The audit against the fake GitLab: with
# `fail_on: breach` the job fails, with `never` it succeeds over the same
# breach. The drill against the fake Slack: unacknowledged it fails,
# acknowledged and resolved it passes.
#
# gitlab-ci-local 4.56 runs on Node.js 20 (later versions need 22); it
# copies artefacts with rsync. Without a container engine, the job's image
# is dropped and `labelwarden` comes from this build. `.ci/run` runs this.
#
#   scripts/component-local.sh
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v rsync >/dev/null || missing+=(rsync)
command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
tools=target/gitlab-ci-local
if [ ! -x "$tools/node_modules/.bin/gitlab-ci-local" ]; then
  mkdir -p "$tools"
  (cd "$tools" && npm install --silent --no-save --no-audit --no-fund gitlab-ci-local@4.56.2)
fi
GITLAB_CI_LOCAL="$PWD/$tools/node_modules/.bin/gitlab-ci-local" \
  cargo test --locked --test component -- --ignored --nocapture
