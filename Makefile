# Brine: `make demo` runs the main job, `make test` runs every test.
# Each target installs what it needs (the wasm32-wasip1 target) itself.

CARGO        ?= cargo
WASM_TARGET  := wasm32-wasip1
TARGET_DIR   := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
EXAMPLES_DIR := $(TARGET_DIR)/$(WASM_TARGET)/release
EXAMPLES     := example-hello example-sum example-wordcount example-pi example-evolve example-failures

export BRINE_EXAMPLES_DIR := $(EXAMPLES_DIR)

.PHONY: all build examples test demo bench fmt lint setup

all: build

## setup: install the rust target the task modules are built for
setup:
	@rustup target list --installed | grep -qx '$(WASM_TARGET)' || rustup target add $(WASM_TARGET)

## build: the host crates
build: setup
	$(CARGO) build --workspace

## examples: the example task modules, as .wasm, in $(EXAMPLES_DIR)
examples: setup
	$(CARGO) build --release --target $(WASM_TARGET) $(addprefix -p ,$(EXAMPLES))

## test: every test of every crate (the examples are built first: tests run them)
test: examples
	$(CARGO) test --workspace --all-targets --no-fail-fast
	$(CARGO) test --workspace --doc

## demo: run the example jobs and print their results
demo: examples
	$(CARGO) run --release -p brine-executor --example demo

## bench: the runtime's criterion benchmark
bench: examples
	$(CARGO) bench -p brine-executor --bench runtime

fmt:
	$(CARGO) fmt --all

## lint: formatting and clippy, warnings as errors
lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) $(addprefix -p ,$(EXAMPLES)) -p brine-guest -- -D warnings
