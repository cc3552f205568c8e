#!/usr/bin/env bats
# bootstrap/docs/install.md walks a new user from a fresh VM to the dashboard: every command in
# its shell blocks must exist (this repository's scripts as executable files, anything else from
# a known source), and every option given to this repository's scripts must be one their --help
# documents.

setup() {
    # Commands that are not in this repository, and where the page's reader gets them.
    declare -gA EXTERNAL=(
        [git]="the distribution's git package"
        [curl]="the distribution's curl package"
        [k3s]="installed by step 3 (install-k3s.sh)"
        [kubeseal]="the sealed-secrets releases, named in step 6"
        [bash]="the distribution"
        [systemctl]="the distribution's systemd"
    )
    REPO_ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
    DOC="$REPO_ROOT/bootstrap/docs/install.md"
}

# Every command line of the page's ```sh blocks, continuation lines joined, comments dropped.
doc_commands() {
    awk '
        /^```sh/ {in_block = 1; next}
        /^```/ {in_block = 0; next}
        in_block && /^[[:space:]]*#/ {next}
        in_block {
            line = line $0
            if (line ~ /\\$/) {sub(/\\$/, " ", line); next}
            print line
            line = ""
        }
    ' "$DOC"
}

# The simple commands of a line: split on | && ; and stripped of sudo and a leading `cd`.
simple_commands() {
    sed -E 's/\|\||&&|\||;/\n/g' | sed -E 's/^[[:space:]]+//; s/^sudo[[:space:]]+//' | grep -v '^$'
}

@test "the page has a check for every numbered step" {
    steps="$(grep -c '^## [0-9]' "$DOC")"
    checks="$(grep -c '^\*\*Check\*\*' "$DOC")"
    [ "$steps" -ge 7 ]
    [ "$checks" -ge "$steps" ]
}

@test "every command on the page exists" {
    local n=0 cmd first
    while IFS= read -r cmd; do
        n=$((n + 1))
        read -r first _ <<<"$cmd"
        case "$first" in
            cd) continue ;;
            */*)
                [ -x "$REPO_ROOT/$first" ] || { echo "not an executable in the repository: $first"; return 1; }
                ;;
            *)
                [ -n "${EXTERNAL[$first]:-}" ] || { echo "unknown command on the page: $first ($cmd)"; return 1; }
                ;;
        esac
        if [ "$first" = bash ]; then
            read -r _ script _ <<<"$cmd"
            [ -f "$REPO_ROOT/$script" ] || { echo "bash runs a missing file: $script"; return 1; }
        fi
    done < <(doc_commands | simple_commands)
    [ "$n" -ge 10 ]
}

@test "every option given to this repository's scripts is one its --help documents" {
    local cmd first opt checked=0
    while IFS= read -r cmd; do
        read -r first _ <<<"$cmd"
        [[ "$first" == bootstrap/scripts/* ]] || continue
        help="$("$REPO_ROOT/$first" --help)"
        while read -r opt; do
            [[ "$help" == *"$opt"* ]] || { echo "$first does not document $opt"; return 1; }
            checked=$((checked + 1))
        done < <(grep -oE -- '--[a-z][a-z-]*' <<<"$cmd")
    done < <(doc_commands | simple_commands)
    [ "$checked" -ge 8 ]
}

@test "inline commands naming this repository's files point at files that exist" {
    local path
    # shellcheck disable=SC2016 # the backquotes are Markdown, not shell
    while IFS= read -r path; do
        [ -e "$REPO_ROOT/$path" ] || { echo "missing: $path"; return 1; }
    done < <(grep -oE '`(bootstrap|infrastructure|applications|argocd|tests)/[^` ]+' "$DOC" | tr -d '`' | sort -u)
}
