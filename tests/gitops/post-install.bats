#!/usr/bin/env bats
# post-install.sh against a fake kubectl that records every call.
# Each @test runs in its own subshell: exports in a test are meant to stay local to it.
# shellcheck disable=SC2030,SC2031

setup() {
    load helpers
    setup_node
}

# Line number of the first recorded call matching PATTERN (0 when absent).
call_line() {
    grep -nE "$1" "$FAKE_CALLS" | head -n 1 | cut -d: -f1 || true
}

@test "post-install waits for K3s' core, applies configs, installs ArgoCD, then the root app, in that order" {
    run "$POST_INSTALL"
    [ "$status" -eq 0 ]
    nodes="$(call_line '^kubectl get nodes --no-headers')"
    traefik="$(call_line '^kubectl -n kube-system rollout status deployment/traefik')"
    configs="$(call_line "^kubectl apply -k $REPO_ROOT/bootstrap/configs$")"
    default_sc="$(call_line '^kubectl patch storageclass local-path .*is-default-class":"true"')"
    argocd="$(call_line "^kubectl apply -k $REPO_ROOT/argocd/installation$")"
    crds="$(call_line '^kubectl wait --for=condition=Established .*crd/applications.argoproj.io')"
    projects="$(call_line "^kubectl apply -k $REPO_ROOT/argocd/configs$")"
    server="$(call_line '^kubectl -n argocd rollout status deployment/argocd-server')"
    root="$(call_line "^kubectl apply -f $REPO_ROOT/argocd/bootstrap-apps/root.yaml$")"
    for n in "$nodes" "$traefik" "$configs" "$default_sc" "$argocd" "$crds" "$projects" "$server" "$root"; do
        [ -n "$n" ] && [ "$n" -gt 0 ]
    done
    [ "$nodes" -lt "$traefik" ]
    [ "$traefik" -lt "$configs" ]
    [ "$configs" -lt "$argocd" ]
    [ "$argocd" -lt "$crds" ]
    [ "$crds" -lt "$projects" ]
    [ "$projects" -lt "$server" ]
    [ "$server" -lt "$root" ]
    # Only the configured default class is marked default; the other one is unmarked.
    [ -n "$(calls_matching '^kubectl patch storageclass local-path-retain .*is-default-class":"false"')" ]
    [[ "$output" == *"https://example.com/argocd"* ]]
    [[ "$output" == *"https://grafana.example.com"* ]]
    [[ "$output" == *"https://dashboard.example.com"* ]]
    [[ "$output" == *"OK   argocd/deployment/argocd-server"* ]]
    [[ "$output" == *"OK   application root (Healthy)"* ]]
    [[ "$output" != *"FAIL"* ]]
}

@test "--domain changes the printed URLs" {
    run "$POST_INSTALL" --domain lab.home.arpa
    [ "$status" -eq 0 ]
    [[ "$output" == *"https://lab.home.arpa/grafana"* ]]
    [[ "$output" == *"https://argocd.lab.home.arpa"* ]]
}

@test "a component that never rolls out stops with exit 4 and a health report naming it" {
    export FAKE_UNHEALTHY="argocd-repo-server"
    run "$POST_INSTALL"
    [ "$status" -eq 4 ]
    [[ "$output" == *"FAIL argocd/deployment/argocd-repo-server"* ]]
    [[ "$output" == *"OK   kube-system/deployment/traefik"* ]]
    [[ "$output" == *"argocd/deployment/argocd-repo-server is not ready"* ]]
    [ -z "$(calls_matching 'root.yaml')" ]
}

@test "a node that is not Ready stops before anything is applied" {
    export FAKE_NODE_READY=no
    run "$POST_INSTALL"
    [ "$status" -eq 4 ]
    [[ "$output" == *"FAIL nodes Ready"* ]]
    [ -z "$(calls_matching '^kubectl apply')" ]
}

@test "an unhealthy root application makes the final report fail" {
    export FAKE_ROOT_HEALTH=Degraded
    run "$POST_INSTALL"
    [ "$status" -eq 4 ]
    [[ "$output" == *"FAIL application root (Degraded)"* ]]
}

@test "a failing apply stops with exit 1 and says which" {
    export FAKE_APPLY_FAIL="argocd/configs"
    run "$POST_INSTALL"
    [ "$status" -eq 1 ]
    [[ "$output" == *"applying argocd/configs failed"* ]]
    [ -z "$(calls_matching 'root.yaml')" ]
}

@test "--dry-run prints the steps and applies nothing" {
    run "$POST_INSTALL" --dry-run
    [ "$status" -eq 0 ]
    [[ "$output" == *"[dry-run] apply bootstrap configs: kubectl apply -k $REPO_ROOT/bootstrap/configs"* ]]
    [[ "$output" == *"[dry-run] install ArgoCD (HelmChart)"* ]]
    [[ "$output" == *"[dry-run] apply the root application"* ]]
    [ -z "$(calls_matching '^kubectl (apply|patch)')" ]
    [ ! -e "$CAPSTAN_LOG_DIR" ]
}

@test "an invalid cluster config stops with exit 3 before touching the cluster" {
    run "$POST_INSTALL" --config "$(config_with podSecurityStandard everything)"
    [ "$status" -eq 3 ]
    [ ! -s "$FAKE_CALLS" ]
}
