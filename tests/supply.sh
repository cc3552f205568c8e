#!/usr/bin/env bash
# Supply-chain checks (make supply, part of make test): licenses, banned crates and duplicate TLS
# stacks, crate sources (cargo-deny with deny.toml), unused dependencies (cargo-machete), and
# RustSec advisories against the advisory database (fetched, or a local copy when offline).
# Nothing is skipped silently: a check that cannot run here says so.
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
# The RustSec database lives on GitHub. Where GitHub cannot be reached, a copy cargo-deny already
# has (under $CARGO_HOME/advisory-dbs, from an earlier online run or a mirror) is used offline and
# its date printed, since advisories published after it are not checked; with no copy at all the
# check cannot run and says so.
DB_ROOT=${CARGO_HOME:-$HOME/.cargo}/advisory-dbs
local_db=$(find "$DB_ROOT" -mindepth 1 -maxdepth 1 -type d -name 'advisory-db-*' 2>/dev/null | head -n 1)
if timeout 20 git ls-remote --exit-code https://github.com/RustSec/advisory-db HEAD >/dev/null 2>&1; then
  cargo deny --log-level error check advisories
elif [[ -n "$local_db" && -d "$local_db/crates" ]]; then
  db_date=$(git -C "$local_db" show -s --format=%cs HEAD)
  echo "  GitHub is unreachable: checking against the local copy of the RustSec database of $db_date"
  echo "  (advisories published after $db_date are NOT CHECKED)"
  # --offline also keeps `cargo metadata` off the network, so every locked crate must be local.
  cargo fetch --quiet
  cargo deny --offline --log-level error check advisories
else
  echo "  NOT CHECKED: the RustSec advisory database (github.com/RustSec/advisory-db) is unreachable from this machine and no local copy is under $DB_ROOT"
fi

echo "== cargo machete: unused dependencies"
cargo machete
