# `make test` runs every test. Tests and the binary share the release profile, so the build
# that serves `cargo run --release` serves the tests too.
CARGO ?= cargo
PYTHON ?= python3

# The Python client's tests run in a virtual environment with numpy (made once, here).
VENV ?= .venv
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)

.PHONY: test test-rust s3s-fs test-python test-torch build bench bench-venv compare lint golden fixtures clean fuzz

test: test-rust test-python

# The S3-compatible server the object-store tests start on 127.0.0.1: s3s-fs from crates.io,
# built once into the target directory (about 2 minutes on 2 cores).
S3S_VERSION ?= 0.14.1
TOOLS ?= $(abspath $(TARGET_DIR))/tools
S3S_FS := $(TOOLS)/bin/s3s-fs

$(S3S_FS):
	env -u CARGO_TARGET_DIR $(CARGO) install s3s-fs --version $(S3S_VERSION) --features binary --locked --root $(TOOLS)

s3s-fs: $(S3S_FS)

test-rust: $(S3S_FS)
	SYLLABUS_S3S_FS=$(S3S_FS) $(CARGO) test --release --locked
	$(CARGO) bench --locked --no-run

$(VENV)/.ready: python/requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r python/requirements-test.txt
	touch $@

# The client as users install it (pip install ./python), against the release binary.
test-python: $(VENV)/.ready
	$(CARGO) test --release --locked --no-run
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --force-reinstall ./python
	cd python/tests && SYLLABUS_BIN=$(abspath $(TARGET_DIR))/release/syllabus ../../$(VENV)/bin/python -m unittest -v test_loader test_outputs test_classifier

# The torch adapter, where torch is installed (not part of `make test`: torch is a 1+ GB
# download that the client does not need). TORCH_PYTHON: a Python with torch.
TORCH_PYTHON ?= $(VENV)/bin/python
test-torch:
	$(CARGO) test --release --locked --no-run
	$(TORCH_PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall ./python
	cd python/tests && SYLLABUS_BIN=$(abspath $(TARGET_DIR))/release/syllabus $(abspath $(TORCH_PYTHON)) -m unittest -v torch_adapter

build:
	$(CARGO) build --release --locked

# Criterion benches per stage; whole-command comparison with the reference: benches/compare_dsir.sh
bench:
	$(CARGO) bench --locked

# The reference tools of the side-by-side comparisons, pinned (benches/requirements.txt).
BENCH_VENV ?= .bench-venv
$(BENCH_VENV)/.ready: benches/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -r benches/requirements.txt
	touch $@

bench-venv: $(BENCH_VENV)/.ready

# Every side-by-side comparison, short, as ratios beside the recorded ones (benches/ratios.tsv);
# a ratio that fell by more than 25% fails. Not part of `make test`: timings never are. Run it
# for any change to dependencies, the allocator or a hot path; RECORD=1 saves the ratios.
compare: $(BENCH_VENV)/.ready
	BENCH_VENV=$(BENCH_VENV) benches/compare_all.sh

# The mutation fuzzer over every input parser (examples/fuzz.rs), FUZZ_SECONDS per target; not
# part of `make test`. Findings (panics) are saved under target/fuzz and fail the run.
FUZZ_SECONDS ?= 360
fuzz:
	$(CARGO) build --release --locked
	SYLLABUS_BIN=$(abspath $(TARGET_DIR))/release/syllabus $(CARGO) run --release --locked --example fuzz -- --seconds $(FUZZ_SECONDS) --out $(abspath $(TARGET_DIR))/fuzz

# Formatting and clippy's lints, warnings as errors; CI runs it before the tests (about half a
# minute with a warm target directory).
lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --release --locked --all-targets -- -D warnings

# Regenerate the reference golden files (needs the reference in a venv, see the script).
golden:
	$(PYTHON) tests/golden/make_dsir_golden.py

clean:
	$(CARGO) clean
	rm -rf out
