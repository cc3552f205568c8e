#!/usr/bin/env bats
# install-k3s.sh against a scratch node: fakes for curl, the K3s installer, k3s, systemctl, ss,
# df, uname and timedatectl record their calls; /proc, /sys and the root filesystem are
# directories under the test's temp dir.
# Each @test runs in its own subshell: exports in a test are meant to stay local to it.
# shellcheck disable=SC2030,SC2031

setup() {
    load helpers
    setup_node
}

@test "--help lists the options and exit codes" {
    run "$INSTALL" --help
    [ "$status" -eq 0 ]
    [[ "$output" == *"--dry-run"* ]]
    [[ "$output" == *"--no-rollback"* ]]
    [[ "$output" == *"16 a required port is in use"* ]]
}

@test "an unknown argument is a usage error" {
    run "$INSTALL" --frobnicate
    [ "$status" -eq 2 ]
    [[ "$output" == *"unknown argument: --frobnicate"* ]]
}

@test "an agent without --server is a usage error" {
    run "$INSTALL" --role agent
    [ "$status" -eq 2 ]
    [[ "$output" == *"an agent needs --server"* ]]
}

@test "--dry-run prints the plan and the generated files and changes nothing" {
    before="$(snapshot)"
    run "$INSTALL" --dry-run
    [ "$status" -eq 0 ]
    [[ "$output" == *"Plan (fresh, K3s $PINNED_VERSION, role server-init):"* ]]
    [[ "$output" == *"download https://get.k3s.io"* ]]
    [[ "$output" == *"cluster-cidr: \"10.42.0.0/16\""* ]]
    [[ "$output" == *"enforce: \"restricted\""* ]]
    [[ "$output" == *"[dry-run] nothing was changed"* ]]
    [ "$(snapshot)" == "$before" ]
    [ ! -e "$CAPSTAN_LOG_DIR" ]
    assert_no_changes_to_node
    [ -z "$(calls_matching '^systemctl')" ]
}

@test "--dry-run works without root and says root is needed for the real run" {
    export CAPSTAN_EUID=1000
    run "$INSTALL" --dry-run
    [ "$status" -eq 0 ]
    [[ "$output" == *"not running as root: fine for --dry-run"* ]]
    assert_no_changes_to_node
}

@test "a fresh install writes the config, runs the pinned installer, waits for the node, logs with timestamps" {
    run "$INSTALL"
    [ "$status" -eq 0 ]
    [ -f "$CAPSTAN_ROOT/etc/rancher/k3s/config.yaml" ]
    [ -f "$CAPSTAN_ROOT/etc/rancher/k3s/pod-security.yaml" ]
    [ "$(stat -c %a "$CAPSTAN_ROOT/etc/rancher/k3s/config.yaml")" == 600 ]
    [ -n "$(calls_matching '^curl .*https://get.k3s.io')" ]
    [ -n "$(calls_matching "^installer version=$PINNED_RE exec=server$")" ]
    [ -n "$(calls_matching '^systemctl is-active --quiet k3s$')" ]
    [ -n "$(calls_matching '^k3s kubectl get nodes')" ]
    log_file="$(ls "$CAPSTAN_LOG_DIR"/install-k3s-*.log)"
    grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z \[INFO\] pre-flight: running as root' "$log_file"
    grep -q "is running (fresh)" "$log_file"
    grep -q "^version=$PINNED_VERSION$" "$CAPSTAN_ROOT/var/lib/capstan-bootstrap/installed"
}

