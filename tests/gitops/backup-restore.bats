#!/usr/bin/env bats
# bootstrap/scripts/backup and restore against a fake kubectl over a directory "cluster"
# (tests/gitops/fakes/cluster/kubectl): the export holds every ArgoCD object kind a rebuilt
# cluster needs, without server-populated fields and readable only by its owner; the restore
# refuses damaged backups and applies namespaces and CRDs, then projects, then repositories,
# then applications.

bats_require_minimum_version 1.5.0

setup() {
    REPO_ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
    BACKUP="$REPO_ROOT/bootstrap/scripts/backup"
    RESTORE="$REPO_ROOT/bootstrap/scripts/restore"
    export PATH="$BATS_TEST_DIRNAME/fakes/cluster:$BATS_TEST_DIRNAME/fakes:$PATH"
    export FAKE_CALLS="$BATS_TEST_TMPDIR/calls"
    export FAKE_CLUSTER="$BATS_TEST_TMPDIR/cluster"
    export CAPSTAN_LOG_DIR="$BATS_TEST_TMPDIR/log"
    export CAPSTAN_ROOT="$BATS_TEST_TMPDIR/root"
    OUT="$BATS_TEST_TMPDIR/backups"
    : >"$FAKE_CALLS"
    mkdir -p "$FAKE_CLUSTER" "$CAPSTAN_ROOT"
    seed_cluster
}

# list FILE KIND NAME...: a `kubectl get -o yaml` List of KIND objects, with the fields a real
# API server adds (status, resourceVersion, uid, creationTimestamp, generation) and a nested
# template metadata that must survive.
list() {
    local file="$1" kind="$2" name
    shift 2
    {
        printf 'apiVersion: v1\nitems:\n'
        for name in "$@"; do
            cat <<YAML
- apiVersion: argoproj.io/v1alpha1
  kind: $kind
  metadata:
    creationTimestamp: "2026-01-01T00:00:00Z"
    generation: 3
    labels:
      argocd.argoproj.io/secret-type: whatever
    name: $name
    namespace: argocd
    resourceVersion: "12345"
    uid: 0f6c1f6e-0000-4000-8000-$(printf '%012d' "${#name}")
  spec:
    template:
      metadata:
        name: '{{name}}'
        uid: keep-me
  status:
    health:
      status: Healthy
    sync:
      status: Synced
YAML
        done
        printf 'kind: List\nmetadata:\n  resourceVersion: ""\n'
    } >"$FAKE_CLUSTER/$file"
}

seed_cluster() {
    list namespaces.yaml Namespace argocd
    list customresourcedefinitions.apiextensions.k8s.io.yaml CustomResourceDefinition \
        applications.argoproj.io applicationsets.argoproj.io appprojects.argoproj.io
    list configmaps.yaml ConfigMap argocd-cm argocd-rbac-cm
    list appprojects.argoproj.io.yaml AppProject platform workloads
    list secrets@repository.yaml Secret repo-capstan
    list secrets@repo-creds.yaml Secret creds-github
    list secrets@cluster.yaml Secret cluster-staging
    list applicationsets.argoproj.io.yaml ApplicationSet operators
    list applications.argoproj.io.yaml Application root argocd capstan
    # Not ArgoCD's: never selected, so never exported.
    list secrets.yaml Secret unrelated-token
}

backup_dir() {
    find "$OUT" -mindepth 1 -maxdepth 1 -type d -name 'argocd-*' | sort | tail -n 1
}

@test "the export holds every kind a rebuilt cluster needs, and nothing else" {
    run "$BACKUP" --output "$OUT"
    [ "$status" -eq 0 ]
    dir="$(backup_dir)"
    [ -n "$dir" ]
    for name in argocd applications.argoproj.io applicationsets.argoproj.io appprojects.argoproj.io \
        argocd-cm argocd-rbac-cm platform workloads repo-capstan creds-github cluster-staging \
        operators root capstan; do
        grep -rq "^    name: $name\$" "$dir" || { echo "missing $name"; return 1; }
    done
    run ! grep -rq unrelated-token "$dir"
    # Secrets are selected by ArgoCD's own label, one selector per secret type.
    for type in repository repo-creds cluster; do
        grep -q -- "-l argocd.argoproj.io/secret-type=$type" "$FAKE_CALLS"
    done
    # The MANIFEST counts what each file holds.
    grep -q $'^50-applications.yaml\tapplications\t3$' "$dir/MANIFEST"
    grep -q $'^20-projects.yaml\tappprojects\t2$' "$dir/MANIFEST"
    grep -q $'^40-applicationsets.yaml\tapplicationsets\t1$' "$dir/MANIFEST"
    (cd "$dir" && sha256sum --check --quiet SHA256SUMS)
}

@test "server-populated fields are stripped, nested template metadata is kept" {
    run "$BACKUP" --output "$OUT"
    [ "$status" -eq 0 ]
    dir="$(backup_dir)"
    run ! grep -rqE '^    (resourceVersion|uid|creationTimestamp|generation):' "$dir"
    run ! grep -rq '^  status:' "$dir"
    run ! grep -rq 'Healthy' "$dir"
    grep -q '        uid: keep-me' "$dir/50-applications.yaml"
    grep -q "        name: '{{name}}'" "$dir/50-applications.yaml"
}

