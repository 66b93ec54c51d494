# clipsearch — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export ORT_DYLIB_PATH ?= $(CURDIR)/vendor/onnxruntime/libonnxruntime.so.1.31.1
# A test Milvus on its own port, so a user's Milvus on 19530 is left alone.
TEST_MILVUS_PORT ?= 19540

.PHONY: help setup demo build test soak fuzz lint bench bench-setup milvus-up milvus-down model

help:
	@echo "make demo         setup, then the whole product locally: Milvus, S3/SQS emulator, both functions, sample images, searches (Ctrl-C stops it)"
	@echo "make setup        venv (pinned), ONNX Runtime library (pinned wheel), release build"
	@echo "make test         setup, then every test (starts and stops its own Milvus)"
	@echo "make soak         setup, then 50 random concurrent event schedules against the real services (SCHEDULES=N)"
	@echo "make fuzz         setup, then each fuzz target for FUZZ_SECONDS (default 600; TARGETS=\"events filter\" picks some)"
	@echo "make lint         cargo fmt --check and clippy -D warnings"
	@echo "make bench        benchmarks (see BENCHMARKS.md)"
	@echo "make milvus-up    start the local Milvus (MILVUS_PORT, default 19530); milvus-down stops it"
	@echo "make model        download a named model into models/NAME (NAME=list names them; default clip-vit-base-patch32; needs the Hugging Face hub)"
	@echo "make bench-setup  the torch venv (.venv-bench) the benchmarks and the model exporters use"

setup:
	bash scripts/setup.sh

demo: setup
	bash scripts/demo.sh

build:
	cargo build --release --workspace

test: setup
	bash scripts/test.sh

# Many more randomized event schedules than `make test` runs (tests/ingest_schedule.rs).
soak: setup
	SCHEDULES=$${SCHEDULES:-50} bash scripts/test.sh -p clipsearch-cli --test ingest_schedule concurrent -- --nocapture

# Coverage-guided fuzzing (fuzz/, scripts/fuzz.sh); `make test` runs a short smoke of each target.
FUZZ_SECONDS ?= 600
fuzz: setup
	bash scripts/fuzz.sh run $(FUZZ_SECONDS) $(TARGETS)

lint:
	cargo fmt --all -- --check
	cargo clippy --release --workspace --all-targets -- -D warnings

bench: setup
	bash scripts/bench.sh

milvus-up:
	bash scripts/milvus.sh up

milvus-down:
	bash scripts/milvus.sh down

# make model NAME=siglip-base-patch16-224; NAME=list prints the catalogue (scripts/models.tsv).
NAME ?= clip-vit-base-patch32
model:
	bash scripts/download-model.sh $(if $(filter list,$(NAME)),--list,$(NAME))

bench-setup:
	bash scripts/bench.sh --venv
