# shellcheck shell=bash
# Shared setup for the bootstrap script tests: a scratch "node" (root prefix, /proc, /sys),
# fakes first on PATH, and every fake's calls recorded in $FAKE_CALLS.

# Variables below are read by the .bats files that load this one.
# shellcheck disable=SC2034
{
    REPO_ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
    FAKES_DIR="$BATS_TEST_DIRNAME/fakes"
    INSTALL="$REPO_ROOT/bootstrap/scripts/install-k3s.sh"
    POST_INSTALL="$REPO_ROOT/bootstrap/scripts/post-install.sh"
    CLUSTER_CONFIG="$REPO_ROOT/bootstrap/configs/cluster-config.yaml"
    PINNED_VERSION="$(awk '$1 == "version:" {print $2; exit}' "$CLUSTER_CONFIG")"
    # The same, escaped for grep -E.
    PINNED_RE="${PINNED_VERSION//+/\\+}"
}

setup_node() {
    export FAKES_DIR
    export CAPSTAN_ROOT="$BATS_TEST_TMPDIR/root"
    export CAPSTAN_PROC="$BATS_TEST_TMPDIR/proc"
    export CAPSTAN_SYS="$BATS_TEST_TMPDIR/sys"
    export CAPSTAN_LOG_DIR="$BATS_TEST_TMPDIR/log"
    export CAPSTAN_EUID=0
    export CAPSTAN_WAIT_TIMEOUT=2
    export CAPSTAN_POLL_INTERVAL=0
    export FAKE_CALLS="$BATS_TEST_TMPDIR/calls"
    export PATH="$FAKES_DIR:$PATH"
    mkdir -p "$CAPSTAN_ROOT/etc" "$CAPSTAN_PROC" "$CAPSTAN_SYS/fs/cgroup"
    os_release ubuntu 24.04
    set_cpus 4
    set_memory_kb 8000000
    printf 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n' >"$CAPSTAN_PROC/swaps"
    echo "cpuset cpu io memory hugetlb pids" >"$CAPSTAN_SYS/fs/cgroup/cgroup.controllers"
    : >"$FAKE_CALLS"
}

os_release() {
    printf 'ID=%s\nVERSION_ID="%s"\n' "$1" "$2" >"$CAPSTAN_ROOT/etc/os-release"
}

set_cpus() {
    local i
    : >"$CAPSTAN_PROC/cpuinfo"
    for ((i = 0; i < $1; i++)); do
        printf 'processor\t: %d\nmodel name\t: fake\n\n' "$i" >>"$CAPSTAN_PROC/cpuinfo"
    done
}

set_memory_kb() {
    printf 'MemTotal:       %s kB\nMemFree:        1000 kB\n' "$1" >"$CAPSTAN_PROC/meminfo"
}

# A node where K3s VERSION is already installed as a server, as the fake installer leaves it.
preinstall() {
    local version="$1"
    INSTALL_K3S_VERSION="$version" INSTALL_K3S_EXEC=server \
        INSTALL_K3S_BIN_DIR="$CAPSTAN_ROOT/usr/local/bin" \
        INSTALL_K3S_SYSTEMD_DIR="$CAPSTAN_ROOT/etc/systemd/system" \
        bash "$FAKES_DIR/k3s-installer.sh"
    : >"$FAKE_CALLS"
}

# A copy of the cluster config with KEY (last path segment, unique in the file) set to VALUE.
config_with() {
    local key="$1" value="$2" out="$BATS_TEST_TMPDIR/cluster-config.yaml"
    sed -E "s|^( *)$key: .*|\\1$key: $value|" "$CLUSTER_CONFIG" >"$out"
    grep -q "^ *$key: $value\$" "$out" || {
        echo "config_with: key $key not found" >&2
        return 1
    }
    echo "$out"
}

# Every file under the node's root, with content hashes: equal before and after = untouched.
snapshot() {
    (cd "$BATS_TEST_TMPDIR" && find root log -type f -exec sha256sum {} + 2>/dev/null | sort; find root log 2>/dev/null | sort)
}

calls_matching() {
    grep -E "$1" "$FAKE_CALLS" || true
}

assert_no_changes_to_node() {
    [ ! -e "$CAPSTAN_ROOT/etc/rancher/k3s/config.yaml" ]
    [ ! -e "$CAPSTAN_ROOT/usr/local/bin/k3s" ]
    [ -z "$(calls_matching '^(curl|installer|systemctl (start|restart|enable))')" ]
}

# bats ignores a failing `! cmd` in the middle of a test (errexit skips negated commands), so
# "must not contain" checks go through this.
refute_file_contains() {
    local pattern="$1" file="$2"
    if grep -Eq -- "$pattern" "$file"; then
        echo "unexpected match for /$pattern/ in $file:" >&2
        grep -En -- "$pattern" "$file" >&2
        return 1
    fi
}
