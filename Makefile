# Brine: `make demo` runs the main job, `make test` runs every test.
# Each target installs what it needs (the wasm32-wasip1 target) itself.

CARGO        ?= cargo
WASM_TARGET  := wasm32-wasip1
TARGET_DIR   := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
EXAMPLES_DIR := $(TARGET_DIR)/$(WASM_TARGET)/release
EXAMPLES     := example-hello example-sum example-wordcount example-pi example-evolve example-failures

export BRINE_EXAMPLES_DIR := $(EXAMPLES_DIR)

.PHONY: all build examples test test-mesos test-mesos-protos demo bench bench-quick bench-font bench-runtime fmt lint setup zookeeper

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

## zookeeper: the ZooKeeper server scheduler/tests/zookeeper.rs runs (Debian's package,
## which brings a Java runtime); sudo only when not root
zookeeper:
	@if ! dpkg -s zookeeper >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq zookeeper; \
	fi

## test: every test of every crate (the examples are built first: tests run them)
## and, when run as root (as CI is), the cgroup tests (test-cgroups)
test: examples zookeeper
	$(CARGO) test --workspace --all-targets --no-fail-fast
	$(CARGO) test --workspace --doc
	@if [ "$$(id -u)" -eq 0 ]; then $(MAKE) --no-print-directory test-cgroups; \
	else echo "not root: the cgroup tests were left out (ignored); as root: make test-cgroups"; fi

## test-cgroups: the tests that need root (the cgroup cpu and memory controllers, a
## tmpfs mount for the fault matrix's disk-full case), #[ignore]d in a plain `cargo
## test`; `make test` runs them when run as root
.PHONY: test-cgroups
## (one workspace-wide invocation, like `make test`'s, so that after it nothing is
## rebuilt: per-package invocations unify features differently and rebuilt minutes'
## worth of the tree; `--tests`, as the criterion benches take one filter only)
test-cgroups: examples
	$(CARGO) test --workspace --tests -- --ignored limits_follow_the_tasks \
		cgroup_memory_soft_limit disk_full_while_the_agent_writes_a_sandbox

## test-mesos: the tests that need a real Apache Mesos master (MASTER=http://host:5050
## or zk://host:2181/mesos), ignored by `make test` because there is none here
test-mesos: examples
	@test -n "$(MASTER)" || { echo "usage: make test-mesos MASTER=http://host:5050"; exit 2; }
	$(CARGO) build -p brine-executor
	BRINE_TEST_MESOS_MASTER=$(MASTER) $(CARGO) test -p brine-scheduler --features tls,zk --test mesos -- --ignored --nocapture

## test-mesos-protos: our .proto subset checked field by field against Mesos's own
## (MESOS_PROTO_DIR=<mesos checkout>/include), ignored by `make test`: they are not here
test-mesos-protos:
	@test -n "$(MESOS_PROTO_DIR)" || { echo "usage: make test-mesos-protos MESOS_PROTO_DIR=<mesos>/include"; exit 2; }
	MESOS_PROTO_DIR=$(MESOS_PROTO_DIR) $(CARGO) test -p brine-proto --test mesos_subset -- --ignored

## demo: the main job: the example tasks on a local two-agent cluster, through the
## scheduler library (scheduler/examples/demo/). The runtime alone, without a cluster:
## `cargo run --release -p brine-executor --example runtime_demo`. One cargo invocation
## builds the executor and the demo, so both get one feature set and nothing is built
## twice (two invocations resolved features differently and rebuilt much of the tree);
## `--bins` because with a target flag cargo builds only the targets named. The dev
## profile, not release: a first `make demo` from a fresh clone on 2 cores (crate
## downloads included) took 7.3 min against 15.1 min in release; the guest code is
## Cranelift's either way (and Cranelift itself is optimised in dev, see Cargo.toml),
## so the demo runs in ~10 s instead of ~5 s. `make bench` is what builds release.
demo: examples
	$(CARGO) build -p brine-executor -p brine-scheduler --bins --example demo
	$(TARGET_DIR)/debug/examples/demo

## bench: the benchmark harness (bench/README.md), run as `brine bench`: table on
## stdout and in bench/results/ with the raw numbers (JSON) and the latency plot (SVG,
## PNG); BENCH_ARGS passes options (--only executor, --master http://host:port …)
bench: examples bench-font
	$(CARGO) build --release -p brine-executor -p brine-bench
	$(CARGO) build --release -p brine-cli --bin brine
	$(TARGET_DIR)/release/brine bench $(BENCH_ARGS)

## bench-quick: the smoke run CI makes (`brine bench --quick`, under a minute). It uses
## the debug build `make test` already made, so its figures are not Brine's: it checks
## that every part runs. Results go to target/bench-quick/, not bench/results/. It builds
## `--all-targets`, as `make test` does, so that after `make test` nothing is rebuilt
## (`--bins` alone unifies dependency features differently and rebuilds half the tree).
bench-quick: examples bench-font
	$(CARGO) build --workspace --all-targets
	$(TARGET_DIR)/debug/brine bench --quick --out $(TARGET_DIR)/bench-quick $(BENCH_ARGS)

## bench-font: the font the plot's PNG text is drawn with (Debian's fonts-dejavu-core)
bench-font:
	@if [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] && [ -z "$$BRINE_BENCH_FONT" ]; then \
		SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq fonts-dejavu-core \
		|| echo "fonts-dejavu-core not installed: the plot is drawn without text"; \
	fi

## fault-matrix: the fault matrix (scheduler/tests/faults.rs and faults_deployed.rs,
## also run by `make test`), one case after another, and its table copied into
## docs/FAULTS.md; as root (the disk-full case mounts a tmpfs)
.PHONY: fault-matrix
fault-matrix: examples
	$(CARGO) build -p brine-executor -p brine-local -p brine-cli
	rm -rf $(TARGET_DIR)/tmp/fault-matrix
	$(CARGO) test -p brine-scheduler --test faults --test faults_deployed -- --test-threads=1 --include-ignored
	python3 -c 'import re,sys; d=open("docs/FAULTS.md").read(); t=open(sys.argv[1]).read(); \
		open("docs/FAULTS.md","w").write(re.sub(r"(?s)<!-- matrix -->.*<!-- /matrix -->", lambda _: "<!-- matrix -->\n"+t+"<!-- /matrix -->", d))' \
		$(TARGET_DIR)/tmp/fault-matrix/FAULTS.md

## bench-runtime: the runtime's criterion benchmark (warm task, cold load, disk load)
bench-runtime: examples
	$(CARGO) bench -p brine-executor --bench runtime

fmt:
	$(CARGO) fmt --all

## lint: formatting and clippy, warnings as errors
lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	# The library with none of its optional parts (`local`, `zk`, `tls`): the workspace
	# build turns them all on.
	$(CARGO) clippy -p brine-scheduler --no-default-features -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) $(addprefix -p ,$(EXAMPLES)) -p brine-guest -- -D warnings
