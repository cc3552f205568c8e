#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers that read outside input (cargo-fuzz, libFuzzer):
#   webhook    webhook payload parsing and event mapping
#   yaml       the YAML loader for repository text
#   kustomize  the kustomization loader and the native engine
#   commands   the slash-command parser
#   report     the markdown report builder (balanced output, size limit)
#
# Usage: tests/fuzz.sh [--ci | seconds per target] [target...]   (default: 20 s each, every target)
#   --ci   what `make test` runs: a fixed seed and a fixed number of inputs per target, from the
#          seeds alone, so one commit always gives the same verdict (a gate that fails at random
#          teaches people to re-run it). About 15 s per target on 2 cores.
#   N      explore for N seconds per target, growing the kept corpus under target/fuzz/corpus;
#          `make fuzz FUZZ_SECONDS=3600` is the long run. Any crash found is fixed with a unit test
#          of its own, so the deterministic gate need not find it again.
#
# Built without a sanitizer: the code is Rust with `unsafe` forbidden in our crates, and the C
# the dependencies bring is not instrumented by cargo-fuzz's flags either, so AddressSanitizer
# found nothing ASan-specific and cost 30x the executions per second.
#
# Seeds are built fresh each run from material outside the fuzz crate (GitHub's example payloads
# in ../shared/fixtures, the conformance cases, this repository's own YAML); they and the corpus
# libFuzzer grows stay under target/ and are never committed. A crash prints its input's path
# and fails the run; reproduce it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -O -s none --fuzz-dir worker/fuzz TARGET ARTIFACT
# The crash's input is also printed (base64) so one found by CI on another machine is not lost.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

MODE=${1:-20}
shift || true
if [[ "$MODE" != --ci && ! "$MODE" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: tests/fuzz.sh [--ci | seconds per target] [target...]" >&2
  exit 2
fi
# --ci: inputs per target, about 15 s each here (executions per second differ 40-fold).
declare -A CI_RUNS=([webhook]=1000000 [yaml]=400000 [kustomize]=120000 [commands]=1200000 [report]=35000)
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
import hashlib, json, pathlib, sys
target, out, fixtures = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
cases = sorted(pathlib.Path("worker/tests/kustomize/cases").iterdir())
def put(data: bytes):
    (out / hashlib.sha1(data).hexdigest()).write_bytes(data)
if target == "webhook":
    for f in sorted((fixtures / "github" / "payloads").glob("*/*.json")):
        put(f.parent.name.encode() + b"\n" + f.read_bytes())
        # Gitea sends GitHub's shapes under the same event names.
        if f.parent.name in ("pull_request", "push", "issue_comment"):
            put(b"gitea:" + f.parent.name.encode() + b"\n" + f.read_bytes())
    # GitLab's hooks have no fixture here: minimal ones with the documented field names.
    sha = "0123456789abcdef0123456789abcdef01234567"
    project = {"path_with_namespace": "acme/gitops", "default_branch": "main"}
    mr = {"iid": 7, "action": "update", "oldrev": sha, "source_branch": "f", "target_branch": "main",
          "merge_commit_sha": sha, "last_commit": {"id": sha}}
    for event, body in [
        ("Merge Request Hook", {"object_kind": "merge_request", "user": {"username": "al"},
                                "project": project, "object_attributes": mr}),
        ("Push Hook", {"object_kind": "push", "ref": "refs/heads/main", "before": sha, "after": sha,
                       "user_username": "al", "project": project}),
        ("Note Hook", {"object_kind": "note", "user": {"id": 1, "username": "al"}, "project": project,
                       "object_attributes": {"id": 5, "note": "/capstan diff", "author_id": 1,
                                             "noteable_type": "MergeRequest", "action": "create",
                                             "updated_at": "2026-12-01 11:00:00 UTC"},
                       "merge_request": {"iid": 7}}),
    ]:
        put(b"gitlab:" + event.encode() + b"\n" + json.dumps(body).encode())
    put(b"merge_group\n" + json.dumps({
        "action": "checks_requested", "repository": project | {"full_name": "acme/gitops"},
        "merge_group": {"head_sha": sha, "head_ref": "refs/heads/gh-readonly-queue/main/pr-7-" + sha,
                        "base_sha": sha, "base_ref": "refs/heads/main"}}).encode())
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

echo "== fuzz: building the targets (release, coverage-instrumented)"
cargo fuzz build -O -s none "${FUZZ_DIR[@]}"
failed=()
for t in "${TARGETS[@]}"; do
  if [[ -z "${CI_RUNS[$t]:-}" ]]; then
    echo "fuzz: no target $t (targets: ${!CI_RUNS[*]})" >&2
    exit 2
  fi
  seeds "$t"
  mkdir -p "$WORK/artifacts/$t"
  if [[ "$MODE" == --ci ]]; then
    corpus=$WORK/ci-corpus/$t
    rm -rf "$corpus"
    budget=(-seed=1 -runs="${CI_RUNS[$t]}")
    echo "== fuzz $t: ${CI_RUNS[$t]} inputs, seed 1 ($(find "$WORK/seeds/$t" -type f | wc -l) seeds)"
  else
    corpus=$WORK/corpus/$t
    budget=(-max_total_time="$MODE")
    echo "== fuzz $t: ${MODE}s ($(find "$WORK/seeds/$t" -type f | wc -l) seeds)"
  fi
  mkdir -p "$corpus"
  if ! cargo fuzz run -O -s none "${FUZZ_DIR[@]}" "$t" "$corpus" "$WORK/seeds/$t" -- \
      "${budget[@]}" -rss_limit_mb=4096 -max_len=65536 -timeout=30 \
      -print_final_stats=1 -artifact_prefix="$WORK/artifacts/$t/" \
      >"$WORK/$t.log" 2>&1; then
    failed+=("$t")
    tail -n 40 "$WORK/$t.log"
    for a in "$WORK/artifacts/$t"/*; do
      [[ -f "$a" ]] || continue
      echo "  input $a ($(wc -c <"$a") bytes), base64:"
      head -c 8192 "$a" | base64 -w 0
      echo
    done
  fi
  grep -a -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$WORK/$t.log" | sed "s/^/  $t /" || true
  grep -a -E 'cov: [0-9]+' "$WORK/$t.log" | tail -n 1 | sed "s/^/  $t last: /" || true
done
if ((${#failed[@]})); then
  echo "fuzz: crashes in: ${failed[*]} (inputs under $WORK/artifacts/)" >&2
  exit 1
fi
echo "fuzz: no crash in ${TARGETS[*]}"
