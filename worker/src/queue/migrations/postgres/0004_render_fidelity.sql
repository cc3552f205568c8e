-- Render verification (render/verify.rs): one row per kustomization whose native render did not
-- match the kustomize binary under one engine version. A row of the current engine version pins
-- that kustomization to the binary; a new engine version starts unpinned.
CREATE TABLE render_mismatches (
    id               BIGSERIAL PRIMARY KEY,
    repo             TEXT NOT NULL,
    path             TEXT NOT NULL,
    engine_version   TEXT NOT NULL,
    kind             TEXT NOT NULL,
    first_difference TEXT NOT NULL,
    first_seen       BIGINT NOT NULL,
    last_seen        BIGINT NOT NULL,
    occurrences      BIGINT NOT NULL,
    UNIQUE (repo, path, engine_version)
);
CREATE INDEX render_mismatches_version ON render_mismatches (engine_version);

-- Kustomizations verified at least once under an engine version: the first render of any other
-- one after an engine upgrade is always verified.
CREATE TABLE render_verified (
    repo           TEXT NOT NULL,
    path           TEXT NOT NULL,
    engine_version TEXT NOT NULL,
    PRIMARY KEY (repo, path, engine_version)
);
