#!/usr/bin/env bats
# bootstrap/scripts/configure on a copy of the tree: every old value gone, every kustomization
# still building, a second run changing nothing, hostile values refused before anything changes.
# The old values are read from the real tree here, independently of the script (with PyYAML).
# shellcheck disable=SC2030,SC2031

NEW_REPO=https://git.example.net/team/platform.git
NEW_DOMAIN=k3s.example.net
NEW_EMAIL=ops@example.org
NEW_CLUSTER=lab

setup() {
    REPO_ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
    TREE="$BATS_TEST_TMPDIR/tree"
    mkdir -p "$TREE"
    cp -r "$REPO_ROOT/bootstrap" "$REPO_ROOT/argocd" "$REPO_ROOT/infrastructure" \
        "$REPO_ROOT/applications" "$REPO_ROOT/.capstan.yaml" "$TREE/"
    CONFIGURE="$TREE/bootstrap/scripts/configure"
    PYTHON=python3
    python3 -c 'import yaml' 2>/dev/null || PYTHON=/usr/bin/python3
    read -r OLD_REPO OLD_DOMAIN OLD_EMAIL OLD_CLUSTER < <(old_values "$REPO_ROOT")
}

# The four values of a tree, read from the objects that use them.
old_values() {
    "$PYTHON" - "$1" <<'PY'
import sys, yaml
root = sys.argv[1]
load = lambda p: [d for d in yaml.safe_load_all(open(f"{root}/{p}")) if d]
repo = load(".capstan.yaml")[0]["repoURL"]
hosts = [r["host"] for r in load("infrastructure/base/ingress-management/argocd.yaml")[0]["spec"]["rules"]]
domain = next(h for h in hosts if not h.startswith("argocd."))
email = {d["spec"]["acme"]["email"] for d in load("infrastructure/base/ingress/issuers.yaml") if "acme" in d.get("spec", {})}
assert len(email) == 1, email
cluster = load("bootstrap/configs/cluster-config.yaml")[0]["cluster"]["name"]
print(repo, domain, email.pop(), cluster)
PY
}

