#!/usr/bin/env bash
# Regenerates the expected output of every conformance case with the real kustomize
# (`kubectl kustomize`, kustomize v5.5.0). A case is a directory holding a kustomization at its
# root; kustomize's output goes to expected.yaml, or, when kustomize refuses the input, its error
# message goes to expected-error.txt.
# Usage: worker/tests/kustomize/regen.sh [case-name ...]
set -euo pipefail
cd "$(dirname "$0")/cases"
cases=("$@")
if [ ${#cases[@]} -eq 0 ]; then cases=(*/); fi
for c in "${cases[@]}"; do
  c=${c%/}
  rm -f "$c/expected.yaml" "$c/expected-error.txt"
  if kubectl kustomize "$c" >/tmp/regen-out.$$ 2>/tmp/regen-err.$$; then
    mv /tmp/regen-out.$$ "$c/expected.yaml"
  else
    sed -e 's/^E[0-9]* [0-9:.]* *[0-9]* run.go:[0-9]*\] //' /tmp/regen-err.$$ > "$c/expected-error.txt"
  fi
done
rm -f /tmp/regen-err.$$ /tmp/regen-out.$$
