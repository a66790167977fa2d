# sluice: the two commands of the README.
#   make demo   runs the main example on the embedded log
#   make test   runs the whole suite (format check, clippy, every test), release profile only
#
# One profile (release) and one target dir for everything, so nothing is built twice.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/sluice-target
CARGO ?= cargo
SHELL := /bin/bash
TEST_LOG := $(CARGO_TARGET_DIR)/sluice-test.log

.PHONY: demo test deps fmt-check clippy unit-tests

# RocksDB's build (from the runtime issue on) needs libclang. Install it only when missing.
deps:
	@command -v $(CARGO) >/dev/null 2>&1 || { echo "cargo is missing: install Rust with rustup (https://rustup.rs)"; exit 1; }
	@if command -v dpkg >/dev/null 2>&1 && ! dpkg -s libclang-dev >/dev/null 2>&1; then \
		echo "== installing libclang-dev (needed to build RocksDB)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update && $$SUDO apt-get install -y libclang-dev; \
	fi

demo: deps
	$(CARGO) run --release --example wordcount

fmt-check:
	@if $(CARGO) fmt --version >/dev/null 2>&1; then \
		echo "== cargo fmt --check"; $(CARGO) fmt --all -- --check; \
	else echo "== rustfmt is not installed: skipping the format check"; fi

clippy:
	@if $(CARGO) clippy --version >/dev/null 2>&1; then \
		echo "== cargo clippy"; $(CARGO) clippy --release --workspace --all-targets -- -D warnings; \
	else echo "== clippy is not installed: skipping lints"; fi

# Every test target, then the doc tests; the last line sums what all of them ran.
unit-tests:
	@mkdir -p "$(CARGO_TARGET_DIR)"
	@set -o pipefail; { $(CARGO) test --release --workspace --all-targets && \
		$(CARGO) test --release --workspace --doc; } 2>&1 | tee "$(TEST_LOG)"
	@awk '/^test result:/ { p += $$4; f += $$6 } END { printf "all tests: %d passed, %d failed\n", p, f }' "$(TEST_LOG)"

test: deps fmt-check clippy unit-tests