snapshot() {
    (cd "$TREE" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
}

NEW_VALUES=(--repo-url "$NEW_REPO" --domain "$NEW_DOMAIN" --acme-email "$NEW_EMAIL" --cluster-name "$NEW_CLUSTER")

configure_new() {
    "$CONFIGURE" "${NEW_VALUES[@]}" </dev/null
}

# Every occurrence of VALUE as a whole token (not inside a longer name or address).
occurrences() {
    local value="$1"
    grep -rnIP "(?<![A-Za-z0-9.@_-])\\Q$value\\E(?![A-Za-z0-9_-])" "$TREE" || true
}

@test "--help explains every value, where it lives and how to run it again" {
    run "$REPO_ROOT/bootstrap/scripts/configure" --help
    [ "$status" -eq 0 ]
    for word in --repo-url --domain --acme-email --cluster-name --dry-run "same answers changes nothing" \
        "cluster-config.yaml" ".capstan.yaml" "validate.sh" "Exit codes"; do
        [[ "$output" == *"$word"* ]]
    done
}

@test "the placeholders it replaces are what the tree holds" {
    [ "$OLD_REPO" = https://github.com/capstan-gitops/capstan.git ]
    [ "$OLD_DOMAIN" = example.com ]
    [ "$OLD_EMAIL" = platform@example.com ]
    [ "$OLD_CLUSTER" = homelab ]
}

@test "no old value remains, the new ones are where ArgoCD and the installer read them" {
    run configure_new
    [ "$status" -eq 0 ]
    [[ "$output" == *"changed "*" file(s)"* ]]

    [ -z "$(occurrences "$OLD_REPO")" ]
    [ -z "$(occurrences "${OLD_REPO%.git}")" ]
    [ -z "$(occurrences "$OLD_EMAIL")" ]
    # The domain as a whole name or the parent of a subdomain (argocd.example.com, …).
    run grep -rnIP "(?<![A-Za-z0-9@_-])\\Q$OLD_DOMAIN\\E(?![A-Za-z0-9_-])" "$TREE"
    [ "$status" -eq 1 ]
    [ -z "$(occurrences "$OLD_CLUSTER")" ]

    read -r repo domain email cluster < <(old_values "$TREE")
    [ "$repo" = "$NEW_REPO" ]
    [ "$domain" = "$NEW_DOMAIN" ]
    [ "$email" = "$NEW_EMAIL" ]
    [ "$cluster" = "$NEW_CLUSTER" ]
    grep -q "repoURL: $NEW_REPO" "$TREE/argocd/bootstrap-apps/root.yaml"
    grep -q "host: argocd.$NEW_DOMAIN" "$TREE/infrastructure/base/ingress-management/argocd.yaml"
    grep -q "podinfo.staging.$NEW_DOMAIN" "$TREE/applications/workloads/podinfo/overlays/staging/kustomization.yaml"
    grep -q "url: https://git.example.net/team/platform$" "$TREE/applications/system/capstan/dashboard.yaml"
    grep -q "^readonly DEFAULT_DOMAIN=$NEW_DOMAIN$" "$TREE/bootstrap/scripts/post-install.sh"
}

@test "every kustomization still builds after configure" {
    configure_new >/dev/null
    local built=0 dir
    while IFS= read -r dir; do
        kubectl kustomize "$dir" >/dev/null
        built=$((built + 1))
    done < <(find "$TREE/argocd" "$TREE/infrastructure" "$TREE/applications" "$TREE/bootstrap/configs" \
        -name kustomization.yaml -exec dirname {} \; | sort)
    [ "$built" -ge 20 ]
    # The configured tree renders the new domain.
    kubectl kustomize "$TREE/infrastructure/overlays/production/ingress" | grep -q "host: grafana.$NEW_DOMAIN"
}

@test "a second run with the same answers changes nothing" {
    configure_new >/dev/null
    before="$(snapshot)"
    run configure_new
    [ "$status" -eq 0 ]
    [[ "$output" == *"nothing to change"* ]]
    [ "$(snapshot)" = "$before" ]
}

@test "configuring again moves from the first answers to the second" {
    configure_new >/dev/null
    run "$CONFIGURE" --domain other.example.net --repo-url git@git.example.net:team/other.git </dev/null
    [ "$status" -eq 0 ]
    [ -z "$(occurrences "$NEW_DOMAIN")" ]
    [ -z "$(occurrences "$NEW_REPO")" ]
    grep -q "repoURL: git@git.example.net:team/other.git" "$TREE/.capstan.yaml"
    # Values not given are kept.
    grep -q "email: $NEW_EMAIL" "$TREE/infrastructure/base/ingress/issuers.yaml"
}

@test "an email at the old domain survives the domain rewrite" {
    run "$CONFIGURE" --acme-email "certs@$OLD_DOMAIN" --domain "$NEW_DOMAIN" </dev/null
    [ "$status" -eq 0 ]
    grep -q "email: certs@$OLD_DOMAIN$" "$TREE/infrastructure/base/ingress/issuers.yaml"
}

@test "hostile or malformed values are refused and nothing changes" {
    before="$(snapshot)"
    # shellcheck disable=SC2016 # '$(id)' is meant literally: it must never be evaluated
    local -a bad=(
        --domain 'evil.com/";rm' --domain 'a b.example.org' --domain EXAMPLE.ORG --domain localhost
        --repo-url "https://x.example.net/a'b.git" --repo-url file:///etc/passwd
        --repo-url https://x.example.net/../b --acme-email not-an-email --acme-email a@b
        --cluster-name Lab --cluster-name '$(id)' --frobnicate x
    )
    local i
    for ((i = 0; i < ${#bad[@]}; i += 2)); do
        run "$CONFIGURE" "${bad[i]}" "${bad[i + 1]}" </dev/null
        [ "$status" -eq 2 ]
    done
    [ "$(snapshot)" = "$before" ]
}

@test "--dry-run lists what would change and changes nothing" {
    before="$(snapshot)"
    run "$CONFIGURE" "${NEW_VALUES[@]}" --dry-run </dev/null
    [ "$status" -eq 0 ]
    [[ "$output" == *"would change"* ]]
    [[ "$output" == *"argocd/bootstrap-apps/root.yaml"* ]]
    [ "$(snapshot)" = "$before" ]
}

@test "without a terminal and without values it keeps the current ones" {
    before="$(snapshot)"
    run "$CONFIGURE" </dev/null
    [ "$status" -eq 0 ]
    [[ "$output" == *"nothing to change"* ]]
    [ "$(snapshot)" = "$before" ]
}

@test "on a terminal it asks for each value, Enter keeping the current one" {
    # script(1) (util-linux, on every Debian) gives the run a terminal.
    run script -qec "$CONFIGURE" /dev/null <<<$'not a url\n'"$NEW_REPO"$'\n\n\n'"$NEW_CLUSTER"$'\n'
    [ "$status" -eq 0 ]
    [[ "$output" == *"Repository URL ArgoCD syncs from [$OLD_REPO]"* ]]
    [[ "$output" == *"not a valid value"* ]]
    read -r repo domain email cluster < <(old_values "$TREE")
    [ "$repo" = "$NEW_REPO" ]
    [ "$domain" = "$OLD_DOMAIN" ]
    [ "$email" = "$OLD_EMAIL" ]
    [ "$cluster" = "$NEW_CLUSTER" ]
}