@test "credentials in the export are readable by their owner only" {
    run "$BACKUP" --output "$OUT"
    [ "$status" -eq 0 ]
    dir="$(backup_dir)"
    [ "$(stat -c %a "$dir")" = 700 ]
    for f in "$dir"/*; do
        [ "$(stat -c %a "$f")" = 600 ] || { echo "$f is $(stat -c %a "$f")"; return 1; }
    done
}

@test "a kubectl failure fails the backup instead of writing a partial one silently" {
    FAKE_GET_FAIL=applications.argoproj.io run "$BACKUP" --output "$OUT"
    [ "$status" -ne 0 ]
    [[ "$output" == *"kubectl get"*"failed"* ]]
}

@test "--keep prunes the oldest backups and nothing else" {
    mkdir -p "$OUT/argocd-20200101T000000Z" "$OUT/argocd-20200102T000000Z" "$OUT/keep-me"
    run "$BACKUP" --output "$OUT" --keep 2
    [ "$status" -eq 0 ]
    [ ! -d "$OUT/argocd-20200101T000000Z" ]
    [ -d "$OUT/argocd-20200102T000000Z" ]
    [ -d "$OUT/keep-me" ]
    [ "$(find "$OUT" -mindepth 1 -maxdepth 1 -name 'argocd-*' | wc -l)" -eq 2 ]
}

@test "restore applies namespaces and CRDs, then projects, then repositories, then applications" {
    run "$BACKUP" --output "$OUT"
    [ "$status" -eq 0 ]
    : >"$FAKE_CALLS"
    run "$RESTORE" "$(backup_dir)"
    [ "$status" -eq 0 ]
    applied="$(grep '^applied ' "$FAKE_CALLS" | cut -d' ' -f2)"
    line_of() { grep -nx "$1" <<<"$applied" | head -n 1 | cut -d: -f1; }
    ns="$(line_of Namespace/argocd)"
    crd="$(line_of CustomResourceDefinition/appprojects.argoproj.io)"
    cm="$(line_of ConfigMap/argocd-cm)"
    proj="$(line_of AppProject/workloads)"
    repo="$(line_of Secret/repo-capstan)"
    creds="$(line_of Secret/creds-github)"
    cluster="$(line_of Secret/cluster-staging)"
    appset="$(line_of ApplicationSet/operators)"
    app="$(line_of Application/root)"
    for v in ns crd cm proj repo creds cluster appset app; do
        [ -n "${!v}" ] || { echo "$v was never applied"; return 1; }
    done
    # One assertion a line: bats fails on a false test only when it is not inside a && list.
    [ "$ns" -lt "$proj" ]
    [ "$crd" -lt "$proj" ]
    [ "$cm" -lt "$proj" ]
    [ "$proj" -lt "$repo" ]
    [ "$proj" -lt "$creds" ]
    [ "$proj" -lt "$cluster" ]
    [ "$repo" -lt "$appset" ]
    [ "$creds" -lt "$appset" ]
    [ "$cluster" -lt "$appset" ]
    [ "$appset" -lt "$app" ]
    # Every exported object is applied exactly once.
    [ "$(wc -l <<<"$applied")" -eq 15 ]
    # The CRDs are Established before anything that uses them is applied.
    wait_line="$(grep -n 'wait --for condition=established' "$FAKE_CALLS" | cut -d: -f1)"
    first_project="$(grep -n '^applied AppProject/' "$FAKE_CALLS" | head -n 1 | cut -d: -f1)"
    [ -n "$wait_line" ]
    [ "$wait_line" -lt "$first_project" ]
}

@test "restore refuses a backup that changed after it was written" {
    run "$BACKUP" --output "$OUT"
    dir="$(backup_dir)"
    sed -i 's/name: repo-capstan/name: evil/' "$dir/30-repositories.yaml"
    : >"$FAKE_CALLS"
    run "$RESTORE" "$dir"
    [ "$status" -ne 0 ]
    [[ "$output" == *"does not match its SHA256SUMS"* ]]
    run ! grep -q '^applied ' "$FAKE_CALLS"
}

@test "restore refuses an incomplete backup before applying anything" {
    run "$BACKUP" --output "$OUT"
    dir="$(backup_dir)"
    rm "$dir/20-projects.yaml"
    : >"$FAKE_CALLS"
    run "$RESTORE" "$dir"
    [ "$status" -ne 0 ]
    [[ "$output" == *"20-projects.yaml is missing"* ]]
    run ! grep -q '^applied ' "$FAKE_CALLS"
}

@test "restore --dry-run applies nothing" {
    run "$BACKUP" --output "$OUT"
    : >"$FAKE_CALLS"
    run "$RESTORE" --dry-run "$(backup_dir)"
    [ "$status" -eq 0 ]
    [[ "$output" == *"[dry-run] apply 20-projects.yaml"* ]]
    [ ! -s "$FAKE_CALLS" ]
}

@test "--install-timer writes a daily systemd timer and enables it" {
    run "$BACKUP" --install-timer --output /var/backups/capstan --keep 7
    [ "$status" -eq 0 ]
    unit="$CAPSTAN_ROOT/etc/systemd/system/capstan-argocd-backup"
    grep -q '^OnCalendar=\*-\*-\* 02:30:00$' "$unit.timer"
    grep -q -- '--output "/var/backups/capstan" --keep 7$' "$unit.service"
    grep -q 'systemctl enable --now capstan-argocd-backup.timer' "$FAKE_CALLS"
}

@test "hostile schedule and paths are refused before anything is written" {
    run "$BACKUP" --install-timer --on-calendar $'daily\nExecStartPre=/bin/sh -c evil'
    [ "$status" -eq 2 ]
    run "$BACKUP" --output 'relative/dir'
    [ "$status" -eq 2 ]
    run "$BACKUP" --output '/tmp/x" ; rm -rf /'
    [ "$status" -eq 2 ]
    run "$BACKUP" --keep 0
    [ "$status" -eq 2 ]
    [ ! -e "$CAPSTAN_ROOT/etc/systemd" ]
    [ ! -s "$FAKE_CALLS" ]
}
