# shellcheck shell=bash
# Reading, validating and translating bootstrap/configs/cluster-config.yaml.
#
# The file has a known, small shape (nested mappings of scalars), so it is read by a strict
# line-based parser instead of depending on a YAML library on a bare machine. Limitations, by
# design, each reported as an error with its line number rather than misread: indentation must be
# two spaces per level; no tabs, lists, anchors/aliases, tags, flow collections ({} []), block
# scalars (| >) or multi-document streams; quoted strings may not contain escapes. Unknown keys
# and duplicate keys are errors, so a typo never silently falls back to a default.

# Every key the file may contain (full dotted paths) and whether it is required.
readonly CFG_REQUIRED_KEYS="cluster.name cluster.version cluster.network.cidr cluster.network.serviceCidr cluster.storage.defaultClass cluster.security.podSecurityStandard cluster.security.networkPolicies"
readonly CFG_OPTIONAL_KEYS="cluster.network.flannelBackend cluster.security.secretsEncryption cluster.backup.snapshotSchedule cluster.backup.snapshotRetention cluster.backup.s3.enabled cluster.backup.s3.endpoint cluster.backup.s3.bucket cluster.backup.s3.region cluster.backup.s3.folder"

# Where K3s reads the Pod Security admission config (a path on the node, never prefixed).
readonly PSA_CONFIG_PATH="/etc/rancher/k3s/pod-security.yaml"

declare -gA CFG=()
declare -ga CFG_ERRORS=()

