# sluice: the two commands of the README.
#   make demo   runs the main example on the embedded log
#   make test   runs the whole suite (format check, clippy, every test), release profile only
#
# One profile (release) and one target dir for everything, so nothing is built twice.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/sluice-target
CARGO ?= cargo
SHELL := /bin/bash
TEST_LOG := $(CARGO_TARGET_DIR)/sluice-test.log

.PHONY: demo test deps lint-tools fmt-check clippy doc-check unit-tests conformance-deps conformance-kafka differential

# RocksDB's build needs libclang; librdkafka's (sluice-kafka, through rdkafka's cmake-build)
# needs cmake, and curl, OpenSSL and Cyrus SASL headers for OIDC, SSL and SASL. Each package
# is installed only when missing.
BUILD_PACKAGES := libclang-dev cmake libcurl4-openssl-dev libssl-dev libsasl2-dev
deps:
	@command -v $(CARGO) >/dev/null 2>&1 || { echo "cargo is missing: install Rust with rustup (https://rustup.rs)"; exit 1; }
	@if command -v dpkg >/dev/null 2>&1; then \
		missing=; for p in $(BUILD_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
		if [ -n "$$missing" ]; then \
			echo "== installing$$missing (needed to build RocksDB and librdkafka)"; \
			if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
			$$SUDO apt-get update && $$SUDO apt-get install -y $$missing; \
		fi; \
	fi

demo: deps
	$(CARGO) run --release --example wordcount

# The lint gates never pass without linting: rustfmt and clippy are installed with rustup
# when missing, and their absence is an error when that is impossible.
lint-tools:
	@for tool in fmt:rustfmt clippy:clippy; do \
		sub=$${tool%%:*}; component=$${tool##*:}; \
		if ! $(CARGO) $$sub --version >/dev/null 2>&1; then \
			command -v rustup >/dev/null 2>&1 || { echo "cargo $$sub is missing and rustup is not there to install $$component"; exit 1; }; \
			echo "== rustup component add $$component"; rustup component add $$component || exit 1; \
			$(CARGO) $$sub --version >/dev/null 2>&1 || { echo "cargo $$sub still missing after installing $$component"; exit 1; }; \
		fi; \
	done

fmt-check: lint-tools
	@echo "== cargo fmt --check"; $(CARGO) fmt --all -- --check

clippy: lint-tools
	@echo "== cargo clippy"; $(CARGO) clippy --release --workspace --all-targets -- -D warnings

# rustdoc with warnings as errors: broken or private intra-doc links fail the suite.
doc-check:
	@echo "== cargo doc"; RUSTDOCFLAGS="-D warnings" $(CARGO) doc --release --workspace --no-deps

# Every test target, then the doc tests; the last line sums what all of them ran. One Apache
# Kafka 4.4 (KRaft, loopback, ephemeral ports) serves every test that runs against Kafka
# (SLUICE_TEST_KAFKA_BOOTSTRAP); it starts once the tests are built and is stopped when they
# end, however they end.
unit-tests: conformance-deps
	@mkdir -p "$(CARGO_TARGET_DIR)"
	@$(CARGO) test --release --workspace --all-targets --no-run
	@set -o pipefail; dir="$$(mktemp -d /tmp/sluice-test-kafka.XXXXXX)"; \
	trap '$(CONFORMANCE)/kafka.sh stop "$$dir" >/dev/null 2>&1; rm -rf "$$dir"' EXIT; \
	$(CONFORMANCE)/kafka.sh start "$$dir" >/dev/null || exit 1; \
	export SLUICE_TEST_KAFKA_BOOTSTRAP="$$(cat "$$dir/bootstrap")"; \
	{ $(CARGO) test --release --workspace --all-targets && \
		$(CARGO) test --release --workspace --doc; } 2>&1 | tee "$(TEST_LOG)"
	@awk '/^test result:/ { p += $$4; f += $$6 } END { printf "all tests: %d passed, %d failed\n", p, f }' "$(TEST_LOG)"

# conformance-deps: the real Kafka clients the conformance tests drive (cli/tests/conformance.rs).
# differential: the same scenarios against Apache Kafka 4.4 and sluice broker (about 20 s).
test: deps conformance-deps fmt-check clippy doc-check unit-tests differential

# Real-client conformance suites for a Kafka wire-protocol broker
# (tests/conformance/): confluent-kafka, kafka-python, kafkajs, kcat and Kafka's
# Java tools. Their dependencies, each installed only when missing.
CONFORMANCE := tests/conformance
conformance-deps:
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	if ! python3 -c 'import confluent_kafka, kafka, snappy, lz4.frame, zstandard, crc32c' >/dev/null 2>&1; then \
		echo "== pip: confluent-kafka, kafka-python with its snappy/lz4/zstd codecs"; \
		pkgs="confluent-kafka kafka-python[lz4,snappy,zstd,crc32c]"; \
		python3 -m pip install $$pkgs || python3 -m pip install --break-system-packages $$pkgs; \
	fi; \
	if [ ! -d $(CONFORMANCE)/node_modules/kafkajs ] || [ ! -d $(CONFORMANCE)/node_modules/kafkajs-snappy ]; then \
		echo "== npm: kafkajs (from $(CONFORMANCE)/package-lock.json)"; \
		(cd $(CONFORMANCE) && npm ci --no-audit --no-fund); \
	fi; \
	if ! command -v kcat >/dev/null 2>&1; then \
		echo "== apt: kcat"; $$SUDO apt-get update && $$SUDO apt-get install -y kcat; \
	fi; \
	command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1 || { echo "Java 17+ and Maven are needed for the Kafka jars"; exit 1; }; \
	$(CONFORMANCE)/jars.sh >/dev/null; \
	tests/librdkafka/setup.sh >/dev/null

# Every conformance suite against Apache Kafka 4.4 (the reference broker),
# started on loopback with ephemeral ports and stopped at the end.
conformance-kafka: conformance-deps
	@set -euo pipefail; dir="$$(mktemp -d /tmp/sluice-conformance-kafka.XXXXXX)"; \
	trap '$(CONFORMANCE)/kafka.sh stop "$$dir"; rm -rf "$$dir"' EXIT; \
	t0=$$SECONDS; $(CONFORMANCE)/kafka.sh start "$$dir" >/dev/null; \
	echo "conformance-kafka: Apache Kafka up at $$(cat "$$dir/bootstrap") in $$((SECONDS - t0)) s"; \
	$(CONFORMANCE)/run_all.sh "$$(cat "$$dir/bootstrap")"

# librdkafka 2.0.2's own integration test suite (Debian's source package, built
# under ~/.cache/sluice-librdkafka; fetched, patched and built only when missing)
# against sluice broker, then Apache Kafka 4.4; both pass counts at the end.
# tests/librdkafka/run.sh BOOTSTRAP [--ci | TESTS...] runs it against any broker.
# Results and causes of failures: tests/librdkafka/RESULTS.md.
.PHONY: conformance
conformance:
	@command -v java >/dev/null 2>&1 || { echo "Java 17+ is needed for Apache Kafka"; exit 1; }
	@$(CONFORMANCE)/jars.sh >/dev/null
	tests/librdkafka/conformance.sh

# Differential test (tests/differential/): the same scenarios against Apache
# Kafka 4.4 and against `sluice broker` (both fresh, loopback, ephemeral ports),
# the two JSON documents of observations compared; non-zero exit on a difference
# outside the allow-list. Uses the release binary in $(CARGO_TARGET_DIR).
differential: conformance-deps
	@SLUICE_BIN="$(CARGO_TARGET_DIR)/release/sluice" tests/differential/run.sh
