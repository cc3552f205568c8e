#!/usr/bin/env bats
# bootstrap/scripts/register-cluster: the ArgoCD cluster Secret carries exactly the declared name,
# server and labels (what Capstan evaluates `clusters` generators against), credentials only
# from files, and malformed or hostile declarations are refused before anything is applied.

bats_require_minimum_version 1.5.0

setup() {
    REAL_ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
    # A copy of the scripts beside a scratch argocd/clusters, so declarations can be varied.
    TREE="$BATS_TEST_TMPDIR/tree"
    mkdir -p "$TREE/bootstrap" "$TREE/argocd"
    cp -r "$REAL_ROOT/bootstrap/scripts" "$TREE/bootstrap/"
    cp -r "$REAL_ROOT/argocd/clusters" "$TREE/argocd/"
    REGISTER="$TREE/bootstrap/scripts/register-cluster"
    export PATH="$BATS_TEST_DIRNAME/fakes/cluster:$PATH"
    export FAKE_CALLS="$BATS_TEST_TMPDIR/calls"
    export CAPSTAN_LOG_DIR="$BATS_TEST_TMPDIR/log"
    : >"$FAKE_CALLS"
}

@test "in-cluster is registered with its declared name, server and every label" {
    run "$REGISTER" in-cluster
    [ "$status" -eq 0 ]
    grep -qx 'applied Secret/cluster-in-cluster' "$FAKE_CALLS"
    applied="$FAKE_CALLS.applied"
    grep -q '^    argocd.argoproj.io/secret-type: cluster$' "$applied"
    grep -q '^  server: "https://kubernetes.default.svc"$' "$applied"
    grep -q '^  name: "in-cluster"$' "$applied"
    # Every label of the declaration, read independently of the script.
    while IFS= read -r line; do
        key="${line%%:*}"
        key="${key#  }"
        value="${line#*: }"
        value="${value//\"/}"
        grep -q "^    $key: \"$value\"\$" "$applied" || { echo "label $key missing"; return 1; }
    done < <(sed -n '/^labels:/,$p' "$TREE/argocd/clusters/in-cluster/cluster.yaml" | grep '^  ')
    run ! grep -q bearerToken "$applied"
}

@test "a remote cluster takes its token and CA from files, and --dry-run never prints the token" {
    printf 'eyJhbGciOi.secret-token_1\n' >"$BATS_TEST_TMPDIR/token"
    printf -- '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' >"$BATS_TEST_TMPDIR/ca.crt"
    run "$REGISTER" --dry-run staging --token-file "$BATS_TEST_TMPDIR/token" --ca-file "$BATS_TEST_TMPDIR/ca.crt"
    [ "$status" -eq 0 ]
    [[ "$output" == *'server: "https://k3s-staging.example.com:6443"'* ]]
    [[ "$output" == *'ingressOverlay: "staging"'* ]]
    [[ "$output" != *secret-token_1* ]]
    [ ! -s "$FAKE_CALLS" ]
    run "$REGISTER" staging --token-file "$BATS_TEST_TMPDIR/token" --ca-file "$BATS_TEST_TMPDIR/ca.crt"
    [ "$status" -eq 0 ]
    grep -q '"bearerToken":"eyJhbGciOi.secret-token_1"' "$FAKE_CALLS.applied"
    # The token never reaches argv.
    run ! grep -q secret-token_1 "$FAKE_CALLS"
}

@test "a remote cluster without credentials, or in-cluster with some, is refused" {
    run "$REGISTER" staging
    [ "$status" -eq 2 ]
    [[ "$output" == *"needs --token-file and --ca-file"* ]]
    printf 'x\n' >"$BATS_TEST_TMPDIR/token"
    run "$REGISTER" in-cluster --token-file "$BATS_TEST_TMPDIR/token" --ca-file "$BATS_TEST_TMPDIR/token"
    [ "$status" -eq 2 ]
    [ ! -s "$FAKE_CALLS" ]
}

@test "unknown, malformed and hostile declarations are refused before anything is applied" {
    run "$REGISTER" nowhere
    [ "$status" -eq 3 ]
    run "$REGISTER" '../etc'
    [ "$status" -eq 2 ]
    mkdir -p "$TREE/argocd/clusters/bad"
    printf 'name: bad\nserver: https://bad.example.com\nlabels:\n  ingressOverlay: "x\\"; evil"\n' >"$TREE/argocd/clusters/bad/cluster.yaml"
    run "$REGISTER" bad --token-file /dev/null --ca-file /dev/null
    [ "$status" -ne 0 ]
    printf 'name: bad\nserver: http://bad.example.com\n' >"$TREE/argocd/clusters/bad/cluster.yaml"
    run "$REGISTER" bad
    [ "$status" -eq 3 ]
    [[ "$output" == *"is not an https URL"* ]]
    printf 'name: other\nserver: https://bad.example.com\n' >"$TREE/argocd/clusters/bad/cluster.yaml"
    run "$REGISTER" bad
    [ "$status" -eq 3 ]
    [[ "$output" == *'declares name "other"'* ]]
    printf 'name: bad\nserver: https://bad.example.com\nextra: 1\n' >"$TREE/argocd/clusters/bad/cluster.yaml"
    run "$REGISTER" bad
    [ "$status" -eq 3 ]
    [[ "$output" == *"line 3"* ]]
    [ ! -s "$FAKE_CALLS" ]
}
