# shellcheck shell=bash
# Sourced by every fake: append "<name> <args>" to $FAKE_CALLS, the log the tests read.
fake_record() {
    printf '%s' "$(basename "$0")" >>"${FAKE_CALLS:?FAKE_CALLS must be set}"
    printf ' %s' "$@" >>"$FAKE_CALLS"
    printf '\n' >>"$FAKE_CALLS"
}
