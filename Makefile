# lakehose: the two set-up commands are `make run` and `make test`.
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/lakehose-target
BIN_RELEASE := $(CARGO_TARGET_DIR)/release/lakehose
SAMPLE := sample/events.ndjson
SAMPLE_COUNT ?= 100000

.PHONY: all build release pgo-profile run test demo-aws unit integration lint fmt bench sync-catalog-files clean

all: build

build:
	cargo build

## make release: the release build, optimised with the profile in pgo/
## (profile-guided; one ordinary build, see scripts/pgo.sh). Without a
## usable profile (another LLVM version) it builds without one and says so.
release:
	scripts/pgo.sh build

## make pgo-profile: re-record pgo/lakehose.profdata from an instrumented run
## over generated events (after changing the hot path; needs rustup's llvm-tools).
pgo-profile:
	scripts/pgo.sh record

## make run: build, generate sample events (some broken, some duplicated),
## run the pipeline on the embedded default (schemas/ -> ./lake), show the lake.
run: release
	@mkdir -p sample
	$(BIN_RELEASE) gen taxi --count $(SAMPLE_COUNT) --bad 0.03 --dup 0.01 --seed 7 -o $(SAMPLE)
	@# a fresh lake each time: the checkpoint would otherwise (rightly) skip the same file
	rm -rf lake
	$(BIN_RELEASE) run --input $(SAMPLE) --insecure-dev-key
	@echo
	@echo "lake tree (first levels):"
	@find lake -maxdepth 3 -not -path 'lake/_lakehose/*' | sort | head -40
	@echo "data objects: $$(find lake/taxi_trips -name '*.parquet' | wc -l), error objects: $$(find lake/errors -name '*.ndjson.gz' | wc -l)"

## make test: unit and integration tests (builds everything they need).
## The AWS tests run against kinesis-mock and moto, installed (pinned, under
## emulators/) and started on loopback by scripts/emulators.sh; a missing
## emulator fails the run, it never skips.
test:
	scripts/emulators.sh install
	cargo build --bins
	scripts/emulators.sh run -- cargo test --all-targets

## make demo-aws: the AWS path on local emulators: stream, put, run, S3 objects and Glue partitions.
demo-aws: release
	scripts/demo-aws.sh

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

fmt:
	cargo fmt

## make bench: 1,000,000 clean events, lakehose (the release build, and the same
## without its profile) vs the DuckDB anchor, same file, same run.
bench:
	scripts/bench.sh

## Regenerate glue/ and athena/ from schemas/ (a test fails when they drift).
sync-catalog-files: build
	scripts/sync-catalog-files.sh $(CARGO_TARGET_DIR)/debug/lakehose

clean:
	rm -rf lake sample bench-out
