#!/usr/bin/env bash
# Installs (or upgrades, or reconfigures) K3s on this machine from
# bootstrap/configs/cluster-config.yaml. Run it on every node; see bootstrap/docs/install.md.
set -Eeuo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/common.sh
source "$SCRIPT_DIR/lib/common.sh"
# shellcheck source=lib/cluster-config.sh
source "$SCRIPT_DIR/lib/cluster-config.sh"

# Exit codes beyond the shared ones (0 ok, 1 failure, 2 usage, 3 config). Each pre-flight check
# has its own so automation can tell them apart.
readonly EX_NOT_ROOT=10
readonly EX_OS=11
readonly EX_ARCH=12
readonly EX_CPU=13
readonly EX_MEMORY=14
readonly EX_DISK=15
readonly EX_PORT=16
readonly EX_CGROUP=17
readonly EX_SWAP=18
readonly EX_COMMAND=19
readonly EX_CONFLICT=20
readonly EX_DOWNGRADE=21
readonly EX_ROLLED_BACK=30
readonly EX_NOT_ROLLED_BACK=31
readonly EX_ROLLBACK_FAILED=32

# Minimums (K3s' documented requirements, with room for the platform on top).
readonly MIN_CPUS_SERVER=2 MIN_CPUS_AGENT=1
readonly MIN_MEM_KB_SERVER=1887436 MIN_MEM_KB_AGENT=491520 # 1.8 GiB / 480 MiB: what "2 GB" / "512 MB" machines report
readonly MIN_DISK_KB_SERVER=10485760 MIN_DISK_KB_AGENT=5242880 # 10 GiB / 5 GiB free under /var/lib/rancher
readonly REQUIRED_COMMANDS="curl systemctl ss df awk sed grep sort sha256sum mktemp"

# Test hooks: where /proc and /sys are read from, and the effective uid. Defaults are the real
# ones; tests point them at fixtures so every check can be exercised without root.
PROC_DIR="${CAPSTAN_PROC:-/proc}"
SYS_DIR="${CAPSTAN_SYS:-/sys}"
EFFECTIVE_UID="${CAPSTAN_EUID:-$EUID}"
K3S_INSTALL_URL="${K3S_INSTALL_URL:-https://get.k3s.io}"
WAIT_TIMEOUT="${CAPSTAN_WAIT_TIMEOUT:-300}"
POLL_INTERVAL="${CAPSTAN_POLL_INTERVAL:-5}"

CONFIG_FILE="$SCRIPT_DIR/../configs/cluster-config.yaml"
ROLE=server
SERVER_URL=""
TOKEN_FILE=""
ROLLBACK=1

BIN_DIR=""
K3S_CONFIG_DIR=""
STATE_DIR=""
BACKUP_DIR=""
MODE=""             # fresh | upgrade | reconfigure | unchanged
PREVIOUS_VERSION="" # installed version before this run, for upgrade rollback
INSTALLER=""

