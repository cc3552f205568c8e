# syntax=docker/dockerfile:1
# Capstan's image, built from this repository (`docker build -t ghcr.io/capstan-gitops/capstan:<version> .`,
# <version> = the workspace version in Cargo.toml, which applications/system/capstan deploys).
#
#   build    the `capstan` binary, release profile, exactly the locked dependencies
#   tools    kustomize and helm at pinned versions, built from their Go modules: the module proxy's
#            checksum database verifies every module, so a version pin is also an integrity pin
#   runtime  Debian slim with git (Capstan fetches with the git CLI) and CA certificates; no shell
#            left (the last RUN removes it), runs as uid/gid 10001 like the Deployment
#
# Versions are build arguments so Renovate can bump them; tests/gitops/dockerfile.bats and
# server/tests/image_env.rs hold this file to what the Deployment expects.

# renovate: datasource=docker depName=rust versioning=docker
ARG RUST_VERSION=1.95
# renovate: datasource=docker depName=golang versioning=docker
ARG GO_VERSION=1.25
ARG DEBIAN_SUITE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_SUITE} AS build
WORKDIR /src
# Only what the build reads (see .dockerignore): manifests, crate sources, the policy bundle and
# .capstan.yaml, which the worker embeds.
COPY Cargo.toml Cargo.lock .capstan.yaml ./
COPY policies policies
COPY server server
COPY worker worker
COPY tests/Cargo.toml tests/Cargo.toml
COPY tests/src tests/src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin capstan \
    && install -D -m 0755 target/release/capstan /out/capstan

FROM golang:${GO_VERSION}-${DEBIAN_SUITE} AS tools
# kustomize: the version Capstan's native engine reproduces byte for byte (README, "Native
# kustomize"). helm: the v3 line ArgoCD's repo server renders with.
# renovate: datasource=github-releases depName=kubernetes-sigs/kustomize extractVersion=^kustomize/(?<version>.+)$
ARG KUSTOMIZE_VERSION=v5.5.0
# renovate: datasource=github-releases depName=helm/helm
ARG HELM_VERSION=v3.19.0
ENV CGO_ENABLED=0 GOBIN=/out GOFLAGS=-trimpath
RUN go install -ldflags="-s -w" "sigs.k8s.io/kustomize/kustomize/v5@${KUSTOMIZE_VERSION}" \
    && go install -ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}" \
        "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"

FROM debian:${DEBIAN_SUITE}-slim AS runtime
ARG CAPSTAN_VERSION=0.1.0
# renovate: datasource=deb depName=git versioning=deb registryUrl=https://deb.debian.org/debian?suite=bookworm&components=main&binaryArch=amd64
ARG GIT_VERSION=1:2.39.5-0+deb12u3
# renovate: datasource=deb depName=ca-certificates versioning=deb registryUrl=https://deb.debian.org/debian?suite=bookworm&components=main&binaryArch=amd64
ARG CA_CERTIFICATES_VERSION=20230311+deb12u1
LABEL org.opencontainers.image.title="capstan" \
      org.opencontainers.image.description="Reviews every pull request to a GitOps repository against the cluster ArgoCD runs" \
      org.opencontainers.image.source="https://github.com/capstan-gitops/capstan" \
      org.opencontainers.image.version="${CAPSTAN_VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# One layer: packages, the service user, its data directory, then every shell removed. Nothing
# after this RUN needs a shell; git's fetch and push over HTTPS (all Capstan runs) do not either.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        "git=${GIT_VERSION}" \
        "ca-certificates=${CA_CERTIFICATES_VERSION}" \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/* \
    && groupadd --system --gid 10001 capstan \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin capstan \
    && mkdir -p /data \
    && chown 10001:10001 /data \
    && rm -f /usr/bin/bash /usr/bin/dash /usr/bin/sh /usr/bin/rbash /bin/bash /bin/dash /bin/sh /bin/rbash
COPY --from=tools /out/kustomize /out/helm /usr/local/bin/
COPY --from=build /out/capstan /usr/local/bin/capstan
# The Deployment mounts a volume at /data and an emptyDir at /tmp (the root filesystem is
# read-only); HOME points into the volume so nothing tries to write elsewhere.
ENV HOME=/data \
    CAPSTAN_LISTEN=0.0.0.0:8080 \
    CAPSTAN_DATA_DIR=/data \
    CAPSTAN_LOG_FORMAT=json
USER 10001:10001
WORKDIR /data
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/capstan"]
CMD ["serve"]