@test "config translation: every cluster-config field lands in K3s' config, field by field" {
    cfg="$BATS_TEST_TMPDIR/custom.yaml"
    cat >"$cfg" <<'EOF'
cluster:
  name: lab-2
  version: v1.34.1+k3s1
  network:
    cidr: 10.100.0.0/16   # pods
    serviceCidr: "10.200.0.0/20"
    flannelBackend: wireguard-native
  storage:
    defaultClass: local-path-retain
  security:
    podSecurityStandard: baseline
    networkPolicies: false
    secretsEncryption: false
  backup:
    snapshotSchedule: "30 2 * * *"
    snapshotRetention: 5
EOF
    run "$INSTALL" --config "$cfg"
    [ "$status" -eq 0 ]
    conf="$CAPSTAN_ROOT/etc/rancher/k3s/config.yaml"
    psa="$CAPSTAN_ROOT/etc/rancher/k3s/pod-security.yaml"
    body="$(grep -v '^#' "$conf")"
    expected='cluster-init: true
cluster-cidr: "10.100.0.0/16"
service-cidr: "10.200.0.0/20"
cluster-dns: "10.200.0.10"
flannel-backend: "wireguard-native"
disable-network-policy: true
secrets-encryption: false
write-kubeconfig-mode: "0600"
node-label:
  - "capstan.dev/cluster=lab-2"
kube-apiserver-arg:
  - "admission-control-config-file=/etc/rancher/k3s/pod-security.yaml"
etcd-snapshot-schedule-cron: "30 2 * * *"
etcd-snapshot-retention: 5'
    [ "$body" == "$expected" ]
    grep -q '^        enforce: "baseline"$' "$psa"
    grep -q '^        audit: "baseline"$' "$psa"
    grep -q '^        warn: "baseline"$' "$psa"
    grep -q '^        namespaces: \[kube-system\]$' "$psa"
    grep -q '^kind: AdmissionConfiguration$' "$psa"
    grep -q '^      kind: PodSecurityConfiguration$' "$psa"
}

@test "config translation: networkPolicies true and default backend leave K3s' defaults on" {
    run "$INSTALL"
    [ "$status" -eq 0 ]
    conf="$CAPSTAN_ROOT/etc/rancher/k3s/config.yaml"
    refute_file_contains 'disable-network-policy' "$conf"
    grep -q '^flannel-backend: "vxlan"$' "$conf"
    grep -q '^secrets-encryption: true$' "$conf"
    grep -q '^cluster-dns: "10.43.0.10"$' "$conf"
}

@test "a joining server gets server and token-file instead of cluster-init" {
    mkdir -p "$CAPSTAN_ROOT/etc/rancher/k3s" && echo s3cr3t-join-token >"$CAPSTAN_ROOT/etc/rancher/k3s/token"
    run "$INSTALL" --server https://10.0.0.1:6443 --token-file /etc/rancher/k3s/token
    [ "$status" -eq 0 ]
    conf="$CAPSTAN_ROOT/etc/rancher/k3s/config.yaml"
    grep -q '^server: "https://10.0.0.1:6443"$' "$conf"
    grep -q '^token-file: "/etc/rancher/k3s/token"$' "$conf"
    refute_file_contains 'cluster-init' "$conf"
    refute_file_contains s3cr3t-join-token "$conf"
}

