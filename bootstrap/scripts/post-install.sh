#!/usr/bin/env bash
# After install-k3s.sh on the first server: wait for K3s' core, apply bootstrap/configs, install
# ArgoCD (a K3s HelmChart), hand the cluster to the app-of-apps, and report on its health.
set -Eeuo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/common.sh
source "$SCRIPT_DIR/lib/common.sh"
# shellcheck source=lib/cluster-config.sh
source "$SCRIPT_DIR/lib/cluster-config.sh"

readonly EX_UNHEALTHY=4

REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
CONFIG_FILE="$REPO_ROOT/bootstrap/configs/cluster-config.yaml"
KUBECTL="${KUBECTL:-kubectl}"
TIMEOUT="${CAPSTAN_WAIT_TIMEOUT:-600}"
POLL_INTERVAL="${CAPSTAN_POLL_INTERVAL:-5}"
# The configured domain (bootstrap/scripts/configure rewrites this line with the others).
readonly DEFAULT_DOMAIN=example.com
DOMAIN="${CAPSTAN_DOMAIN:-$DEFAULT_DOMAIN}"
export KUBECONFIG="${KUBECONFIG:-$(root_path /etc/rancher/k3s/k3s.yaml)}"

# K3s' packaged components (namespace/kind/name) and ArgoCD's, checked again in the final report.
readonly K3S_CORE="kube-system/deployment/coredns kube-system/deployment/local-path-provisioner kube-system/deployment/metrics-server kube-system/deployment/traefik"
readonly ARGOCD_CORE="argocd/deployment/argocd-server argocd/deployment/argocd-repo-server argocd/deployment/argocd-applicationset-controller argocd/statefulset/argocd-application-controller"

usage() {
    cat <<EOF
Usage: post-install.sh [options]

Run on the first server after install-k3s.sh:
  1. wait (with timeouts) for the node to be Ready and for coredns, traefik,
     local-path-provisioner and metrics-server to be rolled out;
  2. apply bootstrap/configs (ArgoCD namespace, network policies, RBAC) and mark the default
     StorageClass from cluster-config.yaml;
  3. install ArgoCD from argocd/installation (a helm.cattle.io HelmChart) and its settings and
     AppProjects from argocd/configs, and wait for it;
  4. apply argocd/bootstrap-apps/root.yaml, the app-of-apps;
  5. print how to reach ArgoCD, Grafana and the dashboard, and a health report.

Options:
  --config FILE     cluster config (default: bootstrap/configs/cluster-config.yaml)
  --domain DOMAIN   the cluster's domain, for the printed URLs (default: $DEFAULT_DOMAIN)
  --timeout SEC     how long to wait for each component (default: 600)
  --dry-run         print every step, change nothing
  -h, --help        this help

Exit codes: 0 healthy, 1 a step failed, 2 usage, 3 invalid cluster config, 4 a component did
not become healthy (the health report says which).
EOF
}

parse_args() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --config) CONFIG_FILE="${2:?--config needs a file}"; shift 2 ;;
            --domain) DOMAIN="${2:?--domain needs a value}"; shift 2 ;;
            --timeout) TIMEOUT="${2:?--timeout needs seconds}"; shift 2 ;;
            --dry-run) DRY_RUN=1; shift ;;
            -h | --help) usage; exit "$EX_OK" ;;
            *) usage >&2; die "$EX_USAGE" "unknown argument: $1" ;;
        esac
    done
    [[ "$TIMEOUT" =~ ^[0-9]+$ ]] || die "$EX_USAGE" "--timeout must be a number of seconds"
}

kc() {
    "$KUBECTL" "$@"
}

nodes_ready() {
    local nodes
    nodes="$(kc get nodes --no-headers 2>/dev/null)" || return 1
    [[ -n "$nodes" ]] || return 1
    ! awk '$2 != "Ready" { bad = 1 } END { exit !bad }' <<<"$nodes"
}

# rolled_out NAMESPACE/KIND/NAME: exists and its rollout is complete.
rolled_out() {
    local ns="${1%%/*}" rest="${1#*/}"
    kc -n "$ns" get "${rest%%/*}" "${rest#*/}" >/dev/null 2>&1 &&
        kc -n "$ns" rollout status "$rest" --timeout=10s >/dev/null 2>&1
}

# wait_step DESCRIPTION -- CMD...: in dry-run only say what would be waited for.
wait_step() {
    local desc="$1"
    shift
    [[ "${1:-}" == "--" ]] && shift
    if [[ "$DRY_RUN" -eq 1 ]]; then
        printf '[dry-run] wait up to %ss for %s\n' "$TIMEOUT" "$desc"
        return 0
    fi
    poll_until "$TIMEOUT" "$POLL_INTERVAL" "$desc" -- "$@"
}

crds_established() {
    kc wait --for=condition=Established --timeout=10s \
        crd/applications.argoproj.io crd/appprojects.argoproj.io crd/applicationsets.argoproj.io >/dev/null 2>&1
}

set_default_storage_class() {
    local class="$1" other
    run "mark StorageClass $class as the default" -- "$KUBECTL" patch storageclass "$class" --type merge \
        -p '{"metadata":{"annotations":{"storageclass.kubernetes.io/is-default-class":"true"}}}' || return 1
    if [[ "$DRY_RUN" -eq 1 ]]; then
        return 0
    fi
    for other in $(kc get storageclass -o jsonpath='{.items[*].metadata.name}'); do
        [[ "$other" == "$class" ]] && continue
        run "unmark StorageClass $other as default" -- "$KUBECTL" patch storageclass "$other" --type merge \
            -p '{"metadata":{"annotations":{"storageclass.kubernetes.io/is-default-class":"false"}}}' || return 1
    done
}