usage() {
    cat <<EOF
Usage: install-k3s.sh [options]

Install K3s on this machine as configured in bootstrap/configs/cluster-config.yaml. Safe to
re-run: an up-to-date node is left alone, an older one is upgraded, a changed config is applied.

Options:
  --config FILE        cluster config (default: bootstrap/configs/cluster-config.yaml)
  --role ROLE          server (default) or agent
  --server URL         join an existing cluster at URL (https://first-server:6443); without it
                       a server starts a new cluster
  --token-file FILE    file holding the join token (required with --server)
  --dry-run            run the checks, print every step and the generated files, change nothing
  --no-rollback        on failure, leave the node as it is for inspection
  -h, --help           this help

Exit codes:
  0 ok    1 failure   2 usage   3 invalid cluster config
  10 not root   11 unsupported OS   12 unsupported CPU architecture   13 too few CPUs
  14 too little memory   15 too little disk   16 a required port is in use
  17 no cgroup v2   18 swap enabled   19 a required command is missing
  20 conflicting install (RKE2, or K3s with another role)   21 installed K3s is newer (no downgrades)
  30 install failed and was rolled back   31 install failed, rollback disabled
  32 install failed and the rollback failed too

Environment: CAPSTAN_LOG_DIR (log directory, default /var/log/capstan-bootstrap),
CAPSTAN_WAIT_TIMEOUT (seconds to wait for the node, default 300), K3S_INSTALL_URL,
K3S_INSTALL_SHA256 (verify the downloaded installer).
EOF
}

parse_args() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --config) CONFIG_FILE="${2:?--config needs a file}"; shift 2 ;;
            --role) ROLE="${2:?--role needs server or agent}"; shift 2 ;;
            --server) SERVER_URL="${2:?--server needs a URL}"; shift 2 ;;
            --token-file) TOKEN_FILE="${2:?--token-file needs a file}"; shift 2 ;;
            --dry-run) DRY_RUN=1; shift ;;
            --no-rollback) ROLLBACK=0; shift ;;
            -h | --help) usage; exit "$EX_OK" ;;
            *) usage >&2; die "$EX_USAGE" "unknown argument: $1" ;;
        esac
    done
    case "$ROLE" in
        server | agent) ;;
        *) die "$EX_USAGE" "--role must be server or agent, not \"$ROLE\"" ;;
    esac
    if [[ "$ROLE" == agent && -z "$SERVER_URL" ]]; then
        die "$EX_USAGE" "an agent needs --server URL and --token-file FILE"
    fi
    if [[ -n "$SERVER_URL" ]]; then
        [[ "$SERVER_URL" =~ ^https://[^/]+:[0-9]+$ ]] ||
            die "$EX_USAGE" "--server must look like https://host:6443, not \"$SERVER_URL\""
        [[ -n "$TOKEN_FILE" ]] || die "$EX_USAGE" "--server needs --token-file FILE"
    fi
}

# The role as the config renderer and the K3s installer see it.
k3s_role() {
    if [[ "$ROLE" == agent ]]; then
        echo agent
    elif [[ -z "$SERVER_URL" ]]; then
        echo server-init
    else
        echo server
    fi
}

service_name() {
    if [[ "$ROLE" == agent ]]; then echo k3s-agent; else echo k3s; fi
}

# ---------------------------------------------------------------------------------------------
# Pre-flight checks. Each prints what is wrong and how to fix it, and exits with its own code.

# Checked first of all (before the log file, which lives under /var/log), reported with the
# other checks.
require_root() {
    if [[ "$EFFECTIVE_UID" -ne 0 && "$DRY_RUN" -eq 0 ]]; then
        die "$EX_NOT_ROOT" "pre-flight: must run as root (try: sudo $0 ...)"
    fi
}

check_root() {
    if [[ "$EFFECTIVE_UID" -ne 0 ]]; then
        warn "not running as root: fine for --dry-run, required for the real install"
        return 0
    fi
    log "pre-flight: running as root"
}

check_commands() {
    local cmd missing=()
    for cmd in $REQUIRED_COMMANDS; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        die "$EX_COMMAND" "pre-flight: required command(s) not found: ${missing[*]} (install them with the OS package manager)"
    fi
    log "pre-flight: required commands present"
}

check_os() {
    local file id version major
    file="$(root_path /etc/os-release)"
    [[ -r "$file" ]] || die "$EX_OS" "pre-flight: cannot read $file: unknown operating system"
    id="$(sed -n 's/^ID=//p' "$file" | tr -d '"')"
    version="$(sed -n 's/^VERSION_ID=//p' "$file" | tr -d '"')"
    major="${version%%.*}"
    case "$id" in
        ubuntu) [[ "$major" =~ ^[0-9]+$ && "$major" -ge 22 ]] ;;
        debian | raspbian) [[ "$major" =~ ^[0-9]+$ && "$major" -ge 12 ]] ;;
        rhel | rocky | almalinux | centos) [[ "$major" =~ ^[0-9]+$ && "$major" -ge 9 ]] ;;
        opensuse-leap | sles) [[ "$major" =~ ^[0-9]+$ && "$major" -ge 15 ]] ;;
        *) false ;;
    esac || die "$EX_OS" "pre-flight: unsupported operating system \"$id $version\" (supported: Ubuntu 22.04+, Debian 12+, RHEL/Rocky/Alma 9+, openSUSE Leap/SLES 15+)"
    log "pre-flight: operating system $id $version"
}

check_arch() {
    local arch
    arch="$(uname -m)"
    case "$arch" in
        x86_64 | aarch64 | arm64 | armv7l) log "pre-flight: architecture $arch" ;;
        *) die "$EX_ARCH" "pre-flight: unsupported CPU architecture \"$arch\" (K3s supports x86_64, aarch64, armv7l)" ;;
    esac
}

