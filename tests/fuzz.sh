#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers that read outside input (cargo-fuzz, libFuzzer):
#   webhook    webhook payload parsing and event mapping
#   yaml       the YAML loader for repository text
#   kustomize  the kustomization loader and the native engine
#   commands   the slash-command parser
#   report     the markdown report builder (balanced output, size limit)
#
# Usage: tests/fuzz.sh [seconds per target] [target...]   (default: 20 s each, every target)
# `make test` runs the short default; `make fuzz FUZZ_SECONDS=3600` is the long run.
#
# Seeds are built fresh each run from material outside the fuzz crate (GitHub's example payloads
# in ../shared/fixtures, the conformance cases, this repository's own YAML); they and the corpus
# libFuzzer grows stay under target/ and are never committed. A crash prints its input's path
# and fails the run; reproduce it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -O --fuzz-dir worker/fuzz TARGET ARTIFACT
set -Eeuo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${1:-20}
shift || true
TARGETS=("$@")
if ((${#TARGETS[@]} == 0)); then
  TARGETS=(webhook yaml kustomize commands report)
fi
FIXTURES=${CAPSTAN_FIXTURES:-../shared/fixtures}

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: cargo-fuzz is missing; install it with: cargo install --locked cargo-fuzz@0.13.2 (.ci/run does)" >&2
  exit 2
fi
if [[ ! -d "$FIXTURES/github/payloads" ]]; then
  echo "fuzz: GitHub's example payloads are missing at $FIXTURES/github/payloads (set CAPSTAN_FIXTURES)" >&2
  exit 2
fi

# libFuzzer's instrumentation needs unstable rustc flags; cargo-fuzz passes them, and
# RUSTC_BOOTSTRAP lets the one stable toolchain on this machine accept them.
export RUSTC_BOOTSTRAP=1
FUZZ_DIR=(--fuzz-dir worker/fuzz)
WORK=target/fuzz
mkdir -p "$WORK"

seeds() {
  local target=$1 dir=$WORK/seeds/$1
  rm -rf "$dir"
  mkdir -p "$dir"
  python3 - "$target" "$dir" "$FIXTURES" <<'PY'
import hashlib, pathlib, sys
target, out, fixtures = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
cases = sorted(pathlib.Path("worker/tests/kustomize/cases").iterdir())
def put(data: bytes):
    (out / hashlib.sha1(data).hexdigest()).write_bytes(data)
if target == "webhook":
    for f in sorted((fixtures / "github" / "payloads").glob("*/*.json")):
        put(f.parent.name.encode() + b"\n" + f.read_bytes())
elif target == "yaml":
    for root in ["worker/tests/kustomize/cases", "applications", "infrastructure", "argocd"]:
        for f in sorted(pathlib.Path(root).rglob("*.yaml")):
            if f.stat().st_size <= 64 * 1024:
                put(f.read_bytes())
elif target == "kustomize":
    for case in cases:
        entries = [
            str(f.relative_to(case)).encode() + b"\n" + f.read_bytes()
            for f in sorted(case.rglob("*"))
            if f.is_file() and f.name != "expected.yaml" and b"\0" not in f.read_bytes()
        ]
        put(b"\0".join(entries))
elif target == "commands":
    for line in ["/capstan diff", "/capstan promote production", "/capstan sync web",
                 "```\n/capstan hold\n```\n/capstan unhold", "/diff\n<!--\n/hold\n-->",
                 "please\n  /capstan validate\r\n~~~~\n/capstan help\n~~~~"]:
        for mode in (b"\0", b"\1"):
            put(mode + line.encode())
elif target == "report":
    for s in ["x ``` y ```` z\n</details>", "@user fixes #1 [a](https://e.test)",
              "<!-- capstan:report pr=42 part=1 -->\n/capstan promote production", "|a|b|\r\n~~~"]:
        put(s.encode())
PY
}

echo "== fuzz: building the targets (release, instrumented)"
cargo fuzz build -O "${FUZZ_DIR[@]}"
failed=()
for t in "${TARGETS[@]}"; do
  seeds "$t"
  corpus=$WORK/corpus/$t
  mkdir -p "$corpus" "$WORK/artifacts/$t"
  echo "== fuzz $t: ${SECONDS_EACH}s ($(find "$WORK/seeds/$t" -type f | wc -l) seeds)"
  if ! cargo fuzz run -O "${FUZZ_DIR[@]}" "$t" "$corpus" "$WORK/seeds/$t" -- \
      -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 -max_len=65536 -timeout=30 \
      -print_final_stats=1 -artifact_prefix="$WORK/artifacts/$t/" \
      >"$WORK/$t.log" 2>&1; then
    failed+=("$t")
    tail -n 40 "$WORK/$t.log"
  fi
  grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$WORK/$t.log" | sed "s/^/  $t /" || true
  grep -E 'cov: [0-9]+' "$WORK/$t.log" | tail -n 1 | sed "s/^/  $t last: /" || true
done
if ((${#failed[@]})); then
  echo "fuzz: crashes in: ${failed[*]} (inputs under $WORK/artifacts/)" >&2
  exit 1
fi
echo "fuzz: no crash in ${TARGETS[*]}"
