# shellcheck shell=bash
# Shared helpers for the bootstrap scripts: timestamped logging to stderr and a log file,
# fatal errors with a specific exit code, dry-run aware command execution, and polling.
#
# Everything that touches the machine goes through a path under CAPSTAN_ROOT (default: the real
# root), so the scripts can be exercised against a scratch directory without root rights.

# Exit codes shared by both scripts (install-k3s.sh documents the full table in --help).
# shellcheck disable=SC2034 # used by the scripts that source this file
readonly EX_OK=0 EX_FAILURE=1 EX_USAGE=2 EX_CONFIG=3

CAPSTAN_ROOT="${CAPSTAN_ROOT:-}"
CAPSTAN_ROOT="${CAPSTAN_ROOT%/}"
LOG_FILE=""
DRY_RUN=0

# The target root with a path appended: root_path /etc/rancher -> $CAPSTAN_ROOT/etc/rancher.
root_path() {
    printf '%s%s\n' "$CAPSTAN_ROOT" "$1"
}

timestamp() {
    date -u +%Y-%m-%dT%H:%M:%SZ
}

# log_init NAME: start the log file $CAPSTAN_LOG_DIR/NAME-<timestamp>.log (none in dry-run,
# which must leave the machine untouched).
log_init() {
    local name="$1" dir
    if [[ "$DRY_RUN" -eq 1 ]]; then
        return 0
    fi
    dir="${CAPSTAN_LOG_DIR:-$(root_path /var/log/capstan-bootstrap)}"
    LOG_FILE="$dir/$name-$(date -u +%Y%m%dT%H%M%SZ).log"
    # A log that cannot be written is not a reason to stop: stderr still has everything.
    if ! { mkdir -p "$dir" && : >>"$LOG_FILE" && chmod 0600 "$LOG_FILE"; } 2>/dev/null; then
        LOG_FILE=""
        warn "cannot write a log file in $dir: logging to stderr only"
    fi
}

_log() {
    local level="$1"
    shift
    local line
    line="$(timestamp) [$level] $*"
    printf '%s\n' "$line" >&2
    if [[ -n "$LOG_FILE" ]]; then
        printf '%s\n' "$line" >>"$LOG_FILE"
    fi
}

log() { _log INFO "$@"; }
warn() { _log WARN "$@"; }
error() { _log ERROR "$@"; }

# die CODE MESSAGE...: log the message and exit with CODE.
die() {
    local code="$1"
    shift
    error "$@"
    exit "$code"
}

# run DESCRIPTION -- CMD ARGS...: log and run a command that changes the machine; in dry-run
# only print what would run. Returns the command's status.
run() {
    local desc="$1"
    shift
    if [[ "${1:-}" == "--" ]]; then
        shift
    fi
    local shown="$desc: $*"
    # A shell function's arguments can be whole file contents: name the step, not the data.
    if declare -F "$1" >/dev/null; then
        shown="$desc"
    fi
    if [[ "$DRY_RUN" -eq 1 ]]; then
        printf '[dry-run] %s\n' "$shown"
        return 0
    fi
    log "$shown"
    "$@"
}

# poll_until TIMEOUT INTERVAL DESCRIPTION -- CMD ARGS...: run CMD until it succeeds. With an
# interval of 0 (tests) TIMEOUT is the number of attempts instead of seconds.
poll_until() {
    local timeout="$1" interval="$2" desc="$3" attempts i
    shift 3
    if [[ "${1:-}" == "--" ]]; then
        shift
    fi
    if ((interval > 0)); then
        attempts=$(((timeout + interval - 1) / interval))
    else
        attempts="$timeout"
    fi
    ((attempts >= 1)) || attempts=1
    for ((i = 1; i <= attempts; i++)); do
        if "$@" >/dev/null 2>&1; then
            log "$desc: ok"
            return 0
        fi
        if ((i < attempts)); then
            sleep "$interval"
        fi
    done
    error "$desc: still failing after $attempts attempt(s)"
    return 1
}