# cfg_parse FILE: fill CFG with dotted-path -> scalar. Syntax errors go to CFG_ERRORS.
cfg_parse() {
    local file="$1" kind path value
    CFG=()
    CFG_ERRORS=()
    if [[ ! -r "$file" ]]; then
        CFG_ERRORS+=("$file: cannot read the file")
        return 1
    fi
    while IFS=$'\t' read -r kind path value; do
        case "$kind" in
            VAL) CFG["$path"]="$value" ;;
            ERR) CFG_ERRORS+=("$file:$path: $value") ;;
        esac
    done < <(awk '
        function err(msg) { printf "ERR\t%d\t%s\n", NR, msg; bad = 1 }
        function path_at(level, key,    p, i) {
            p = ""
            for (i = 0; i < level; i++) p = p stack[i] "."
            return p key
        }
        BEGIN { depth = 0; pending = "" }
        {
            line = $0
            sub(/\r$/, "", line)
            if (line ~ /^[ ]*(#.*)?$/) next
            if (line ~ /\t/) { err("tab character: indent with two spaces"); next }
            if (line ~ /^(---|\.\.\.)/) { err("multi-document streams are not supported"); next }
            match(line, /^ */)
            indent = RLENGTH
            if (indent % 2 != 0) { err("indentation must be a multiple of two spaces"); next }
            level = indent / 2
            rest = substr(line, indent + 1)
            if (pending != "" && level <= pending_level) {
                printf "ERR\t%d\tkey \"%s\" has no value\n", pending_line, pending
                bad = 1
            }
            pending = ""
            if (level > depth) { err("unexpected indentation"); next }
            if (rest ~ /^- / || rest == "-") { err("lists are not supported"); next }
            if (!match(rest, /^[A-Za-z][A-Za-z0-9_-]*:/)) { err("expected \"key: value\""); next }
            key = substr(rest, 1, RLENGTH - 1)
            value = substr(rest, RLENGTH + 1)
            if (value != "" && value !~ /^ /) { err("expected a space after \"" key ":\""); next }
            sub(/^ +/, "", value)
            path = path_at(level, key)
            if (path in seen) { err("duplicate key \"" path "\""); next }
            seen[path] = 1
            if (value == "" || value ~ /^#/) {
                stack[level] = key
                depth = level + 1
                pending = path; pending_level = level; pending_line = NR
                next
            }
            depth = level
            first = substr(value, 1, 1)
            if (first == "\"" || first == "'\''") {
                close_at = index(substr(value, 2), first)
                if (close_at == 0) { err("unterminated quoted string"); next }
                scalar = substr(value, 2, close_at - 1)
                after = substr(value, close_at + 2)
                if (after !~ /^ *(#.*)?$/) { err("unexpected text after the quoted string"); next }
                if (scalar ~ /\\/) { err("escapes in quoted strings are not supported"); next }
            } else {
                if (first ~ /[&*!|>{\[%@`]/) { err("unsupported YAML syntax \"" first "\" (anchors, aliases, tags, block or flow values)"); next }
                scalar = value
                sub(/ +#.*$/, "", scalar)
                sub(/ +$/, "", scalar)
            }
            printf "VAL\t%s\t%s\n", path, scalar
        }
        END {
            if (pending != "") { printf "ERR\t%d\tkey \"%s\" has no value\n", pending_line, pending }
        }
    ' "$file")
    [[ ${#CFG_ERRORS[@]} -eq 0 ]]
}

# ipv4_to_int ADDR: print the address as an integer; fails on anything but a dotted quad.
ipv4_to_int() {
    local addr="$1" a b c d octet
    [[ "$addr" =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] || return 1
    a="${BASH_REMATCH[1]}" b="${BASH_REMATCH[2]}" c="${BASH_REMATCH[3]}" d="${BASH_REMATCH[4]}"
    for octet in "$a" "$b" "$c" "$d"; do
        # Leading zeros read as octal in some tools; refuse them rather than guess.
        [[ "$octet" == 0 || "$octet" != 0* ]] || return 1
        ((10#$octet <= 255)) || return 1
    done
    printf '%d\n' $(((10#$a << 24) | (10#$b << 16) | (10#$c << 8) | 10#$d))
}

int_to_ipv4() {
    local n="$1"
    printf '%d.%d.%d.%d\n' $(((n >> 24) & 255)) $(((n >> 16) & 255)) $(((n >> 8) & 255)) $((n & 255))
}

# cidr_check CIDR MIN_PREFIX MAX_PREFIX: print "network prefix" or an error text, status 1.
cidr_check() {
    local cidr="$1" min="$2" max="$3" ip prefix net
    if [[ ! "$cidr" =~ ^([0-9.]+)/([0-9]{1,2})$ ]]; then
        echo "\"$cidr\" is not an IPv4 CIDR (a.b.c.d/n)"
        return 1
    fi
    prefix="${BASH_REMATCH[2]}"
    if ! net="$(ipv4_to_int "${BASH_REMATCH[1]}")"; then
        echo "\"$cidr\" has an invalid IPv4 address"
        return 1
    fi
    prefix=$((10#$prefix))
    if ((prefix > 32)); then
        echo "\"$cidr\" has a prefix length above 32"
        return 1
    fi
    if ((prefix < min || prefix > max)); then
        echo "\"$cidr\" must have a prefix length between /$min and /$max"
        return 1
    fi
    ip=$net
    if ((prefix < 32 && (ip & ((1 << (32 - prefix)) - 1)) != 0)); then
        echo "\"$cidr\" has host bits set (did you mean $(int_to_ipv4 $((ip & ~((1 << (32 - prefix)) - 1) & 0xFFFFFFFF)))/$prefix?)"
        return 1
    fi
    echo "$net $prefix"
}

# cfg_validate: check every value; errors go to CFG_ERRORS (all of them, not just the first).
cfg_validate() {
    local key known="" msg a b pa pb m
    for key in $CFG_REQUIRED_KEYS; do
        [[ -n "${CFG[$key]:-}" ]] || CFG_ERRORS+=("$key: required")
    done
    for key in $CFG_REQUIRED_KEYS $CFG_OPTIONAL_KEYS; do known+=" $key "; done
    for key in "${!CFG[@]}"; do
        [[ "$known" == *" $key "* ]] || CFG_ERRORS+=("$key: unknown key")
    done

    local name="${CFG[cluster.name]:-}"
    if [[ -n "$name" && ! "$name" =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]]; then
        CFG_ERRORS+=("cluster.name: \"$name\" must be a DNS label (lowercase letters, digits, '-', at most 63)")
    fi
    local version="${CFG[cluster.version]:-}"
    if [[ -n "$version" && ! "$version" =~ ^v1\.[0-9]+\.[0-9]+\+k3s[0-9]+$ ]]; then
        CFG_ERRORS+=("cluster.version: \"$version\" is not a pinned K3s release such as v1.34.1+k3s1")
    fi

    # Pod CIDR: K3s gives each node a /24, so the pod network must hold at least two of them.
    local pod="" svc=""
    if [[ -n "${CFG[cluster.network.cidr]:-}" ]]; then
        if msg="$(cidr_check "${CFG[cluster.network.cidr]}" 8 23)"; then pod="$msg"; else
            CFG_ERRORS+=("cluster.network.cidr: $msg")
        fi
    fi
    # Service CIDR: the API server refuses ranges larger than /12.
    if [[ -n "${CFG[cluster.network.serviceCidr]:-}" ]]; then
        if msg="$(cidr_check "${CFG[cluster.network.serviceCidr]}" 12 27)"; then svc="$msg"; else
            CFG_ERRORS+=("cluster.network.serviceCidr: $msg")
        fi
    fi
    if [[ -n "$pod" && -n "$svc" ]]; then
        read -r a pa <<<"$pod"
        read -r b pb <<<"$svc"
        m=$((pa < pb ? pa : pb))
        if (((a >> (32 - m)) == (b >> (32 - m)))); then
            CFG_ERRORS+=("cluster.network: cidr ${CFG[cluster.network.cidr]} and serviceCidr ${CFG[cluster.network.serviceCidr]} overlap")
        fi
    fi

    case "${CFG[cluster.network.flannelBackend]:-vxlan}" in
        vxlan | host-gw | wireguard-native | none) ;;
        *) CFG_ERRORS+=("cluster.network.flannelBackend: \"${CFG[cluster.network.flannelBackend]}\" is not one of vxlan, host-gw, wireguard-native, none") ;;
    esac

    local class="${CFG[cluster.storage.defaultClass]:-}"
    if [[ -n "$class" && ! "$class" =~ ^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$ ]]; then
        CFG_ERRORS+=("cluster.storage.defaultClass: \"$class\" is not a valid StorageClass name")
    fi

    local pss="${CFG[cluster.security.podSecurityStandard]:-}"
    case "$pss" in
        "" | privileged | baseline | restricted) ;;
        *) CFG_ERRORS+=("cluster.security.podSecurityStandard: \"$pss\" is not one of privileged, baseline, restricted") ;;
    esac
    for key in cluster.security.networkPolicies cluster.security.secretsEncryption; do
        case "${CFG[$key]:-true}" in
            true | false) ;;
            *) CFG_ERRORS+=("$key: \"${CFG[$key]}\" must be true or false") ;;
        esac
    done

    local cron="${CFG[cluster.backup.snapshotSchedule]:-}"
    if [[ -n "$cron" ]]; then
        local -a fields
        read -r -a fields <<<"$cron"
        if [[ ${#fields[@]} -ne 5 || "$cron" =~ [^0-9*/,\ -] ]]; then
            CFG_ERRORS+=("cluster.backup.snapshotSchedule: \"$cron\" is not a 5-field cron expression")
        fi
    fi
    local keep="${CFG[cluster.backup.snapshotRetention]:-}"
    if [[ -n "$keep" && ! "$keep" =~ ^[1-9][0-9]{0,3}$ ]]; then
        CFG_ERRORS+=("cluster.backup.snapshotRetention: \"$keep\" must be a whole number from 1 to 9999")
    fi
    cfg_validate_s3
    [[ ${#CFG_ERRORS[@]} -eq 0 ]]
}

# cfg_validate_s3: the optional S3 target for etcd snapshots. Values land in K3s' config file
# and in S3 requests, so each is held to the characters its kind of value can have.
cfg_validate_s3() {
    local enabled="${CFG[cluster.backup.s3.enabled]:-false}" key
    case "$enabled" in
        true | false) ;;
        *) CFG_ERRORS+=("cluster.backup.s3.enabled: \"$enabled\" must be true or false") ;;
    esac
    if [[ "$enabled" == true ]]; then
        for key in cluster.backup.s3.endpoint cluster.backup.s3.bucket; do
            [[ -n "${CFG[$key]:-}" ]] || CFG_ERRORS+=("$key: required when cluster.backup.s3.enabled is true")
        done
    fi
    local endpoint="${CFG[cluster.backup.s3.endpoint]:-}"
    # K3s takes a host[:port]; a scheme or path would be sent as part of the host name.
    if [[ -n "$endpoint" && ! "$endpoint" =~ ^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?(:[0-9]{1,5})?$ ]]; then
        CFG_ERRORS+=("cluster.backup.s3.endpoint: \"$endpoint\" must be host or host:port, without https:// or a path")
    fi
    local bucket="${CFG[cluster.backup.s3.bucket]:-}"
    if [[ -n "$bucket" && ! "$bucket" =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]]; then
        CFG_ERRORS+=("cluster.backup.s3.bucket: \"$bucket\" is not an S3 bucket name")
    fi
    local region="${CFG[cluster.backup.s3.region]:-}"
    if [[ -n "$region" && ! "$region" =~ ^[a-z0-9][-a-z0-9]{0,62}$ ]]; then
        CFG_ERRORS+=("cluster.backup.s3.region: \"$region\" is not a region name")
    fi
    local folder="${CFG[cluster.backup.s3.folder]:-}"
    if [[ -n "$folder" && ( ! "$folder" =~ ^[A-Za-z0-9][A-Za-z0-9_./-]{0,254}$ || "$folder" == *..* ) ]]; then
        CFG_ERRORS+=("cluster.backup.s3.folder: \"$folder\" must be letters, digits, '_', '.', '-' and '/', without '..'")
    fi
}

# cfg_load FILE: parse and validate; print every problem and return 1 when there is any.
cfg_load() {
    local file="$1" problem
    cfg_parse "$file" && cfg_validate
    if [[ ${#CFG_ERRORS[@]} -gt 0 ]]; then
        for problem in "${CFG_ERRORS[@]}"; do
            error "config: $problem"
        done
        return 1
    fi
}

# The cluster DNS address K3s uses: the tenth address of the service network.
cfg_cluster_dns() {
    local net _prefix
    read -r net _prefix <<<"$(cidr_check "${CFG[cluster.network.serviceCidr]}" 0 32)"
    int_to_ipv4 $((net + 10))
}

# cfg_render_k3s_config ROLE SERVER_URL TOKEN_FILE: print /etc/rancher/k3s/config.yaml.
# ROLE is server-init (first server, starts embedded etcd), server (joins SERVER_URL) or agent.
cfg_render_k3s_config() {
    local role="$1" server_url="$2" token_file="$3"
    cat <<EOF
# Generated by bootstrap/scripts/install-k3s.sh from bootstrap/configs/cluster-config.yaml
# (cluster "${CFG[cluster.name]}", K3s ${CFG[cluster.version]}). Do not edit: change the source
# file and re-run the installer.
EOF
    if [[ "$role" == agent ]]; then
        printf 'server: "%s"\n' "$server_url"
        printf 'token-file: "%s"\n' "$token_file"
        printf 'node-label:\n  - "capstan.dev/cluster=%s"\n' "${CFG[cluster.name]}"
        return 0
    fi
    if [[ "$role" == server-init ]]; then
        printf 'cluster-init: true\n'
    else
        printf 'server: "%s"\n' "$server_url"
        printf 'token-file: "%s"\n' "$token_file"
    fi
    printf 'cluster-cidr: "%s"\n' "${CFG[cluster.network.cidr]}"
    printf 'service-cidr: "%s"\n' "${CFG[cluster.network.serviceCidr]}"
    printf 'cluster-dns: "%s"\n' "$(cfg_cluster_dns)"
    printf 'flannel-backend: "%s"\n' "${CFG[cluster.network.flannelBackend]:-vxlan}"
    if [[ "${CFG[cluster.security.networkPolicies]}" == false ]]; then
        printf 'disable-network-policy: true\n'
    fi
    printf 'secrets-encryption: %s\n' "${CFG[cluster.security.secretsEncryption]:-true}"
    printf 'write-kubeconfig-mode: "0600"\n'
    printf 'node-label:\n  - "capstan.dev/cluster=%s"\n' "${CFG[cluster.name]}"
    printf 'kube-apiserver-arg:\n  - "admission-control-config-file=%s"\n' "$PSA_CONFIG_PATH"
    if [[ -n "${CFG[cluster.backup.snapshotSchedule]:-}" ]]; then
        printf 'etcd-snapshot-schedule-cron: "%s"\n' "${CFG[cluster.backup.snapshotSchedule]}"
    fi
    if [[ -n "${CFG[cluster.backup.snapshotRetention]:-}" ]]; then
        printf 'etcd-snapshot-retention: %s\n' "${CFG[cluster.backup.snapshotRetention]}"
    fi
    # Each scheduled snapshot is also uploaded. The access and secret keys are not in this file
    # (it is in Git): K3s reads AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from its service
    # environment, /etc/systemd/system/k3s.service.env (bootstrap/docs/backup-restore.md).
    if [[ "${CFG[cluster.backup.s3.enabled]:-false}" == true ]]; then
        printf 'etcd-s3: true\n'
        printf 'etcd-s3-endpoint: "%s"\n' "${CFG[cluster.backup.s3.endpoint]}"
        printf 'etcd-s3-bucket: "%s"\n' "${CFG[cluster.backup.s3.bucket]}"
        if [[ -n "${CFG[cluster.backup.s3.region]:-}" ]]; then
            printf 'etcd-s3-region: "%s"\n' "${CFG[cluster.backup.s3.region]}"
        fi
        if [[ -n "${CFG[cluster.backup.s3.folder]:-}" ]]; then
            printf 'etcd-s3-folder: "%s"\n' "${CFG[cluster.backup.s3.folder]}"
        fi
    fi
}

# cfg_render_psa_config: print the Pod Security admission configuration. The cluster-wide
# default level is the configured one; kube-system is exempt because K3s' own components and
# helm-controller's install jobs run there.
cfg_render_psa_config() {
    local level="${CFG[cluster.security.podSecurityStandard]}"
    cat <<EOF
# Generated by bootstrap/scripts/install-k3s.sh from bootstrap/configs/cluster-config.yaml
# (security.podSecurityStandard: $level). Namespaces may still set their own level by label.
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
  - name: PodSecurity
    configuration:
      apiVersion: pod-security.admission.config.k8s.io/v1
      kind: PodSecurityConfiguration
      defaults:
        enforce: "$level"
        enforce-version: "latest"
        audit: "$level"
        audit-version: "latest"
        warn: "$level"
        warn-version: "latest"
      exemptions:
        usernames: []
        runtimeClasses: []
        namespaces: [kube-system]
EOF
}
