# `make test` runs every test. Tests and the binary share the release profile, so the build
# that serves `cargo run --release` serves the tests too.
CARGO ?= cargo
PYTHON ?= python3

.PHONY: test build bench golden fixtures clean

test:
	$(CARGO) test --release --locked
	$(CARGO) bench --locked --no-run

build:
	$(CARGO) build --release --locked

# Criterion benches per stage; whole-command comparison with the reference: benches/compare_dsir.sh
bench:
	$(CARGO) bench --locked

# Regenerate the reference golden files (needs the reference in a venv, see the script).
golden:
	$(PYTHON) tests/golden/make_dsir_golden.py

clean:
	$(CARGO) clean
	rm -rf out
