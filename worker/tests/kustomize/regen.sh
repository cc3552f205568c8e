#!/usr/bin/env bash
# Regenerates the expected output of every conformance case with the real kustomize
# (`kubectl kustomize`, kustomize v5.5.0). A case is a directory holding a kustomization at its
# root; kustomize's output goes to expected.yaml, or, when kustomize refuses the input, its error
# message goes to expected-error.txt. Cases using helmCharts get `--enable-helm` with the helm the
# conformance test uses: a real helm v3 when `helm version` says so, else the test engine
# (tests/support/helm) behind helm-v3-gate (see that script for why).
# Usage: worker/tests/kustomize/regen.sh [case-name ...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
engine=${CAPSTAN_TEST_HELM:-$(command -v helm || echo "$here/../../../tests/support/helm")}
gate=$here/helm-v3-gate
case "$("$engine" version --short 2>/dev/null)" in v3.*) gate=$engine ;; esac
export CAPSTAN_TEST_HELM_ENGINE=$engine
cd "$here/cases"
cases=("$@")
if [ ${#cases[@]} -eq 0 ]; then cases=(*/); fi
for c in "${cases[@]}"; do
  c=${c%/}
  rm -f "$c/expected.yaml" "$c/expected-error.txt"
  flags=()
  if grep -rqs --include=kustomization.yaml helmChart "$c"; then
    flags=(--enable-helm --helm-command "$gate")
  fi
  if kubectl kustomize "${flags[@]}" "$c" >/tmp/regen-out.$$ 2>/tmp/regen-err.$$; then
    mv /tmp/regen-out.$$ "$c/expected.yaml"
  else
    sed -e 's/^E[0-9]* [0-9:.]* *[0-9]* run.go:[0-9]*\] //' /tmp/regen-err.$$ > "$c/expected-error.txt"
  fi
done
rm -f /tmp/regen-err.$$ /tmp/regen-out.$$