check_cpu() {
    local cpus min=$MIN_CPUS_SERVER
    [[ "$ROLE" == agent ]] && min=$MIN_CPUS_AGENT
    cpus="$(grep -c '^processor' "$PROC_DIR/cpuinfo" 2>/dev/null || true)"
    cpus="${cpus:-0}"
    if ((cpus < min)); then
        die "$EX_CPU" "pre-flight: $cpus CPU(s) found, a K3s $ROLE needs at least $min"
    fi
    log "pre-flight: $cpus CPUs"
}

check_memory() {
    local kb min=$MIN_MEM_KB_SERVER
    [[ "$ROLE" == agent ]] && min=$MIN_MEM_KB_AGENT
    kb="$(awk '/^MemTotal:/ {print $2}' "$PROC_DIR/meminfo" 2>/dev/null || true)"
    kb="${kb:-0}"
    if ((kb < min)); then
        die "$EX_MEMORY" "pre-flight: $((kb / 1024)) MiB of memory, a K3s $ROLE needs at least $((min / 1024)) MiB"
    fi
    log "pre-flight: $((kb / 1024)) MiB memory"
}

check_disk() {
    local dir kb min=$MIN_DISK_KB_SERVER
    [[ "$ROLE" == agent ]] && min=$MIN_DISK_KB_AGENT
    # K3s keeps images, etcd and volumes under /var/lib/rancher; measure the filesystem that will
    # hold it (its nearest existing parent before the first install).
    dir="$(root_path /var/lib/rancher)"
    while [[ ! -d "$dir" && "$dir" == */* ]]; do dir="${dir%/*}"; done
    kb="$(df -Pk "${dir:-/}" | awk 'NR == 2 {print $4}')"
    kb="${kb:-0}"
    if ((kb < min)); then
        die "$EX_DISK" "pre-flight: $((kb / 1048576)) GiB free for /var/lib/rancher, a K3s $ROLE needs at least $((min / 1048576)) GiB"
    fi
    log "pre-flight: $((kb / 1048576)) GiB free disk"
}

check_cgroup_v2() {
    if [[ ! -f "$SYS_DIR/fs/cgroup/cgroup.controllers" ]]; then
        die "$EX_CGROUP" "pre-flight: cgroup v2 is not mounted at /sys/fs/cgroup (boot with systemd.unified_cgroup_hierarchy=1)"
    fi
    log "pre-flight: cgroup v2"
}

check_swap() {
    local active
    active="$(awk 'NR > 1' "$PROC_DIR/swaps" 2>/dev/null | wc -l)"
    if ((active > 0)); then
        die "$EX_SWAP" "pre-flight: swap is enabled; the kubelet refuses to start with it (run: swapoff -a, and remove swap from /etc/fstab)"
    fi
    log "pre-flight: no swap"
}

# Ports this node must be able to bind, as "port/proto" entries.
required_ports() {
    local ports="10250/tcp"
    if [[ "$ROLE" == server ]]; then
        ports+=" 6443/tcp 2379/tcp 2380/tcp"
    fi
    case "${CFG[cluster.network.flannelBackend]:-vxlan}" in
        vxlan) ports+=" 8472/udp" ;;
        wireguard-native) ports+=" 51820/udp" ;;
    esac
    echo "$ports"
}

check_ports() {
    local entry port proto listening busy=()
    if [[ -n "$MODE" && "$MODE" != fresh ]]; then
        log "pre-flight: ports not checked: K3s is already running here and owns them"
        return 0
    fi
    local tcp udp
    tcp="$(ss -Htln 2>/dev/null || true)"
    udp="$(ss -Huln 2>/dev/null || true)"
    for entry in $(required_ports); do
        port="${entry%/*}" proto="${entry#*/}"
        listening="$tcp"
        [[ "$proto" == udp ]] && listening="$udp"
        if awk -v p=":$port" '{ n = length($4) - length(p); if (n >= 0 && substr($4, n + 1) == p) found = 1 } END { exit !found }' <<<"$listening"; then
            busy+=("$entry")
        fi
    done
    if [[ ${#busy[@]} -gt 0 ]]; then
        die "$EX_PORT" "pre-flight: port(s) already in use: ${busy[*]} (find the owner with: ss -ltunp)"
    fi
    log "pre-flight: ports free: $(required_ports)"
}

check_time_sync() {
    local synced
    synced="$(timedatectl show -p NTPSynchronized --value 2>/dev/null || true)"
    if [[ "$synced" != yes ]]; then
        warn "pre-flight: the clock is not NTP-synchronised; certificates and etcd need accurate time (enable systemd-timesyncd or chrony)"
    else
        log "pre-flight: clock synchronised"
    fi
}

installed_version() {
    "$BIN_DIR/k3s" --version 2>/dev/null | awk 'NR == 1 {print $3}'
}

# Decide what this run does, refusing what it must not do.
check_existing_install() {
    local desired="${CFG[cluster.version]}" current newest
    if [[ -e "$BIN_DIR/rke2" || -d "$(root_path /etc/rancher/rke2)" ]]; then
        die "$EX_CONFLICT" "pre-flight: RKE2 is installed on this machine; uninstall it (rke2-uninstall.sh) before installing K3s"
    fi
    if [[ ! -x "$BIN_DIR/k3s" ]]; then
        MODE=fresh
        log "pre-flight: no existing K3s: fresh install of $desired"
        return 0
    fi
    local other=k3s-agent
    [[ "$ROLE" == agent ]] && other=k3s
    if [[ -f "$(root_path "/etc/systemd/system/$other.service")" ]]; then
        die "$EX_CONFLICT" "pre-flight: K3s is installed here as $other, not $(service_name); uninstall it first to change the node's role"
    fi
    current="$(installed_version)"
    PREVIOUS_VERSION="$current"
    if [[ -z "$current" ]]; then
        MODE=upgrade
        warn "pre-flight: K3s binary found but its version is unreadable: reinstalling $desired"
        return 0
    fi
    if [[ "$current" == "$desired" ]]; then
        if configs_unchanged; then
            MODE=unchanged
            log "pre-flight: K3s $current already installed with this configuration"
        else
            MODE=reconfigure
            log "pre-flight: K3s $current installed; configuration changed, will apply it"
        fi
        return 0
    fi
    newest="$(printf '%s\n%s\n' "$current" "$desired" | sort -V | tail -n 1)"
    if [[ "$newest" == "$current" ]]; then
        die "$EX_DOWNGRADE" "pre-flight: installed K3s $current is newer than the pinned $desired; downgrades are not supported (bump cluster.version instead)"
    fi
    MODE=upgrade
    log "pre-flight: K3s $current installed: will upgrade to $desired"
}

preflight() {
    check_root
    check_commands
    check_os
    check_arch
    check_cpu
    check_memory
    check_disk
    check_cgroup_v2
    check_swap
    check_existing_install
    check_ports
    check_time_sync
}

# ---------------------------------------------------------------------------------------------
# Generated files.

RENDERED_CONFIG=""
RENDERED_PSA=""

render_files() {
    RENDERED_CONFIG="$(cfg_render_k3s_config "$(k3s_role)" "$SERVER_URL" "$TOKEN_FILE")"
    RENDERED_PSA="$(cfg_render_psa_config)"
}

configs_unchanged() {
    [[ -f "$K3S_CONFIG_DIR/config.yaml" ]] &&
        [[ "$(cat "$K3S_CONFIG_DIR/config.yaml")" == "$RENDERED_CONFIG" ]] &&
        { [[ "$ROLE" == agent ]] || [[ "$(cat "$K3S_CONFIG_DIR/pod-security.yaml" 2>/dev/null)" == "$RENDERED_PSA" ]]; }
}

# write_file PATH CONTENT: atomically replace PATH (mode 0600), keeping a backup for rollback.
write_file() {
    local path="$1" content="$2" name tmp
    name="$(basename "$path")"
    # Called in a `||` context, where set -e is off: every step checks its own status.
    if [[ -f "$path" ]]; then
        cp -p "$path" "$BACKUP_DIR/$name" || return 1
    else
        : >"$BACKUP_DIR/$name.absent" || return 1
    fi
    tmp="$(mktemp "$path.XXXXXX")" || return 1
    printf '%s\n' "$content" >"$tmp" && chmod 0600 "$tmp" && mv -f "$tmp" "$path"
}

restore_file() {
    local path="$1" name
    name="$(basename "$path")"
    if [[ -f "$BACKUP_DIR/$name" ]]; then
        cp -p "$BACKUP_DIR/$name" "$path" || return 1
        log "rollback: restored previous $path"
    elif [[ -f "$BACKUP_DIR/$name.absent" ]]; then
        rm -f "$path" || return 1
        log "rollback: removed $path (there was none before)"
    fi
}

# ---------------------------------------------------------------------------------------------
# Installation and rollback.

download_installer() {
    INSTALLER="$STATE_DIR/get-k3s.sh"
    run "download the K3s installer" -- curl -sfL --retry 3 --proto '=https' -o "$INSTALLER" "$K3S_INSTALL_URL" || return 1
    if [[ -n "${K3S_INSTALL_SHA256:-}" ]]; then
        local got
        got="$(sha256sum "$INSTALLER" | awk '{print $1}')"
        if [[ "$got" != "$K3S_INSTALL_SHA256" ]]; then
            error "installer checksum mismatch: expected $K3S_INSTALL_SHA256, got $got"
            return 1
        fi
    fi
}

# run_installer VERSION: the upstream installer verifies the binary's checksum itself.
run_installer() {
    local version="$1" exec_role=server
    [[ "$ROLE" == agent ]] && exec_role=agent
    run "install K3s $version ($exec_role)" -- env \
        INSTALL_K3S_VERSION="$version" \
        INSTALL_K3S_EXEC="$exec_role" \
        INSTALL_K3S_BIN_DIR="$BIN_DIR" \
        INSTALL_K3S_SYSTEMD_DIR="$(root_path /etc/systemd/system)" \
        sh "$INSTALLER"
}

node_ready() {
    local nodes
    nodes="$("$BIN_DIR/k3s" kubectl get nodes --no-headers 2>/dev/null)" || return 1
    [[ -n "$nodes" ]] || return 1
    ! awk '$2 != "Ready" { bad = 1 } END { exit !bad }' <<<"$nodes"
}

wait_for_node() {
    poll_until "$WAIT_TIMEOUT" "$POLL_INTERVAL" "service $(service_name) active" -- \
        systemctl is-active --quiet "$(service_name)" || return 1
    if [[ "$ROLE" != agent ]]; then
        poll_until "$WAIT_TIMEOUT" "$POLL_INTERVAL" "node Ready" -- node_ready || return 1
    fi
}

rollback() {
    local ok=0
    warn "rollback: undoing this run ($MODE)"
    restore_file "$K3S_CONFIG_DIR/config.yaml" || ok=1
    restore_file "$K3S_CONFIG_DIR/pod-security.yaml" || ok=1
    case "$MODE" in
        fresh)
            local uninstall="$BIN_DIR/k3s-uninstall.sh"
            [[ "$ROLE" == agent ]] && uninstall="$BIN_DIR/k3s-agent-uninstall.sh"
            if [[ -x "$uninstall" ]]; then
                run "rollback: uninstall K3s" -- "$uninstall" || ok=1
            else
                log "rollback: nothing to uninstall ($uninstall not present)"
            fi
            ;;
        upgrade)
            if [[ -n "$PREVIOUS_VERSION" && -n "$INSTALLER" && -f "$INSTALLER" ]]; then
                run_installer "$PREVIOUS_VERSION" || ok=1
            else
                error "rollback: cannot reinstall the previous K3s version ($PREVIOUS_VERSION)"
                ok=1
            fi
            ;;
        reconfigure)
            run "rollback: restart with the previous configuration" -- systemctl restart "$(service_name)" || ok=1
            ;;
    esac
    return "$ok"
}

install_failed() {
    local what="$1"
    trap - INT TERM
    error "install failed: $what"
    if [[ "$ROLLBACK" -eq 0 ]]; then
        error "rollback disabled (--no-rollback): node left as it is; backups in $BACKUP_DIR${LOG_FILE:+, log in $LOG_FILE}"
        exit "$EX_NOT_ROLLED_BACK"
    fi
    if rollback; then
        error "rolled back; the node is as it was before this run${LOG_FILE:+ (log: $LOG_FILE)}"
        exit "$EX_ROLLED_BACK"
    fi
    error "rollback failed too: inspect the node by hand; backups in $BACKUP_DIR${LOG_FILE:+, log in $LOG_FILE}"
    exit "$EX_ROLLBACK_FAILED"
}

print_plan() {
    local service
    service="$(service_name)"
    echo "Plan ($MODE, K3s ${CFG[cluster.version]}, role $(k3s_role)):"
    case "$MODE" in
        unchanged)
            echo "  nothing to do: K3s ${CFG[cluster.version]} is installed with this configuration"
            return 0
            ;;
    esac
    [[ "$ROLE" == agent ]] || echo "  1. write $K3S_CONFIG_DIR/pod-security.yaml (Pod Security default: ${CFG[cluster.security.podSecurityStandard]})"
    echo "  2. write $K3S_CONFIG_DIR/config.yaml (previous copies kept in $STATE_DIR/backup-<time>)"
    case "$MODE" in
        fresh | upgrade)
            echo "  3. download $K3S_INSTALL_URL and run it with INSTALL_K3S_VERSION=${CFG[cluster.version]}"
            ;;
        reconfigure)
            echo "  3. systemctl restart $service"
            ;;
    esac
    if [[ "$ROLE" == agent ]]; then
        echo "  4. wait for $service to be active"
    else
        echo "  4. wait for $service to be active and the node Ready"
    fi
    if [[ "$ROLLBACK" -eq 1 ]]; then
        echo "  on failure: restore the previous configuration and $([[ "$MODE" == fresh ]] && echo "uninstall K3s" || echo "the previous K3s")"
    else
        echo "  on failure: stop and leave everything in place (--no-rollback)"
    fi
}

