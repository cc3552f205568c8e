# Capstan's entry points for humans and CI. `make` alone lists them.
.DEFAULT_GOAL := help
export CARGO_TERM_COLOR ?= never

.PHONY: help serve test validate check supply fuzz fmt lint bench-intake
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

serve: ## Run capstan serve on its embedded defaults (SQLite under ./data, :8080)
	cargo run --release -p capstan-server -- serve

test: ## The whole test suite (what .ci/run runs): tree, lint, Capstan on its own tree, all tests
	bash tests/gitops/validate.sh
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(MAKE) --no-print-directory check
	$(MAKE) --no-print-directory supply
	bash tests/fuzz.sh --ci
	cargo nextest run --workspace --no-fail-fast

validate: ## The GitOps tree offline: kustomize builds, YAML, shellcheck, bats
	bash tests/gitops/validate.sh

check: ## Capstan judges its own GitOps tree: policy unit tests, then every app rendered and checked
	cargo run -q -p capstan-server -- policy test
	cargo run -q -p capstan-server -- check

supply: ## Supply chain: licenses, banned crates, sources, advisories when reachable, unused deps
	bash tests/supply.sh

FUZZ_SECONDS ?= 20
fuzz: ## Explore with cargo-fuzz, FUZZ_SECONDS per target (20; 3600 for a long run); make test runs the fixed-seed gate
	bash tests/fuzz.sh $(FUZZ_SECONDS)

fmt: ## Format the code
	cargo fmt --all

lint: ## Clippy with warnings as errors
	cargo clippy --workspace --all-targets -- -D warnings

bench-intake: ## Intake benchmark with wrk on SQLite, then PostgreSQL if DATABASE_URL is set
	tests/bench/intake.sh sqlite
	@if [ -n "$$DATABASE_URL" ]; then tests/bench/intake.sh postgres; else echo "skipped: postgres (DATABASE_URL unset)"; fi
