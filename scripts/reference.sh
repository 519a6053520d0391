#!/usr/bin/env bash
# Writes the book's reference pages (docs/src/reference/) from the binary:
# every command and flag, every key of the policy and policy-test files.
# tests/docs.rs fails until the committed pages are what this writes.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
bin=target/debug/labelwarden
"$bin" reference commands >docs/src/reference/commands.md
"$bin" reference policy >docs/src/reference/policy-keys.md
"$bin" reference tests >docs/src/reference/test-keys.md
echo "wrote docs/src/reference/{commands,policy-keys,test-keys}.md"
