#!/usr/bin/env bash
# Differential check of the native kustomize engine against `kubectl kustomize` on generated
# inputs (not part of CI: it needs kubectl and takes minutes). Generators: gen_values.py (random
# strings, numbers and nesting, as JSON), gen_scalars.py (plain YAML scalars of every resolvable
# form), gen_kustomizations.py (random combinations of transformers over a fixed app).
# Usage: worker/tests/kustomize/differential/run.sh GENERATOR FIRST_SEED LAST_SEED
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
gen=$1; first=$2; last=$3
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-kustomize}
cargo build -q -p capstan-worker --example kustomize_build
bin=$CARGO_TARGET_DIR/debug/examples/kustomize_build
work=$(mktemp -d)
fails=0; errs=0; unsupported=0
for s in $(seq "$first" "$last"); do
  d=$work/c$s
  python3 "$here/$gen" "$s" "$d"
  kubectl kustomize "$d" >"$d.exp" 2>"$d.err"; ke=$?
  "$bin" "$d" >"$d.got" 2>"$d.gerr"; ge=$?
  if [ $ke -eq 0 ] && grep -q "unsupported kustomize feature" "$d.gerr"; then unsupported=$((unsupported+1))
  elif [ $ke -ne 0 ] && [ $ge -ne 0 ]; then errs=$((errs+1))
  elif [ $ke -ne 0 ] || [ $ge -ne 0 ]; then fails=$((fails+1)); echo "seed $s: kubectl=$ke native=$ge: $(head -c 300 "$d.err") | $(head -c 300 "$d.gerr")"
  elif ! cmp -s "$d.exp" "$d.got"; then fails=$((fails+1)); echo "seed $s differs (kept in $d)"; fi
done
echo "differential $gen seeds $first..$last: $fails mismatches, $errs refused by both, $unsupported reported unsupported"
