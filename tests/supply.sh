#!/usr/bin/env bash
# Supply-chain checks (make supply, part of make test): licenses, banned crates and duplicate TLS
# stacks, crate sources (cargo-deny with deny.toml), unused dependencies (cargo-machete), and
# RustSec advisories when the advisory database can be fetched. Nothing is skipped silently: a
# check that cannot run here says so.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

DENY_VERSION=0.20.2
MACHETE_VERSION=0.9.2

need() {
  local tool=$1 crate=$2 version=$3
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "supply: $tool is missing; install it with: cargo install --locked $crate@$version (.ci/run does)" >&2
    exit 2
  fi
}
need cargo-deny cargo-deny "$DENY_VERSION"
need cargo-machete cargo-machete "$MACHETE_VERSION"

echo "== cargo deny: licenses, bans, sources"
cargo deny --log-level error check licenses bans sources

echo "== cargo deny: advisories"
# The RustSec database lives on GitHub; where GitHub cannot be reached the check cannot run.
if timeout 20 git ls-remote --exit-code https://github.com/RustSec/advisory-db HEAD >/dev/null 2>&1; then
  cargo deny --log-level error check advisories
else
  echo "  NOT CHECKED: the RustSec advisory database (github.com/RustSec/advisory-db) is unreachable from this machine"
fi

echo "== cargo machete: unused dependencies"
cargo machete
