# lakehose: the two set-up commands are `make run` and `make test`.
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/lakehose-target
BIN_RELEASE := $(CARGO_TARGET_DIR)/release/lakehose
SAMPLE := sample/events.ndjson
SAMPLE_COUNT ?= 100000

.PHONY: all build release release-pgo run test demo-aws unit integration lint fmt bench sync-catalog-files clean

all: build

build:
	cargo build

release:
	cargo build --release

## make release-pgo: the release build optimised with a profile of lakehose's
## own run over generated events (profile-guided optimisation, scripts/pgo.sh;
## about twice the build time). Prints the binary's path last.
release-pgo:
	scripts/pgo.sh

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

## make bench: 1,000,000 clean events, lakehose (profile-guided and plain release
## builds) vs the DuckDB anchor, same file, same run.
bench: release
	scripts/bench.sh

## Regenerate glue/ and athena/ from schemas/ (a test fails when they drift).
sync-catalog-files: build
	scripts/sync-catalog-files.sh $(CARGO_TARGET_DIR)/debug/lakehose

clean:
	rm -rf lake sample bench-out