@test "an agent gets only the join settings, no admission config, and runs the agent service" {
    mkdir -p "$CAPSTAN_ROOT/etc/rancher/k3s" && echo s3cr3t-join-token >"$CAPSTAN_ROOT/etc/rancher/k3s/token"
    export FAKE_SS_TCP="22 6443"
    run "$INSTALL" --role agent --server https://10.0.0.1:6443 --token-file /etc/rancher/k3s/token
    [ "$status" -eq 0 ]
    body="$(grep -v '^#' "$CAPSTAN_ROOT/etc/rancher/k3s/config.yaml")"
    [ "$body" == 'server: "https://10.0.0.1:6443"
token-file: "/etc/rancher/k3s/token"
node-label:
  - "capstan.dev/cluster=homelab"' ]
    [ ! -e "$CAPSTAN_ROOT/etc/rancher/k3s/pod-security.yaml" ]
    [ -n "$(calls_matching '^installer .* exec=agent$')" ]
    [ -n "$(calls_matching '^systemctl is-active --quiet k3s-agent$')" ]
    [ -z "$(calls_matching '^k3s kubectl')" ]
}

# --- pre-flight checks: each failure has its own message and exit code, and installs nothing ---

@test "pre-flight: not root -> exit 10" {
    export CAPSTAN_EUID=1000
    run "$INSTALL"
    [ "$status" -eq 10 ]
    [[ "$output" == *"must run as root"* ]]
    assert_no_changes_to_node
}

@test "pre-flight: unsupported OS -> exit 11" {
    os_release centos 7
    run "$INSTALL"
    [ "$status" -eq 11 ]
    [[ "$output" == *'unsupported operating system "centos 7"'* ]]
    assert_no_changes_to_node
}

@test "pre-flight: missing os-release -> exit 11" {
    rm "$CAPSTAN_ROOT/etc/os-release"
    run "$INSTALL"
    [ "$status" -eq 11 ]
    [[ "$output" == *"unknown operating system"* ]]
}

@test "pre-flight: unsupported architecture -> exit 12" {
    export FAKE_ARCH=riscv64
    run "$INSTALL"
    [ "$status" -eq 12 ]
    [[ "$output" == *'unsupported CPU architecture "riscv64"'* ]]
    assert_no_changes_to_node
}

@test "pre-flight: too few CPUs -> exit 13 (a server needs 2, an agent 1)" {
    set_cpus 1
    run "$INSTALL"
    [ "$status" -eq 13 ]
    [[ "$output" == *"1 CPU(s) found, a K3s server needs at least 2"* ]]
    assert_no_changes_to_node
    echo t >"$CAPSTAN_ROOT/token"
    run "$INSTALL" --dry-run --role agent --server https://10.0.0.1:6443 --token-file /token
    [ "$status" -eq 0 ]
}

@test "pre-flight: too little memory -> exit 14" {
    set_memory_kb 1000000
    run "$INSTALL"
    [ "$status" -eq 14 ]
    [[ "$output" == *"976 MiB of memory, a K3s server needs at least 1843 MiB"* ]]
    assert_no_changes_to_node
}

@test "pre-flight: too little disk -> exit 15" {
    export FAKE_DF_AVAIL_KB=4194304
    run "$INSTALL"
    [ "$status" -eq 15 ]
    [[ "$output" == *"4 GiB free for /var/lib/rancher, a K3s server needs at least 10 GiB"* ]]
    assert_no_changes_to_node
}

@test "pre-flight: API server port in use -> exit 16 naming the port" {
    export FAKE_SS_TCP="22 6443"
    run "$INSTALL"
    [ "$status" -eq 16 ]
    [[ "$output" == *"port(s) already in use: 6443/tcp"* ]]
    assert_no_changes_to_node
}

@test "pre-flight: flannel's VXLAN port in use -> exit 16; 51820/udp matters only with wireguard" {
    export FAKE_SS_UDP="8472"
    run "$INSTALL"
    [ "$status" -eq 16 ]
    [[ "$output" == *"8472/udp"* ]]
    export FAKE_SS_UDP="51820"
    run "$INSTALL" --dry-run
    [ "$status" -eq 0 ]
    run "$INSTALL" --dry-run --config "$(config_with flannelBackend wireguard-native)"
    [ "$status" -eq 16 ]
    [[ "$output" == *"51820/udp"* ]]
}

@test "pre-flight: a port number that only ends like a required one is not a conflict" {
    export FAKE_SS_TCP="16443 110250"
    run "$INSTALL" --dry-run
    [ "$status" -eq 0 ]
}

@test "pre-flight: no cgroup v2 -> exit 17" {
    rm "$CAPSTAN_SYS/fs/cgroup/cgroup.controllers"
    run "$INSTALL"
    [ "$status" -eq 17 ]
    [[ "$output" == *"cgroup v2 is not mounted"* ]]
    assert_no_changes_to_node
}

@test "pre-flight: swap enabled -> exit 18" {
    printf '/swap.img file 2097148 0 -2\n' >>"$CAPSTAN_PROC/swaps"
    run "$INSTALL"
    [ "$status" -eq 18 ]
    [[ "$output" == *"swap is enabled"* ]]
    assert_no_changes_to_node
}

@test "pre-flight: a required command missing -> exit 19 naming it" {
    bin="$BATS_TEST_TMPDIR/minimal-bin"
    mkdir -p "$bin"
    for tool in bash env sh dirname basename date mkdir chmod cat sed tr grep awk wc sort tail \
        cp mv rm mktemp sha256sum stat; do
        ln -s "$(command -v "$tool")" "$bin/$tool"
    done
    for fake in systemctl ss df uname timedatectl; do ln -s "$FAKES_DIR/$fake" "$bin/$fake"; done
    PATH="$bin" run "$INSTALL"
    [ "$status" -eq 19 ]
    [[ "$output" == *"required command(s) not found: curl"* ]]
    assert_no_changes_to_node
}

@test "pre-flight: RKE2 on the machine -> exit 20" {
    mkdir -p "$CAPSTAN_ROOT/etc/rancher/rke2"
    run "$INSTALL"
    [ "$status" -eq 20 ]
    [[ "$output" == *"RKE2 is installed"* ]]
    assert_no_changes_to_node
}

@test "pre-flight: an agent where a K3s server is installed -> exit 20" {
    preinstall "$PINNED_VERSION"
    echo t >"$CAPSTAN_ROOT/token"
    run "$INSTALL" --role agent --server https://10.0.0.1:6443 --token-file /token
    [ "$status" -eq 20 ]
    [[ "$output" == *"K3s is installed here as k3s, not k3s-agent"* ]]
    [ -z "$(calls_matching '^(curl|installer|systemctl)')" ]
}

@test "a join token file that cannot be read is a usage error before any change" {
    run "$INSTALL" --server https://10.0.0.1:6443 --token-file /etc/rancher/k3s/missing-token
    [ "$status" -eq 2 ]
    [[ "$output" == *"token file /etc/rancher/k3s/missing-token is not readable"* ]]
    assert_no_changes_to_node
}

@test "pre-flight: installed K3s newer than the pinned version -> exit 21, nothing touched" {
    preinstall v1.99.0+k3s1
    run "$INSTALL"
    [ "$status" -eq 21 ]
    [[ "$output" == *"installed K3s v1.99.0+k3s1 is newer than the pinned $PINNED_VERSION"* ]]
    [ ! -e "$CAPSTAN_ROOT/etc/rancher/k3s/config.yaml" ]
    [ -z "$(calls_matching '^(curl|installer)')" ]
}

@test "pre-flight: an unsynchronised clock is a warning, not a failure" {
    export FAKE_NTP=no
    run "$INSTALL"
    [ "$status" -eq 0 ]
    [[ "$output" == *"[WARN] pre-flight: the clock is not NTP-synchronised"* ]]
}

# --- a bad cluster-config.yaml stops before anything is checked or installed ---

@test "bad config: an invalid CIDR stops with exit 3 before any pre-flight or install step" {
    run "$INSTALL" --config "$(config_with cidr 10.42.0.0/33)"
    [ "$status" -eq 3 ]
    [[ "$output" == *'cluster.network.cidr: "10.42.0.0/33" has a prefix length above 32'* ]]
    [[ "$output" == *"nothing was changed"* ]]
    [[ "$output" != *"pre-flight"* ]]
    [ ! -s "$FAKE_CALLS" ]
    assert_no_changes_to_node
}

@test "bad config: host bits set, out-of-range octets and overlapping networks are refused" {
    run "$INSTALL" --config "$(config_with cidr 10.42.1.0/16)"
    [ "$status" -eq 3 ]
    [[ "$output" == *"has host bits set (did you mean 10.42.0.0/16?)"* ]]
    run "$INSTALL" --config "$(config_with serviceCidr 10.256.0.0/16)"
    [ "$status" -eq 3 ]
    [[ "$output" == *"has an invalid IPv4 address"* ]]
    run "$INSTALL" --config "$(config_with serviceCidr 10.42.128.0/20)"
    [ "$status" -eq 3 ]
    [[ "$output" == *"overlap"* ]]
    [ ! -s "$FAKE_CALLS" ]
}

@test "bad config: an unknown pod security level stops with exit 3" {
    run "$INSTALL" --config "$(config_with podSecurityStandard strict)"
    [ "$status" -eq 3 ]
    [[ "$output" == *'podSecurityStandard: "strict" is not one of privileged, baseline, restricted'* ]]
    [ ! -s "$FAKE_CALLS" ]
    assert_no_changes_to_node
}

@test "bad config: an unpinned version, an unknown key and YAML the reader does not support" {
    run "$INSTALL" --config "$(config_with version latest)"
    [ "$status" -eq 3 ]
    [[ "$output" == *'cluster.version: "latest" is not a pinned K3s release'* ]]
    printf 'cluster:\n  name: x\n  nmae: y\n' >"$BATS_TEST_TMPDIR/typo.yaml"
    run "$INSTALL" --config "$BATS_TEST_TMPDIR/typo.yaml"
    [ "$status" -eq 3 ]
    [[ "$output" == *"cluster.nmae: unknown key"* ]]
    [[ "$output" == *"cluster.version: required"* ]]
    printf 'cluster:\n  name: &n x\n' >"$BATS_TEST_TMPDIR/anchor.yaml"
    run "$INSTALL" --config "$BATS_TEST_TMPDIR/anchor.yaml"
    [ "$status" -eq 3 ]
    [[ "$output" == *"anchor.yaml:2: unsupported YAML syntax"* ]]
    [ ! -s "$FAKE_CALLS" ]
}

@test "etcd snapshots to S3: off by default, every field translated when enabled" {
    run "$INSTALL"
    [ "$status" -eq 0 ]
    refute_file_contains 'etcd-s3' "$CAPSTAN_ROOT/etc/rancher/k3s/config.yaml"
    cfg="$(config_with enabled true)"
    sed -i -E 's|^( *)endpoint: .*|\1endpoint: minio.lan:9000|; s|^( *)bucket: .*|\1bucket: lab-snaps|; s|^( *)folder: .*|\1folder: lab/etcd|' "$cfg"
    run "$INSTALL" --config "$cfg"
    [ "$status" -eq 0 ]
    conf="$CAPSTAN_ROOT/etc/rancher/k3s/config.yaml"
    [ "$(grep '^etcd-s3' "$conf")" == 'etcd-s3: true
etcd-s3-endpoint: "minio.lan:9000"
etcd-s3-bucket: "lab-snaps"
etcd-s3-region: "us-east-1"
etcd-s3-folder: "lab/etcd"' ]
    # The credentials never come from the config file in Git.
    refute_file_contains 'access-key' "$conf"
    refute_file_contains 'secret-key' "$conf"
}

@test "bad config: S3 values that are not a host, a bucket or a folder are refused" {
    cfg="$(config_with enabled true)"
    sed -i -E 's|^( *)endpoint: .*|\1endpoint: https://s3.example.com/path|; s|^( *)bucket: .*|\1bucket: Bad_Bucket|; s|^( *)folder: .*|\1folder: a/../b|' "$cfg"
    run "$INSTALL" --config "$cfg"
    [ "$status" -eq 3 ]
    [[ "$output" == *'cluster.backup.s3.endpoint: "https://s3.example.com/path" must be host or host:port'* ]]
    [[ "$output" == *'cluster.backup.s3.bucket: "Bad_Bucket" is not an S3 bucket name'* ]]
    [[ "$output" == *"cluster.backup.s3.folder: \"a/../b\" must be"* ]]
    run "$INSTALL" --config "$(config_with enabled maybe)"
    [ "$status" -eq 3 ]
    [[ "$output" == *'cluster.backup.s3.enabled: "maybe" must be true or false'* ]]
    [ ! -s "$FAKE_CALLS" ]
}

# --- failures after the installation started: rollback, or not ---

@test "a node that never becomes Ready is rolled back: K3s uninstalled, config removed, exit 30" {
    export FAKE_NODE_READY=no
    run "$INSTALL"
    [ "$status" -eq 30 ]
    [[ "$output" == *"install failed: K3s did not become healthy"* ]]
    [[ "$output" == *"rolled back"* ]]
    [ -n "$(calls_matching '^k3s-uninstall.sh$')" ]
    [ ! -e "$CAPSTAN_ROOT/usr/local/bin/k3s" ]
    [ ! -e "$CAPSTAN_ROOT/etc/rancher/k3s/config.yaml" ]
    [ ! -e "$CAPSTAN_ROOT/etc/rancher/k3s/pod-security.yaml" ]
    [ ! -e "$CAPSTAN_ROOT/var/lib/capstan-bootstrap/installed" ]
}

@test "a failing installer is rolled back, exit 30" {
    export FAKE_INSTALLER_FAIL=1
    run "$INSTALL"
    [ "$status" -eq 30 ]
    [[ "$output" == *"the K3s installer failed"* ]]
    [ -n "$(calls_matching '^k3s-uninstall.sh$')" ]
    [ ! -e "$CAPSTAN_ROOT/etc/rancher/k3s/config.yaml" ]
}

@test "a failed download is rolled back: the previous config comes back" {
    mkdir -p "$CAPSTAN_ROOT/etc/rancher/k3s"
    echo "# hand-written before" >"$CAPSTAN_ROOT/etc/rancher/k3s/config.yaml"
    export FAKE_CURL_FAIL=1
    run "$INSTALL"
    [ "$status" -eq 30 ]
    [ "$(cat "$CAPSTAN_ROOT/etc/rancher/k3s/config.yaml")" == "# hand-written before" ]
    [ -z "$(calls_matching '^installer')" ]
}

@test "--no-rollback leaves the failed install in place, exit 31" {
    export FAKE_NODE_READY=no
    run "$INSTALL" --no-rollback
    [ "$status" -eq 31 ]
    [[ "$output" == *"rollback disabled (--no-rollback)"* ]]
    [ -z "$(calls_matching 'uninstall')" ]
    [ -x "$CAPSTAN_ROOT/usr/local/bin/k3s" ]
    [ -f "$CAPSTAN_ROOT/etc/rancher/k3s/config.yaml" ]
}

@test "a failed upgrade reinstalls the previous version and restores the previous config" {
    preinstall v1.33.5+k3s1
    mkdir -p "$CAPSTAN_ROOT/etc/rancher/k3s"
    echo "# config of v1.33" >"$CAPSTAN_ROOT/etc/rancher/k3s/config.yaml"
    export FAKE_NODE_READY=no
    run "$INSTALL"
    [ "$status" -eq 30 ]
    [ -n "$(calls_matching "^installer version=$PINNED_RE exec=server$")" ]
    [ -n "$(calls_matching '^installer version=v1.33.5\+k3s1 exec=server$')" ]
    [ -z "$(calls_matching 'uninstall')" ]
    [ "$(cat "$CAPSTAN_ROOT/etc/rancher/k3s/config.yaml")" == "# config of v1.33" ]
}

# --- re-running on an installed node ---

@test "a second run on an up-to-date node is a no-op" {
    run "$INSTALL"
    [ "$status" -eq 0 ]
    before="$(snapshot | grep -v '^.*log/')"
    : >"$FAKE_CALLS"
    export FAKE_SS_TCP="22 6443 10250 2379 2380" FAKE_SS_UDP="8472"
    run "$INSTALL"
    [ "$status" -eq 0 ]
    [[ "$output" == *"already installed with this configuration"* ]]
    [[ "$output" == *"nothing to do"* ]]
    [ -z "$(calls_matching '^(curl|installer|systemctl)')" ]
    [ "$(snapshot | grep -v '^.*log/')" == "$before" ]
}

@test "a second run with a newer pinned version upgrades in place" {
    preinstall v1.33.5+k3s1
    export FAKE_SS_TCP="22 6443 10250" FAKE_SS_UDP="8472"
    run "$INSTALL"
    [ "$status" -eq 0 ]
    [[ "$output" == *"will upgrade to $PINNED_VERSION"* ]]
    [[ "$output" == *"ports not checked"* ]]
    [ -n "$(calls_matching "^installer version=$PINNED_RE exec=server$")" ]
    [ -z "$(calls_matching 'uninstall')" ]
    [ "$(cat "$CAPSTAN_ROOT/usr/local/bin/.k3s-version")" == "$PINNED_VERSION" ]
}

@test "a second run with a changed config restarts K3s without reinstalling" {
    run "$INSTALL"
    [ "$status" -eq 0 ]
    : >"$FAKE_CALLS"
    run "$INSTALL" --config "$(config_with snapshotRetention 30)"
    [ "$status" -eq 0 ]
    [[ "$output" == *"configuration changed"* ]]
    [ -n "$(calls_matching '^systemctl restart k3s$')" ]
    [ -z "$(calls_matching '^(curl|installer)')" ]
    grep -q '^etcd-snapshot-retention: 30$' "$CAPSTAN_ROOT/etc/rancher/k3s/config.yaml"
    # The configuration it replaced is kept.
    grep -rq '^etcd-snapshot-retention: 12$' "$CAPSTAN_ROOT/var/lib/capstan-bootstrap/"
}

@test "--dry-run on an up-to-date node says there is nothing to do" {
    run "$INSTALL"
    [ "$status" -eq 0 ]
    run "$INSTALL" --dry-run
    [ "$status" -eq 0 ]
    [[ "$output" == *"nothing to do"* ]]
}

@test "a log directory that cannot be written is a warning; the install goes on with stderr only" {
    : >"$BATS_TEST_TMPDIR/not-a-dir"
    export CAPSTAN_LOG_DIR="$BATS_TEST_TMPDIR/not-a-dir/logs"
    run "$INSTALL"
    [ "$status" -eq 0 ]
    [[ "$output" == *"[WARN] cannot write a log file in $CAPSTAN_LOG_DIR"* ]]
    [ -f "$CAPSTAN_ROOT/etc/rancher/k3s/config.yaml" ]
}