main() {
    parse_args "$@"
    require_root
    log_init install-k3s
    [[ -n "$LOG_FILE" ]] && log "log file: $LOG_FILE"

    BIN_DIR="$(root_path /usr/local/bin)"
    K3S_CONFIG_DIR="$(root_path /etc/rancher/k3s)"
    STATE_DIR="$(root_path /var/lib/capstan-bootstrap)"

    # The configuration is validated before anything else: a bad value stops the run here.
    log "reading $CONFIG_FILE"
    cfg_load "$CONFIG_FILE" || die "$EX_CONFIG" "invalid cluster config $CONFIG_FILE: nothing was changed"
    if [[ -n "$TOKEN_FILE" && "$DRY_RUN" -eq 0 && ! -r "$(root_path "$TOKEN_FILE")" ]]; then
        die "$EX_USAGE" "token file $TOKEN_FILE is not readable"
    fi
    render_files

    preflight

    if [[ "$DRY_RUN" -eq 1 ]]; then
        print_plan
        if [[ "$MODE" != unchanged ]]; then
            [[ "$ROLE" == agent ]] || printf -- '--- %s/pod-security.yaml\n%s\n' "$K3S_CONFIG_DIR" "$RENDERED_PSA"
            printf -- '--- %s/config.yaml\n%s\n' "$K3S_CONFIG_DIR" "$RENDERED_CONFIG"
        fi
        echo "[dry-run] nothing was changed"
        exit "$EX_OK"
    fi

    if [[ "$MODE" == unchanged ]]; then
        log "K3s ${CFG[cluster.version]} is installed and configured as requested: nothing to do"
        exit "$EX_OK"
    fi

    mkdir -p "$STATE_DIR" "$K3S_CONFIG_DIR"
    chmod 0700 "$STATE_DIR"
    BACKUP_DIR="$STATE_DIR/backup-$(date -u +%Y%m%dT%H%M%SZ)"
    mkdir -p "$BACKUP_DIR"

    # From here on every failure (or an interrupt) ends in install_failed.
    trap 'install_failed "interrupted"' INT TERM
    if [[ "$ROLE" != agent ]]; then
        run "write Pod Security admission config" -- write_file "$K3S_CONFIG_DIR/pod-security.yaml" "$RENDERED_PSA" ||
            install_failed "could not write $K3S_CONFIG_DIR/pod-security.yaml"
    fi
    run "write K3s config" -- write_file "$K3S_CONFIG_DIR/config.yaml" "$RENDERED_CONFIG" ||
        install_failed "could not write $K3S_CONFIG_DIR/config.yaml"
    case "$MODE" in
        fresh | upgrade)
            download_installer || install_failed "could not download the K3s installer from $K3S_INSTALL_URL"
            run_installer "${CFG[cluster.version]}" || install_failed "the K3s installer failed"
            ;;
        reconfigure)
            run "apply the new configuration" -- systemctl restart "$(service_name)" ||
                install_failed "systemctl restart $(service_name) failed"
            ;;
    esac
    wait_for_node || install_failed "K3s did not become healthy within ${WAIT_TIMEOUT}s"
    trap - INT TERM

    printf 'version=%s\nrole=%s\ninstalled=%s\n' "${CFG[cluster.version]}" "$(k3s_role)" "$(timestamp)" >"$STATE_DIR/installed"
    log "K3s ${CFG[cluster.version]} is running ($MODE)."
    if [[ "$ROLE" != agent ]]; then
        log "next: bootstrap/scripts/post-install.sh (ArgoCD and the app-of-apps)"
    fi
}

main "$@"