print_access() {
    local ip
    ip="$(kc get nodes -o jsonpath='{.items[0].status.addresses[?(@.type=="InternalIP")].address}' 2>/dev/null || true)"
    cat <<EOF

Reaching the platform (point DNS for $DOMAIN and *.$DOMAIN at ${ip:-this node}):
  ArgoCD     https://$DOMAIN/argocd     https://argocd.$DOMAIN
             user admin, password: kubectl -n argocd get secret argocd-initial-admin-secret -o jsonpath='{.data.password}' | base64 -d
  Grafana    https://$DOMAIN/grafana    https://grafana.$DOMAIN
             user admin, password: kubectl -n monitoring get secret kube-prometheus-stack-grafana -o jsonpath='{.data.admin-password}' | base64 -d
  Dashboard  https://$DOMAIN/dashboard  https://dashboard.$DOMAIN
Without DNS: kubectl -n argocd port-forward svc/argocd-server 8080:80, then http://localhost:8080/argocd
Grafana and the dashboard appear once the app-of-apps has synced (a few minutes).
EOF
}

# health_report: one line per component; non-zero when anything is unhealthy.
health_report() {
    local item failed=0 status
    echo
    echo "Health report:"
    if nodes_ready; then
        printf '  %-4s %s\n' OK "nodes Ready"
    else
        printf '  %-4s %s\n' FAIL "nodes Ready"
        failed=1
    fi
    for item in $K3S_CORE $ARGOCD_CORE; do
        if rolled_out "$item"; then
            printf '  %-4s %s\n' OK "$item"
        else
            printf '  %-4s %s\n' FAIL "$item"
            failed=1
        fi
    done
    status="$(kc -n argocd get application root -o jsonpath='{.status.health.status}' 2>/dev/null || true)"
    case "$status" in
        Healthy | Progressing) printf '  %-4s %s\n' OK "application root (${status})" ;;
        *)
            printf '  %-4s %s\n' FAIL "application root (${status:-missing})"
            failed=1
            ;;
    esac
    return "$failed"
}

# A wait that timed out: show what is and is not healthy, then stop.
fail_with_report() {
    if [[ "$DRY_RUN" -eq 0 ]]; then
        health_report || true
    fi
    die "$EX_UNHEALTHY" "$@"
}

root_app_reports_health() {
    [[ -n "$(kc -n argocd get application root -o jsonpath='{.status.health.status}' 2>/dev/null)" ]]
}

main() {
    parse_args "$@"
    log_init post-install
    cfg_load "$CONFIG_FILE" || die "$EX_CONFIG" "invalid cluster config $CONFIG_FILE"

    local item
    wait_step "node Ready" -- nodes_ready || fail_with_report "the node is not Ready; see: journalctl -u k3s"
    for item in $K3S_CORE; do
        wait_step "$item rolled out" -- rolled_out "$item" ||
            fail_with_report "$item is not ready; see: kubectl -n ${item%%/*} describe ${item#*/}"
    done

    run "apply bootstrap configs" -- "$KUBECTL" apply -k "$REPO_ROOT/bootstrap/configs" ||
        die "$EX_FAILURE" "applying bootstrap/configs failed"
    set_default_storage_class "${CFG[cluster.storage.defaultClass]}" ||
        die "$EX_FAILURE" "could not mark StorageClass ${CFG[cluster.storage.defaultClass]} as default"

    run "install ArgoCD (HelmChart)" -- "$KUBECTL" apply -k "$REPO_ROOT/argocd/installation" ||
        die "$EX_FAILURE" "applying argocd/installation failed"
    wait_step "ArgoCD CRDs established" -- crds_established ||
        fail_with_report "ArgoCD's CRDs did not appear; see: kubectl -n kube-system logs job/helm-install-argo-cd"
    run "apply ArgoCD settings and projects" -- "$KUBECTL" apply -k "$REPO_ROOT/argocd/configs" ||
        die "$EX_FAILURE" "applying argocd/configs failed"
    for item in $ARGOCD_CORE; do
        wait_step "$item rolled out" -- rolled_out "$item" ||
            fail_with_report "$item is not ready; see: kubectl -n argocd describe ${item#*/}"
    done

    run "apply the root application (app-of-apps)" -- "$KUBECTL" apply -f "$REPO_ROOT/argocd/bootstrap-apps/root.yaml" ||
        die "$EX_FAILURE" "applying argocd/bootstrap-apps/root.yaml failed"
    wait_step "root application reporting health" -- root_app_reports_health ||
        fail_with_report "ArgoCD has not picked up the root application; see: kubectl -n argocd logs statefulset/argocd-application-controller"

    if [[ "$DRY_RUN" -eq 1 ]]; then
        echo "[dry-run] then print access URLs and a health report; nothing was changed"
        exit "$EX_OK"
    fi
    print_access
    if ! health_report; then
        error "some components are unhealthy (see the report above)"
        exit "$EX_UNHEALTHY"
    fi
    log "the cluster is healthy and managed by ArgoCD"
}

main "$@"
